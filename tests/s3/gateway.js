#!/usr/bin/env node
'use strict';
/*
 * gateway.js — SigV4-verifying, fault-injecting HTTP gateway in front of an in-process s3rver,
 * plus a fake STS (AssumeRoleWithWebIdentity).  Test support for the gravl-dr S3 driver.
 *
 *   GATEWAY_ACCESS_KEY_ID=... GATEWAY_SECRET_ACCESS_KEY=... \
 *   node --openssl-legacy-provider gateway.js --dir DATA_DIR [--bucket NAME]... [--region us-east-1]
 *        [--web-identity-token-file PATH] [--sts-duration SECONDS]
 *        [--error-rate F] [--drop-rate F] [--delay-rate F --delay-ms N] [--truncate-rate F]
 *        [--seed N] [--min-part-size BYTES] [--no-stdin-watch] [--tls-cert FILE --tls-key FILE]
 *
 * Everything listens on 127.0.0.1 (ephemeral ports).  When ready, exactly one line is written to
 * stdout:   {"port": <gateway port>, "s3rver_port": <s3rver port>}
 * With --tls-cert/--tls-key the gateway speaks HTTPS instead of HTTP (s3rver behind it stays plain
 * HTTP) and the line is  {"port": <gateway port>, "s3rver_port": <s3rver port>, "tls": true}
 * (make-cert.sh creates a throwaway CA and a matching server certificate).
 * All diagnostics go to stderr.  Exits on SIGTERM/SIGINT and when stdin reaches EOF (the test
 * keeps a pipe open; --no-stdin-watch disables this for manual runs with </dev/null).
 *
 * What the gateway adds on top of s3rver (which does not verify SigV4 at all) — see README.md.
 */

const http = require('http');
const https = require('https');
const crypto = require('crypto');
const fs = require('fs');
const fsp = fs.promises;
const net = require('net');
const path = require('path');
const { Readable } = require('stream');

const { SignatureV4, prepareRequest, getCanonicalHeaders, createScope } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');

const {
  makePrng,
  awsUriEncode,
  xmlEscape,
  xmlUnescape,
  parseAmzDate,
  crc32,
  crc32c,
  sha256Hex,
} = require('./lib/common');

// ---------------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------------

function usage(msg) {
  if (msg) process.stderr.write(`gateway.js: ${msg}\n`);
  process.stderr.write(
    'usage: node --openssl-legacy-provider gateway.js --dir DIR [--bucket NAME]... [--region R]\n' +
      '       [--web-identity-token-file PATH] [--sts-duration S] [--error-rate F] [--drop-rate F]\n' +
      '       [--delay-rate F --delay-ms N] [--truncate-rate F] [--seed N] [--min-part-size BYTES]\n' +
      '       [--no-stdin-watch] [--tls-cert FILE --tls-key FILE]\n' +
      'static credentials: env GATEWAY_ACCESS_KEY_ID / GATEWAY_SECRET_ACCESS_KEY\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    dir: null,
    buckets: [],
    region: 'us-east-1',
    tokenFile: null,
    stsDuration: 3600,
    faults: { error_rate: 0, drop_rate: 0, delay_rate: 0, delay_ms: 0, truncate_rate: 0 },
    seed: 1,
    minPartSize: 5 * 1024 * 1024,
    stdinWatch: true,
    tlsCert: null,
    tlsKey: null,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) usage(`${name} needs a number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--dir': o.dir = v(); break;
      case '--bucket': o.buckets.push(v()); break;
      case '--region': o.region = v(); break;
      case '--web-identity-token-file': o.tokenFile = v(); break;
      case '--sts-duration': o.stsDuration = num(a, v()); break;
      case '--error-rate': o.faults.error_rate = num(a, v()); break;
      case '--drop-rate': o.faults.drop_rate = num(a, v()); break;
      case '--delay-rate': o.faults.delay_rate = num(a, v()); break;
      case '--delay-ms': o.faults.delay_ms = num(a, v()); break;
      case '--truncate-rate': o.faults.truncate_rate = num(a, v()); break;
      case '--seed': o.seed = num(a, v()); break;
      case '--min-part-size': o.minPartSize = num(a, v()); break;
      case '--no-stdin-watch': o.stdinWatch = false; break;
      case '--tls-cert': o.tlsCert = v(); break;
      case '--tls-key': o.tlsKey = v(); break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!o.dir) usage('--dir is required');
  if (!!o.tlsCert !== !!o.tlsKey) usage('--tls-cert and --tls-key go together');
  return o;
}

const opts = parseArgs(process.argv.slice(2));

// GATEWAY_DEBUG=1: log every verified request (method, url, host, payload hash, SignedHeaders).
const DEBUG = !!process.env.GATEWAY_DEBUG;

function log(msg) {
  process.stderr.write(`[gateway] ${msg}\n`);
}

// s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only has in the legacy
// provider.  Fail early and clearly instead of on the first paginated listing.
try {
  crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
} catch (e) {
  process.stderr.write(
    'gateway.js: DES cipher unavailable; start node with --openssl-legacy-provider ' +
      `(${e.message})\n`,
  );
  process.exit(2);
}

const STATIC_AKID = process.env.GATEWAY_ACCESS_KEY_ID || '';
const STATIC_SECRET = process.env.GATEWAY_SECRET_ACCESS_KEY || '';
if (!!STATIC_AKID !== !!STATIC_SECRET) {
  usage('set both GATEWAY_ACCESS_KEY_ID and GATEWAY_SECRET_ACCESS_KEY, or neither');
}
if (!STATIC_AKID) log('no static credentials configured: only STS-issued keys will be accepted');

// ---------------------------------------------------------------------------------------------
// state: credentials, faults, stats
// ---------------------------------------------------------------------------------------------

/** accessKeyId -> { secret, token|null, expiration: ms|null, temporary } */
const keys = new Map();
if (STATIC_AKID) keys.set(STATIC_AKID, { secret: STATIC_SECRET, token: null, expiration: null, temporary: false });

const FAULT_FIELDS = ['error_rate', 'drop_rate', 'delay_rate', 'delay_ms', 'truncate_rate'];
let faults = normalizeFaults(opts.faults);
let prng = makePrng(opts.seed);

const ERROR_KINDS = ['InternalError', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout'];
// SlowDownRetryAfter2 (scripted only): 503 SlowDown that always asks for 'Retry-After: 2'.
const SCRIPT_KINDS = new Set([...ERROR_KINDS, 'SlowDownRetryAfter2', 'drop_before', 'drop_after',
  'truncate', 'delay']);

function normalizeFaults(f) {
  const out = {};
  for (const k of FAULT_FIELDS) {
    const n = f[k] === undefined || f[k] === null ? 0 : Number(f[k]);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${k} must be a non-negative number`);
    if (k !== 'delay_ms' && n > 1) throw new Error(`${k} must be within [0, 1]`);
    out[k] = n;
  }
  // Extensions (optional): restrict faults to some methods; a deterministic script of faults for
  // the next verified S3 requests (consumed in order, independent of the rates).
  out.methods = Array.isArray(f.methods) ? f.methods.map((m) => String(m).toUpperCase()) : null;
  const script = Array.isArray(f.next_faults) ? f.next_faults.map(String) : [];
  for (const k of script) if (!SCRIPT_KINDS.has(k)) throw new Error(`unknown fault kind in next_faults: ${k}`);
  out.next_faults = script;
  // Behave like a store that does not support Range: GETs answer 200 with the whole object.
  out.ignore_range = f.ignore_range === true;
  return out;
}

function newStats() {
  return {
    requests: 0,
    verified: 0,
    forwarded: 0,
    rejected: {},
    injected: {},
    by_method: {},
    by_status: {},
    sts_requests: 0,
    sts_issued: 0,
    emulated: {},
  };
}
let stats = newStats();
const bump = (obj, k, n = 1) => { obj[k] = (obj[k] || 0) + n; };

// ---------------------------------------------------------------------------------------------
// s3rver (in-process)
// ---------------------------------------------------------------------------------------------

const S3rver = require('s3rver');

// s3rver 3.7.1's FilesystemStore.putObject resolves (and s3rver answers 200) before its write
// stream has flushed the object file; its metadata takes the size from stat(), so a read right
// after the answer can see a 0-byte object (a ranged GET then gets 416). S3 is read-after-write
// consistent: replace it with a version that waits for the file to be written.
const FilesystemStore = require('s3rver/lib/stores/filesystem');
FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  const [size, md5] = await new Promise((resolve, reject) => {
    const out = fs.createWriteStream(objectPath);
    const hash = crypto.createHash('md5');
    let total = 0;
    out.on('error', reject);
    out.on('finish', () => resolve([total, hash.digest('hex')]));
    if (Buffer.isBuffer(object.content)) {
      hash.update(object.content);
      total = object.content.length;
      out.end(object.content);
    } else {
      object.content.on('error', reject);
      object.content.on('data', (chunk) => {
        hash.update(chunk);
        total += chunk.length;
      });
      object.content.pipe(out);
    }
  });
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size, md5 };
};
fs.mkdirSync(opts.dir, { recursive: true });
const s3rver = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory: path.resolve(opts.dir),
  configureBuckets: opts.buckets.map((name) => ({ name })),
  // we rewrite everything to path style before forwarding
  vhostBuckets: false,
});
const store = s3rver.store;
let s3rverPort = 0;
const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

