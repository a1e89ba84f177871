/**
 * Keeps `npm run bench` from rotting: runs the suite in its smoke mode (each case once, about
 * 1 s each, a subset) into a temporary directory and checks that it finishes and writes valid
 * results. It asserts nothing about the figures: the bench never fails on a number.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const out = mkdtempSync(path.join(os.tmpdir(), 'burrow-bench-smoke-'));

interface SmokeResults {
  tool: string;
  mode: string;
  durationSec: number;
  cases: Array<{
    id: string;
    status: string;
    errorKind?: string;
    errors: string[];
    notes: string[];
    metrics: Array<{ name: string; unit: string; burrow?: { median: number; n: number } }>;
    processes: Array<{ role: string; cpuSecondsTotal: number; peakRssMiB: number }>;
  }>;
}

let run: { code: number | null; stderr: string; ms: number; guarded: boolean };

describe('npm run bench -- --smoke', () => {
  before(async () => {
    if (!existsSync(path.join(ROOT, 'dist', 'main.js'))) {
      const b = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
        cwd: ROOT,
        stdio: 'inherit',
      });
      assert.equal(b.status, 0, 'build failed');
    }
    const t0 = Date.now();
    run = await new Promise((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', path.join('bench', 'run.ts'), '--smoke', `--out=${out}`], {
        cwd: ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      // A hang guard, not a timing: the smoke mode takes about a minute on an idle machine.
      let guarded = false;
      const t = setTimeout(() => {
        guarded = true;
        p.kill('SIGINT');
      }, 200_000);
      p.on('close', (code) => {
        clearTimeout(t);
        resolve({ code, stderr, ms: Date.now() - t0, guarded });
      });
    });
  });

  after(() => rmSync(out, { recursive: true, force: true }));

  it('completes without error', () => {
    assert.equal(run.code, 0, `bench exited with ${run.code}:\n${run.stderr.slice(-3000)}`);
  });

  it('finishes on its own (its duration is a diagnostic: timings belong to the bench itself)', (t) => {
    t.diagnostic(`smoke mode took ${run.ms} ms`);
    assert.equal(run.guarded, false, `smoke mode was stopped by the hang guard after ${run.ms} ms`);
  });

  it('writes valid JSON and Markdown results', () => {
    const json = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as SmokeResults;
    assert.equal(json.tool, 'burrow-bench');
    assert.equal(json.mode, 'smoke');
    assert.ok(json.cases.length >= 6, `only ${json.cases.length} cases`);
    const md = readFileSync(path.join(out, 'latest.md'), 'utf8');
    assert.match(md, /^# burrow bench \(smoke\)/);
    for (const c of json.cases) {
      assert.ok(['ok', 'partial', 'error', 'skipped'].includes(c.status), `${c.id}: status ${c.status}`);
      // A failure of the harness itself (a TypeError and the like) is a broken bench.
      assert.notEqual(c.errorKind, 'bench', `${c.id}: ${c.errors.join('\n')}`);
      if (c.status === 'error') assert.ok(c.errors.length > 0, `${c.id}: error without a message`);
      if (c.status === 'skipped') assert.ok(c.notes.some((n) => n.startsWith('skipped')), `${c.id}: skipped without a reason`);
      if (c.status === 'ok') {
        assert.ok(c.metrics.some((m) => m.burrow && Number.isFinite(m.burrow.median)), `${c.id}: no figures`);
        for (const p of c.processes) {
          assert.ok(Number.isFinite(p.peakRssMiB) && p.peakRssMiB > 0, `${c.id}/${p.role}: no peak RSS`);
        }
      }
    }
  });

  it('measures the cases that need no external tools', () => {
    const json = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as SmokeResults;
    for (const id of ['idle-connections', 'startup']) {
      const c = json.cases.find((x) => x.id === id);
      assert.ok(c, `case ${id} missing`);
      assert.notEqual(c.status, 'skipped', `${id} skipped`);
      assert.ok(
        c.metrics.some((m) => m.burrow && Number.isFinite(m.burrow.median)),
        `${id}: no figures (${c.errors.join('; ')})`,
      );
    }
  });
});
