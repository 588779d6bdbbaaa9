'use strict';
// Builds an @aws-sdk/client-s3 client for the gateway (used by interop.js and selftest.js).

const dns = require('dns');

// The SDK version pinned here (the last one allowing node 18) prints a multi-line
// "NodeDeprecationWarning" on node < 20; keep stderr of interop.js clean for the C++ tests.
const emitWarning = process.emitWarning;
process.emitWarning = function filteredEmitWarning(warning, ...rest) {
  if (typeof warning === 'string' && warning.startsWith('NodeDeprecationWarning: The AWS SDK for JavaScript')) return;
  return emitWarning.call(process, warning, ...rest);
};

const http = require('http');
const https = require('https');
const { S3Client } = require('@aws-sdk/client-s3');

/**
 * Node's resolver (getaddrinfo with "hosts: files dns") does not resolve "<bucket>.localhost",
 * unlike libcurl, which maps *.localhost to loopback itself.  Do the same here.
 */
function loopbackLookup(hostname, options, callback) {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  const h = String(hostname).toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) {
    if (options && options.all) return process.nextTick(callback, null, [{ address: '127.0.0.1', family: 4 }]);
    return process.nextTick(callback, null, '127.0.0.1', 4);
  }
  return dns.lookup(hostname, options, callback);
}

/**
 * @param {object} o
 * @param {string} o.endpoint   e.g. http://127.0.0.1:PORT or http://localhost:PORT (vhost style)
 * @param {string} [o.region]
 * @param {boolean} [o.forcePathStyle]
 * @param {object} [o.credentials] {accessKeyId, secretAccessKey, sessionToken?}; default: env
 * @param {number} [o.maxAttempts]
 * @param {string|Buffer} [o.ca] PEM CA certificate(s) for https endpoints; replaces Node's
 *        bundled roots (like the C++ driver's ca_file).  Without it: Node's default roots.
 */
function makeClient(o) {
  const credentials = o.credentials || credentialsFromEnv();
  const agent = new http.Agent({ keepAlive: true, lookup: loopbackLookup });
  const httpsAgent = new https.Agent({ keepAlive: true, lookup: loopbackLookup, ...(o.ca ? { ca: o.ca } : {}) });
  return new S3Client({
    region: o.region || 'us-east-1',
    endpoint: o.endpoint,
    forcePathStyle: !!o.forcePathStyle,
    credentials,
    maxAttempts: o.maxAttempts === undefined ? 3 : o.maxAttempts,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // plain options object: the SDK builds its NodeHttpHandler from it
    requestHandler: { httpAgent: agent, httpsAgent, connectionTimeout: 5000, requestTimeout: 60000 },
  });
}

function credentialsFromEnv() {
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set');
  }
  const c = { accessKeyId, secretAccessKey };
  if (process.env.AWS_SESSION_TOKEN) c.sessionToken = process.env.AWS_SESSION_TOKEN;
  return c;
}

module.exports = { makeClient, loopbackLookup, credentialsFromEnv };