// ---------------------------------------------------------------------------------------------
// responses
// ---------------------------------------------------------------------------------------------

const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const STS_XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';

function requestId() {
  return crypto.randomBytes(8).toString('hex').toUpperCase();
}

function sendS3Error(ctx, status, code, message, extra = {}, headers = {}) {
  let body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message>`;
  for (const [k, v] of Object.entries(extra)) body += `<${k}>${xmlEscape(v)}</${k}>`;
  body += `<RequestId>${ctx.reqId}</RequestId><HostId>${ctx.hostId}</HostId></Error>`;
  const buf = Buffer.from(body);
  bump(stats.by_status, status);
  if (ctx.res.headersSent || ctx.res.destroyed) return;
  ctx.res.writeHead(status, {
    'Content-Type': 'application/xml',
    'Content-Length': buf.length,
    ...headers,
  });
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : buf);
}

/** A rejection by the verifier/emulation: counted, explained on stderr, answered S3-style. */
function reject(ctx, status, code, message, reason, extra) {
  bump(stats.rejected, code);
  log(`REJECT ${status} ${code}: ${ctx.req.method} ${ctx.req.url} host=${ctx.req.headers.host || '-'}: ${reason || message}`);
  sendS3Error(ctx, status, code, message, extra);
}

function sendJson(res, status, obj) {
  const buf = Buffer.from(JSON.stringify(obj, null, 1) + '\n');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': buf.length });
  res.end(buf);
}

function sendStsXml(ctx, status, xml) {
  const buf = Buffer.from(xml);
  bump(stats.by_status, status);
  ctx.res.writeHead(status, {
    'Content-Type': 'text/xml',
    'Content-Length': buf.length,
    'x-amzn-RequestId': ctx.reqId,
  });
  ctx.res.end(buf);
}

function stsError(ctx, status, code, message) {
  bump(stats.rejected, `sts:${code}`);
  log(`STS REJECT ${status} ${code}: ${message}`);
  sendStsXml(
    ctx,
    status,
    `<ErrorResponse xmlns="${STS_XMLNS}"><Error><Type>Sender</Type><Code>${xmlEscape(code)}</Code>` +
      `<Message>${xmlEscape(message)}</Message></Error><RequestId>${ctx.reqId}</RequestId></ErrorResponse>\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// request plumbing
// ---------------------------------------------------------------------------------------------

const MAX_BODY = 512 * 1024 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let total = 0;
    let tooBig = false;
    req.on('data', (c) => {
      total += c.length;
      if (total > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => (tooBig ? reject(Object.assign(new Error('body too large'), { tooBig: true })) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('client aborted the request body')));
  });
}

/** "a=1&b&c=%20" -> [["a","1"],["b",""],["c"," "]] (percent-decoding only; '+' stays '+'). */
function parseQuery(raw) {
  const out = [];
  if (!raw) return out;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    out.push([decodeURIComponent(name), decodeURIComponent(value)]);
  }
  return out;
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'proxy-connection', 'expect',
]);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function abortSocket(ctx) {
  const s = ctx.req.socket;
  // With TLS the TCP handle belongs to the raw socket the TLSSocket wraps (its _parent);
  // TLSSocket#resetAndDestroy would throw ERR_INVALID_HANDLE_TYPE.  No TLS close_notify is sent.
  const raw = s.encrypted && s._parent ? s._parent : s;
  try {
    if (typeof raw.resetAndDestroy === 'function') raw.resetAndDestroy(); // TCP RST
    else raw.destroy();
  } catch {
    raw.destroy();
  }
  if (raw !== s) s.destroy();
}

// ---------------------------------------------------------------------------------------------
// SigV4 verification
// ---------------------------------------------------------------------------------------------

const SKEW_MS = 15 * 60 * 1000;

/**
 * Returns null when the request is authentic, else {status, code, message, reason, extra}.
 * ctx.canonicalPath / ctx.queryList must be set.
 */
