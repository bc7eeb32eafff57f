'use strict';
'require baseclass';

/*
 * SHA-256 crypt ($5$, Ulrich Drepper's "Unix crypt using SHA-256 and
 * SHA-512"), the password_hash of masqmail's `config user` sections, made
 * in the browser: the SMTP password never leaves it, only the hash is
 * saved. Pure JavaScript, because crypto.subtle exists only on HTTPS pages
 * and LuCI is often served over plain HTTP. The salt comes from
 * crypto.getRandomValues, which every browser offers.
 */

var K = [
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
];

function rotr(x, n) {
	return (x >>> n) | (x << (32 - n));
}

/* SHA-256 (FIPS 180-4) of an array of bytes; returns 32 bytes. */
function sha256(msg) {
	var h = [ 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 ],
	    len = msg.length,
	    padded = msg.slice(),
	    w = new Array(64),
	    i, j, t;

	padded.push(0x80);
	while (padded.length % 64 != 56)
		padded.push(0);
	/* The length in bits, big-endian, 64 bits (messages here are small). */
	for (i = 7; i >= 0; i--)
		padded.push(i > 3 ? 0 : ((len * 8) >>> (i * 8)) & 0xff);

	for (j = 0; j < padded.length; j += 64) {
		for (i = 0; i < 16; i++)
			w[i] = (padded[j + 4 * i] << 24) | (padded[j + 4 * i + 1] << 16) |
			       (padded[j + 4 * i + 2] << 8) | padded[j + 4 * i + 3];
		for (i = 16; i < 64; i++) {
			var s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3),
			    s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
			w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
		}
		var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
		for (i = 0; i < 64; i++) {
			var S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25),
			    ch = (e & f) ^ (~e & g),
			    t1 = (hh + S1 + ch + K[i] + w[i]) | 0,
			    S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22),
			    maj = (a & b) ^ (a & c) ^ (b & c),
			    t2 = (S0 + maj) | 0;
			hh = g; g = f; f = e; e = (d + t1) | 0;
			d = c; c = b; b = a; a = (t1 + t2) | 0;
		}
		h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
		h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
	}

	var out = [];
	for (i = 0; i < 8; i++)
		for (t = 24; t >= 0; t -= 8)
			out.push((h[i] >>> t) & 0xff);
	return out;
}

function utf8(s) {
	return Array.from(new TextEncoder().encode(s));
}

/* `len` bytes of `seq` repeated. */
function repeat(seq, len) {
	var out = [];
	while (out.length < len)
		out = out.concat(seq.slice(0, len - out.length));
	return out;
}

var ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function b64from24(b2, b1, b0, n) {
	var w = (b2 << 16) | (b1 << 8) | b0, s = '';
	while (n-- > 0) {
		s += ITOA64.charAt(w & 0x3f);
		w >>>= 6;
	}
	return s;
}

/* The spec's steps for SHA-256, with the default 5000 rounds unless given. */
function crypt5(password, salt, rounds) {
	var p = utf8(password), s = utf8(salt.substring(0, 16)),
	    r = rounds || 5000, i, cnt;

	var b = sha256(p.concat(s, p));
	var a = p.concat(s);
	for (cnt = p.length; cnt > 32; cnt -= 32)
		a = a.concat(b);
	a = a.concat(b.slice(0, cnt));
	for (cnt = p.length; cnt > 0; cnt >>= 1)
		a = a.concat((cnt & 1) ? b : p);
	var c = sha256(a);

	var dp = [];
	for (i = 0; i < p.length; i++)
		dp = dp.concat(p);
	var pseq = repeat(sha256(dp), p.length);

	var ds = [];
	for (i = 0; i < 16 + c[0]; i++)
		ds = ds.concat(s);
	var sseq = repeat(sha256(ds), s.length);

	for (i = 0; i < r; i++) {
		var x = (i & 1) ? pseq : c;
		if (i % 3)
			x = x.concat(sseq);
		if (i % 7)
			x = x.concat(pseq);
		x = x.concat((i & 1) ? c : pseq);
		c = sha256(x);
	}

	var order = [ [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14],
	              [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29] ],
	    enc = '';
	for (i = 0; i < order.length; i++)
		enc += b64from24(c[order[i][0]], c[order[i][1]], c[order[i][2]], 4);
	enc += b64from24(0, c[31], c[30], 3);

	return '$5$' + (rounds ? 'rounds=' + r + '$' : '') + salt.substring(0, 16) + '$' + enc;
}

function newSalt() {
	var bytes = new Uint8Array(12), salt = '';
	globalThis.crypto.getRandomValues(bytes);
	for (var i = 0; i < bytes.length; i++)
		salt += ITOA64.charAt(bytes[i] & 0x3f);
	return salt;
}

return baseclass.extend({
	sha256: sha256,
	crypt5: crypt5,

	/* A password_hash for `password`, with a fresh salt. */
	hash: function(password) {
		return crypt5(password, newSalt());
	}
});
