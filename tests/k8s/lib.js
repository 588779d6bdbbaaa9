'use strict';
// Shared by validate.js, extract-commands.js and check-commands.js: finds the manifests under
// k8s/, tells what each YAML file is (a Kubernetes object, a kustomization, a configMapGenerator
// input such as gravl-dr.yaml, a kustomize patch, the restore Job template), fills in the
// template's parameters with sample values, renders every kustomization with kustomize, and
// looks up the kubernetes-models class of an object.

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const YAML = require('yaml');

// Job templates (not in any kustomization): their ${PARAMETERS} and the sample values they are
// validated (and extracted) with. Every parameter must be documented in the file's header.
const TEMPLATES = {
  'backup/postgres-restore-job.yaml': {
    RESTORE_JOB_NAME: 'gravl-dr-restore-20261130t101500z',
    RESTORE_TARGET_TIME: '2026-11-30 10:15:00+00',
  },
};

const KUSTOMIZATION_NAMES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

function rel(k8sDir, file) {
  return path.join('k8s', path.relative(k8sDir, file)).split(path.sep).join('/');
}

function walk(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(full));
    else out.push(full);
  }
  return out;
}

// Parses a multi-document YAML text. Returns [{doc (yaml Document), value, index, lineCounter}];
// throws an Error naming the file and line on a syntax error.
function parseDocuments(text, label) {
  const lineCounter = new YAML.LineCounter();
  const docs = YAML.parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) throw new Error(`${label}: not a YAML stream`);
  const out = [];
  let index = 0;
  for (const doc of docs) {
    index += 1;
    if (doc.errors.length) {
      throw new Error(`${label}, document ${index}: YAML error: ${doc.errors[0].message}`);
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue; // an empty document (e.g. a trailing ---)
    out.push({ doc, value, index, lineCounter });
  }
  return out;
}

// The line (1-based) of the deepest node on `segments` that exists in `entry.doc` (for an
// unknown key: the key itself), or undefined.
function lineOf(entry, segments) {
  if (!entry || !entry.doc) return undefined;
  let node = entry.doc.contents;
  let offset = node && node.range ? node.range[0] : undefined;
  for (const seg of segments) {
    if (YAML.isMap(node)) {
      const pair = node.items.find((p) => p.key && String(p.key.value !== undefined ? p.key.value : p.key) === String(seg));
      if (!pair) break;
      if (pair.key && pair.key.range) offset = pair.key.range[0];
      node = pair.value;
    } else if (YAML.isSeq(node)) {
      const item = node.items[Number(seg)];
      if (!item) break;
      if (item.range) offset = item.range[0];
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : entry.lineCounter.linePos(offset).line;
}

// Classifies every YAML file under k8sDir. Returns {kustomizations, generatorInputs, patches,
// templates, objects, all} with absolute paths; kustomizations are {dir, file, value}.
function classify(k8sDir) {
  const files = walk(k8sDir).filter((f) => /\.ya?ml$/.test(f) || KUSTOMIZATION_NAMES.includes(path.basename(f)));
  const kustomizations = [];
  const generatorInputs = new Set();
  const patches = new Set();
  for (const file of files) {
    if (!KUSTOMIZATION_NAMES.includes(path.basename(file))) continue;
    const [entry] = parseDocuments(fs.readFileSync(file, 'utf8'), rel(k8sDir, file));
    const k = (entry && entry.value) || {};
    const dir = path.dirname(file);
    kustomizations.push({ dir, file, value: k });
    for (const gen of [...(k.configMapGenerator || []), ...(k.secretGenerator || [])]) {
      for (const f of gen.files || []) generatorInputs.add(path.resolve(dir, String(f).replace(/^[^=]*=/, '')));
      if (gen.envs) for (const f of gen.envs) generatorInputs.add(path.resolve(dir, f));
    }
    for (const p of k.patches || []) if (p && p.path) patches.add(path.resolve(dir, p.path));
    for (const p of k.patchesStrategicMerge || []) if (typeof p === 'string' && !p.includes('\n')) patches.add(path.resolve(dir, p));
    for (const p of k.patchesJson6902 || []) if (p && p.path) generatorInputs.add(path.resolve(dir, p.path));
  }
  const templates = [];
  const objects = [];
  for (const file of files) {
    if (KUSTOMIZATION_NAMES.includes(path.basename(file))) continue;
    if (generatorInputs.has(file) || patches.has(file)) continue;
    const key = path.relative(k8sDir, file).split(path.sep).join('/');
    if (TEMPLATES[key]) templates.push(file);
    else objects.push(file);
  }
  return {
    kustomizations,
    generatorInputs: [...generatorInputs].filter((f) => files.includes(f)).sort(),
    patches: [...patches].sort(),
    templates,
    objects,
    all: files,
  };
}

// The template's text with its parameters replaced by the sample values, and the parameters
// (found in the text, documented in the header comment, given a sample) checked.
function fillTemplate(k8sDir, file) {
  const key = path.relative(k8sDir, file).split(path.sep).join('/');
  const samples = TEMPLATES[key];
  const text = fs.readFileSync(file, 'utf8');
  const problems = [];
  const used = new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]));
  const header = text.split('\n').filter((l) => l.startsWith('#')).join('\n');
  for (const name of used) {
    if (!(name in samples)) problems.push(`parameter \${${name}} has no sample value in tests/k8s/lib.js TEMPLATES`);
    if (!header.includes(`\${${name}}`)) problems.push(`parameter \${${name}} is not documented in the file's header comment`);
  }
  for (const name of Object.keys(samples)) {
    if (!used.has(name)) problems.push(`sample parameter \${${name}} does not occur in the template`);
  }
  // Filled in everywhere (comments too, so that line numbers stay); what is left is looked for
  // in the values by the caller (leftoverParameters).
  const filled = text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name) => (name in samples ? samples[name] : m));
  return { text: filled, samples, problems };
}

