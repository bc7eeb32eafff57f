'use strict';
'require view';
'require fs';
'require ui';
'require uci';
'require poll';
'require dom';

/*
 * Status: the daemon (`masqmail status`), each route's online state, the
 * queue (`masqmail queue --json`, format in doc/masqmail.8.md), the result
 * of `masqmail config check`, and buttons for `masqmail flush` and
 * `masqmail testmail`. Every command run here is listed in
 * root/usr/share/rpcd/acl.d/luci-app-masqmail.json, and nothing else.
 */

var PROG = '/usr/sbin/masqmail';

/* The only commands this page runs; the ACL grants exactly these. */
var COMMANDS = {
	queue: [ 'queue', '--json' ],
	status: [ 'status' ],
	check: [ 'config', 'check' ],
	flush: [ 'flush' ],
	testmail: [ 'testmail' ]
};

function run(name) {
	return fs.exec(PROG, COMMANDS[name]).catch(function(err) {
		return { code: -1, stdout: '', stderr: String(err) };
	});
}

function parseJSON(text) {
	try {
		return JSON.parse(text);
	}
	catch (e) {
		return null;
	}
}

/* `masqmail status` prints "key: value" lines; "route NAME: STATE" per route. */
function parseStatus(res) {
	var st = { running: res.code === 0, fields: {}, routes: {} };
	if (!st.running)
		return st;
	(res.stdout || '').split('\n').forEach(function(line) {
		var m = line.match(/^route ([A-Za-z0-9_]+): (.*)$/);
		if (m)
			st.routes[m[1]] = m[2];
		else if ((m = line.match(/^([a-z ]+): (.*)$/)) != null)
			st.fields[m[1]] = m[2];
	});
	return st;
}

/*
 * The routes' states: from the queue listing's "routes" when the program
 * gives them (an array of objects with "name", or an object keyed by
 * name; "state" or "online"), else from the daemon's status, else only
 * the configured routes.
 */
function routeStates(queue, status) {
	var out = {};
	uci.sections('masqmail', 'route').forEach(function(s) {
		out[s['.name']] = { state: (s.enabled == '0') ? _('disabled') : (status.running ? '?' : _('daemon not running')) };
	});
	Object.keys(status.routes).forEach(function(name) {
		out[name] = { state: status.routes[name] };
	});
	var r = queue ? queue.routes : null;
	if (Array.isArray(r)) {
		r.forEach(function(x) {
			if (x && x.name != null)
				out[x.name] = x;
		});
	}
	else if (r && typeof(r) == 'object') {
		Object.keys(r).forEach(function(name) {
			out[name] = (typeof(r[name]) == 'object') ? r[name] : { state: String(r[name]) };
		});
	}
	return out;
}

function stateText(x) {
	if (x.state != null)
		return String(x.state);
	if (x.online === true)
		return _('online');
	if (x.online === false)
		return _('offline');
	return '?';
}

function fmtTime(t) {
	if (!t)
		return '-';
	return new Date(t * 1000).toLocaleString();
}

function fmtSize(n) {
	return (n >= 1024) ? '%1024.1mB'.format(n) : n + ' B';
}

