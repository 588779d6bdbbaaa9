#!/usr/bin/env node
'use strict';
// Offline validation of the Kubernetes manifests under k8s/ (no cluster needed).
//
// Usage: node tests/k8s/validate.js [--k8s DIR] [--docs FILE.md]...
//   --k8s   the manifests (default: the repository's k8s/)
//   --docs  also check the ```yaml examples of this Markdown file (item 5)
// Prints one line per checked document ("ok" or "FAIL", file, document number, kind/name) and
// each problem as  FILE, document N (KIND/NAME), line L: FIELD.PATH: what is wrong.
// Exits 1 when anything failed, 2 on a usage error.
//
// What it checks:
//  1. Every YAML document under k8s/ that is a Kubernetes object, every document of the restore
//     Job template (its ${PARAMETERS} filled in with the sample values of lib.js), and every
//     object that kustomize renders from each kustomization (the base, k8s/monitoring and each
//     overlay), against the schemas of kubernetes-models (Kubernetes API) and
//     @kubernetes-models/prometheus-operator (ServiceMonitor, PrometheusRule):
//     `new Model(obj).validate()` for types, enums, required fields and formats, and a strict
//     check for unknown fields, which those schemas let through: the same validator runs on
//     the object wrapped in a Proxy that records every property the schema looks at; a key of
//     the object the schema never looked at (in an object that is not a free-form map) is an
//     unknown field -- a misspelling that the API server would silently drop.
//     Kustomize patches are checked the same way, without the required-field rule.
//     The schemas are those of kubernetes-models 4.5.1 (the Kubernetes API of about 1.31) and
//     prometheus-operator 4.4.4 (package.json). A field whose schema accepts anything is never
//     looked at either and would be reported as unknown (none in these manifests): strict, not
//     lenient.
//  2. The project's rules for gravl-dr workloads (docs/k8s-architecture.md): the image, the
//     command (exactly ["gravl-dr"], options in args, starting with --config), pod and
//     container security contexts (uid 10001, non-root, RuntimeDefault seccomp, no privilege
//     escalation, read-only root, all capabilities dropped), resources, a writable emptyDir for
//     /tmp and $TMPDIR, no API token, CronJob and Job limits.
//  3. Per rendered kustomization: references resolve (ConfigMaps, ServiceAccounts, the
//     Secrets in EXTERNAL_SECRETS and their keys, Service -> Deployment -> port,
//     ServiceMonitor -> Service -> port), and the gravl-dr configuration in ConfigMap
//     gravl-dr-config agrees with the pods: --config is where it is mounted, the passphrase
//     file is where its Secret is mounted, every notify url_env variable is set.
//  4. The configurations of the base and the overlays are the same except for the region's own
//     repository (first) and backup.copy_to (the other ones); each overlay k8s/overlays/REGION
//     uses repository REGION first, its drill reads --repo REGION, its ServiceAccount has the
//     role gravl-dr-REGION.
//  5. With --docs: every ```yaml block of the file that is a Kubernetes object (schema and
//     unknown fields), or an excerpt of a workload (`spec.template...`, checked as a partial
//     StatefulSet), so that the examples an SRE copies have no misspelled field.

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');
const lib = require('./lib');

const IMAGE = 'ghcr.io/gravl-dr/gravl-dr';
const UID = 10001;
const CONFIG_PATH = '/etc/gravl-dr/gravl-dr.yaml';
const CONFIG_MAP = 'gravl-dr-config';
const CONFIG_KEY = 'gravl-dr.yaml';
// The Secrets the manifests expect to exist (created outside this repository; see
// docs/k8s-architecture.md) and their keys.
const EXTERNAL_SECRETS = {
  'gravl-dr-pg': ['password'],
  'gravl-dr-encryption': ['passphrase'],
  'gravl-dr-notify': ['slack-webhook-url'],
  'gravl-dr-etcd': ['ca.crt', 'tls.crt', 'tls.key'],
};

