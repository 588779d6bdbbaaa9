'use strict';
// The reference for bench/sync_bench.sh: copies every object under a prefix from one bucket
// to another with the AWS JavaScript SDK v3 (GetObject streamed into PutObject, CONCURRENCY
// objects at a time) -- what replicating a repository "by hand" with the SDK costs, without
// any verification beyond the SDK's own. Prints {"objects", "bytes", "seconds"} as JSON.
//
// Usage: node bench/sdk_copy.js ENDPOINT FROM_BUCKET TO_BUCKET PREFIX [CONCURRENCY=4]
// Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

const path = require('path');
const { makeClient } = require('../tests/s3/lib/sdk');
const { ListObjectsV2Command, GetObjectCommand, PutObjectCommand } = require(
  path.join(__dirname, '../tests/s3/node_modules/@aws-sdk/client-s3'));

async function main() {
  const [endpoint, from, to, prefix, conc] = process.argv.slice(2);
  const concurrency = Number(conc || 4);
  const s3 = makeClient({ endpoint, region: 'us-east-1', forcePathStyle: true });
  const keys = [];
  let token;
  do {
    const page = await s3.send(new ListObjectsV2Command({
      Bucket: from, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents || []) keys.push({ key: o.Key, size: o.Size });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const start = process.hrtime.bigint();
  let bytes = 0;
  let next = 0;
  async function worker() {
    while (next < keys.length) {
      const { key, size } = keys[next++];
      const got = await s3.send(new GetObjectCommand({ Bucket: from, Key: key }));
      await s3.send(new PutObjectCommand({
        Bucket: to, Key: key, Body: got.Body, ContentLength: size }));
      bytes += size;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(JSON.stringify({ objects: keys.length, bytes, seconds }) + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