return view.extend({
	load: function() {
		return Promise.all([
			run('queue'),
			run('status'),
			run('check'),
			uci.load('masqmail')
		]);
	},

	renderDaemon: function(status, check) {
		var rows = [];
		if (status.running) {
			Object.keys(status.fields).forEach(function(k) {
				rows.push(E('tr', { 'class': 'tr' }, [
					E('td', { 'class': 'td left', 'width': '33%' }, [ k ]),
					E('td', { 'class': 'td left' }, [ status.fields[k] ])
				]));
			});
		}
		else {
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left' }, [ _('The daemon is not running: queued mail waits until it runs, or until "Deliver now".') ])
			]));
		}
		var ok = check.code === 0;
		rows.push(E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td left', 'width': '33%' }, [ _('Configuration') ]),
			E('td', { 'class': 'td left' }, ok ? [ _('OK') ] :
				[ E('pre', {}, [ (check.stderr || check.stdout || '').trim() ]) ])
		]));
		return E('table', { 'class': 'table' }, rows);
	},

	renderRoutes: function(queue, status) {
		var states = routeStates(queue, status),
		    names = Object.keys(states).sort(),
		    rows = [ E('tr', { 'class': 'tr table-titles' }, [
			    E('th', { 'class': 'th' }, [ _('Route') ]),
			    E('th', { 'class': 'th' }, [ _('State') ]),
			    E('th', { 'class': 'th' }, [ _('Details') ])
		    ]) ];
		if (names.length == 0)
			rows.push(E('tr', { 'class': 'tr placeholder' }, [
				E('td', { 'class': 'td' }, [ _('No routes: mail can only be delivered on this router. Add one on the Routes page.') ])
			]));
		names.forEach(function(name) {
			var x = states[name], details = [];
			Object.keys(x).forEach(function(k) {
				if (k != 'name' && k != 'state' && k != 'online' && x[k] !== null && x[k] !== '')
					details.push(k + ': ' + (typeof(x[k]) == 'object' ? JSON.stringify(x[k]) : x[k]));
			});
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ name ]),
				E('td', { 'class': 'td' }, [ stateText(x) ]),
				E('td', { 'class': 'td' }, [ details.join(', ') ])
			]));
		});
		return E('table', { 'class': 'table' }, rows);
	},

	renderQueue: function(res, queue) {
		var rows = [ E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, [ _('Message') ]),
			E('th', { 'class': 'th' }, [ _('Arrived') ]),
			E('th', { 'class': 'th' }, [ _('Size') ]),
			E('th', { 'class': 'th' }, [ _('Sender') ]),
			E('th', { 'class': 'th' }, [ _('Recipients waiting') ])
		]) ];
		if (!queue) {
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ _('Cannot read the queue: %s').format((res.stderr || '').trim() || res.code) ])
			]));
			return E('table', { 'class': 'table' }, rows);
		}
		var msgs = queue.messages || [];
		if (msgs.length == 0)
			rows.push(E('tr', { 'class': 'tr placeholder' }, [
				E('td', { 'class': 'td' }, [ _('The queue is empty.') ])
			]));
		msgs.forEach(function(msg) {
			var rcpts = (msg.recipients || []).filter(function(r) {
				return r.state == 'pending' || r.state == 'failed';
			}).map(function(r) {
				var t = r.address + (r.original ? ' (' + r.original + ')' : '');
				if (r.state == 'failed')
					t += ' - ' + _('failed: %s').format(r.error);
				else if (r.error)
					t += ' - ' + _('tried %d times, last error: %s').format(r.tries, r.error);
				if (r.state == 'pending' && r.next_try)
					t += ' - ' + _('next try %s').format(fmtTime(r.next_try));
				return E('div', {}, [ t ]);
			});
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ msg.id, msg.scanned ? '' : ' ' + _('(not yet scanned)') ]),
				E('td', { 'class': 'td' }, [ fmtTime(msg.time) ]),
				E('td', { 'class': 'td' }, [ fmtSize(msg.size) ]),
				E('td', { 'class': 'td' }, [ '<' + msg.sender + '>' ]),
				E('td', { 'class': 'td' }, rcpts)
			]));
		});
		(queue.problems || []).forEach(function(p) {
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ p.file ]),
				E('td', { 'class': 'td', 'colspan': 4 }, [ p.error ])
			]));
		});
		if ((queue.corrupt || []).length)
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td', 'colspan': 5 }, [
					_('%d file(s) set aside in corrupt/ need attention (see logread -e masqmail)').format(queue.corrupt.length)
				])
			]));
		return E('table', { 'class': 'table' }, rows);
	},

	renderAll: function(data) {
		var queue = parseJSON(data[0].stdout || ''),
		    status = parseStatus(data[1]);
		return E('div', {}, [
			E('h3', {}, [ _('Daemon') ]),
			this.renderDaemon(status, data[2]),
			E('h3', {}, [ _('Routes') ]),
			this.renderRoutes(queue, status),
			E('h3', {}, [ _('Queue') ]),
			this.renderQueue(data[0], queue)
		]);
	},

	/* Run one of the two commands the buttons stand for, show its result. */
	handleCommand: function(name, done) {
		return run(name).then(function(res) {
			if (res.code === 0)
				ui.addNotification(null, E('p', [ done, ' ', (res.stdout || '').trim() ]), 'info');
			else
				ui.addNotification(null, E('p', [ (res.stderr || res.stdout || '').trim() || _('Failed (exit %d)').format(res.code) ]), 'error');
		});
	},

	render: function(data) {
		var self = this,
		    body = E('div', {}, [ this.renderAll(data) ]);

		poll.add(function() {
			return self.load().then(function(d) {
				dom.content(body, self.renderAll(d));
			});
		});

		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('Mail status') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				_('Mail waits in the queue until a route that may carry it is online. "Deliver now" re-checks the routes and tries everything queued at once, ignoring the wait between retries. "Send test mail" queues a message to root (see General settings for where root\'s mail goes).')
			]),
			E('div', { 'class': 'cbi-page-actions' }, [
				E('button', {
					'class': 'cbi-button cbi-button-action',
					'click': ui.createHandlerFn(this, 'handleCommand', 'flush', _('Delivery started.'))
				}, [ _('Deliver now') ]),
				' ',
				E('button', {
					'class': 'cbi-button cbi-button-action',
					'click': ui.createHandlerFn(this, 'handleCommand', 'testmail', _('Test mail queued.'))
				}, [ _('Send test mail') ])
			]),
			body
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