// --- arguments -------------------------------------------------------------------------------
let k8sDir = path.resolve(__dirname, '..', '..', 'k8s');
const docFiles = [];
const USAGE = 'node tests/k8s/validate.js [--k8s DIR] [--docs FILE.md]...';
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--k8s' && argv[i + 1]) k8sDir = path.resolve(argv[++i]);
  else if (argv[i] === '--docs' && argv[i + 1]) docFiles.push(path.resolve(argv[++i]));
  else if (argv[i] === '-h' || argv[i] === '--help') {
    console.log(`Usage: ${USAGE}`);
    process.exit(0);
  } else {
    console.error(`validate.js: unknown argument '${argv[i]}' (usage: ${USAGE})`);
    process.exit(2);
  }
}
if (!fs.existsSync(k8sDir)) {
  console.error(`validate.js: ${k8sDir} does not exist`);
  process.exit(2);
}

// --- reporting -------------------------------------------------------------------------------
let checkedDocs = 0;
const failures = [];

function fieldPath(segments) {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number' || /^\d+$/.test(String(s))) out += `[${s}]`;
    else out += (out ? '.' : '') + (/^[A-Za-z0-9_-]+$/.test(String(s)) ? s : JSON.stringify(String(s)));
  }
  return out || '(document)';
}

// Reports the problems of one document. `where` = {label, index, entry}; problems =
// [{path: [...], message}].
function report(where, obj, problems) {
  if (!where.again) checkedDocs += 1; // `again`: a second look at a document counted already
  const id = obj && typeof obj === 'object' ? `${obj.kind || '?'}/${(obj.metadata || {}).name || '?'}` : '?';
  const head = `${where.label}${where.index ? ` #${where.index}` : ''} ${id}`;
  if (!problems.length) {
    console.log(`ok   ${head}`);
    return;
  }
  console.log(`FAIL ${head}`);
  for (const p of problems) {
    const inBlock = lib.lineOf(where.entry, p.path || []);
    const line = inBlock === undefined ? undefined : inBlock + (where.lineOffset || 0);
    const msg = `${where.label}, document ${where.index || 1} (${id})${line ? `, line ${line}` : ''}: ${fieldPath(p.path || [])}: ${p.message}`;
    console.log(`       ${msg}`);
    failures.push(msg);
  }
}

function fail(label, message) {
  console.log(`FAIL ${label}`);
  console.log(`       ${label}: ${message}`);
  failures.push(`${label}: ${message}`);
}

// --- 1. schema and unknown fields ------------------------------------------------------------

function editDistance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

// Runs `Model`'s validator on a Proxy of `obj` and returns, per object reached, the keys the
// schema asked for; objects the validator iterated over (maps such as labels, data) accept
// any key.
function traceSchema(Model, obj) {
  const seen = [];
  function wrap(value, at) {
    if (value === null || typeof value !== 'object') return value;
    const rec = { path: at, value, accessed: new Set(), iterated: false };
    seen.push(rec);
    const children = new Map();
    return new Proxy(value, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver);
        if (typeof key === 'symbol') return v;
        rec.accessed.add(key);
        if (v === null || typeof v !== 'object') return v;
        if (!children.has(key)) children.set(key, wrap(v, [...at, Array.isArray(target) ? Number(key) : key]));
        return children.get(key);
      },
      has(target, key) {
        if (typeof key !== 'symbol') rec.accessed.add(key);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        rec.iterated = true;
        return Reflect.ownKeys(target);
      },
    });
  }
  try {
    Model.prototype.validate.call(wrap(obj, []));
  } catch (e) {
    // schema errors are reported by schemaProblems; here only the trace matters
  }
  return seen;
}

