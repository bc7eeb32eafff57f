'use strict';
'require view';
'require form';
'require masqmail.shacrypt as shacrypt';

/*
 * Aliases (`config alias`: name, list to) and SMTP users (`config user`:
 * name, password_hash). The password is hashed here in the browser
 * (SHA-256 crypt, $5$); only the hash is saved.
 */

return view.extend({
	render: function() {
		var m, s, o;

		m = new form.Map('masqmail', _('Mail aliases and users'));

		s = m.section(form.GridSection, 'alias', _('Aliases'),
			_('Mail to a local name goes to each target: a local user, \\user (that user\'s mailbox, no further aliases), an address, or |command.'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;

		o = s.option(form.Value, 'name', _('Name'));
		o.rmempty = false;
		o.validate = function(section_id, value) {
			return /^[^\s@]+$/.test(value || '') ? true : _('A local name without @ or spaces, e.g. root');
		};

		o = s.option(form.DynamicList, 'to', _('Deliver to'));
		o.rmempty = false;

		s = m.section(form.GridSection, 'user', _('SMTP users'),
			_('Devices that log in (SMTP AUTH) may send mail to anywhere, like the networks allowed to relay. Logging in needs TLS: set a certificate under General settings.'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;

		o = s.option(form.Value, 'name', _('User name'));
		o.rmempty = false;
		o.validate = function(section_id, value) {
			return /^\S+$/.test(value || '') ? true : _('A user name without spaces');
		};

		/* Not a UCI option: a new password, stored only as its hash. */
		o = s.option(form.Value, '_password', _('New password'),
			_('Leave empty to keep the current password.'));
		o.password = true;
		o.modalonly = true;
		o.cfgvalue = function() { return ''; };
		o.write = function(section_id, value) {
			if (value)
				this.map.data.set('masqmail', section_id, 'password_hash', shacrypt.hash(value));
		};
		o.remove = function() {};
		o.validate = function(section_id, value) {
			var known = this.map.data.get('masqmail', section_id, 'password_hash');
			if (!value && !known)
				return _('A new user needs a password');
			return true;
		};

		o = s.option(form.DummyValue, 'password_hash', _('Password'));
		o.cfgvalue = function(section_id) {
			return this.map.data.get('masqmail', section_id, 'password_hash') ? _('set') : _('none');
		};

		return m.render();
	}
});
