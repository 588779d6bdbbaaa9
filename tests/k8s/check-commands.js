#!/usr/bin/env node
'use strict';
// Runs every gravl-dr command of the manifests (extract-commands.js) through the real binary,
// offline: its arguments are parsed and its configuration -- the ConfigMap's gravl-dr.yaml of
// the base or overlay, with the container's environment -- is loaded and checked, and then the
// command is stopped before it would touch a repository or PostgreSQL.
//
// Usage: node tests/k8s/check-commands.js GRAVL_DR_BINARY [--k8s DIR]
// Exit 0 when every command parses and its configuration loads; 1 otherwise, naming the
// workload, the command line and what gravl-dr said.
//
// How it stops each command early: the repository selection (--repo; an extra --repo
// __gravl_k8s_check__ is added, or an existing --repo's value replaced) names no configured
// repository, which gravl-dr checks right after loading the configuration (exit 3, "no
// repository named '__gravl_k8s_check__'"); test-restore gets --dry-run as well (it checks its
// programs and scratch directory, then chooses the backup: that is where it stops). The
// exporter resolves S3 credentials first: with none in its environment it stops there (exit 3,
// "no S3 credentials for repository"). Either answer proves that the command line parsed (a bad
// option is exit 2) and the whole configuration loaded with the container's environment (a bad
// key, value or secret is another exit-3 message).
// Nothing leaves the machine, also if a future gravl-dr stopped later: no AWS credentials (no S3
// or STS request can be signed), PGHOSTADDR=127.0.0.1 (no DNS lookup of the database hosts),
// webhook URLs on 127.0.0.1 with no retries. Each run is bounded by a 30 s timeout.
// The Secrets' values are stand-ins: the passphrase file is a temporary one given through
// GRAVL_DR_ENCRYPTION_PASSPHRASE_FILE (validate.js checks that the configured path is the
// mounted Secret), other Secret-backed variables get a placeholder (a URL for *URL* names);
// TMPDIR is a temporary directory and GRAVL_DR_PG_BIN_DIR one with stand-in pg_ctl and
// postgres programs (a drill's dry run checks that they exist).

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const MARK = '__gravl_k8s_check__';
const args = process.argv.slice(2);
let binary = null;
let k8sDir = path.resolve(__dirname, '..', '..', 'k8s');
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--k8s' && args[i + 1]) k8sDir = path.resolve(args[++i]);
  else if (!binary) binary = path.resolve(args[i]);
  else {
    console.error(`check-commands.js: unknown argument '${args[i]}'`);
    process.exit(2);
  }
}
if (!binary || !fs.existsSync(binary)) {
  console.error(`check-commands.js: usage: node tests/k8s/check-commands.js GRAVL_DR_BINARY [--k8s DIR] (binary '${binary || ''}' not found)`);
  process.exit(2);
}

const extract = spawnSync(process.execPath, [path.join(__dirname, 'extract-commands.js'), '--k8s', k8sDir], { encoding: 'utf8', maxBuffer: 64 << 20 });
if (extract.status !== 0) {
  console.error(`check-commands.js: extract-commands.js failed:\n${extract.stderr}`);
  process.exit(1);
}
const data = JSON.parse(extract.stdout);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gravl-k8s-commands-'));
let failures = 0;
try {
  const passphrase = path.join(tmp, 'passphrase');
  fs.writeFileSync(passphrase, 'stand-in passphrase of tests/k8s/check-commands.js\n', { mode: 0o600 });
  const configFiles = {};
  for (const [source, text] of Object.entries(data.config)) {
    const file = path.join(tmp, `${source.replace(/[^A-Za-z0-9]+/g, '_')}.yaml`);
    fs.writeFileSync(file, text);
    configFiles[source] = file;
  }
  // A clean environment: no AWS credentials of this machine, no ~/.aws, no PG* variables.
  const binDir = path.join(tmp, 'pg-bin');
  fs.mkdirSync(binDir);
  for (const program of ['pg_ctl', 'postgres']) {
    fs.writeFileSync(path.join(binDir, program), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  }
  const scratch = path.join(tmp, 'scratch');
  fs.mkdirSync(scratch);
  const baseEnv = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: tmp,
    AWS_SHARED_CREDENTIALS_FILE: path.join(tmp, 'no-aws-credentials'),
    AWS_CONFIG_FILE: path.join(tmp, 'no-aws-config'),
    LANG: 'C.UTF-8',
  };
  const overrides = {
    GRAVL_DR_ENCRYPTION_PASSPHRASE_FILE: passphrase,
    GRAVL_DR_PG_BIN_DIR: binDir,
    GRAVL_DR_NOTIFY_RETRIES: '0',
    GRAVL_DR_NOTIFY_TIMEOUT: '1',
    PGHOSTADDR: '127.0.0.1',
    PGCONNECT_TIMEOUT: '2',
    TMPDIR: scratch,
  };

  for (const w of data.workloads) {
    const id = `${w.file} ${w.kind}/${w.name} container ${w.container}`;
    const problems = [];
    if (!Array.isArray(w.command) || w.command.length !== 1 || w.command[0] !== 'gravl-dr') {
      problems.push(`command is ${JSON.stringify(w.command)}, not ["gravl-dr"]`);
    }
    const argv = [...w.args];
    const at = argv.indexOf('--config');
    if (at < 0 || !configFiles[w.source]) problems.push('no --config, or no configuration for its source');
    else argv[at + 1] = configFiles[w.source];
    const repoAt = argv.indexOf('--repo');
    if (repoAt >= 0) argv[repoAt + 1] = MARK;
    else argv.push('--repo', MARK);
    if (argv.includes('test-restore') && !argv.includes('--dry-run')) argv.push('--dry-run');

    const env = { ...baseEnv };
    for (const [name, value] of Object.entries(w.env)) {
      if (typeof value === 'string') env[name] = value;
      else if (value && value.secret) env[name] = /URL/i.test(name) ? 'http://127.0.0.1:9/gravl-k8s-check' : 'stand-in';
      else problems.push(`env ${name}: ${JSON.stringify(value)} is not supported by this check`);
    }
    Object.assign(env, overrides);
    if (problems.length) {
      failures += 1;
      console.log(`FAIL ${id}: ${problems.join('; ')}`);
      continue;
    }
    const r = spawnSync(binary, argv, { env, encoding: 'utf8', timeout: 30000, cwd: tmp });
    const out = `${r.stderr || ''}${r.stdout || ''}`.trim();
    const stopped = r.status === 3 && (out.includes(`no repository named '${MARK}'`) || out.includes('no S3 credentials for repository'));
    const shown = `gravl-dr ${w.args.join(' ')}`;
    if (stopped) {
      console.log(`ok   ${id}: ${shown}`);
    } else {
      failures += 1;
      const why = r.error ? `${r.error.code === 'ETIMEDOUT' ? 'timed out (went past the configuration?)' : r.error.message}` : `exit ${r.status}${r.signal ? ` (signal ${r.signal})` : ''}`;
      console.log(`FAIL ${id}: ${shown}\n       ${why}: ${out.split('\n').slice(-3).join(' | ')}`);
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

console.log('');
if (failures) {
  console.log(`check-commands.js: FAILED: ${failures} of ${data.workloads.length} commands do not parse or do not load their configuration`);
  process.exit(1);
}
console.log(`check-commands.js: all ${data.workloads.length} commands parse and load their configuration (${binary})`);
