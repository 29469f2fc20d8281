// scripts/pack-test.sh: npm pack, npm install of the tarball in an empty folder (from npm's cache), then the
// installed `deepreduce` runs count and zoo list. About a minute on 2 cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

test('the npm package installs in an empty folder and its deepreduce command runs', { timeout: 240_000 }, () => {
  const r = spawnSync('bash', [join(root, 'scripts', 'pack-test.sh'), '--no-build'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 230_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /npm install \.\/deepreduce-[\d.]+\.tgz in an empty folder/);
  assert.match(r.stdout, /ReLUs: 557,056/);
  assert.match(r.stdout, /zoo .*(is empty|models)/);
  assert.match(r.stdout, /\[pack-test\] ok/);
});
