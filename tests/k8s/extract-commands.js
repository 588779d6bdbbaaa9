#!/usr/bin/env node
'use strict';
// Prints, as JSON on stdout, every gravl-dr command the Kubernetes manifests run, so that a test
// can run each one against the real binary (with --dry-run appended).
//
// Usage: node tests/k8s/extract-commands.js [--k8s DIR]   (default: the repository's k8s/)
// Needs the node modules (tests/k8s/check.sh installs them) and kustomize v4.1+ (kubectl
// kustomize) for the overlays. Exit 0 with the JSON; 1 with a message on stderr.
//
// Output (format 1):
// {
//   "format": 1,
//   "k8s": "/abs/path/to/k8s",
//   "config": {                        // ConfigMap gravl-dr-config's gravl-dr.yaml, as rendered
//     "k8s/backup": "<YAML text>",     //   the base (kubectl kustomize k8s/backup)
//     "k8s/overlays/eu-north-1": "...",
//     "k8s/overlays/us-east-1": "..."
//   },
//   "workloads": [                     // one entry per container (init containers too)
//     {
//       "source": "k8s/backup",        // the key of "config" whose ConfigMap the pod mounts
//       "file": "k8s/backup/postgres-backup-cronjob.yaml",   // for overlays: the overlay dir
//       "kind": "CronJob",             // CronJob, Job, Deployment (StatefulSet, DaemonSet, Pod)
//       "name": "gravl-dr-backup",
//       "container": "gravl-dr",
//       "init": false,                 // true for an init container
//       "command": ["gravl-dr"],
//       "args": ["--config", "/etc/gravl-dr/gravl-dr.yaml", "backup", "--type", "full"],
//       "env": {                       // in the container's order
//         "TMPDIR": "/tmp",                                           // a literal value
//         "PGPASSWORD": {"secret": "gravl-dr-pg", "key": "password"}, // secretKeyRef
//         "X": {"configMap": "name", "key": "k"},                     // configMapKeyRef
//         "Y": {"field": "metadata.name"}, "Z": {"resource": "limits.cpu"}
//       },
//       "mounts": {                    // mountPath -> what is mounted there
//         "/etc/gravl-dr": {"configMap": "gravl-dr-config", "readOnly": true},
//         "/var/run/secrets/gravl-dr": {"secret": "gravl-dr-encryption",
//                                       "items": {"passphrase": "encryption-passphrase"}, "readOnly": true},
//         "/tmp": {"emptyDir": true},
//         "/restore": {"persistentVolumeClaim": "gravl-dr-restore"}
//       },
//       "suspended": false,            // a CronJob with spec.suspend: true (us-east-1's backup)
//       "template": null               // for the restore Job template: the sample values its
//     }                                //   ${PARAMETERS} were filled in with, e.g.
//   ]                                  //   {"RESTORE_JOB_NAME": "...", "RESTORE_TARGET_TIME": "..."}
// }
// The base's workloads come from the files of k8s/backup/ (plus the restore Job template), the
// overlays' from their rendered output. Every args starts with --config /etc/gravl-dr/gravl-dr.yaml,
// the path where the pod sees "config"'s text; env values from Secrets are the test's to supply
// (the Secrets are not in the repository).

const fs = require('fs');
const path = require('path');
const lib = require('./lib');

let k8sDir = path.resolve(__dirname, '..', '..', 'k8s');
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--k8s' && argv[i + 1]) k8sDir = path.resolve(argv[++i]);
  else {
    process.stderr.write(`extract-commands.js: unknown argument '${argv[i]}' (usage: node tests/k8s/extract-commands.js [--k8s DIR])\n`);
    process.exit(2);
  }
}

