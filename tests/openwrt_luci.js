// Runs the LuCI views of luci-app-masqmail under node, against stand-ins
// for LuCI's modules (view, form, fs, ui, uci, poll, dom, E, _), and prints
// one JSON object for tests/openwrt.rs:
//   options: every option the form views declare, as the form API saw it
//            (section type, option name, widget, fixed choices);
//   status:  the text of the status page for a few situations;
//   hash:    what the SMTP user page stores for a new password.
// Usage: node tests/openwrt_luci.js LUCI_APP_DIR
'use strict';

const fs = require('fs');
const path = require('path');

const app = process.argv[2];
const res = path.join(app, 'htdocs/luci-static/resources');

/* LuCI's String.format, as far as the views use it. */
String.prototype.format = function() {
	const args = Array.from(arguments);
	return this.replace(/%(\d+\.\d+m)?([sdB])?/g, function(m) {
		const v = args.shift();
		return (v === undefined) ? m : String(v);
	});
};

global._ = (s) => s;

/* E(tag, [attrs], [children]) as a plain tree. */
global.E = function(tag, attrs, children) {
	if (children === undefined && (Array.isArray(attrs) || typeof attrs !== 'object' || attrs === null)) {
		children = attrs;
		attrs = {};
	}
	return { tag: tag, attrs: attrs || {}, children: [].concat(children === undefined ? [] : children) };
};

function text(node) {
	if (node === null || node === undefined)
		return '';
	if (typeof node !== 'object')
		return String(node);
	const inner = node.children.map(text).join(node.tag === 'tr' ? ' | ' : '');
	return ['tr', 'h3', 'p', 'div', 'pre', 'table', 'h2'].includes(node.tag) ? inner + '\n' : inner;
}

/* Load a LuCI class file: its 'require x as y' lines name the arguments. */
function load(file, modules) {
	const src = fs.readFileSync(file, 'utf8');
	const names = [], values = [];
	for (const m of src.matchAll(/^'require ([\w.]+)(?: as (\w+))?';$/mg)) {
		const name = m[2] || m[1];
		if (!(m[1] in modules))
			throw new Error(file + ': no stand-in for ' + m[1]);
		names.push(name);
		values.push(modules[m[1]]);
	}
	return new Function(...names, src)(...values);
}

const baseclass = { extend: (o) => o };
const view = { extend: (o) => o };
const shacrypt = load(path.join(res, 'masqmail/shacrypt.js'), { baseclass: baseclass });

/* ---- the form views: record what they declare ---- */

const declared = [];

function makeOption(section, kind, name) {
	const o = {
		kind: kind, name: name, values: [], section: section, map: section.map,
		value: function(v) { this.values.push(String(v)); },
		depends: function() {},
	};
	if (!/^[a-z_][a-z0-9_]*$/.test(name))
		throw new Error('bad option name ' + name);
	declared.push(o);
	return o;
}

function makeSection(map, kind, type, name) {
	return {
		kind: kind, type: type, name: name, map: map, tabs: {},
		tab: function(t) { this.tabs[t] = true; },
		option: function(cls, n) { return makeOption(this, cls.kind, n); },
		taboption: function(tab, cls, n) {
			if (!this.tabs[tab])
				throw new Error('option ' + n + ' in undeclared tab ' + tab);
			return makeOption(this, cls.kind, n);
		},
	};
}

const uciData = {};
const form = {
	Map: function(config) {
		this.config = config;
		this.data = {
			get: (c, s, o) => (uciData[s] || {})[o],
			set: (c, s, o, v) => { (uciData[s] = uciData[s] || {})[o] = v; },
		};
		this.section = function(cls, a, b) {
			return cls.kind === 'NamedSection' ? makeSection(this, cls.kind, b, a) : makeSection(this, cls.kind, a, null);
		};
		this.render = () => 'rendered';
	},
};
for (const k of ['NamedSection', 'TypedSection', 'GridSection', 'Value', 'Flag', 'ListValue',
                 'DynamicList', 'MultiValue', 'HiddenValue', 'DummyValue', 'TextValue'])
	form[k] = { kind: k };