function schemaProblems(obj, { partial = false } = {}) {
  const problems = [];
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    return [{ path: [], message: 'not a mapping (a Kubernetes object is a YAML mapping)' }];
  }
  for (const f of ['apiVersion', 'kind']) {
    if (typeof obj[f] !== 'string' || !obj[f]) problems.push({ path: [f], message: 'missing' });
  }
  if (!partial && (!obj.metadata || typeof obj.metadata.name !== 'string' || !obj.metadata.name)) {
    problems.push({ path: ['metadata', 'name'], message: 'missing' });
  }
  if (problems.length) return problems;
  const Model = lib.modelFor(obj.apiVersion, obj.kind);
  if (!Model) {
    return [{ path: ['kind'], message: `no schema for apiVersion ${obj.apiVersion}, kind ${obj.kind} in kubernetes-models or @kubernetes-models/prometheus-operator (a typo in apiVersion or kind?)` }];
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    const errors = Array.isArray(e.errors) ? e.errors : [{ instancePath: '', message: e.message }];
    for (const err of errors) {
      if (partial && err.keyword === 'required') continue;
      const at = (err.instancePath || '').split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
      let message = err.message || 'invalid';
      if (err.keyword === 'enum' && err.params && err.params.allowedValues) message += `: ${err.params.allowedValues.join(', ')}`;
      if (err.keyword === 'required' && err.params) at.push(err.params.missingProperty);
      problems.push({ path: at, message: `schema: ${message}` });
    }
  }
  for (const rec of traceSchema(Model, obj)) {
    if (Array.isArray(rec.value) || rec.iterated) continue;
    for (const key of Object.keys(rec.value)) {
      if (rec.accessed.has(key)) continue;
      const known = [...rec.accessed].filter((k) => typeof k === 'string' && Object.prototype.hasOwnProperty.call(rec.value, k) === false);
      let best = null;
      for (const k of known) {
        const d = editDistance(k.toLowerCase(), key.toLowerCase());
        if (d <= Math.max(2, Math.floor(key.length / 4)) && (!best || d < best.d)) best = { k, d };
      }
      problems.push({
        path: [...rec.path, key],
        message: `unknown field '${key}' (not in the ${obj.kind} schema${best ? `; did you mean '${best.k}'?` : ''})`,
      });
    }
  }
  return problems;
}

// --- 2. the project's rules for gravl-dr workloads -------------------------------------------

