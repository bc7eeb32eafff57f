'use strict';
'require view';
'require form';

/*
 * Routes: `config route 'NAME'` sections (masqmail.route(5) options plus
 * TLS). The first route, in this order, whose criteria accept a recipient
 * and that is online carries it.
 */

function validateRegex(re, msg) {
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		return re.test(value) ? true : msg;
	};
}

var absPath = validateRegex(/^\/\S*$/, _('An absolute path, starting with /'));
var addressMap = validateRegex(/^[^\s:]+:\s*\S.*$/,
	_('LOCAL: REPLACEMENT, e.g. root: Router <router@example.net>; * matches every local part'));
var fingerprint = validateRegex(/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/,
	_('The SHA-256 fingerprint: 64 hex digits, colons allowed'));
var device = validateRegex(/^[A-Za-z0-9_.:@-]{1,15}$/, _('A network device name, e.g. pppoe-wan'));
var pattern = validateRegex(/^\S+$/, _('One address pattern without spaces, e.g. *@example.org'));

return view.extend({
	render: function() {
		var m, s, o;

		m = new form.Map('masqmail', _('Mail routes'),
			_('A route is a way out for mail: your provider\'s server (smarthost), or direct delivery to each recipient\'s mail server (no server given). For each recipient the first route, in this order, that is online and whose criteria accept it is used; the others keep the mail queued. Route names may hold letters, digits and _.'));

		s = m.section(form.TypedSection, 'route', _('Routes'));
		s.anonymous = false;
		s.addremove = true;
		s.sortable = true;
		s.addbtntitle = _('Add route');

		s.tab('general', _('General'));
		s.tab('tls', _('Encryption'));
		s.tab('auth', _('Login'));
		s.tab('criteria', _('Which mail'));
		s.tab('rewrite', _('Rewriting'));
		s.tab('pipe', _('Program'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'mail_host', _('Server'),
			_('host or host:port of your provider\'s server, e.g. smtp.example.net:587. Empty: deliver directly to each recipient\'s mail server (MX), which needs a fixed public address with matching reverse DNS.'));
		o.datatype = 'or(hostport,host)';
		o.placeholder = 'smtp.example.net:587';

		o = s.taboption('general', form.Flag, 'permanent', _('Always online'),
			_('For a route that is always reachable, such as a server on the LAN.'));

		o = s.taboption('general', form.DynamicList, 'devices', _('Interfaces'),
			_('Online only while the default route goes through one of these devices, e.g. pppoe-wan or wwan0. Empty: any default route.'));
		o.validate = device;
		o.depends('permanent', '0');

		o = s.taboption('general', form.Value, 'helo_name', _('HELO name'),
			_('The name given in the greeting. Default: the host name.'));
		o.datatype = 'hostname';

		o = s.taboption('general', form.MultiValue, 'resolve_list', _('Address lookup'),
			_('How to find the server: MX records, address records, the system resolver.'));
		o.value('dns_mx', _('MX records'));
		o.value('dns_a', _('Address records'));
		o.value('byname', _('System resolver'));
		o.default = 'dns_mx dns_a byname';

		o = s.taboption('general', form.Flag, 'prefer_ipv4', _('Prefer IPv4'));
		o.default = o.enabled;

		o = s.taboption('general', form.Flag, 'do_pipelining', _('Use pipelining'));
		o.default = o.enabled;

		o = s.taboption('general', form.Flag, 'last_route', _('Last route'),
			_('Mail this route may carry is never tried on a later route.'));

		o = s.taboption('general', form.Flag, 'connect_error_fail', _('Bounce on connection errors'),
			_('Return mail to the sender when the server cannot be reached, instead of trying again later.'));

		o = s.taboption('tls', form.ListValue, 'tls', _('Encryption'),
			_('STARTTLS (usually port 587 or 25) or TLS from the start (port 465).'));
		o.value('starttls', _('STARTTLS, required'));
		o.value('tls', _('TLS from the start'));
		o.value('none', _('None (only on a trusted network)'));
		o.default = 'starttls';

		o = s.taboption('tls', form.Flag, 'tls_verify', _('Check the certificate'),
			_('Against the CA bundle below (package ca-bundle), or against a pinned fingerprint.'));
		o.default = o.enabled;
		o.depends({ tls: 'none', '!reverse': true });

		o = s.taboption('tls', form.Value, 'tls_ca_file', _('CA bundle'));
		o.placeholder = '/etc/ssl/certs/ca-certificates.crt';
		o.validate = absPath;
		o.depends({ tls: 'none', '!reverse': true });

		o = s.taboption('tls', form.Value, 'tls_fingerprint', _('Pinned certificate'),
			_('SHA-256 fingerprint of the server\'s certificate, for routers without a CA bundle: openssl x509 -noout -fingerprint -sha256 -in server.pem'));
		o.validate = fingerprint;
		o.depends({ tls: 'none', '!reverse': true });

		o = s.taboption('auth', form.Value, 'auth_login', _('User name'));
		o.datatype = 'string';

		o = s.taboption('auth', form.Value, 'auth_secret', _('Password'),
			_('Stored in /etc/config/masqmail, readable by root only. Many providers want an app password here.'));
		o.password = true;

		o = s.taboption('auth', form.ListValue, 'auth_name', _('Method'));
		o.value('', _('Best offered'));
		o.value('plain', 'PLAIN');
		o.value('login', 'LOGIN');
		o.value('cram-md5', 'CRAM-MD5');

		o = s.taboption('auth', form.Flag, 'auth_allow_plaintext', _('Allow without encryption'),
			_('Send the password even without TLS. Only on a trusted network.'));
		o.depends('tls', 'none');

		o = s.taboption('criteria', form.DynamicList, 'allowed_senders', _('Only these senders'),
			_('Patterns with * and ?, e.g. *@example.org. Empty: every sender.'));
		o.validate = pattern;

		o = s.taboption('criteria', form.DynamicList, 'denied_senders', _('Not these senders'));
		o.validate = pattern;

		o = s.taboption('criteria', form.DynamicList, 'allowed_recipients', _('Only these recipients'));
		o.validate = pattern;

		o = s.taboption('criteria', form.DynamicList, 'denied_recipients', _('Not these recipients'));
		o.validate = pattern;

		o = s.taboption('criteria', form.DynamicList, 'allowed_from_hdrs', _('Only these From: addresses'));
		o.validate = pattern;

		o = s.taboption('criteria', form.DynamicList, 'denied_from_hdrs', _('Not these From: addresses'));
		o.validate = pattern;

		o = s.taboption('rewrite', form.DynamicList, 'map_return_path_addresses', _('Envelope sender'),
			_('Rewrite the sender of local users\' mail, e.g. "*: you@example.net": providers accept only your own address.'));
		o.validate = addressMap;

		o = s.taboption('rewrite', form.DynamicList, 'map_h_from_addresses', _('From: header'),
			_('e.g. "root: Router <you@example.net>"'));
		o.validate = addressMap;

		o = s.taboption('rewrite', form.DynamicList, 'map_h_reply_to_addresses', _('Reply-To: header'));
		o.validate = addressMap;

		o = s.taboption('rewrite', form.DynamicList, 'map_h_mail_followup_to_addresses', _('Mail-Followup-To: header'));
		o.validate = addressMap;

		o = s.taboption('rewrite', form.Value, 'set_return_path_domain', _('Envelope sender domain'),
			_('Replace the domain of local senders.'));
		o.datatype = 'hostname';

		o = s.taboption('rewrite', form.Value, 'set_h_from_domain', _('From: domain'));
		o.datatype = 'hostname';

		o = s.taboption('rewrite', form.Value, 'set_h_reply_to_domain', _('Reply-To: domain'));
		o.datatype = 'hostname';

		o = s.taboption('rewrite', form.Flag, 'expand_h_sender_address', _('Expand Sender: header'));
		o.default = o.enabled;

		o = s.taboption('pipe', form.Value, 'pipe', _('Deliver to program'),
			_('Instead of SMTP: a command that gets each message on stdin (e.g. a gateway). Excludes a server.'));

		o = s.taboption('pipe', form.Flag, 'pipe_fromline', _('Add a From_ line'));
		o.depends({ pipe: '', '!reverse': true });

		o = s.taboption('pipe', form.Flag, 'pipe_fromhack', _('Quote From_ in the body'));
		o.depends({ pipe: '', '!reverse': true });

		o = s.taboption('pipe', form.Value, 'wrapper', _('Connection wrapper'),
			_('A command whose stdin/stdout is the SMTP connection, instead of a TCP connection.'));

		return m.render();
	}
});