async function verifySigV4(ctx) {
  const { req } = ctx;
  const h = req.headers;
  const qnames = new Set(ctx.queryList.map(([n]) => n.toLowerCase()));
  const fail = (status, code, message, reason, extra) => ({ status, code, message, reason, extra });

  if (qnames.has('x-amz-signature') || qnames.has('x-amz-algorithm') || qnames.has('signature')) {
    return fail(403, 'AccessDenied', 'Query-string (presigned) authentication is not supported by this test gateway.',
      'presigned URL / query auth is not implemented by gateway.js');
  }
  const auth = h.authorization;
  if (!auth) return fail(403, 'AccessDenied', 'Access Denied', 'no Authorization header (anonymous request)');

  const sp = auth.indexOf(' ');
  const algorithm = sp < 0 ? auth : auth.slice(0, sp);
  if (algorithm !== 'AWS4-HMAC-SHA256') {
    return fail(400, 'InvalidArgument', 'Unsupported Authorization Type', `Authorization algorithm "${algorithm}" (only AWS4-HMAC-SHA256)`);
  }
  const comps = {};
  for (const part of auth.slice(sp + 1).split(',')) {
    const p = part.trim();
    const eq = p.indexOf('=');
    if (eq > 0) comps[p.slice(0, eq)] = p.slice(eq + 1);
  }
  for (const c of ['Credential', 'SignedHeaders', 'Signature']) {
    if (!comps[c]) {
      return fail(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; missing ${c}.`,
        `Authorization header lacks ${c}`);
    }
  }
  const cred = comps.Credential.split('/');
  if (cred.length !== 5) {
    return fail(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
      `bad Credential "${comps.Credential}"`);
  }
  const [akid, scopeDate, scopeRegion, scopeService, scopeTerm] = cred;
  const key = keys.get(akid);
  if (!key) {
    return fail(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.',
      `unknown access key id "${akid}"`, { AWSAccessKeyId: akid });
  }

  const amzDate = h['x-amz-date'];
  if (!amzDate) {
    return fail(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header',
      'no x-amz-date header (gateway requires x-amz-date; smithy cannot sign the Date header)');
  }
  const signingDate = parseAmzDate(amzDate);
  if (isNaN(signingDate)) {
    return fail(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header',
      `malformed x-amz-date "${amzDate}" (want YYYYMMDDTHHMMSSZ)`);
  }
  const skew = Math.abs(Date.now() - signingDate.getTime());
  if (skew > SKEW_MS) {
    return fail(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.',
      `x-amz-date ${amzDate} is ${Math.round(skew / 1000)} s away from server time`,
      { RequestTime: amzDate, ServerTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), MaxAllowedSkewMilliseconds: SKEW_MS });
  }
  if (scopeDate !== amzDate.slice(0, 8)) {
    return fail(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; Invalid credential date "${scopeDate}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`,
      `credential scope date ${scopeDate} != x-amz-date day ${amzDate.slice(0, 8)}`);
  }
  if (scopeRegion !== opts.region) {
    return fail(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; the region '${scopeRegion}' is wrong; expecting '${opts.region}'`,
      `credential scope region ${scopeRegion} != ${opts.region}`, { Region: opts.region });
  }
  if (scopeService !== 's3' || scopeTerm !== 'aws4_request') {
    return fail(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; incorrect service "${scopeService}" or terminator "${scopeTerm}". This endpoint belongs to "s3".`,
      `credential scope ${scopeService}/${scopeTerm} (want s3/aws4_request)`);
  }

  // temporary (STS) credentials
  const token = h['x-amz-security-token'];
  if (key.temporary) {
    if (!token) return fail(403, 'InvalidToken', 'The provided token is malformed or otherwise invalid.', `temporary key ${akid} used without x-amz-security-token`);
    if (token !== key.token) return fail(403, 'InvalidToken', 'The provided token is malformed or otherwise invalid.', `x-amz-security-token does not belong to temporary key ${akid}`);
    if (Date.now() >= key.expiration) {
      return fail(400, 'ExpiredToken', 'The provided token has expired.',
        `temporary key ${akid} expired at ${new Date(key.expiration).toISOString()}`);
    }
  }

  const sha = h['x-amz-content-sha256'];
  if (sha === undefined) {
    return fail(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256', 'no x-amz-content-sha256 header');
  }
  if (/^STREAMING-/.test(sha)) {
    return fail(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented',
      `x-amz-content-sha256 "${sha}" (aws-chunked streaming payloads are not supported by gateway.js)`, { Header: 'x-amz-content-sha256' });
  }
  if (sha !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(sha)) {
    return fail(400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.',
      `bad x-amz-content-sha256 "${sha}" (hex must be lowercase)`, { ArgumentName: 'x-amz-content-sha256', ArgumentValue: sha });
  }

  const signedList = comps.SignedHeaders.split(';');
  const signedSet = new Set(signedList);
  if (!signedSet.has('host')) {
    return fail(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      `SignedHeaders "${comps.SignedHeaders}" does not include host`);
  }
  const unsigned = Object.keys(h).filter((n) => n.startsWith('x-amz-') && !signedSet.has(n)).sort();
  if (unsigned.length) {
    return fail(403, 'AccessDenied', 'There were headers present in the request which were not signed',
      `x-amz-* headers present but not in SignedHeaders: ${unsigned.join(', ')}`, { HeadersNotSigned: unsigned.join(', ') });
  }
  if (signedSet.has('date')) {
    return fail(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      'SignedHeaders contains "date": @smithy/signature-v4 always drops the Date header, sign x-amz-date only');
  }
  const missing = signedList.filter((n) => h[n] === undefined);
  if (missing.length) {
    return fail(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      `SignedHeaders lists headers absent from the request: ${missing.join(', ')}`);
  }

  // Build the request exactly as signed: only the SignedHeaders, values as received (repeated
  // headers joined with ','), raw (decoded) query values, canonical (normalised) path.
  const headers = {};
  const distinct = req.headersDistinct || null;
  for (const n of signedList) {
    headers[n] = distinct && distinct[n] ? distinct[n].join(',') : String(h[n]);
  }
  const query = {};
  for (const [n, v] of ctx.queryList) {
    if (query[n] === undefined) query[n] = v;
    else if (Array.isArray(query[n])) query[n].push(v);
    else query[n] = [query[n], v];
  }
  const [hostname, port] = splitHost(h.host || '');
  const request = {
    method: req.method,
    protocol: 'http:',
    hostname,
    port: port ? Number(port) : undefined,
    path: ctx.canonicalPath,
    query,
    headers,
    body: undefined,
  };
  const credentials = { accessKeyId: akid, secretAccessKey: key.secret, sessionToken: token || undefined };
  const signer = new SignatureV4({
    credentials,
    region: opts.region,
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const signableHeaders = new Set(signedList);
  const signed = await signer.sign(request, { signingDate, signableHeaders });
  const m = /SignedHeaders=([^,]*), Signature=([0-9a-f]{64})$/.exec(signed.headers.authorization);
  const expected = m[2];
  const provided = comps.Signature;
  const ok =
    provided.length === expected.length &&
    crypto.timingSafeEqual(Buffer.from(provided), Buffer.from(expected));
  if (!ok) {
    // Diagnostics: the canonical request / string to sign the gateway (smithy) used.
    let canonicalRequest = '';
    let stringToSign = '';
    try {
      const prepared = prepareRequest(request);
      prepared.headers['x-amz-date'] = amzDate;
      if (credentials.sessionToken) prepared.headers['x-amz-security-token'] = credentials.sessionToken;
      const ch = getCanonicalHeaders(prepared, undefined, signableHeaders);
      canonicalRequest = signer.createCanonicalRequest(prepared, ch, sha);
      stringToSign = await signer.createStringToSign(amzDate, createScope(amzDate.slice(0, 8), opts.region, 's3'), canonicalRequest, 'AWS4-HMAC-SHA256');
    } catch (e) {
      canonicalRequest = `(unavailable: ${e.message})`;
    }
    const sigHdrNote = m[1] !== comps.SignedHeaders ? ` (note: gateway SignedHeaders "${m[1]}" vs client "${comps.SignedHeaders}")` : '';
    return fail(403, 'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      `signature mismatch for key ${akid}${sigHdrNote}\n--- canonical request (gateway) ---\n${canonicalRequest}\n--- string to sign ---\n${stringToSign}\n---`,
      { AWSAccessKeyId: akid, StringToSign: stringToSign, CanonicalRequest: canonicalRequest, SignatureProvided: provided });
  }
  ctx.akid = akid;
  if (DEBUG) {
    log(`OK ${req.method} ${req.url} host=${h.host} key=${akid} sha256=${sha} signed=${comps.SignedHeaders}`);
  }
  return null;
}

function splitHost(host) {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return [host.slice(0, end + 1), host.slice(end + 2) || ''];
  }
  const i = host.lastIndexOf(':');
  return i < 0 ? [host, ''] : [host.slice(0, i), host.slice(i + 1)];
}

// ---------------------------------------------------------------------------------------------
// body integrity (x-amz-content-sha256, Content-MD5, x-amz-checksum-*)
// ---------------------------------------------------------------------------------------------

function checkBodyIntegrity(ctx) {
  const h = ctx.req.headers;
  const body = ctx.body;
  const sha = h['x-amz-content-sha256'];
  if (/^[0-9a-f]{64}$/.test(sha)) {
    const actual = sha256Hex(body);
    if (actual !== sha) {
      return ['XAmzContentSHA256Mismatch', 400, "The provided 'x-amz-content-sha256' header does not match what was computed.",
        `x-amz-content-sha256 ${sha} but body (${body.length} bytes) hashes to ${actual}`,
        { ClientComputedContentSHA256: sha, S3ComputedContentSHA256: actual }];
    }
  }
  const md5 = h['content-md5'];
  if (md5 !== undefined) {
    const dec = Buffer.from(md5, 'base64');
    if (dec.length !== 16 || dec.toString('base64') !== md5) {
      return ['InvalidDigest', 400, 'The Content-MD5 you specified was invalid.', `malformed Content-MD5 "${md5}"`, { 'Content-MD5': md5 }];
    }
    const actual = crypto.createHash('md5').update(body).digest('base64');
    if (actual !== md5) {
      return ['BadDigest', 400, 'The Content-MD5 you specified did not match what we received.',
        `Content-MD5 ${md5} but body hashes to ${actual}`, { ExpectedDigest: md5, CalculatedDigest: actual }];
    }
  }
  const sums = {
    'x-amz-checksum-crc32': ['CRC32', (b) => crc32(b).toString('base64')],
    'x-amz-checksum-crc32c': ['CRC32C', (b) => crc32c(b).toString('base64')],
    'x-amz-checksum-sha1': ['SHA1', (b) => crypto.createHash('sha1').update(b).digest('base64')],
    'x-amz-checksum-sha256': ['SHA256', (b) => crypto.createHash('sha256').update(b).digest('base64')],
  };
  for (const [hdr, [name, fn]] of Object.entries(sums)) {
    if (h[hdr] === undefined) continue;
    const actual = fn(body);
    if (actual !== h[hdr]) {
      return ['BadDigest', 400, `The ${name} you specified did not match the calculated checksum.`,
        `${hdr} ${h[hdr]} but body gives ${actual}`];
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// S3 semantics s3rver lacks (emulated here; see README.md)
// ---------------------------------------------------------------------------------------------

const UPLOAD_ID_RE = /^[0-9a-f]{32}$/;
const LIST_PARAMS = new Set(['list-type', 'prefix', 'delimiter', 'max-keys', 'continuation-token', 'start-after',
  'encoding-type', 'fetch-owner', 'marker', 'x-id']);
const OBJECT_SUBRESOURCES = new Set(['acl', 'tagging', 'uploadId', 'uploads', 'legal-hold', 'retention', 'torrent',
  'attributes', 'versionId', 'select', 'restore']);
const OBJECT_SUFFIX = '._S3rver_object';

/** All object keys of a bucket, sorted by UTF-8 bytes (as S3 does). */
async function allKeys(bucket) {
  const root = store.getBucketPath(bucket);
  const keys = [];
  async function walk(dir, rel) {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (rel === '' && e.name === '._S3rver_uploads') continue;
        await walk(path.join(dir, e.name), `${rel}${e.name}/`);
      } else if (e.name.endsWith(OBJECT_SUFFIX)) {
        keys.push(rel + e.name.slice(0, -OBJECT_SUFFIX.length));
      }
    }
  }
  await walk(root, '');
  const bufs = new Map(keys.map((k) => [k, Buffer.from(k, 'utf8')]));
  keys.sort((a, b) => Buffer.compare(bufs.get(a), bufs.get(b)));
  return keys;
}

const utf8Gt = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')) > 0;

async function serveList(ctx, bucket, q, err) {
  const v2 = q.get('list-type') === '2';
  const prefix = q.get('prefix') || '';
  const delimiter = q.get('delimiter') || '';
  const encodingType = q.get('encoding-type');
  const errResponse = (status, code, message, extra) => {
    const r = { status, code, message, extra };
    return { error: r };
  };
  if (encodingType !== undefined && encodingType !== 'url') {
    return errResponse(400, 'InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type' });
  }
  let maxKeys = 1000;
  if (q.has('max-keys')) {
    const mk = q.get('max-keys');
    if (!/^\d+$/.test(mk)) {
      return errResponse(400, 'InvalidArgument', 'Provided max-keys not an integer or within integer range', { ArgumentName: 'max-keys', ArgumentValue: mk });
    }
    maxKeys = Math.min(1000, Number(mk));
  }
  let startAfter = '';
  if (v2) {
    if (q.has('marker')) return errResponse(400, 'InvalidArgument', 'Marker unsupported with REST.GET.BUCKET in list-type=2', { ArgumentName: 'marker' });
    if (q.has('continuation-token')) {
      const tok = q.get('continuation-token');
      let decoded = null;
      try {
        decoded = JSON.parse(Buffer.from(tok, 'base64').toString('utf8'));
      } catch { /* invalid */ }
      if (!decoded || decoded.b !== bucket || typeof decoded.a !== 'string') {
        return errResponse(400, 'InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
      }
      startAfter = decoded.a;
    } else {
      startAfter = q.get('start-after') || '';
    }
  } else {
    if (q.has('continuation-token') || q.has('start-after')) {
      return errResponse(400, 'InvalidArgument', 'continuation-token / start-after only supported with list-type=2');
    }
    startAfter = q.get('marker') || '';
  }

  const keys = await allKeys(bucket);
  const contents = [];
  const prefixes = [];
  let truncated = false;
  let last = null;
  for (const k of keys) {
    if (!k.startsWith(prefix)) continue;
    if (startAfter && !utf8Gt(k, startAfter)) continue;
    let item = k;
    let isPrefix = false;
    if (delimiter) {
      const idx = k.indexOf(delimiter, prefix.length);
      if (idx >= 0) {
        item = k.slice(0, idx + delimiter.length);
        isPrefix = true;
        if (item === last) continue; // same common prefix as the previous item
        if (startAfter && !utf8Gt(item, startAfter)) continue; // prefix already returned
      }
    }
    if (contents.length + prefixes.length >= maxKeys) {
      truncated = maxKeys > 0 || truncated;
      break;
    }
    if (isPrefix) prefixes.push(item);
    else contents.push(k);
    last = item;
  }

  const enc = (s) => (encodingType === 'url' ? awsUriEncode(s).replace(/%2F/g, '/') : s);
  const lines = [`<ListBucketResult xmlns="${S3_XMLNS}">`, `<Name>${xmlEscape(bucket)}</Name>`, `<Prefix>${xmlEscape(enc(prefix))}</Prefix>`];
  if (v2) {
    if (q.has('continuation-token')) lines.push(`<ContinuationToken>${xmlEscape(q.get('continuation-token'))}</ContinuationToken>`);
    if (q.has('start-after')) lines.push(`<StartAfter>${xmlEscape(enc(q.get('start-after')))}</StartAfter>`);
    lines.push(`<KeyCount>${contents.length + prefixes.length}</KeyCount>`);
  } else {
    lines.push(`<Marker>${xmlEscape(enc(startAfter))}</Marker>`);
  }
  lines.push(`<MaxKeys>${maxKeys}</MaxKeys>`);
  if (delimiter) lines.push(`<Delimiter>${xmlEscape(enc(delimiter))}</Delimiter>`);
  lines.push(`<IsTruncated>${truncated}</IsTruncated>`);
  if (truncated && v2) {
    const token = Buffer.from(JSON.stringify({ b: bucket, a: last })).toString('base64');
    lines.push(`<NextContinuationToken>${token}</NextContinuationToken>`);
  }
  if (truncated && !v2 && delimiter) lines.push(`<NextMarker>${xmlEscape(enc(last))}</NextMarker>`);
  if (encodingType) lines.push(`<EncodingType>url</EncodingType>`);
  const owner = !v2 || q.get('fetch-owner') === 'true';
  for (const k of contents) {
    let md;
    try {
      md = await store.getMetadata(bucket, k);
    } catch {
      continue; // deleted meanwhile
    }
    lines.push(
      `<Contents><Key>${xmlEscape(enc(k))}</Key><LastModified>${new Date(md['last-modified']).toISOString()}</LastModified>` +
        `<ETag>${xmlEscape(md.etag)}</ETag><Size>${Number(md['content-length'])}</Size>` +
        (owner ? '<Owner><ID>123456789000</ID><DisplayName>S3rver</DisplayName></Owner>' : '') +
        '<StorageClass>STANDARD</StorageClass></Contents>',
    );
  }
  for (const p of prefixes) lines.push(`<CommonPrefixes><Prefix>${xmlEscape(enc(p))}</Prefix></CommonPrefixes>`);
  lines.push('</ListBucketResult>');
  bump(stats.emulated, v2 ? 'list_objects_v2' : 'list_objects_v1');
  return {
    status: 200,
    headers: { 'content-type': 'application/xml' },
    body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n${lines.join('')}`),
  };
}
async function serveListUploads(bucket, prefix) {
  const root = store.getResourcePath(bucket, undefined, 'uploads');
  let ids = [];
  try {
    ids = (await fsp.readdir(root)).filter((id) => UPLOAD_ID_RE.test(id));
  } catch {
    // no uploads directory: no uploads
  }
  const uploads = [];
  for (const id of ids) {
    try {
      const k = (await fsp.readFile(path.join(root, id, 'key'))).toString();
      if (k.startsWith(prefix)) uploads.push([k, id]);
    } catch {
      // completed or aborted meanwhile
    }
  }
  uploads.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])) || (a[1] < b[1] ? -1 : 1));
  const lines = [`<ListMultipartUploadsResult xmlns="${S3_XMLNS}">`, `<Bucket>${xmlEscape(bucket)}</Bucket>`,
    `<Prefix>${xmlEscape(prefix)}</Prefix>`, '<MaxUploads>1000</MaxUploads>', '<IsTruncated>false</IsTruncated>'];
  for (const [k, id] of uploads) {
    lines.push(`<Upload><Key>${xmlEscape(k)}</Key><UploadId>${id}</UploadId><StorageClass>STANDARD</StorageClass></Upload>`);
  }
  lines.push('</ListMultipartUploadsResult>');
  bump(stats.emulated, 'list_multipart_uploads');
  return {
    status: 200,
    headers: { 'content-type': 'application/xml' },
    body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n${lines.join('')}`),
  };
}

function uploadDir(bucket, uploadId) {
  return path.join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
}
async function exists(p) {
  try { await fsp.stat(p); return true; } catch { return false; }
}

/** per-object lock, used for conditional writes only */
const locks = new Map();
async function withLock(name, fn) {
  const prev = locks.get(name) || Promise.resolve();
  let release;
  const mine = new Promise((r) => (release = r));
  const chain = prev.then(() => mine);
  locks.set(name, chain);
  await prev;
  try { return await fn(); } finally {
    release();
    if (locks.get(name) === chain) locks.delete(name);
  }
}

/**
 * Checks/emulation before forwarding.  Returns one of:
 *   {done: true}                      — already answered
 *   {conditional: fn}                 — forward under fn (precondition check inside the object lock)
 *   {after: fn}                       — forward, then call fn(upstreamStatus, bodyBuffer) -> new body
 *   {serve: fn}                       — answer locally: fn() -> {status, headers, body} | {error}
 *   {}                                — just forward
 */
// ---------------------------------------------------------------------------------------------
// Object Lock (every bucket is treated as created with Object Lock enabled): an object written
// with x-amz-object-lock-mode and x-amz-object-lock-retain-until-date cannot be deleted or
// overwritten before that date -- DeleteObject answers 403 AccessDenied, DeleteObjects an
// <Error> for that key; HEAD and GET show the retention; GET ?retention answers it and PUT
// ?retention may extend it (never shorten it).
// ---------------------------------------------------------------------------------------------
const objectLocks = new Map(); // "bucket/key" -> { mode, until: Date }
const pendingLocks = new Map(); // "bucket/key" -> lock asked for by CreateMultipartUpload

function activeLock(bucket, key) {
  const l = objectLocks.get(`${bucket}/${key}`);
  return l && l.until > new Date() ? l : null;
}

/** The lock a write asks for: null, a lock, or { error } for malformed headers. */
function lockFromHeaders(h) {
  const mode = h['x-amz-object-lock-mode'];
  const until = h['x-amz-object-lock-retain-until-date'];
  if (mode === undefined && until === undefined) return null;
  const date = new Date(until || '');
  if (!['GOVERNANCE', 'COMPLIANCE'].includes(mode) || Number.isNaN(date.getTime())) {
    return { error: `object lock headers mode "${mode}" until "${until}"` };
  }
  if (h['content-md5'] === undefined && h['x-amz-sdk-checksum-algorithm'] === undefined &&
      !Object.keys(h).some((n) => n.startsWith('x-amz-checksum-'))) {
    return { error: 'an object lock write without Content-MD5 (AWS requires it)' };
  }
  return { mode, until: date };
}

function lockedError(err, bucket, key, l) {
  bump(stats.emulated, 'object_lock_refused');
  return err(403, 'AccessDenied', 'Access Denied',
    `${bucket}/${key} is locked (${l.mode}) until ${l.until.toISOString()}`);
}

function objectLockEmulation(ctx, q, err) {
  const { bucket, key } = ctx;
  const method = ctx.req.method;
  const h = ctx.req.headers;
  if (method === 'POST' && bucket && !key && q.has('delete')) {
    const text = ctx.body.toString('utf8');
    const keys = [...text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => xmlUnescape(m[1]));
    const locked = keys.filter((k) => activeLock(bucket, k));
    if (!locked.length) return null;
    bump(stats.emulated, 'object_lock_refused', locked.length);
    const errors = locked.map((k) => {
      const l = activeLock(bucket, k);
      return `<Error><Key>${xmlEscape(k)}</Key><Code>AccessDenied</Code><Message>Access Denied: locked (${l.mode}) until ${l.until.toISOString()}</Message></Error>`;
    }).join('');
    const rest = keys.filter((k) => !activeLock(bucket, k));
    if (!rest.length) {
      return { serve: async () => ({ status: 200, headers: { 'content-type': 'application/xml' },
        body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><DeleteResult>${errors}</DeleteResult>`) }) };
    }
    ctx.body = Buffer.from(`<Delete>${rest.map((k) => `<Object><Key>${xmlEscape(k)}</Key></Object>`).join('')}</Delete>`);
    ctx.overrideHeaders = { ...(ctx.overrideHeaders || {}), 'content-md5': crypto.createHash('md5').update(ctx.body).digest('base64') };
    return { after: async (status, body) => Buffer.from(body.toString('utf8').replace('</DeleteResult>', `${errors}</DeleteResult>`)) };
  }
  if (!bucket || !key) return null;
  const name = `${bucket}/${key}`;
  const current = activeLock(bucket, key);
  if (q.has('retention')) {
    if (method === 'GET') {
      const l = objectLocks.get(name);
      if (!l) return { done: err(404, 'NoSuchObjectLockConfiguration', 'The specified object does not have a ObjectLock configuration', `no retention on ${name}`) };
      return { serve: async () => ({ status: 200, headers: { 'content-type': 'application/xml' },
        body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><Retention><Mode>${l.mode}</Mode><RetainUntilDate>${l.until.toISOString()}</RetainUntilDate></Retention>`) }) };
    }
    if (method === 'PUT') {
      const text = ctx.body.toString('utf8');
      const mode = (/<Mode>([^<]*)<\/Mode>/.exec(text) || [])[1];
      const until = new Date((/<RetainUntilDate>([^<]*)<\/RetainUntilDate>/.exec(text) || [])[1] || '');
      if (!['GOVERNANCE', 'COMPLIANCE'].includes(mode) || Number.isNaN(until.getTime())) {
        return { done: err(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema', `retention ${text}`) };
      }
      if (current && until < current.until) return { done: lockedError(err, bucket, key, current) };
      objectLocks.set(name, { mode, until });
      bump(stats.emulated, 'object_lock_extended');
      return { serve: async () => ({ status: 200, headers: {}, body: Buffer.alloc(0) }) };
    }
  }
  if (method === 'DELETE' && !q.has('uploadId') && current) return { done: lockedError(err, bucket, key, current) };
  if (method === 'PUT' && !q.has('uploadId') && ![...q.keys()].some((n) => OBJECT_SUBRESOURCES.has(n))) {
    if (current) return { done: lockedError(err, bucket, key, current) };
    const lock = lockFromHeaders(h);
    if (lock && lock.error) return { done: err(400, 'InvalidRequest', 'Bad object lock request', lock.error) };
    if (lock) ctx.lockOnSuccess = lock;
  }
  if (method === 'POST' && q.has('uploads')) {
    const lock = lockFromHeaders({ ...h, 'content-md5': 'n/a' }); // parts carry the MD5s
    if (lock && lock.error) return { done: err(400, 'InvalidRequest', 'Bad object lock request', lock.error) };
    if (lock) pendingLocks.set(name, lock);
  }
  if (method === 'POST' && q.has('uploadId') && pendingLocks.has(name)) ctx.lockOnSuccess = pendingLocks.get(name);
  if ((method === 'GET' || method === 'HEAD') && current) {
    ctx.extraResponseHeaders = {
      'x-amz-object-lock-mode': current.mode,
      'x-amz-object-lock-retain-until-date': current.until.toISOString(),
    };
  }
  return null;
}

// Storage classes (s3rver keeps none): what a PUT asked for, changed by CopyObject onto the
// object itself with x-amz-storage-class (which s3rver refuses), shown on HEAD and GET.
const storageClasses = new Map(); // "bucket/key" -> class other than STANDARD

function storageClassEmulation(ctx, q, err) {
  const { bucket, key } = ctx;
  if (!bucket || !key || q.size) return null;
  const h = ctx.req.headers;
  const method = ctx.req.method;
  const name = `${bucket}/${key}`;
  if (method === 'PUT' && h['x-amz-copy-source'] !== undefined) {
    let src = decodeURIComponent(h['x-amz-copy-source']);
    if (src.startsWith('/')) src = src.slice(1);
    const cls = h['x-amz-storage-class'];
    if (src !== name || cls === undefined || h['x-amz-metadata-directive'] === 'REPLACE') return null;
    return {
      serve: async () => {
        if (!(await store.existsObject(bucket, key))) {
          return { error: { status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.', extra: { Key: key } } };
        }
        const md = await store.getMetadata(bucket, key);
        if (cls === 'STANDARD') storageClasses.delete(name);
        else storageClasses.set(name, cls);
        bump(stats.emulated, 'storage_class_changed');
        return { status: 200, headers: { 'content-type': 'application/xml' },
          body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><CopyObjectResult><ETag>${xmlEscape(md.etag)}</ETag><LastModified>${new Date().toISOString()}</LastModified></CopyObjectResult>`) };
      },
    };
  }
  if (method === 'PUT') ctx.classOnSuccess = h['x-amz-storage-class'] || 'STANDARD';
  if ((method === 'GET' || method === 'HEAD') && storageClasses.has(name)) {
    ctx.extraResponseHeaders = { ...(ctx.extraResponseHeaders || {}), 'x-amz-storage-class': storageClasses.get(name) };
  }
  return null;
}

/** Records the lock and storage class a successful write asked for (wraps the plan's `after`). */
function withLockRecording(ctx, plan) {
  if (ctx.classOnSuccess && !plan.done && !plan.serve) {
    const inner0 = plan.after;
    const name0 = `${ctx.bucket}/${ctx.key}`;
    const cls = ctx.classOnSuccess;
    plan = {
      ...plan,
      after: async (status, body) => {
        const out = inner0 ? await inner0(status, body) : body;
        if (status === 200) {
          if (cls === 'STANDARD') storageClasses.delete(name0);
          else storageClasses.set(name0, cls);
        }
        return out;
      },
    };
  }
  if (!ctx.lockOnSuccess || plan.done || plan.serve) return plan;
  const inner = plan.after;
  const name = `${ctx.bucket}/${ctx.key}`;
  return {
    ...plan,
    after: async (status, body) => {
      const out = inner ? await inner(status, body) : body;
      if (status === 200 && !/<Error>/.test(out.toString('utf8').slice(0, 512))) {
        objectLocks.set(name, ctx.lockOnSuccess);
        pendingLocks.delete(name);
        bump(stats.emulated, 'object_lock_set');
      }
      return out;
    },
  };
}

async function s3Emulation(ctx) {
  const plan = await s3EmulationInner(ctx);
  return withLockRecording(ctx, plan);
}

async function s3EmulationInner(ctx) {
  const { req } = ctx;
  const q = new Map(ctx.queryList);
  const bucket = ctx.bucket;
  const key = ctx.key;
  const method = req.method;
  const h = req.headers;
  const err = (status, code, message, reason, extra) => {
    reject(ctx, status, code, message, reason, extra);
    return { done: true };
  };
  const locking = objectLockEmulation(ctx, q, err);
  if (locking) return locking.done ? { done: true } : locking;
  const classes = storageClassEmulation(ctx, q, err);
  if (classes) return classes;

  // ListObjects (v1 and v2): s3rver loses common prefixes of keys nested below the first
  // delimiter level and counts only keys against max-keys; serve listings here instead.
  if (method === 'GET' && bucket && !key && [...q.keys()].every((n) => LIST_PARAMS.has(n))) {
    if (!(await store.getBucket(bucket))) return {}; // s3rver answers NoSuchBucket
    return { serve: () => serveList(ctx, bucket, q, err) };
  }

  // ListMultipartUploads (s3rver has none): the unfinished uploads under a prefix, one page.
  if (method === 'GET' && bucket && !key && q.has('uploads')) {
    if (!(await store.getBucket(bucket))) return {};
    return { serve: () => serveListUploads(bucket, q.get('prefix') || '') };
  }

  // DeleteObjects requires Content-MD5 or an x-amz-checksum-* header on AWS
  if (method === 'POST' && bucket && !key && q.has('delete')) {
    const hasSum = Object.keys(h).some((n) => n.startsWith('x-amz-checksum-'));
    if (h['content-md5'] === undefined && !hasSum) {
      return err(400, 'InvalidRequest', 'Missing required header for this request: Content-MD5',
        'DeleteObjects without Content-MD5 or x-amz-checksum-* (AWS rejects this)');
    }
    // AWS refuses more than 1,000 keys in one request.
    const objects = ctx.body ? (ctx.body.toString('utf8').match(/<Object>/g) || []).length : 0;
    if (objects > 1000) {
      return err(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema',
        `DeleteObjects with ${objects} keys (at most 1000)`);
    }
    bump(stats.emulated, 'delete_objects_checked');
    return {};
  }

  if (!bucket || !key) return {};

  if (q.has('uploadId')) {
    const uploadId = q.get('uploadId');
    const dir = uploadDir(bucket, uploadId);
    if (!UPLOAD_ID_RE.test(uploadId) || !(await exists(dir))) {
      return err(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
        `no multipart upload ${uploadId} in bucket ${bucket}`, { UploadId: uploadId });
    }
    if (method === 'DELETE') {
      // AbortMultipartUpload: s3rver answers 405, emulate it.
      return {
        serve: async () => {
          await fsp.rm(dir, { recursive: true, force: true });
          bump(stats.emulated, 'abort_multipart');
          return { status: 204, headers: {}, body: Buffer.alloc(0) };
        },
      };
    }
    if (method === 'PUT') {
      const pn = q.get('partNumber');
      if (!/^\d+$/.test(pn || '') || Number(pn) < 1 || Number(pn) > 10000) {
        return err(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive',
          `bad partNumber "${pn}"`, { ArgumentName: 'partNumber', ArgumentValue: String(pn) });
      }
      return {}; // UploadPartCopy (x-amz-copy-source): s3rver answers 501
    }
    if (method === 'POST') return completeChecks(ctx, bucket, uploadId, dir, err);
    if (method === 'GET') {
      return err(501, 'NotImplemented', 'A parameter you provided implies functionality that is not implemented',
        'ListParts is not supported by s3rver/gateway.js');
    }
    return {};
  }

  if (method === 'PUT' && !q.has('tagging') && !q.has('acl')) {
    return conditionalWrite(ctx, bucket, key, err);
  }
  if ((method === 'GET' || method === 'HEAD') && ![...q.keys()].some((n) => OBJECT_SUBRESOURCES.has(n))) {
    return conditionalRead(ctx, bucket, key, err);
  }
  return {};
}

/**
 * GET/HEAD on an object: If-Match (s3rver ignores it) and Range.  s3rver's Range handling is
 * wrong for "bytes=0-0" (whole object), "bytes=-N" (treated as 0-N) and invalid ranges, so
 * single ranges are served here from s3rver's store.
 */
async function conditionalRead(ctx, bucket, objectKey, err) {
  const h = ctx.req.headers;
  const im = h['if-match'];
  const range = h.range;
  if (im === undefined && range === undefined) return {};
  let md;
  try {
    md = await store.getMetadata(bucket, objectKey);
  } catch {
    return {}; // missing object/bucket: let s3rver produce NoSuchKey / NoSuchBucket
  }
  if (im !== undefined) {
    const want = im.trim();
    if (want !== '*' && want.replace(/"/g, '') !== String(md.etag).replace(/"/g, '')) {
      bump(stats.emulated, 'if_match_failed');
      return err(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
        `If-Match ${want} but current ETag is ${md.etag}`, { Condition: 'If-Match' });
    }
    bump(stats.emulated, 'if_match_ok');
  }
  if (range === undefined) return {};
  if (faults.ignore_range) {
    ctx.overrideHeaders = { range: undefined };
    bump(stats.injected, 'range_ignored');
    return {};
  }
  const size = Number(md['content-length']);
  const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
  let first;
  let last;
  if (m && m[1] !== '') {
    first = Number(m[1]);
    last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < first) first = null; // syntactically invalid: ignored
  } else if (m && m[2] !== '') {
    const n = Number(m[2]);
    if (n === 0) first = size; // unsatisfiable
    else {
      first = Math.max(0, size - n);
      last = size - 1;
    }
  } else {
    first = null; // not a single byte range: AWS ignores the header
  }
  if (first === null) {
    ctx.overrideHeaders = { range: undefined };
    bump(stats.emulated, 'range_ignored');
    return {};
  }
  if (first >= size) {
    return err(416, 'InvalidRange', 'The requested range is not satisfiable',
      `range ${range} on a ${size}-byte object`, { RangeRequested: range, ActualObjectSize: size });
  }
  const inm = h['if-none-match'];
  bump(stats.emulated, 'range');
  return {
    serve: async () => {
      const headers = {};
      for (const [k, v] of Object.entries(md)) headers[k] = String(v);
      if (inm !== undefined && (inm.trim() === '*' || inm.trim() === md.etag)) {
        delete headers['content-length'];
        return { status: 304, headers: { etag: md.etag, 'last-modified': headers['last-modified'] }, body: Buffer.alloc(0) };
      }
      headers['accept-ranges'] = 'bytes';
      headers['content-range'] = `bytes ${first}-${last}/${size}`;
      headers['content-length'] = String(last - first + 1);
      if (ctx.req.method === 'HEAD') return { status: 206, headers, body: Buffer.alloc(0) };
      const fh = await fsp.open(store.getResourcePath(bucket, objectKey, 'object'), 'r');
      try {
        const buf = Buffer.alloc(last - first + 1);
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, first + got);
          if (!bytesRead) break;
          got += bytesRead;
        }
        return { status: 206, headers, body: buf.subarray(0, got) };
      } finally {
        await fh.close();
      }
    },
  };
}

function conditionalWrite(ctx, bucket, objectKey, err) {
  const h = ctx.req.headers;
  const inm = h['if-none-match'];
  const im = h['if-match'];
  if (inm === undefined && im === undefined) return {};
  if (inm !== undefined && inm.trim() !== '*') {
    return err(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented',
      `If-None-Match "${inm}" on a write: only "*" is supported`, { Header: 'If-None-Match' });
  }
  return {
    conditional: async (forwardFn) =>
      withLock(`${bucket}/${objectKey}`, async () => {
        const present = await store.existsObject(bucket, objectKey);
        if (inm !== undefined && present) {
          bump(stats.emulated, 'if_none_match_failed');
          err(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
            `If-None-Match: * but ${bucket}/${objectKey} exists`, { Condition: 'If-None-Match' });
          return;
        }
        if (im !== undefined) {
          if (!present) {
            err(404, 'NoSuchKey', 'The specified key does not exist.', `If-Match on missing ${bucket}/${objectKey}`, { Key: objectKey });
            return;
          }
          const md = await store.getMetadata(bucket, objectKey);
          const want = im.trim();
          if (want !== '*' && want.replace(/"/g, '') !== String(md.etag).replace(/"/g, '')) {
            bump(stats.emulated, 'if_match_failed');
            err(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
              `If-Match ${want} but current ETag is ${md.etag}`, { Condition: 'If-Match' });
            return;
          }
        }
        bump(stats.emulated, 'conditional_write_ok');
        await forwardFn();
      }),
  };
}

async function completeChecks(ctx, bucket, uploadId, dir, err) {
  const xml = ctx.body.toString('utf8');
  const parts = [];
  const re = /<Part>([\s\S]*?)<\/Part>/g;
  let mm;
  while ((mm = re.exec(xml))) {
    const num = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(mm[1]);
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(mm[1]);
    if (!num || !etag) {
      return err(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema',
        'CompleteMultipartUpload Part without PartNumber or ETag');
    }
    parts.push({ number: Number(num[1]), etag: xmlUnescape(etag[1]).trim().replace(/"/g, '') });
  }
  if (!parts.length) {
    return err(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema',
      'CompleteMultipartUpload without parts');
  }
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].number <= parts[i - 1].number) {
      return err(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.',
        `part ${parts[i].number} after ${parts[i - 1].number}`);
    }
  }
  const md5s = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    const partPath = path.join(dir, String(p.number));
    let md5 = null;
    let size = 0;
    try {
      md5 = (await fsp.readFile(`${partPath}.md5`, 'utf8')).trim();
      size = (await fsp.stat(partPath)).size;
    } catch {
      md5 = null;
    }
    if (md5 === null || md5 !== p.etag) {
      return err(400, 'InvalidPart', "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
        md5 === null ? `part ${p.number} was never uploaded` : `part ${p.number} ETag "${p.etag}" != stored "${md5}"`,
        { UploadId: uploadId, PartNumber: p.number, ETag: p.etag });
    }
    if (i < parts.length - 1 && size < opts.minPartSize) {
      return err(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.',
        `part ${p.number} has ${size} bytes < minimum ${opts.minPartSize} (only the last part may be smaller)`,
        { ProposedSize: size, MinSizeAllowed: opts.minPartSize, PartNumber: p.number, ETag: p.etag });
    }
    md5s.push(Buffer.from(md5, 'hex'));
  }
  const awsEtag = `${crypto.createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${parts.length}`;
  const objectKey = (await fsp.readFile(path.join(dir, 'key'), 'utf8'));
  // AWS-style multipart ETag: rewrite s3rver's stored md5 and the response body.
  const after = async (status, body) => {
    if (status !== 200) return body;
    await fsp.writeFile(store.getResourcePath(bucket, objectKey, 'object.md5'), awsEtag);
    bump(stats.emulated, 'multipart_etag');
    return Buffer.from(body.toString('utf8').replace(/<ETag>[^<]*<\/ETag>/, `<ETag>&quot;${awsEtag}&quot;</ETag>`));
  };
  const cond = conditionalWrite(ctx, bucket, objectKey, err);
  if (cond.done) return cond;
  return { ...cond, after };
}

// ---------------------------------------------------------------------------------------------
// forwarding
// ---------------------------------------------------------------------------------------------

function upstreamRequest(ctx) {
  const { req } = ctx;
  const headers = {};
  for (const [n, v] of Object.entries(req.headers)) {
    if (HOP_BY_HOP.has(n) || n.startsWith('proxy-')) continue;
    if (n === 'authorization' || n === 'x-amz-security-token') continue;
    headers[n] = v;
  }
  headers.host = `127.0.0.1:${s3rverPort}`;
  for (const [n, v] of Object.entries(ctx.overrideHeaders || {})) {
    if (v === undefined) delete headers[n];
    else headers[n] = v;
  }
  // s3rver does not verify SigV4 but knows only its dummy key: present that one.
  const day = (req.headers['x-amz-date'] || '').slice(0, 8);
  headers.authorization = `AWS4-HMAC-SHA256 Credential=S3RVER/${day}/${opts.region}/s3/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`;
  if (ctx.body.length || req.method === 'PUT' || req.method === 'POST') headers['content-length'] = String(ctx.body.length);
  else delete headers['content-length'];
  return new Promise((resolve, reject) => {
    const up = http.request(
      { host: '127.0.0.1', port: s3rverPort, method: req.method, path: ctx.upstreamPath, headers, agent: upstreamAgent },
      resolve,
    );
    up.on('error', reject);
    up.end(ctx.body.length ? ctx.body : undefined);
  });
}

function responseHeaders(upRes) {
  const out = {};
  for (const [n, v] of Object.entries(upRes.headers)) {
    if (HOP_BY_HOP.has(n)) continue;
    out[n] = v;
  }
  return out;
}

/** Wraps a locally produced answer so it looks like an upstream http.IncomingMessage. */
function localResponse({ status, headers, body }) {
  const r = Readable.from(body.length ? [body] : []);
  r.statusCode = status;
  r.headers = { 'content-length': String(body.length), ...headers };
  return r;
}

async function forwardAndRespond(ctx, fault, after, serve) {
  let upRes;
  try {
    if (serve) {
      const out = await serve();
      if (out.error) {
        const e = out.error;
        return reject(ctx, e.status, e.code, e.message, e.message, e.extra);
      }
      upRes = localResponse(out);
    } else {
      upRes = await upstreamRequest(ctx);
    }
  } catch (e) {
    log(`upstream error for ${ctx.req.method} ${ctx.upstreamPath}: ${e.message}`);
    sendS3Error(ctx, 500, 'InternalError', 'We encountered an internal error. Please try again.');
    return;
  }
  if (!serve) stats.forwarded++;
  if (fault === 'drop_after') {
    upRes.resume();
    await new Promise((r) => upRes.on('end', r).on('error', r));
    bump(stats.injected, 'drop_after');
    log(`INJECT drop_after: ${ctx.req.method} ${ctx.req.url} (s3rver answered ${upRes.statusCode})`);
    abortSocket(ctx);
    return;
  }
  const headers = responseHeaders(upRes);
  const status = upRes.statusCode;
  if (status >= 200 && status < 300) Object.assign(headers, ctx.extraResponseHeaders || {});
  if (after) {
    const chunks = [];
    for await (const c of upRes) chunks.push(c);
    const body = await after(status, Buffer.concat(chunks));
    headers['content-length'] = String(body.length);
    bump(stats.by_status, status);
    ctx.res.writeHead(status, headers);
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
    return;
  }
  const len = Number(upRes.headers['content-length']);
  if (fault === 'truncate' && ctx.req.method === 'GET' && (status === 200 || status === 206) && len > 0) {
    const cut = Math.floor(prng() * len); // 0 .. len-1 bytes of the body are sent
    bump(stats.injected, 'truncate');
    log(`INJECT truncate: ${ctx.req.method} ${ctx.req.url}: ${cut} of ${len} body bytes, then reset`);
    bump(stats.by_status, status);
    ctx.res.writeHead(status, headers);
    let sent = 0;
    upRes.on('data', (c) => {
      if (sent >= cut) return;
      const piece = c.subarray(0, Math.min(c.length, cut - sent));
      sent += piece.length;
      ctx.res.write(piece);
    });
    await new Promise((r) => upRes.on('end', r).on('error', r));
    // let the partial body leave before the reset
    await new Promise((r) => (ctx.res.writableLength ? ctx.res.once('drain', r) : r()));
    await sleep(20);
    abortSocket(ctx);
    return;
  }
  bump(stats.by_status, status);
  ctx.res.writeHead(status, headers);
  upRes.pipe(ctx.res);
  await new Promise((r) => ctx.res.on('close', r));
}

// ---------------------------------------------------------------------------------------------
// fault injection
// ---------------------------------------------------------------------------------------------

/** Decide the fault for one verified S3 request.  Returns {delay, kind} (kind may be null). */
function pickFault(method) {
  const f = faults;
  if (f.methods && !f.methods.includes(method)) return { delay: 0, kind: null };
  if (f.next_faults.length) {
    const kind = f.next_faults.shift();
    if (kind === 'delay') return { delay: f.delay_ms, kind: null, scripted: true };
    return { delay: 0, kind, scripted: true };
  }
  const delay = f.delay_rate > 0 && prng() < f.delay_rate ? f.delay_ms : 0;
  if (f.error_rate > 0 && prng() < f.error_rate) {
    let kind = ERROR_KINDS[Math.floor(prng() * ERROR_KINDS.length)];
    // S3 answers RequestTimeout only to a request whose body did not arrive in time: never to
    // HEAD (whose 400 has no body to tell it from a bad request), GET or DELETE.
    if (kind === 'RequestTimeout' && method !== 'PUT' && method !== 'POST') kind = 'InternalError';
    return { delay, kind };
  }
  if (f.drop_rate > 0 && prng() < f.drop_rate) {
    return { delay, kind: prng() < 0.5 ? 'drop_before' : 'drop_after' };
  }
  if (method === 'GET' && f.truncate_rate > 0 && prng() < f.truncate_rate) {
    return { delay, kind: 'truncate' };
  }
  return { delay, kind: null };
}

function sendInjectedError(ctx, kind) {
  bump(stats.injected, kind);
  log(`INJECT ${kind}: ${ctx.req.method} ${ctx.req.url}`);
  switch (kind) {
    case 'InternalError':
      return sendS3Error(ctx, 500, 'InternalError', 'We encountered an internal error. Please try again.');
    case 'SlowDown': {
      const hdr = prng() < 0.5 ? { 'Retry-After': '1' } : {};
      return sendS3Error(ctx, 503, 'SlowDown', 'Please reduce your request rate.', {}, hdr);
    }
    case 'SlowDownRetryAfter2':
      return sendS3Error(ctx, 503, 'SlowDown', 'Please reduce your request rate.', {},
        { 'Retry-After': '2' });
    case 'ServiceUnavailable':
      return sendS3Error(ctx, 503, 'ServiceUnavailable', 'Service is unable to handle request.');
    case 'RequestTimeout':
      return sendS3Error(ctx, 400, 'RequestTimeout',
        'Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.');
  }
}

// ---------------------------------------------------------------------------------------------
// fake STS
// ---------------------------------------------------------------------------------------------

function isStsRequest(req, rawPath, queryList, body) {
  if (rawPath !== '/') return false;
  if (queryList.some(([n]) => n === 'Action')) return true;
  const ct = (req.headers['content-type'] || '').toLowerCase();
  return req.method === 'POST' && ct.startsWith('application/x-www-form-urlencoded') && /(^|&)Action=/.test(body.toString('latin1'));
}

function randomAlnum(n) {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const b = crypto.randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += A[b[i] % A.length];
  return s;
}

function jwtSubject(token) {
  const parts = token.split('.');
  if (parts.length === 3) {
    try {
      const payload = JSON.parse(Buffer.from(parts[1].replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
      if (payload && typeof payload.sub === 'string') return payload.sub;
    } catch { /* not a JWT */ }
  }
  return 'gateway-test-subject';
}

async function handleSts(ctx, queryList) {
  stats.sts_requests++;
  const params = new Map(queryList);
  const ct = (ctx.req.headers['content-type'] || '').toLowerCase();
  if (ctx.body.length && ct.startsWith('application/x-www-form-urlencoded')) {
    for (const [n, v] of new URLSearchParams(ctx.body.toString('utf8'))) params.set(n, v);
  }
  const action = params.get('Action');
  if (action !== 'AssumeRoleWithWebIdentity') {
    return stsError(ctx, 400, 'InvalidAction', `Could not find operation ${action} for version ${params.get('Version') || 'NO_VERSION_SPECIFIED'}`);
  }
  const roleArn = params.get('RoleArn');
  const token = params.get('WebIdentityToken');
  const sessionName = params.get('RoleSessionName') || 'gateway-session';
  if (!roleArn) return stsError(ctx, 400, 'ValidationError', "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null");
  if (!token) return stsError(ctx, 400, 'ValidationError', "1 validation error detected: Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null");
  if (opts.tokenFile) {
    let want;
    try {
      want = fs.readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (e) {
      return stsError(ctx, 400, 'InvalidIdentityToken', `gateway cannot read --web-identity-token-file: ${e.code || e.message}`);
    }
    if (token.trim() !== want) {
      // AWS answers InvalidIdentityToken with HTTP 400 (Type Sender).
      return stsError(ctx, 400, 'InvalidIdentityToken', 'The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.');
    }
  }
  let duration = opts.stsDuration;
  if (params.has('DurationSeconds')) {
    const d = params.get('DurationSeconds');
    if (!/^\d+$/.test(d) || Number(d) < 1 || Number(d) > 43200) {
      return stsError(ctx, 400, 'ValidationError', `1 validation error detected: Value '${d}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200`);
    }
    duration = Math.min(Number(d), opts.stsDuration);
  }
  const akid = 'ASIA' + randomAlnum(16);
  const secret = crypto.randomBytes(30).toString('base64');
  // Real session tokens are long base64 blobs containing '+', '/' and '='.
  const sessionToken = 'FwoGZXIvYXdzEJr//////////wEaD' + crypto.randomBytes(300).toString('base64');
  const expiration = Date.now() + duration * 1000;
  keys.set(akid, { secret, token: sessionToken, expiration, temporary: true });
  stats.sts_issued++;
  const expIso = new Date(Math.floor(expiration / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const roleName = roleArn.split('/').pop() || 'role';
  const account = (/^arn:aws:iam::(\d{12}):/.exec(roleArn) || [])[1] || '123456789012';
  const roleId = 'AROA' + randomAlnum(17);
  log(`STS issued ${akid} for ${roleArn} session=${sessionName} valid ${duration}s (until ${expIso})`);
  sendStsXml(
    ctx,
    200,
    `<AssumeRoleWithWebIdentityResponse xmlns="${STS_XMLNS}">\n` +
      '  <AssumeRoleWithWebIdentityResult>\n' +
      '    <Credentials>\n' +
      `      <AccessKeyId>${akid}</AccessKeyId>\n` +
      `      <SecretAccessKey>${xmlEscape(secret)}</SecretAccessKey>\n` +
      `      <SessionToken>${xmlEscape(sessionToken)}</SessionToken>\n` +
      `      <Expiration>${expIso}</Expiration>\n` +
      '    </Credentials>\n' +
      `    <SubjectFromWebIdentityToken>${xmlEscape(jwtSubject(token))}</SubjectFromWebIdentityToken>\n` +
      '    <AssumedRoleUser>\n' +
      `      <Arn>arn:aws:sts::${account}:assumed-role/${xmlEscape(roleName)}/${xmlEscape(sessionName)}</Arn>\n` +
      `      <AssumedRoleId>${roleId}:${xmlEscape(sessionName)}</AssumedRoleId>\n` +
      '    </AssumedRoleUser>\n' +
      '  </AssumeRoleWithWebIdentityResult>\n' +
      '  <ResponseMetadata>\n' +
      `    <RequestId>${ctx.reqId}</RequestId>\n` +
      '  </ResponseMetadata>\n' +
      '</AssumeRoleWithWebIdentityResponse>\n',
  );
}

// ---------------------------------------------------------------------------------------------
// control API
// ---------------------------------------------------------------------------------------------

async function handleControl(req, res, rawPath) {
  let body;
  try {
    body = await readBody(req);
  } catch {
    return;
  }
  const route = `${req.method} ${rawPath}`;
  switch (route) {
    case 'GET /__gateway/faults':
      return sendJson(res, 200, faults);
    case 'POST /__gateway/faults': {
      let f;
      try {
        f = body.length ? JSON.parse(body.toString('utf8')) : {};
        if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new Error('expected a JSON object');
        faults = normalizeFaults(f);
        if (f.seed !== undefined) prng = makePrng(Number(f.seed));
      } catch (e) {
        return sendJson(res, 400, { error: e.message });
      }
      log(`faults now ${JSON.stringify(faults)}`);
      return sendJson(res, 200, faults);
    }
    case 'GET /__gateway/stats':
      return sendJson(res, 200, stats);
    case 'POST /__gateway/stats/reset':
      stats = newStats();
      return sendJson(res, 200, stats);
    case 'GET /__gateway/health':
      return sendJson(res, 200, { ok: true, port: gatewayPort, s3rver_port: s3rverPort, tls: !!tlsOptions });
    default:
      return sendJson(res, 404, { error: `no such control endpoint: ${route}` });
  }
}

// ---------------------------------------------------------------------------------------------
// main handler
// ---------------------------------------------------------------------------------------------

async function handle(req, res) {
  const qi = req.url.indexOf('?');
  const rawPath = qi < 0 ? req.url : req.url.slice(0, qi);
  const rawQuery = qi < 0 ? '' : req.url.slice(qi + 1);
  if (rawPath.startsWith('/__gateway/')) return handleControl(req, res, rawPath);

  const ctx = { req, res, reqId: requestId(), hostId: crypto.randomBytes(24).toString('base64') };
  res.setHeader('x-amz-request-id', ctx.reqId);
  res.setHeader('x-amz-id-2', ctx.hostId);
  stats.requests++;
  bump(stats.by_method, req.method);

  try {
    ctx.body = await readBody(req);
  } catch (e) {
    if (e.tooBig) return reject(ctx, 400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', `body over ${MAX_BODY} bytes`);
    log(`client went away while sending ${req.method} ${req.url}: ${e.message}`);
    return;
  }

  let queryList;
  let segments;
  try {
    queryList = parseQuery(rawQuery);
    segments = rawPath.split('/').map((s) => decodeURIComponent(s));
  } catch (e) {
    return reject(ctx, 400, 'InvalidURI', "Couldn't parse the specified URI.", `bad percent-encoding in ${req.url}`);
  }

  if (isStsRequest(req, rawPath, queryList, ctx.body)) return handleSts(ctx, queryList);

  ctx.queryList = queryList;
  // Canonical URI for S3: each decoded segment UriEncoded once, '/' kept (uriEscapePath: false).
  ctx.canonicalPath = segments.map(awsUriEncode).join('/');

  // addressing style
  const [hostname] = splitHost(req.headers.host || '');
  const hn = hostname.toLowerCase();
  let vhostBucket = null;
  if (hn.endsWith('.localhost') && !net.isIP(hn)) vhostBucket = hostname.slice(0, -'.localhost'.length);
  if (vhostBucket) {
    ctx.bucket = vhostBucket;
    ctx.key = segments.slice(1).join('/');
    ctx.upstreamPath = `/${awsUriEncode(vhostBucket)}${rawPath === '/' ? '' : rawPath}${qi < 0 ? '' : '?' + rawQuery}`;
  } else {
    ctx.bucket = segments[1] || '';
    ctx.key = segments.slice(2).join('/');
    ctx.upstreamPath = req.url;
  }

  if (req.method === 'PUT' && req.headers['content-length'] === undefined) {
    return reject(ctx, 411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.',
      'PUT without Content-Length (chunked transfer-encoding is not accepted by S3 for PutObject/UploadPart)');
  }
  let failure;
  try {
    failure = await verifySigV4(ctx);
  } catch (e) {
    failure = { status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.', reason: `verifier crashed: ${e.stack}` };
  }
  if (failure) return reject(ctx, failure.status, failure.code, failure.message, failure.reason, failure.extra);
  const integrity = checkBodyIntegrity(ctx);
  if (integrity) {
    const [code, status, message, reason, extra] = integrity;
    return reject(ctx, status, code, message, reason, extra);
  }
  stats.verified++;

  const plan = await s3Emulation(ctx);
  if (plan.done) return;

  const fault = pickFault(req.method);
  if (fault.delay > 0) {
    bump(stats.injected, 'delay');
    await sleep(fault.delay);
  }
  if (fault.kind && (ERROR_KINDS.includes(fault.kind) || fault.kind === 'SlowDownRetryAfter2')) {
    return sendInjectedError(ctx, fault.kind);
  }
  if (fault.kind === 'drop_before') {
    bump(stats.injected, 'drop_before');
    log(`INJECT drop_before: ${req.method} ${req.url}`);
    return abortSocket(ctx);
  }
  const go = () => forwardAndRespond(ctx, fault.kind, plan.after, plan.serve);
  if (plan.conditional) return plan.conditional(go);
  return go();
}

// ---------------------------------------------------------------------------------------------
// startup / shutdown
// ---------------------------------------------------------------------------------------------

let gatewayPort = 0;

/** --tls-cert/--tls-key: PEM files read once at startup; the gateway then serves HTTPS only. */
function loadTls() {
  if (!opts.tlsCert) return null;
  const read = (flag, file) => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      process.stderr.write(`gateway.js: cannot read ${flag} ${file}: ${e.code || e.message}\n`);
      process.exit(2);
    }
  };
  const o = { cert: read('--tls-cert', opts.tlsCert), key: read('--tls-key', opts.tlsKey) };
  try {
    // fail early on a bad PEM or a key that does not match the certificate
    require('tls').createSecureContext(o);
  } catch (e) {
    process.stderr.write(`gateway.js: unusable --tls-cert/--tls-key: ${e.message}\n`);
    process.exit(2);
  }
  return o;
}
const tlsOptions = loadTls();

function onRequest(req, res) {
  handle(req, res).catch((e) => {
    log(`internal error handling ${req.method} ${req.url}: ${e.stack}`);
    if (!res.headersSent) {
      try {
        res.writeHead(500, { 'Content-Type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>gateway internal error</Message></Error>');
      } catch { /* ignore */ }
    } else {
      res.destroy();
    }
  });
}
const server = tlsOptions ? https.createServer(tlsOptions, onRequest) : http.createServer(onRequest);
if (tlsOptions) {
  // Failed handshakes never reach the request handler; say why (e.g. the client does not trust
  // the CA: "alert unknown ca"; plain HTTP sent to the TLS port: "http request").
  server.on('tlsClientError', (err, socket) => {
    const from = socket && socket.remotePort ? ` from 127.0.0.1:${socket.remotePort}` : '';
    log(`TLS handshake${from} failed: ${err.code || 'error'}: ${String(err.message).trim()}`);
  });
}
server.keepAliveTimeout = 20000;
server.headersTimeout = 60000;
server.requestTimeout = 0;

let shuttingDown = false;
function shutdown(why) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`shutting down (${why})`);
  setTimeout(() => process.exit(0), 2000).unref();
  server.close();
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
  upstreamAgent.destroy();
  const done = () => process.exit(0);
  if (s3rver.httpServer) s3rver.close().then(done, done);
  else done();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => shutdown('SIGHUP'));
process.stdout.on('error', () => shutdown('stdout closed'));
if (opts.stdinWatch) {
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => shutdown('stdin EOF'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

(async () => {
  const addr = await s3rver.run();
  s3rverPort = addr.port;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  gatewayPort = server.address().port;
  log(`ready: gateway ${tlsOptions ? 'https' : 'http'}://127.0.0.1:${gatewayPort} -> s3rver 127.0.0.1:${s3rverPort}, dir=${opts.dir}, ` +
    `buckets=[${opts.buckets.join(',')}], region=${opts.region}, seed=${opts.seed}, faults=${JSON.stringify(faults)}`);
  process.stdout.write(`{"port": ${gatewayPort}, "s3rver_port": ${s3rverPort}${tlsOptions ? ', "tls": true' : ''}}\n`);
})().catch((e) => {
  log(`startup failed: ${e.stack || e}`);
  process.exit(1);
});