function policyProblems(obj) {
  const ps = lib.podSpecOf(obj);
  if (!ps || !ps.spec) return [];
  const problems = [];
  const P = ps.path;
  const spec = ps.spec;
  const need = (ok, at, message) => { if (!ok) problems.push({ path: at, message }); };

  if (obj.kind === 'CronJob') {
    const s = obj.spec || {};
    need(typeof s.timeZone === 'string' && s.timeZone, ['spec', 'timeZone'], 'must be set (schedules are UTC: Etc/UTC)');
    need(s.concurrencyPolicy === 'Forbid', ['spec', 'concurrencyPolicy'], 'must be Forbid (two runs of a gravl-dr job never overlap)');
    need(Number.isInteger(s.startingDeadlineSeconds), ['spec', 'startingDeadlineSeconds'], 'must be set');
    need(Number.isInteger(s.successfulJobsHistoryLimit), ['spec', 'successfulJobsHistoryLimit'], 'must be set');
    need(Number.isInteger(s.failedJobsHistoryLimit), ['spec', 'failedJobsHistoryLimit'], 'must be set');
  }
  if (obj.kind === 'CronJob' || obj.kind === 'Job') {
    const jobPath = obj.kind === 'CronJob' ? ['spec', 'jobTemplate', 'spec'] : ['spec'];
    const job = obj.kind === 'CronJob' ? ((obj.spec || {}).jobTemplate || {}).spec || {} : obj.spec || {};
    need(Number.isInteger(job.backoffLimit), [...jobPath, 'backoffLimit'], 'must be set');
    need(Number.isInteger(job.activeDeadlineSeconds), [...jobPath, 'activeDeadlineSeconds'], 'must be set (a hung run must end)');
    need(spec.restartPolicy === 'Never', [...P, 'restartPolicy'], 'must be Never (a retry is a new pod, counted by backoffLimit)');
  }

  const sc = spec.securityContext || {};
  need(sc.runAsNonRoot === true, [...P, 'securityContext', 'runAsNonRoot'], 'must be true');
  need(sc.runAsUser === UID, [...P, 'securityContext', 'runAsUser'], `must be ${UID} (user gravl of the image)`);
  need(sc.runAsGroup === UID, [...P, 'securityContext', 'runAsGroup'], `must be ${UID}`);
  need(sc.fsGroup === UID, [...P, 'securityContext', 'fsGroup'], `must be ${UID}`);
  need((sc.seccompProfile || {}).type === 'RuntimeDefault', [...P, 'securityContext', 'seccompProfile', 'type'], 'must be RuntimeDefault');
  need(spec.automountServiceAccountToken === false, [...P, 'automountServiceAccountToken'], 'must be false (gravl-dr never calls the Kubernetes API)');
  need(spec.serviceAccountName === 'gravl-dr', [...P, 'serviceAccountName'], "must be gravl-dr (the IRSA identity)");

  const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
  const mounted = new Set();
  const groups = [['initContainers', spec.initContainers || []], ['containers', spec.containers || []]];
  for (const [group, containers] of groups) {
    containers.forEach((c, i) => {
      const C = [...P, group, i];
      const image = String(c.image || '');
      need(image.startsWith(`${IMAGE}:`) && image.length > IMAGE.length + 1 && !image.endsWith(':latest'),
        [...C, 'image'], `must be ${IMAGE}:<version> (not latest)`);
      need(c.imagePullPolicy === 'IfNotPresent', [...C, 'imagePullPolicy'], 'must be IfNotPresent');
      need(Array.isArray(c.command) && c.command.length === 1 && c.command[0] === 'gravl-dr', [...C, 'command'],
        'must be exactly ["gravl-dr"]: every option goes into args, no shell');
      const args = c.args;
      need(Array.isArray(args) && args.every((a) => typeof a === 'string'), [...C, 'args'], 'must be a list of strings');
      if (Array.isArray(args)) {
        need(args[0] === '--config' && args[1] === CONFIG_PATH, [...C, 'args'], `must start with --config ${CONFIG_PATH}`);
        need(!args.includes('--dry-run'), [...C, 'args'], 'holds --dry-run: the workload would do nothing');
      }
      const res = c.resources || {};
      for (const kind of ['requests', 'limits']) {
        for (const r of ['cpu', 'memory']) {
          need(res[kind] && res[kind][r] !== undefined, [...C, 'resources', kind, r], 'must be set');
        }
      }
      const csc = c.securityContext || {};
      need(csc.allowPrivilegeEscalation === false, [...C, 'securityContext', 'allowPrivilegeEscalation'], 'must be false');
      need(csc.readOnlyRootFilesystem === true, [...C, 'securityContext', 'readOnlyRootFilesystem'], 'must be true');
      need(Array.isArray((csc.capabilities || {}).drop) && csc.capabilities.drop.includes('ALL'), [...C, 'securityContext', 'capabilities', 'drop'], 'must include ALL');
      need(!(csc.capabilities || {}).add, [...C, 'securityContext', 'capabilities', 'add'], 'must not add capabilities');
      need(csc.privileged !== true, [...C, 'securityContext', 'privileged'], 'must not be privileged');
      const mounts = new Map();
      (c.volumeMounts || []).forEach((m, j) => {
        mounted.add(m.name);
        mounts.set(m.mountPath, m);
        need(volumes.has(m.name), [...C, 'volumeMounts', j, 'name'], `no volume named '${m.name}' in the pod`);
      });
      const tmpdirEnv = (c.env || []).find((e) => e.name === 'TMPDIR');
      const scratchDirs = ['/tmp'];
      if (tmpdirEnv) {
        need(typeof tmpdirEnv.value === 'string', [...C, 'env'], 'TMPDIR must be a literal path');
        scratchDirs.push(tmpdirEnv.value);
      }
      for (const dir of new Set(scratchDirs)) {
        const m = mounts.get(dir);
        const v = m && volumes.get(m.name);
        need(v && v.emptyDir && !m.readOnly, [...C, 'volumeMounts'],
          `needs a writable emptyDir mounted at ${dir} (${dir === '/tmp' ? '/tmp' : '$TMPDIR'}; the root file system is read-only)`);
      }
    });
  }
  for (const name of volumes.keys()) {
    need(mounted.has(name), [...P, 'volumes'], `volume '${name}' is mounted by no container`);
  }
  if (obj.kind === 'Deployment') {
    (spec.containers || []).forEach((c, i) => {
      if (!(c.ports || []).length) return;
      for (const probe of ['readinessProbe', 'livenessProbe']) {
        need(c[probe] && c[probe].httpGet && c[probe].httpGet.path === '/healthz', [...P, 'containers', i, probe], 'must probe /healthz');
      }
    });
  }
  return problems;
}

// --- loading ---------------------------------------------------------------------------------