const options = [];
for (const v of ['settings', 'routes', 'users']) {
	const page = load(path.join(res, 'view/masqmail', v + '.js'), { view: view, form: form, 'masqmail.shacrypt': shacrypt });
	declared.length = 0;
	if (page.render() !== 'rendered')
		throw new Error(v + ': render does not return m.render()');
	for (const o of declared) {
		if (o.section.map.config !== 'masqmail')
			throw new Error(v + ': a map of ' + o.section.map.config);
		options.push({ view: v, section: o.section.type, option: o.name, kind: o.kind,
		               values: o.kind === 'Flag' ? ['0', '1'] : o.values });
		/* A custom validator must accept the choices the page offers. */
		if (typeof o.validate === 'function')
			for (const val of o.values.filter((x) => x !== ''))
				if (o.validate('sid', val) !== true)
					throw new Error(v + ': ' + o.name + ' refuses its own choice ' + val);
		if (o.name === '_password') {
			o.write('cfg0123', 'new pw');
			options[options.length - 1].stored = uciData.cfg0123;
		}
	}
}

/* ---- the status page ---- */

const queueJSON = JSON.stringify({
	messages: [ {
		id: '1xWKIM2mRh-0686', size: 322, time: 1795641170, sender: 'root@router.lan', scanned: true,
		recipients: [
			{ address: 'you@example.org', original: 'root@router.lan', state: 'pending', tries: 2, next_try: 1795641470, error: '451 4.3.0 try later' },
			{ address: 'done@example.org', original: null, state: 'delivered', tries: 1, next_try: 0, error: '' },
			{ address: 'ghost@example.org', original: null, state: 'failed', tries: 1, next_try: 0, error: '550 5.1.1 no such user' }
		]
	} ],
	problems: [], corrupt: []
});

async function statusPage(results, routes) {
	const calls = [];
	const stubs = {
		view: view,
		fs: { exec: (prog, args) => {
			calls.push(prog + ' ' + args.join(' '));
			const r = results[args.join(' ')];
			return r instanceof Error ? Promise.reject(r) : Promise.resolve(r);
		} },
		ui: { createHandlerFn: (ctx, name, a, b) => ({ handler: name, args: [a, b] }), addNotification: () => {} },
		uci: { load: () => Promise.resolve(), sections: () => routes },
		poll: { add: () => {} },
		dom: { content: () => {} },
	};
	const page = load(path.join(res, 'view/masqmail/status.js'), stubs);
	const data = await page.load();
	const tree = page.render(data);
	return { text: text(tree), calls: calls };
}

(async function() {
	const ok = (stdout) => ({ code: 0, stdout: stdout, stderr: '' });
	const routes = [ { '.name': 'smarthost', enabled: '1' }, { '.name': 'backup', enabled: '0' } ];
	const status = {
		running: await statusPage({
			'queue --json': ok(queueJSON),
			'status': ok('pid: 42\nversion: 0.1.0\nlistening: 127.0.0.1:25\nroute smarthost: online\nroute backup: disabled\n\n'),
			'config check': ok('/etc/config/masqmail: OK\n'),
		}, routes),
		routes_array: await statusPage({
			'queue --json': ok(JSON.stringify(Object.assign(JSON.parse(queueJSON),
				{ routes: [ { name: 'smarthost', online: false, queued: 1 } ] }))),
			'status': ok('pid: 42\nroute smarthost: online\n\n'),
			'config check': ok('OK'),
		}, routes),
		routes_object: await statusPage({
			'queue --json': ok(JSON.stringify({ messages: [], problems: [], corrupt: ['outgoing-x'],
				routes: { smarthost: { state: 'online (permanent)' }, lte: 'offline' } })),
			'status': { code: 69, stdout: '', stderr: 'masqmail: no daemon answers' },
			'config check': { code: 78, stdout: '', stderr: "/etc/config/masqmail:3: option 'x': unknown option\n" },
		}, []),
		broken: await statusPage({
			'queue --json': { code: 69, stdout: '', stderr: 'masqmail: cannot read the queue' },
			'status': new Error('PermissionError'),
			'config check': ok('OK'),
		}, routes),
	};
	process.stdout.write(JSON.stringify({ options: options, status: status }) + '\n');
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