function envOf(container) {
  const env = {};
  for (const e of container.env || []) {
    const from = e.valueFrom;
    if (!from) env[e.name] = e.value === undefined ? '' : String(e.value);
    else if (from.secretKeyRef) env[e.name] = { secret: from.secretKeyRef.name, key: from.secretKeyRef.key };
    else if (from.configMapKeyRef) env[e.name] = { configMap: from.configMapKeyRef.name, key: from.configMapKeyRef.key };
    else if (from.fieldRef) env[e.name] = { field: from.fieldRef.fieldPath };
    else if (from.resourceFieldRef) env[e.name] = { resource: from.resourceFieldRef.resource };
    else env[e.name] = { unknown: from };
  }
  for (const e of container.envFrom || []) {
    // Not used by the manifests; listed so that nothing is silently left out.
    env[`*${e.prefix || ''}`] = e.secretRef ? { secretAll: e.secretRef.name } : { configMapAll: (e.configMapRef || {}).name };
  }
  return env;
}

function mountsOf(container, volumes) {
  const mounts = {};
  for (const m of container.volumeMounts || []) {
    const v = volumes.get(m.name) || {};
    let what;
    if (v.configMap) what = { configMap: v.configMap.name };
    else if (v.secret) what = { secret: v.secret.secretName };
    else if (v.emptyDir) what = { emptyDir: true };
    else if (v.persistentVolumeClaim) what = { persistentVolumeClaim: v.persistentVolumeClaim.claimName };
    else what = { volume: m.name };
    const items = (v.configMap || v.secret || {}).items;
    if (items) what.items = Object.fromEntries(items.map((it) => [it.key, it.path]));
    if (m.subPath) what.subPath = m.subPath;
    if (m.readOnly) what.readOnly = true;
    mounts[m.mountPath] = what;
  }
  return mounts;
}

function workloadsOf(obj, source, file, template) {
  const ps = lib.podSpecOf(obj);
  if (!ps || !ps.spec) return [];
  const volumes = new Map((ps.spec.volumes || []).map((v) => [v.name, v]));
  const out = [];
  for (const [init, list] of [[true, ps.spec.initContainers || []], [false, ps.spec.containers || []]]) {
    for (const c of list) {
      out.push({
        source,
        file,
        kind: obj.kind,
        name: obj.metadata.name,
        container: c.name,
        init,
        command: c.command || null,
        args: c.args || [],
        env: envOf(c),
        mounts: mountsOf(c, volumes),
        suspended: obj.kind === 'CronJob' && (obj.spec || {}).suspend === true,
        template: template || null,
      });
    }
  }
  return out;
}

function main() {
  const classified = lib.classify(k8sDir);
  const result = { format: 1, k8s: k8sDir, config: {}, workloads: [] };

  for (const source of lib.renderedSources(k8sDir, classified.kustomizations)) {
    const entries = lib.parseDocuments(lib.render(source.dir), `${source.label} (rendered)`);
    const objs = entries.map((e) => e.value);
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'gravl-dr-config');
    if (!cm) continue; // k8s/monitoring: no gravl-dr workloads
    result.config[source.label] = (cm.data || {})['gravl-dr.yaml'];
    const isOverlay = classified.kustomizations.some((k) => k.dir === source.dir && (k.value.resources || []).some((r) => {
      const target = path.resolve(source.dir, r);
      return classified.kustomizations.some((b) => b.dir === target && b.dir !== source.dir);
    }));
    if (!isOverlay) {
      // A base: its workloads with the files they are written in.
      for (const file of classified.objects.filter((f) => path.dirname(f) === source.dir)) {
        for (const entry of lib.parseDocuments(fs.readFileSync(file, 'utf8'), lib.rel(k8sDir, file))) {
          result.workloads.push(...workloadsOf(entry.value, source.label, lib.rel(k8sDir, file)));
        }
      }
      for (const file of classified.templates.filter((f) => path.dirname(f) === source.dir)) {
        const filled = lib.fillTemplate(k8sDir, file);
        for (const entry of lib.parseDocuments(filled.text, lib.rel(k8sDir, file))) {
          result.workloads.push(...workloadsOf(entry.value, source.label, lib.rel(k8sDir, file), filled.samples));
        }
      }
    } else {
      for (const obj of objs) result.workloads.push(...workloadsOf(obj, source.label, source.label));
    }
  }
  if (!Object.keys(result.config).length) throw new Error(`no kustomization under ${k8sDir} renders ConfigMap gravl-dr-config`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

try {
  main();
} catch (e) {
  process.stderr.write(`extract-commands.js: ${e.message}\n`);
  process.exit(1);
}
