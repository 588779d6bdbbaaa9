#!/usr/bin/env node
'use strict';
/*
 * sign.js — reference SigV4 signer (@smithy/signature-v4, as used by the AWS JS SDK v3) for
 * cross-checking the C++ signer.
 *
 *   node --openssl-legacy-provider sign.js < requests.json > signed.json
 *
 * Input: JSON array; each element
 *   { "method": "PUT", "host": "127.0.0.1:9000", "path": "/bucket/raw key",   (raw, NOT encoded)
 *     "query": [["name", "raw value"], ...], "headers": [["Name", "value"], ...],
 *     "payload_sha256": "<64 hex>" | "UNSIGNED-PAYLOAD",     (optional)
 *     "region": "us-east-1", "service": "s3", "amz_date": "20260124T120000Z",
 *     "access_key_id": "...", "secret_access_key": "...", "session_token": "..." (optional) }
 * Output: JSON array, same order; each element
 *   { "authorization": "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...",
 *     "headers": [["name", "value"], ...],  // the signed request's headers, as smithy left them
 *     "signed_headers": "host;x-amz-content-sha256;x-amz-date",
 *     "signature": "<64 hex>",
 *     "wire_path": "/bucket/raw%20key",      // path as the SDK puts it on the wire
 *     "wire_query": "a=b&c=",                // query as put on the wire (input order)
 *     "canonical_request": "...", "string_to_sign": "..." }   // for diffing against C++
 * On a bad element the output element is {"error": "..."} and the exit status is 1.
 *
 * What smithy does (the C++ signer must mirror this to produce identical signatures):
 *  - Path: for service "s3" the signer is built with uriEscapePath=false and uses the path
 *    verbatim, so the path must already be encoded once.  sign.js encodes the raw path like the
 *    SDK: every '/'-separated segment with encodeURIComponent plus !'()* -> %21 %27 %28 %29 %2A
 *    ('/' kept; no dot-segment removal; empty segments kept).  For any other service
 *    (uriEscapePath=true) smithy removes empty, '.' and '..' segments and URI-encodes the
 *    already-encoded path AGAIN (double encoding, '%' -> '%25').
 *  - Query: names and values are UriEncoded (encodeURIComponent + !'()*; space -> %20, never
 *    '+'), pairs sorted by encoded name, repeated names sorted by "name=value" string; a
 *    parameter without value is "name=" (e.g. "uploads=").  X-Amz-Signature is skipped.
 *  - Headers removed before signing: authorization, x-amz-date and date (date is never signed!).
 *    Then x-amz-date = amz_date; x-amz-security-token = session_token (if given; it is signed);
 *    x-amz-content-sha256 = payload_sha256 is added by sign.js when payload_sha256 is given
 *    (smithy uses a present x-amz-content-sha256 header verbatim as the payload hash; if there is
 *    none it hashes the empty body, e3b0c442...b855, and adds the header itself).
 *  - Headers never signed (dropped from SignedHeaders though still sent): authorization,
 *    cache-control, connection, expect, from, keep-alive, max-forwards, pragma, referer, te,
 *    trailer, transfer-encoding, upgrade, user-agent, x-amzn-trace-id, and any proxy-* / sec-*.
 *    Everything else present is signed (content-type, content-md5, content-length, range,
 *    if-none-match, x-amz-*, ...).  The SDK itself always sends host and signs it; sign.js adds a
 *    "host" header from the "host" field unless the headers already contain one.
 *  - Canonical header values: CR/LF -> space, runs of spaces/tabs -> one space, trimmed. Names
 *    lowercased; SignedHeaders sorted ';'-joined.
 *  - Authorization: "AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/region/service/aws4_request,
 *    SignedHeaders=..., Signature=..." (comma + single space separators).
 */

const { SignatureV4, prepareRequest, getCanonicalHeaders, getPayloadHash, createScope } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');
const { awsUriEncode, s3EncodePath, parseAmzDate } = require('./lib/common');

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

