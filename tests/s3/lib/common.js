'use strict';
// Small helpers shared by gateway.js, interop.js, sign.js and selftest.js.
// Loopback only: nothing here talks to anything but 127.0.0.1.

const crypto = require('crypto');

/** mulberry32: tiny deterministic PRNG, returns floats in [0, 1). */
function makePrng(seed) {
  let a = (Number(seed) >>> 0) || 0x9e3779b9;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** AWS "UriEncode": encodeURIComponent plus !'()* (same as @smithy/util-uri-escape). */
function awsUriEncode(s) {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/** S3 object path encoding: every segment UriEncoded, '/' kept (what the JS SDK puts on the wire). */
function s3EncodePath(rawPath) {
  return rawPath.split('/').map(awsUriEncode).join('/');
}

function xmlEscape(s) {
  return String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function xmlUnescape(s) {
  return String(s)
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#x([0-9a-fA-F]+);/g, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#([0-9]+);/g, (_, d) => String.fromCodePoint(parseInt(d, 10)))
    .replace(/&amp;/g, '&');
}

/** "20260124T120000Z" -> Date (NaN date when malformed). */
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(String(s || ''));
  if (!m) return new Date(NaN);
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

function formatAmzDate(d) {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

// Table-driven reflected CRC-32 variants (x-amz-checksum-crc32 / -crc32c).
function makeCrc(poly) {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    table[i] = c >>> 0;
  }
  return function crc(buf) {
    let c = 0xffffffff;
    for (let i = 0; i < buf.length; i++) c = table[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
    c = (c ^ 0xffffffff) >>> 0;
    const out = Buffer.alloc(4);
    out.writeUInt32BE(c, 0);
    return out;
  };
}
const crc32 = makeCrc(0xedb88320);
const crc32c = makeCrc(0x82f63b78);

function sha256Hex(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

module.exports = {
  makePrng,
  awsUriEncode,
  s3EncodePath,
  xmlEscape,
  xmlUnescape,
  parseAmzDate,
  formatAmzDate,
  crc32,
  crc32c,
  sha256Hex,
};