function loadFile(file, label, text) {
  try {
    return lib.parseDocuments(text !== undefined ? text : fs.readFileSync(file, 'utf8'), label);
  } catch (e) {
    fail(label, e.message);
    return [];
  }
}

const classified = lib.classify(k8sDir);
console.log(`validate.js: ${classified.all.length} YAML files under ${k8sDir}`);

// Plain objects.
for (const file of classified.objects) {
  const label = lib.rel(k8sDir, file);
  for (const entry of loadFile(file, label)) {
    report({ label, index: entry.index, entry }, entry.value, [...schemaProblems(entry.value), ...policyProblems(entry.value)]);
  }
}

// Templates, with sample values.
const templateEntries = []; // checked again with the references of their directory's kustomization
for (const file of classified.templates) {
  const label = lib.rel(k8sDir, file);
  const filled = lib.fillTemplate(k8sDir, file);
  const entries = loadFile(file, `${label} (filled in)`, filled.text);
  if (entries.length !== 1) fail(label, `a template must hold exactly one document (found ${entries.length}); the operator scripts patch it as one Job`);
  for (const entry of entries) {
    const problems = [...schemaProblems(entry.value), ...policyProblems(entry.value)];
    for (const p of filled.problems) problems.push({ path: [], message: p });
    for (const left of lib.leftoverParameters(entry.value)) problems.push({ path: left.path, message: `unfilled parameter in '${left.text}'` });
    if (entry.value.kind !== 'Job') problems.push({ path: ['kind'], message: 'the restore template must be a Job' });
    report({ label: `${label} (parameters: ${Object.entries(filled.samples).map(([k, v]) => `${k}=${v}`).join(', ')})`, index: entry.index, entry }, entry.value, problems);
    templateEntries.push({ ...entry, file, label: `${label} (filled in: references)` });
  }
}

// Patches: partial objects.
for (const file of classified.patches) {
  const label = `${lib.rel(k8sDir, file)} (patch)`;
  for (const entry of loadFile(file, label)) {
    report({ label, index: entry.index, entry }, entry.value, schemaProblems(entry.value, { partial: true }));
  }
}

// configMapGenerator inputs (gravl-dr.yaml): YAML mappings.
for (const file of classified.generatorInputs) {
  const label = `${lib.rel(k8sDir, file)} (configMapGenerator input)`;
  if (!/\.ya?ml$/.test(file)) continue;
  const entries = loadFile(file, label);
  if (entries.length !== 1 || typeof entries[0].value !== 'object' || Array.isArray(entries[0].value)) {
    fail(label, 'must be one YAML mapping');
  } else {
    checkedDocs += 1;
    console.log(`ok   ${label}`);
  }
}

// --- 3. rendered kustomizations ----------------------------------------------------------------

let kustomizeInfo = null;
try {
  kustomizeInfo = lib.kustomize();
  console.log(`validate.js: rendering with \`${kustomizeInfo.argv.join(' ')}\` (kustomize ${kustomizeInfo.version})`);
} catch (e) {
  fail('kustomize', e.message);
}

function secretRefs(spec) {
  const refs = []; // {name, key|null, where}
  for (const [group, containers] of [['initContainers', spec.initContainers || []], ['containers', spec.containers || []]]) {
    containers.forEach((c, i) => {
      (c.env || []).forEach((e, j) => {
        const r = e.valueFrom && e.valueFrom.secretKeyRef;
        if (r) refs.push({ name: r.name, key: r.key, where: [group, i, 'env', j, 'valueFrom', 'secretKeyRef'] });
      });
      (c.envFrom || []).forEach((e, j) => { if (e.secretRef) refs.push({ name: e.secretRef.name, key: null, where: [group, i, 'envFrom', j] }); });
    });
  }
  (spec.volumes || []).forEach((v, i) => {
    if (v.secret) {
      if (v.secret.items) v.secret.items.forEach((it) => refs.push({ name: v.secret.secretName, key: it.key, where: ['volumes', i, 'secret'] }));
      else refs.push({ name: v.secret.secretName, key: null, where: ['volumes', i, 'secret'] });
    }
  });
  return refs;
}

function subset(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => (labels || {})[k] === v);
}