async function signOne(e) {
  for (const f of ['method', 'host', 'path', 'region', 'service', 'amz_date', 'access_key_id', 'secret_access_key']) {
    if (typeof e[f] !== 'string') throw new Error(`missing or non-string field "${f}"`);
  }
  const signingDate = parseAmzDate(e.amz_date);
  if (isNaN(signingDate)) throw new Error(`amz_date "${e.amz_date}" is not YYYYMMDDTHHMMSSZ`);
  const queryList = e.query || [];
  const headerList = e.headers || [];

  const wirePath = s3EncodePath(e.path);
  const query = {};
  for (const [n, v] of queryList) {
    const val = v === null || v === undefined ? '' : String(v);
    if (query[n] === undefined) query[n] = val;
    else if (Array.isArray(query[n])) query[n].push(val);
    else query[n] = [query[n], val];
  }
  const headers = {};
  for (const [n, v] of headerList) {
    // repeated header names are joined with ',' (as in the canonical form)
    const existing = Object.keys(headers).find((k) => k.toLowerCase() === n.toLowerCase());
    if (existing) headers[existing] = `${headers[existing]},${v}`;
    else headers[n] = String(v);
  }
  if (!Object.keys(headers).some((k) => k.toLowerCase() === 'host')) headers.host = e.host;
  if (e.payload_sha256 !== undefined && e.payload_sha256 !== null) {
    for (const k of Object.keys(headers)) if (k.toLowerCase() === 'x-amz-content-sha256') delete headers[k];
    headers['x-amz-content-sha256'] = e.payload_sha256;
  }
  const hostParts = /^(.*?)(?::(\d+))?$/.exec(e.host);
  const request = {
    method: e.method,
    protocol: 'https:',
    hostname: hostParts[1],
    port: hostParts[2] ? Number(hostParts[2]) : undefined,
    path: wirePath,
    query,
    headers,
    body: undefined,
  };
  const credentials = { accessKeyId: e.access_key_id, secretAccessKey: e.secret_access_key };
  if (e.session_token) credentials.sessionToken = e.session_token;
  const signer = new SignatureV4({
    credentials,
    region: e.region,
    service: e.service,
    sha256: Sha256,
    uriEscapePath: e.service !== 's3',
  });
  const signed = await signer.sign(request, { signingDate });
  const auth = signed.headers.authorization;
  const m = /SignedHeaders=([^,]*), Signature=([0-9a-f]{64})$/.exec(auth);

  // Recompute the intermediate strings the same way signRequest does (diagnostics only).
  const prepared = prepareRequest(request);
  prepared.headers['x-amz-date'] = e.amz_date;
  if (credentials.sessionToken) prepared.headers['x-amz-security-token'] = credentials.sessionToken;
  const payloadHash = await getPayloadHash(prepared, Sha256);
  if (!Object.keys(prepared.headers).some((k) => k.toLowerCase() === 'x-amz-content-sha256')) {
    prepared.headers['x-amz-content-sha256'] = payloadHash;
  }
  const canonicalHeaders = getCanonicalHeaders(prepared);
  const canonicalRequest = signer.createCanonicalRequest(prepared, canonicalHeaders, payloadHash);
  const scope = createScope(e.amz_date.slice(0, 8), e.region, e.service);
  const stringToSign = await signer.createStringToSign(e.amz_date, scope, canonicalRequest, 'AWS4-HMAC-SHA256');

  const wireQuery = queryList
    .map(([n, v]) => `${awsUriEncode(n)}=${awsUriEncode(v === null || v === undefined ? '' : String(v))}`)
    .join('&');
  return {
    authorization: auth,
    headers: Object.entries(signed.headers).map(([n, v]) => [n, String(v)]),
    signed_headers: m[1],
    signature: m[2],
    wire_path: wirePath,
    wire_query: wireQuery,
    canonical_request: canonicalRequest,
    string_to_sign: stringToSign,
  };
}

async function main() {
  const input = JSON.parse(await readStdin());
  if (!Array.isArray(input)) throw new Error('stdin must be a JSON array');
  let failed = false;
  const out = [];
  for (const e of input) {
    try {
      out.push(await signOne(e));
    } catch (err) {
      failed = true;
      out.push({ error: err.message });
    }
  }
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => {
  process.stderr.write(`sign.js: ${e.message}\n`);
  process.exit(2);
});
