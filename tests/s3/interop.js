#!/usr/bin/env node
'use strict';
/*
 * interop.js — the AWS JavaScript SDK (v3, @aws-sdk/client-s3) as a peer of the C++ driver.
 *
 *   node --openssl-legacy-provider interop.js put|get|head|delete|list \
 *        --endpoint URL --bucket B [--key K] [--file F] [--region us-east-1] [--path-style]
 *        [--prefix P] [--part-size BYTES] [--multipart-threshold BYTES] [--ca-file PEM]
 *
 * Credentials only from env: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
 *   put     upload F to B/K (single PutObject streaming the file; multipart with 8 MiB parts
 *           when F > 16 MiB, aborted on failure). Prints {"etag": ..., "size": ...}.
 *   get     download B/K into F (streamed). Prints {"etag": ..., "size": ...}.
 *   head    prints {"size": N, "etag": "\"...\""}.
 *   delete  DeleteObject B/K.
 *   list    ListObjectsV2 (all pages) under --prefix; prints [{"key","size","etag"}...].
 * Exit 0 on success; on failure the error (name, HTTP status, message) goes to stderr, exit 1.
 * Without --path-style the SDK uses virtual-host addressing (http://B.localhost:PORT/K when the
 * endpoint is http://localhost:PORT); *.localhost is resolved to 127.0.0.1 by lib/sdk.js.
 * https endpoints (gateway.js --tls-cert/--tls-key): --ca-file trusts only that CA.
 */

const fs = require('fs');
const fsp = fs.promises;
const { pipeline } = require('stream/promises');
const {
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
} = require('@aws-sdk/client-s3');
const { makeClient } = require('./lib/sdk');

function usage(msg) {
  if (msg) process.stderr.write(`interop.js: ${msg}\n`);
  process.stderr.write(
    'usage: node --openssl-legacy-provider interop.js put|get|head|delete|list --endpoint URL --bucket B\n' +
      '       [--key K] [--file F] [--region R] [--path-style] [--prefix P] [--part-size N]\n' +
      '       [--multipart-threshold N] [--ca-file PEM]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    op: argv[0],
    region: 'us-east-1',
    pathStyle: false,
    partSize: 8 * 1024 * 1024,
    threshold: 16 * 1024 * 1024,
    prefix: undefined,
  };
  if (!['put', 'get', 'head', 'delete', 'list'].includes(o.op)) usage(`unknown operation "${o.op || ''}"`);
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--endpoint': o.endpoint = v(); break;
      case '--bucket': o.bucket = v(); break;
      case '--key': o.key = v(); break;
      case '--file': o.file = v(); break;
      case '--region': o.region = v(); break;
      case '--prefix': o.prefix = v(); break;
      case '--part-size': o.partSize = Number(v()); break;
      case '--multipart-threshold': o.threshold = Number(v()); break;
      case '--path-style': o.pathStyle = true; break;
      case '--ca-file': o.caFile = v(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!o.endpoint || !o.bucket) usage('--endpoint and --bucket are required');
  if (o.op !== 'list' && !o.key) usage('--key is required');
  if ((o.op === 'put' || o.op === 'get') && !o.file) usage('--file is required');
  return o;
}

async function readRange(fh, offset, length) {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) throw new Error(`unexpected EOF reading part at offset ${offset}`);
    got += bytesRead;
  }
  return buf;
}

async function put(s3, o) {
  const { size } = await fsp.stat(o.file);
  if (size <= o.threshold) {
    const r = await s3.send(
      new PutObjectCommand({
        Bucket: o.bucket,
        Key: o.key,
        Body: fs.createReadStream(o.file),
        ContentLength: size,
      }),
    );
    return { etag: r.ETag, size };
  }
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: o.bucket, Key: o.key }));
  const fh = await fsp.open(o.file, 'r');
  try {
    const parts = [];
    for (let off = 0, n = 1; off < size; off += o.partSize, n++) {
      const body = await readRange(fh, off, Math.min(o.partSize, size - off));
      const r = await s3.send(
        new UploadPartCommand({ Bucket: o.bucket, Key: o.key, UploadId, PartNumber: n, Body: body, ContentLength: body.length }),
      );
      parts.push({ PartNumber: n, ETag: r.ETag });
    }
    const r = await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: o.bucket, Key: o.key, UploadId, MultipartUpload: { Parts: parts } }),
    );
    return { etag: r.ETag, size, parts: parts.length };
  } catch (e) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: o.bucket, Key: o.key, UploadId })).catch((ae) => {
      process.stderr.write(`interop.js: abort of upload ${UploadId} failed too: ${ae.name}: ${ae.message}\n`);
    });
    throw e;
  } finally {
    await fh.close();
  }
}

async function get(s3, o) {
  const r = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: o.key }));
  await pipeline(r.Body, fs.createWriteStream(o.file));
  const { size } = await fsp.stat(o.file);
  if (r.ContentLength !== undefined && r.ContentLength !== size) {
    throw new Error(`short read: Content-Length ${r.ContentLength} but wrote ${size} bytes`);
  }
  return { etag: r.ETag, size };
}

async function head(s3, o) {
  const r = await s3.send(new HeadObjectCommand({ Bucket: o.bucket, Key: o.key }));
  return { size: r.ContentLength, etag: r.ETag };
}

async function del(s3, o) {
  await s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: o.key }));
  return { deleted: o.key };
}

async function list(s3, o) {
  const out = [];
  let token;
  do {
    const r = await s3.send(
      new ListObjectsV2Command({ Bucket: o.bucket, Prefix: o.prefix, ContinuationToken: token }),
    );
    for (const c of r.Contents || []) out.push({ key: c.Key, size: c.Size, etag: c.ETag });
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ca = o.caFile ? await fsp.readFile(o.caFile) : undefined;
  const s3 = makeClient({ endpoint: o.endpoint, region: o.region, forcePathStyle: o.pathStyle, ca });
  const ops = { put, get, head, delete: del, list };
  const result = await ops[o.op](s3, o);
  process.stdout.write(JSON.stringify(result) + '\n');
  s3.destroy();
}

main().catch((e) => {
  const status = e.$metadata && e.$metadata.httpStatusCode;
  process.stderr.write(
    `interop.js: ${e.name || 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e.message}\n` +
      (e.Code && e.Code !== e.name ? `  code: ${e.Code}\n` : ''),
  );
  process.exit(1);
});
