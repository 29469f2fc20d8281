// scripts/zoo-table.mjs: the README's zoo table from zoo/index.json; and the README's table is the current one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = join(root, 'scripts', 'zoo-table.mjs');
const run = (args: string[], zoo?: string) =>
  spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...(zoo ? { DEEPREDUCE_ZOO: zoo } : {}) },
  });

const entry = (name: string, role: string, relus: number, acc: number, totalS: number, onlineS: number) => ({
  name,
  description: `${name} model`,
  role,
  dir: name,
  dataset: 'fashion-mnist',
  arch: 'resnet18',
  spec: { alpha: 0.25 },
  accuracy: { test: acc, images: 10000 },
  relus,
  storage: 'fp16',
  files: { 'model.safetensors': 1_000_000 },
  bytes: 1_000_000,
  pi: {
    images: 20,
    totalS,
    onlineS,
    offlineS: totalS - onlineS,
    agree: 20,
    protocol: 'he preprocessing, ot ReLUs',
    command: 'deepreduce zoo measure x',
    machine: '2 x CPU',
    measured: '2026-01-01',
  },
  reproduce: { command: `deepreduce train --out ${name}`, seconds: 600, machine: '2 x CPU' },
  added: '2026-01-01',
});

test('zoo-table: ratios against the teacher, total size, and --write between the markers', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'zoo-table-'));
  try {
    mkdirSync(join(tmp, 'zoo'));
    writeFileSync(
      join(tmp, 'zoo', 'index.json'),
      JSON.stringify({
        format: 'deepreduce-zoo',
        version: 1,
        models: [entry('teacher', 'teacher', 139264, 0.93, 8, 2), entry('f6k', 'front', 6144, 0.9, 2, 0.5)],
      }),
    );
    const r = run([], join(tmp, 'zoo'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /\| `zoo:f6k` \| front \| 6,144 \| 22\.67x \| 90\.00% \(10,000\) \| 2\.00 \| 0\.50 \| 4\.00x \/ 4\.00x \| fp16 \| 1\.00 MB \|/,
    );
    assert.match(r.stdout, /Total size of the zoo: 2\.00 MB \(2 models\)/);
    writeFileSync(join(tmp, 'R.md'), 'before\n<!-- zoo-table -->\nold\n<!-- /zoo-table -->\nafter\n');
    assert.equal(run(['--write', join(tmp, 'R.md')], join(tmp, 'zoo')).status, 0);
    const doc = readFileSync(join(tmp, 'R.md'), 'utf8');
    assert.ok(doc.startsWith('before\n<!-- zoo-table -->\n| model |'), doc);
    assert.ok(doc.endsWith('<!-- /zoo-table -->\nafter\n') && !doc.includes('old'), doc);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("the README's zoo table is the one zoo/index.json makes (node scripts/zoo-table.mjs --write README.md)", () => {
  const r = run([], join(root, 'zoo'));
  assert.equal(r.status, 0, r.stderr);
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const m = /<!-- zoo-table -->\n([\s\S]*?)\n<!-- \/zoo-table -->/.exec(readme);
  assert.ok(m, 'README.md has the zoo-table markers');
  assert.equal(m[1], r.stdout.trimEnd());
});