// Every string value in `value` that still holds a ${...}: [{path, text}].
function leftoverParameters(value, at = []) {
  const out = [];
  if (typeof value === 'string') {
    if (/\$\{[^}]*\}/.test(value)) out.push({ path: at, text: value });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => out.push(...leftoverParameters(v, [...at, i])));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...leftoverParameters(v, [...at, k]));
  }
  return out;
}

// --- kustomize ---------------------------------------------------------------------------------

let kustomizeCache;

function versionOf(text) {
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(text || '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

function run(argv, options = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  return r;
}

// The kustomize to render with: $GRAVL_KUSTOMIZE (a command line, e.g. "kustomize build" or
// "kubectl kustomize"), else a `kustomize` on PATH, else `kubectl kustomize`. Needs kustomize
// v4.1 or newer (the kustomizations use `labels:`, `patches:` and per-generator `options:`).
// Debian 12's kubernetes-client (kubectl 1.20, kustomize v2.0.3) is refused: it rejects those
// fields, and older forms of them are mis-rendered by it (a strategic-merge patch of a batch/v1
// CronJob replaces the whole container list).
function kustomize() {
  if (kustomizeCache) return kustomizeCache;
  const candidates = [];
  if (process.env.GRAVL_KUSTOMIZE) candidates.push(process.env.GRAVL_KUSTOMIZE.trim().split(/\s+/));
  else candidates.push(['kustomize', 'build'], ['kubectl', 'kustomize']);
  const tried = [];
  for (const cmd of candidates) {
    let version = null;
    let versionText = '';
    if (cmd[0].endsWith('kubectl')) {
      const r = run([cmd[0], 'version', '--client', '-o', 'json']);
      if (r.error) { tried.push(`${cmd.join(' ')}: not found`); continue; }
      try {
        const j = JSON.parse(r.stdout);
        versionText = j.kustomizeVersion || '';
        version = versionOf(versionText);
        if (!version) {
          // Older kubectl do not report it: 1.22+ embed kustomize v4.2+, 1.21 v4.0.5, before
          // that v2.0.3.
          const kv = versionOf((j.clientVersion || {}).gitVersion);
          const minor = kv ? kv[1] + (kv[0] > 1 ? 1000 : 0) : 0;
          version = minor >= 22 ? [4, 2, 0] : minor === 21 ? [4, 0, 5] : [2, 0, 3];
          versionText = `v${version.join('.')} (built into kubectl ${(j.clientVersion || {}).gitVersion})`;
        }
      } catch (e) {
        versionText = (r.stdout + r.stderr).trim().split('\n')[0];
        version = [2, 0, 3];
      }
    } else {
      const r = run([cmd[0], 'version']);
      if (r.error) { tried.push(`${cmd.join(' ')}: not found`); continue; }
      versionText = (r.stdout + r.stderr).trim().split('\n')[0];
      version = versionOf(versionText);
    }
    if (!version || version[0] < 4 || (version[0] === 4 && version[1] < 1)) {
      tried.push(`${cmd.join(' ')}: kustomize ${versionText || 'of unknown version'} is older than v4.1`);
      continue;
    }
    kustomizeCache = { argv: cmd, version: versionText };
    return kustomizeCache;
  }
  throw new Error(
    `no usable kustomize (need v4.1 or newer): ${tried.join('; ')}. ` +
      'Use kubectl 1.22 or newer (its built-in kustomize) or a standalone kustomize v5, or name one ' +
      'with GRAVL_KUSTOMIZE="kustomize build". Debian 12\'s kubernetes-client package ' +
      '(kubectl 1.20, kustomize v2.0.3) is too old for these kustomizations.');
}

// Renders the kustomization in `dir`; returns the YAML text. Throws with kustomize's message.
function render(dir) {
  const k = kustomize();
  const r = run([...k.argv, dir]);
  if (r.error) throw new Error(`${k.argv.join(' ')} ${dir}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${k.argv.join(' ')} ${dir} failed (exit ${r.status}):\n${(r.stderr || '').trim()}`);
  return r.stdout;
}

// --- models ------------------------------------------------------------------------------------

// The kubernetes-models class for apiVersion + kind, or null.
function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return null;
  const modules = [`kubernetes-models/${apiVersion}`, `@kubernetes-models/prometheus-operator/${apiVersion}`];
  for (const m of modules) {
    let mod;
    try {
      mod = require(m);
    } catch (e) {
      if (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') continue;
      throw e;
    }
    const cls = mod[kind];
    if (typeof cls === 'function' && cls.apiVersion === apiVersion && cls.kind === kind) return cls;
  }
  return null;
}

// Pod spec and its location inside a workload, or null.
function podSpecOf(obj) {
  switch (obj && obj.kind) {
    case 'CronJob':
      return { spec: (((((obj.spec || {}).jobTemplate || {}).spec || {}).template || {}).spec), path: ['spec', 'jobTemplate', 'spec', 'template', 'spec'] };
    case 'Job':
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
      return { spec: ((obj.spec || {}).template || {}).spec, path: ['spec', 'template', 'spec'] };
    case 'Pod':
      return { spec: obj.spec, path: ['spec'] };
    default:
      return null;
  }
}

const WORKLOAD_KINDS = ['CronJob', 'Job', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Pod'];

// The sources whose workloads and configuration extract-commands.js reports and validate.js
// cross-checks: the base and every overlay (kustomization directories that render workloads).
function renderedSources(k8sDir, kustomizations) {
  return kustomizations
    .map((k) => ({ dir: k.dir, label: rel(k8sDir, k.dir) }))
    .sort((a, b) => a.label.localeCompare(b.label));
}

module.exports = {
  TEMPLATES,
  WORKLOAD_KINDS,
  classify,
  fillTemplate,
  kustomize,
  leftoverParameters,
  lineOf,
  modelFor,
  parseDocuments,
  podSpecOf,
  rel,
  render,
  renderedSources,
};
