import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localRunner } from '../../src/reduce/jobs.js';
import { defaultTrainConfig } from '../../src/train/run.js';
import { writeBands } from '../train/bands.js';

test('a local run records a failed training with its error and still runs the others', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dr-jobs-'));
  const data = writeBands(join(tmp, 'data'));
  const base = defaultTrainConfig({ arch: 'resnet20', alpha: 0.25, dataset: 'mnist', batchSize: 30, out: '' });
  const jobs = [
    { id: 'bad', config: { ...base, dataDir: join(tmp, 'nowhere'), out: join(tmp, 'bad') } },
    { id: 'good', config: { ...base, dataDir: data, options: { ...base.options, epochs: 1 }, out: join(tmp, 'good') } },
  ];
  const done: string[] = [];
  const o = await localRunner(1).run(jobs, (j) => done.push(j.id));
  assert.deepEqual(done, ['good']);
  assert.deepEqual([...o.results.keys()], ['good']);
  assert.equal(o.failed.length, 1);
  assert.deepEqual([o.failed[0]!.id, o.failed[0]!.dir, o.failed[0]!.attempts], ['bad', join(tmp, 'bad'), 1]);
  assert.match(o.failed[0]!.error, /nowhere.*not found/);
});