// Cross-references inside one rendered kustomization. Returns the parsed gravl-dr configuration.
function crossCheck(source, entries) {
  const objs = entries.map((e) => e.value);
  const byKind = (kind) => entries.filter((e) => e.value.kind === kind);
  const names = (kind) => new Set(objs.filter((o) => o.kind === kind).map((o) => o.metadata.name));
  const configMaps = names('ConfigMap');
  const serviceAccounts = names('ServiceAccount');
  const problemsOf = new Map(entries.map((e) => [e, []]));
  const add = (entry, at, message) => problemsOf.get(entry).push({ path: at, message });

  let config = null;
  const cmEntry = entries.find((e) => e.value.kind === 'ConfigMap' && e.value.metadata.name === CONFIG_MAP);
  if (cmEntry) {
    const text = (cmEntry.value.data || {})[CONFIG_KEY];
    if (typeof text !== 'string') add(cmEntry, ['data', CONFIG_KEY], 'missing');
    else {
      try {
        config = YAML.parse(text);
        if (!config || typeof config !== 'object') throw new Error('not a mapping');
      } catch (e) {
        add(cmEntry, ['data', CONFIG_KEY], `not a YAML mapping: ${e.message}`);
        config = null;
      }
    }
  }

  for (const entry of entries) {
    const obj = entry.value;
    const ps = lib.podSpecOf(obj);
    if (!ps || !ps.spec) continue;
    const P = ps.path;
    const spec = ps.spec;
    if (spec.serviceAccountName && !serviceAccounts.has(spec.serviceAccountName)) {
      add(entry, [...P, 'serviceAccountName'], `no ServiceAccount '${spec.serviceAccountName}' in ${source.label}`);
    }
    (spec.volumes || []).forEach((v, i) => {
      if (v.configMap && !configMaps.has(v.configMap.name)) add(entry, [...P, 'volumes', i, 'configMap', 'name'], `no ConfigMap '${v.configMap.name}' in ${source.label}`);
    });
    for (const ref of secretRefs(spec)) {
      if (!(ref.name in EXTERNAL_SECRETS)) add(entry, [...P, ...ref.where], `Secret '${ref.name}' is not one of the documented Secrets (${Object.keys(EXTERNAL_SECRETS).join(', ')})`);
      else if (ref.key && !EXTERNAL_SECRETS[ref.name].includes(ref.key)) add(entry, [...P, ...ref.where], `Secret '${ref.name}' has no documented key '${ref.key}' (${EXTERNAL_SECRETS[ref.name].join(', ')})`);
    }
    if (!config) {
      if (obj.kind !== 'Pod') add(entry, [], `no ConfigMap ${CONFIG_MAP} with ${CONFIG_KEY} in ${source.label}`);
      continue;
    }
    // The configuration as the containers see it.
    const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
    (spec.containers || []).forEach((c, i) => {
      const C = [...P, 'containers', i];
      const mounts = c.volumeMounts || [];
      const at = (file) => {
        for (const m of mounts) {
          const v = volumes.get(m.name);
          if (!v || m.subPath) continue;
          if (path.posix.dirname(file) !== m.mountPath) continue;
          const base = path.posix.basename(file);
          const src = v.configMap || v.secret;
          if (!src) continue;
          const items = src.items;
          const key = items ? (items.find((it) => it.path === base) || {}).key : base;
          if (key) return { kind: v.configMap ? 'configMap' : 'secret', name: v.configMap ? v.configMap.name : v.secret.secretName, key };
        }
        return null;
      };
      const cfg = at(CONFIG_PATH);
      if (!cfg || cfg.kind !== 'configMap' || cfg.name !== CONFIG_MAP || cfg.key !== CONFIG_KEY) {
        add(entry, [...C, 'volumeMounts'], `${CONFIG_PATH} (--config) must be ConfigMap ${CONFIG_MAP}'s key ${CONFIG_KEY}, mounted without subPath`);
      }
      const pf = (config.encryption || {}).passphrase_file;
      if (pf) {
        const src = at(pf);
        if (!src || src.kind !== 'secret') add(entry, [...C, 'volumeMounts'], `encryption.passphrase_file ${pf} of the configuration is not a mounted Secret key`);
      }
      for (const t of ((config.notify || {}).targets || [])) {
        if (t.url_env && !(c.env || []).some((e) => e.name === t.url_env)) {
          add(entry, [...C, 'env'], `notify target '${t.name}' takes its URL from $${t.url_env}, which is not set (the configuration does not load without it)`);
        }
      }
    });
  }

  // Deployment selector -> its own pod labels; Service -> Deployment, port; ServiceMonitor -> Service, port.
  for (const entry of byKind('Deployment')) {
    const d = entry.value;
    if (!subset(((d.spec || {}).selector || {}).matchLabels, (((d.spec || {}).template || {}).metadata || {}).labels)) {
      add(entry, ['spec', 'selector', 'matchLabels'], 'does not match the pod template labels');
    }
  }
  for (const entry of byKind('Service')) {
    const s = entry.value;
    const targets = objs.filter((o) => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && o.metadata.namespace === s.metadata.namespace &&
      subset((s.spec || {}).selector, (((o.spec || {}).template || {}).metadata || {}).labels));
    if (!targets.length) { add(entry, ['spec', 'selector'], `selects no Deployment in ${source.label}`); continue; }
    ((s.spec || {}).ports || []).forEach((p, i) => {
      if (typeof p.targetPort !== 'string') return;
      const found = targets.some((t) => ((((t.spec || {}).template || {}).spec || {}).containers || []).some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort)));
      if (!found) add(entry, ['spec', 'ports', i, 'targetPort'], `no container port named '${p.targetPort}' in the selected pods`);
    });
  }
  for (const entry of byKind('ServiceMonitor')) {
    const m = entry.value;
    const services = objs.filter((o) => o.kind === 'Service' && o.metadata.namespace === m.metadata.namespace &&
      subset(((m.spec || {}).selector || {}).matchLabels, o.metadata.labels));
    if (!services.length) { add(entry, ['spec', 'selector'], `selects no Service in ${source.label}`); continue; }
    ((m.spec || {}).endpoints || []).forEach((ep, i) => {
      if (ep.port && !services.some((s) => ((s.spec || {}).ports || []).some((p) => p.name === ep.port))) {
        add(entry, ['spec', 'endpoints', i, 'port'], `no port named '${ep.port}' on the selected Service`);
      }
    });
  }
  for (const [entry, problems] of problemsOf) {
    if (problems.length) report({ label: entry.label || `${source.label} (rendered: references)`, index: entry.index, entry, again: true }, entry.value, problems);
  }
  return config;
}

