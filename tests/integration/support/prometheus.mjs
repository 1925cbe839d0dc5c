// Reading a /metrics page with a real Prometheus text-format parser: the
// `prometheus_client` Python package's (python3-prometheus-client), run by
// support/parse-metrics.py. Nothing here parses the format itself.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./parse-metrics.py', import.meta.url));

// Debian's python3, where scripts/install-deps.sh installs the package: a
// python3 first on PATH (pyenv, a virtualenv) may not have it.
const python = process.env.PUSH_CORE_TEST_PYTHON
  ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

/**
 * The families of `page` as prometheus_client reads them: a Map from family
 * name (a counter's without `_total`, as the parser names it) to
 * { type, documentation, samples: [{ name, labels, value }] }. Throws with
 * the parser's error when it cannot read the page.
 */
export function parsePrometheus(page) {
  const run = spawnSync(python, [script], { input: page, encoding: 'utf8' });
  if (run.error) throw run.error;
  if (run.status !== 0) {
    throw new Error(`prometheus_client could not parse the page (exit ${run.status}):\n${run.stderr}`);
  }
  return new Map(JSON.parse(run.stdout).map((family) => [family.name, family]));
}

/** The value of the sample `name` with exactly `labels`, or undefined. */
export function sampleValue(families, name, labels = {}) {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      const keys = Object.keys(sample.labels);
      if (sample.name === name
        && keys.length === Object.keys(labels).length
        && keys.every((key) => sample.labels[key] === labels[key])) {
        return sample.value;
      }
    }
  }
  return undefined;
}

/** Every sample name on the page. */
export function seriesNames(families) {
  return new Set([...families.values()].flatMap((family) => family.samples.map((sample) => sample.name)));
}
