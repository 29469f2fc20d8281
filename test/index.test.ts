// The library face: the README's example, run as a user would (`import ... from 'deepreduce'`, resolved through
// package.json's exports to dist/src/index.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { count } from '../src/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

test("the README's library example runs against the package's exports", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const m = /## As a library[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, 'README has a js example under "## As a library"');
  assert.match(m[1]!, /from 'deepreduce'/);
  // Inside the package (dist/test), so that 'deepreduce' resolves to this package by its own exports.
  const file = join(root, 'dist', 'test', 'readme-example.mjs');
  writeFileSync(file, m[1]!);
  try {
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^resnet18: 12288 ReLUs, \d+ MACs per image; ReLU protocols: gc, ot, ot-online, silent\n$/);
  } finally {
    rmSync(file, { force: true });
  }
});

test('count is the CLI count: a preset, an architecture with overrides', () => {
  assert.equal(count({ preset: 'C100_12K', input: 32 }).total, 12288);
  const full = count({ arch: 'resnet18', input: 32, classes: 100 });
  assert.equal(full.total, full.totalAllSites);
  assert.throws(() => count({ preset: 'C100_12K', arch: 'resnet20' }), /is a resnet18 configuration/);
});