const configs = []; // {source, config, entries}
if (kustomizeInfo) {
  for (const source of lib.renderedSources(k8sDir, classified.kustomizations)) {
    let text;
    try {
      text = lib.render(source.dir);
    } catch (e) {
      fail(`${source.label} (kustomize)`, e.message);
      continue;
    }
    const label = `${source.label} (rendered)`;
    const entries = loadFile(null, label, text);
    console.log(`validate.js: ${source.label} renders ${entries.length} objects`);
    for (const entry of entries) {
      report({ label, index: entry.index, entry }, entry.value, [...schemaProblems(entry.value), ...policyProblems(entry.value)]);
    }
    // A template is created in the namespace of this kustomization's objects: check its
    // references against them (ConfigMap, ServiceAccount, Secrets, config paths).
    const templates = templateEntries.filter((t) => path.dirname(t.file) === source.dir);
    const config = crossCheck(source, [...entries, ...templates]);
    if (config) configs.push({ source, config, entries });
  }
}

// --- 4. the configurations of base and overlays --------------------------------------------------

function normalized(config) {
  const c = JSON.parse(JSON.stringify(config));
  if (Array.isArray(c.repos)) c.repos = [...c.repos].sort((a, b) => String(a.name).localeCompare(String(b.name)));
  if (c.backup) delete c.backup.copy_to;
  return JSON.stringify(c);
}

function copyToList(config) {
  const v = (config.backup || {}).copy_to;
  if (v === undefined) return [];
  return Array.isArray(v) ? v.map(String) : String(v).split(',').map((s) => s.trim()).filter(Boolean);
}

