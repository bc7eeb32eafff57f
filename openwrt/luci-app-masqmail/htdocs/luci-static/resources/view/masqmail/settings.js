'use strict';
'require view';
'require form';

/*
 * General settings: the `config masqmail 'main'` section and where root's
 * mail goes (`config alias 'root'`). Every option name here is one that
 * `masqmail config check` knows (tests/openwrt.rs compares them).
 */

function validateRegex(re, msg) {
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		return re.test(value) ? true : msg;
	};
}

var absPath = validateRegex(/^\/\S*$/, _('An absolute path, starting with /'));
var size = validateRegex(/^[0-9]+[KkMmGg]?$/, _('Bytes, or with K, M or G, e.g. 10M'));
/* A value the daemon needs when another option has a certain value. */
function required(msg) {
	return function(section_id, value) {
		return (value != null && value !== '') ? true : msg;
	};
}

var duration = validateRegex(/^[0-9]+[smhdw]?$/, _('Seconds, or with s, m, h, d or w, e.g. 5d'));

return view.extend({
	render: function() {
		var m, s, o;

		m = new form.Map('masqmail', _('Mail'),
			_('masqmail keeps mail from this router and the LAN queued while the internet connection is down and sends it through the right route the moment that route is up. Routes are set on the Routes page; the Status page shows the queue.'));

		s = m.section(form.NamedSection, 'main', 'masqmail', _('General settings'));
		s.addremove = false;

		s.tab('general', _('General'));
		s.tab('listen', _('Receiving'));
		s.tab('queue', _('Queue'));
		s.tab('local', _('Local delivery'));
		s.tab('limits', _('Limits'));

		o = s.taboption('general', form.Value, 'host_name', _('Host name'),
			_('The name this router uses for itself in mail headers and in the HELO greeting. Default: the system host name.'));
		o.datatype = 'hostname';
		o.placeholder = 'router.lan';

		o = s.taboption('general', form.DynamicList, 'local_hosts', _('Local domains'),
			_('Mail for these domains stays on this router. Default: localhost and the host name.'));
		o.datatype = 'hostname';

		o = s.taboption('general', form.ListValue, 'online_detect', _('Online detection'),
			_('How masqmail learns that a route is online. <em>netlink</em>: the route is online while the router has a default route (on the route\'s interfaces, if it names any).'));
		o.value('netlink', _('Default route (netlink)'));
		o.value('file', _('Route names in a file'));
		o.value('command', _('Output of a command'));
		o.value('mserver', _('masqdialer server'));
		o.default = 'netlink';

		o = s.taboption('general', form.Value, 'online_file', _('Online file'),
			_('Holds the names of the routes that are online, one per line.'));
		o.depends('online_detect', 'file');
		o.placeholder = '/var/run/masqmail/online';
		o.validate = absPath;

		o = s.taboption('general', form.Value, 'online_query', _('Online command'),
			_('Prints the names of the routes that are online. Run when an interface comes up and on flush, never on a timer.'));
		o.depends('online_detect', 'command');
		o.validate = required(_('Needed with "Output of a command"'));

		o = s.taboption('general', form.Value, 'mserver_host', _('masqdialer server'));
		o.depends('online_detect', 'mserver');
		o.datatype = 'or(hostport,host)';
		o.placeholder = 'localhost:224';

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'),
			_('Log lines go to the system log (logread -e masqmail).'));
		o.value('3', _('Errors'));
		o.value('4', _('Warnings'));
		o.value('5', _('Notice: arrivals and deliveries'));
		o.value('6', _('Info'));
		o.value('7', _('Debug'));
		o.default = '5';

		o = s.taboption('listen', form.DynamicList, 'listen_addresses', _('SMTP listen addresses'),
			_('Address and port for SMTP. Loopback only by default. To take mail from LAN devices add the router\'s LAN address, e.g. 192.168.1.1:25, and the LAN under "Allowed to relay". Never a WAN address.'));
		o.datatype = 'ipaddrport(1)';
		o.placeholder = '127.0.0.1:25';

		o = s.taboption('listen', form.DynamicList, 'local_nets', _('Allowed to relay'),
			_('Clients in these networks may send mail to anywhere. Listing networks replaces the default (loopback), so keep 127.0.0.0/8 and ::1/128.'));
		o.datatype = 'cidr';
		o.placeholder = '192.168.1.0/24';

		o = s.taboption('listen', form.DynamicList, 'smtps_addresses', _('SMTPS listen addresses'),
			_('Address and port for SMTP over TLS (port 465 style). Needs a certificate and key.'));
		o.datatype = 'ipaddrport(1)';

		o = s.taboption('listen', form.Value, 'tls_cert', _('TLS certificate'),
			_('PEM file, for STARTTLS and SMTPS. Clients may log in (SMTP users) only over TLS.'));
		o.validate = absPath;
		o.placeholder = '/etc/ssl/masqmail.crt';

		o = s.taboption('listen', form.Value, 'tls_key', _('TLS key'));
		o.validate = absPath;
		o.placeholder = '/etc/ssl/masqmail.key';

		o = s.taboption('queue', form.Value, 'spool_dir', _('Queue directory'),
			_('Where mail waits while the route is down. <strong>/var is RAM on OpenWrt</strong>: the default /var/spool/masqmail spares the flash, but mail still queued is lost at a reboot or power cut. On flash (/usr/spool/masqmail) the queue survives, at the cost of a flash write per message and the risk of a full overlay; a USB stick survives without wearing the flash. Takes effect after a restart of the service.'));
		o.value('/var/spool/masqmail', _('/var/spool/masqmail (RAM, default)'));
		o.value('/usr/spool/masqmail', _('/usr/spool/masqmail (flash)'));
		o.default = '/var/spool/masqmail';
		o.rmempty = false;
		o.validate = absPath;

		o = s.taboption('queue', form.Value, 'max_defer_time', _('Give up after'),
			_('A message that could not be sent for this long is returned to its sender.'));
		o.placeholder = '5d';
		o.validate = duration;

		o = s.taboption('queue', form.Value, 'delay_warning', _('Warn sender after'),
			_('Tell the sender once that a message is delayed. Empty: never.'));
		o.placeholder = '4h';
		o.validate = duration;

		o = s.taboption('local', form.Value, 'mail_user', _('Mail user'),
			_('The unprivileged user that owns the queue; the package creates "masqmail".'));
		o.placeholder = 'masqmail';
		o.datatype = 'string';

		o = s.taboption('local', form.ListValue, 'local_delivery', _('Local mailboxes'));
		o.value('mbox', _('mbox file in the mail directory'));
		o.value('maildir', _('Maildir in the mail directory'));
		o.value('mda', _('Pass to a delivery program'));
		o.default = 'mbox';

		o = s.taboption('local', form.Value, 'mail_dir', _('Mail directory'),
			_('/var/mail is in RAM on OpenWrt.'));
		o.placeholder = '/var/mail';
		o.validate = absPath;

		o = s.taboption('local', form.Value, 'mda', _('Delivery program'),
			_('Command line; gets the message on stdin.'));
		o.depends('local_delivery', 'mda');
		o.validate = required(_('Needed with "Pass to a delivery program"'));

		o = s.taboption('local', form.Value, 'alias_file', _('Alias file'),
			_('An /etc/aliases style file, in addition to the aliases in this configuration.'));
		o.validate = absPath;

		o = s.taboption('limits', form.Value, 'max_size', _('Largest message'));
		o.placeholder = '10M';
		o.validate = size;

		o = s.taboption('limits', form.Value, 'max_recipients', _('Recipients per message'));
		o.datatype = 'range(1,1000000)';
		o.placeholder = '1000';

		o = s.taboption('limits', form.Value, 'max_connections', _('SMTP connections'));
		o.datatype = 'range(1,65535)';
		o.placeholder = '20';

		o = s.taboption('limits', form.Value, 'max_connections_per_ip', _('SMTP connections per client'));
		o.datatype = 'range(1,65535)';
		o.placeholder = '5';

		s = m.section(form.NamedSection, 'root', 'alias', _('Mail for root'),
			_('Cron jobs, alerts and postmaster mail go to root. Enter your own address to receive it; \\root keeps it in root\'s mailbox on the router.'));
		s.addremove = true;

		o = s.option(form.DynamicList, 'to', _('Deliver to'));
		o.placeholder = 'you@example.net';
		o.rmempty = false;

		o = s.option(form.HiddenValue, 'name');
		o.default = 'root';
		o.rmempty = false;

		return m.render();
	}
});
