import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Command } from 'commander';
import { registerDataCommands } from '../../src/cli/data.js';
import { tempDir, writeCifar100 } from './fixtures.js';

/** Runs `deepreduce <args>` in-process; returns stdout, stderr and the commander exit code (0 when none). */
async function run(args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const program = new Command('deepreduce')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  registerDataCommands(program);
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
    return { out, err, code: 0 };
  } catch (e) {
    return { out, err, code: (e as { exitCode?: number }).exitCode ?? -1 };
  } finally {
    process.stdout.write = write;
  }
}

test('data info: text and --json for CIFAR-100 (fine and coarse), errors name the folder', async () => {
  const dir = tempDir('cli');
  writeCifar100(dir);
  const j = await run(['data', 'info', 'cifar100', '--data', dir, '--json']);
  assert.equal(j.code, 0, j.err);
  const info = JSON.parse(j.out);
  assert.deepEqual([info.train.n, info.test.n, info.numClasses, info.shape], [6, 3, 100, [3, 32, 32]]);
  assert.equal(info.train.mean.length, 3);
  const coarse = JSON.parse(
    (await run(['data', 'info', 'cifar100', '--data', dir, '--json', '--labels', 'coarse'])).out,
  );
  assert.equal(coarse.numClasses, 20);
  const t = await run(['data', 'info', 'cifar100', '--data', dir]);
  assert.match(t.out, /train: 6 images, test: 3 images/);
  assert.match(t.out, /image: 3x32x32/);
  const missing = await run(['data', 'info', 'cifar10', '--data', `${dir}/none`]);
  assert.equal(missing.code, 1);
  assert.ok(missing.err.includes(`${dir}/none`), missing.err);
  const unknown = await run(['data', 'info', 'imagenet']);
  assert.match(unknown.err, /unknown dataset 'imagenet'/);
  const notFetchable = await run(['data', 'fetch', 'mnist']);
  assert.match(notFetchable.err, /cannot fetch 'mnist'/);
  rmSync(dir, { recursive: true });
});