if (configs.length) {
  const reference = configs[0];
  for (const { source, config, entries } of configs) {
    const label = `${source.label} (rendered: ${CONFIG_MAP}/${CONFIG_KEY})`;
    const problems = [];
    const repos = Array.isArray(config.repos) ? config.repos.map((r) => r.name) : [];
    const regions = Array.isArray(config.regions) ? config.regions : [];
    if (!repos.length) problems.push('has no repos');
    const expectCopy = repos.slice(1);
    if (JSON.stringify(copyToList(config)) !== JSON.stringify(expectCopy)) {
      problems.push(`backup.copy_to is [${copyToList(config).join(', ')}]; with repos [${repos.join(', ')}] it must be the other repositories [${expectCopy.join(', ')}]`);
    }
    if (normalized(config) !== normalized(reference.config)) {
      problems.push(`differs from ${reference.source.label}'s configuration in more than the repository order and backup.copy_to: keep the regions' files in step`);
    }
    const region = /(^|\/)overlays\/([^/]+)$/.exec(source.label);
    if (region) {
      const name = region[2];
      if (repos[0] !== name) problems.push(`the first repository is '${repos[0]}'; overlay ${name} must list its own repository '${name}' first`);
      const drill = entries.map((e) => e.value).find((o) => o.kind === 'CronJob' && o.metadata.name === 'gravl-dr-restore-test');
      const args = drill ? ((((drill.spec.jobTemplate || {}).spec || {}).template || {}).spec || {}).containers[0].args || [] : [];
      const at = args.indexOf('--repo');
      if (!drill || at < 0 || args[at + 1] !== name) problems.push(`the drill (CronJob gravl-dr-restore-test) must read --repo ${name}; its args are ${JSON.stringify(args)}`);
      const sa = entries.map((e) => e.value).find((o) => o.kind === 'ServiceAccount' && o.metadata.name === 'gravl-dr');
      const arn = sa && ((sa.metadata.annotations || {})['eks.amazonaws.com/role-arn'] || '');
      if (!arn || !arn.endsWith(`:role/gravl-dr-${name}`)) problems.push(`ServiceAccount gravl-dr's eks.amazonaws.com/role-arn '${arn}' must be the region's role (…:role/gravl-dr-${name})`);
    } else if (regions.length && repos[0] !== regions[0].repo) {
      problems.push(`the base's first repository '${repos[0]}' must be the primary region's (regions[0].repo = ${regions[0].repo})`);
    }
    checkedDocs += 1;
    if (problems.length) {
      console.log(`FAIL ${label}`);
      for (const p of problems) {
        console.log(`       ${label}: ${p}`);
        failures.push(`${label}: ${p}`);
      }
    } else {
      console.log(`ok   ${label}: repos [${repos.join(', ')}], copy_to [${expectCopy.join(', ')}]`);
    }
  }
}

// --- 5. YAML examples in documentation -----------------------------------------------------------

for (const file of docFiles) {
  const label = path.relative(path.resolve(k8sDir, '..'), file).split(path.sep).join('/');
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail(label, e.message);
    continue;
  }
  const re = /^```ya?ml[^\n]*\n([\s\S]*?)^```/gm;
  let m;
  let blocks = 0;
  while ((m = re.exec(text))) {
    blocks += 1;
    const firstLine = text.slice(0, m.index).split('\n').length + 1; // the block's first line
    const blockLabel = `${label} (yaml block ${blocks})`;
    for (const entry of loadFile(null, blockLabel, m[1])) {
      const obj = entry.value;
      const where = { label: blockLabel, index: entry.index, entry, lineOffset: firstLine - 1 };
      if (obj && typeof obj === 'object' && obj.apiVersion && obj.kind) {
        report(where, obj, schemaProblems(obj));
      } else if (obj && obj.spec && obj.spec.template) {
        const excerpt = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: '(excerpt)' }, ...obj };
        report(where, excerpt, schemaProblems(excerpt, { partial: true }));
      }
    }
  }
}

// --- summary ---------------------------------------------------------------------------------------
console.log('');
if (failures.length) {
  console.log(`validate.js: FAILED: ${failures.length} problem(s); ${checkedDocs} documents checked:`);
  for (const f of failures) console.log(`  - ${f}`);
  process.exit(1);
}
console.log(`validate.js: all ${checkedDocs} documents valid`);
