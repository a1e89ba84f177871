/**
 * docs/metrics.md lists every series burrow registers (prom-client's process metrics aside), and
 * docs/grafana-dashboard.json is valid JSON whose queries use only documented series.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metrics } from '../../../src/observe/metrics';

const DOCS = join(__dirname, '..', '..', '..', 'docs');
const doc = readFileSync(join(DOCS, 'metrics.md'), 'utf8');
/** Series named in the doc's tables (first column). */
const documented = new Set([...doc.matchAll(/^\| `((?:gost|burrow)_[a-z_]+)` \|/gm)].map((m) => m[1]!));

test('docs/metrics.md lists every series registered', async () => {
  const m = new Metrics({ services: () => 0, tunnels: () => 0, connectors: () => 0 });
  const names = (await m.registry.getMetricsAsJSON()).map((x) => x.name).filter((n) => !/^burrow_(process|nodejs)_/.test(n));
  assert.ok(names.length >= 18, `${names.length} series`);
  for (const n of names) assert.ok(documented.has(n), `${n} is not in docs/metrics.md`);
  for (const n of documented) assert.ok(names.includes(n), `docs/metrics.md lists ${n}, which is not registered`);
});

test('the Grafana dashboard is valid JSON built on documented series', () => {
  const dash = JSON.parse(readFileSync(join(DOCS, 'grafana-dashboard.json'), 'utf8')) as {
    panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
  };
  const used = new Set<string>();
  for (const p of dash.panels) {
    if (p.type === 'row') continue;
    assert.ok(p.targets && p.targets.length > 0, `panel ${p.title} has queries`);
    for (const t of p.targets) {
      for (const m of t.expr.matchAll(/\b((?:gost|burrow)_[a-z_]+)/g)) {
        const name = m[1]!;
        used.add(name);
        if (!/^burrow_(process|nodejs)_/.test(name)) assert.ok(documented.has(name), `${p.title}: ${name} is not documented`);
      }
    }
  }
  for (const n of ['burrow_tunnel_requests_total', 'burrow_tunnel_transfer_input_bytes_total', 'burrow_tunnel_connectors_per_tunnel', 'burrow_client_tunnel_sessions']) {
    assert.ok(used.has(n), `the dashboard shows ${n}`);
  }
});
