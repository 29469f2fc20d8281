import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeBands } from '../train/bands.js';
import { defaultReduceConfig, reduce, type ReduceConfig } from '../../src/reduce/pipeline.js';
import { queueStatus } from '../../src/queue/status.js';
import { queueRunner } from '../../src/queue/runner.js';
import { defaultTrainConfig } from '../../src/train/run.js';
import { cudaAvailable } from '../../src/engine/index.js';
import { cli, startRedis, startWorker, waitFor, type WorkerProcess } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'dr-worker-'));
const data = writeBands(join(tmp, 'data'));
const config = (out: string, over: Partial<ReduceConfig> = {}): ReduceConfig =>
  defaultReduceConfig({
    arch: 'resnet20',
    baseAlpha: 0.25,
    dataset: 'mnist',
    dataDir: data,
    out,
    epochs: { baseline: 1, criticality: 1, candidate: 1 },
    alphas: [1],
    rhos: [1],
    thinning: [true],
    depth: false,
    maxCulled: 1,
    batchSize: 30,
    quiet: true,
    ...over,
  });
const redis = await startRedis();
const workers: WorkerProcess[] = [];
after(async () => {
  for (const w of workers) await w.kill();
  await redis.stop();
});

/** Starts a reduce on a queue no worker serves yet and resolves once its first stage (5 trainings) is waiting. */
async function submitted(queue: string, c: ReduceConfig): Promise<{ outcome: Promise<Error> }> {
  const outcome = reduce(
    { ...c, queue: redis.url(queue) },
    () => {},
    queueRunner(redis.url(queue), c.out, { quiet: true, log: () => {} }),
  ).then(
    () => new Error('the run did not fail'),
    (e: Error) => e,
  );
  await waitFor(
    async () => (await queueStatus(redis.url(queue))).counts.waiting === 5,
    `5 jobs waiting on '${queue}'`,
    60_000,
    100,
  );
  return { outcome };
}

test('a training that fails for a real reason (its dataset is missing on the worker) fails once, with its error in results.json', async () => {
  const own = join(tmp, 'data-copy');
  cpSync(data, own, { recursive: true });
  const out = join(tmp, 'missing-data');
  const { outcome } = await submitted('nodata', config(out, { dataDir: own }));
  rmSync(own, { recursive: true });
  workers.push(startWorker(redis.url('nodata')));
  const e = await outcome;
  assert.match(
    e.message,
    /^5 trainings failed .*results\.json\): baseline, criticality\/linear, criticality\/stage1, criticality\/stage2, criticality\/stage3: .*IDX images file not found/,
  );
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
    failed: { id: string; error: string; attempts: number; dir: string }[];
  };
  assert.deepEqual(
    r.failed.map((f) => f.id),
    ['baseline', 'criticality/linear', 'criticality/stage1', 'criticality/stage2', 'criticality/stage3'],
  );
  for (const f of r.failed) {
    assert.equal(f.attempts, 1, `${f.id} is not retried`);
    assert.ok(f.error.includes(join(own, 'train-images-idx3-ubyte')), f.error);
    assert.ok(f.dir.startsWith(out));
  }
  const s = await queueStatus(redis.url('nodata'));
  assert.deepEqual([s.counts.failed, s.counts.retrying, s.counts.waiting, s.counts.done], [5, 0, 0, 0]);
});

test('a worker that cannot see the run directory refuses its jobs, which fail at once with a message saying why', async () => {
  const out = join(tmp, 'unseen');
  const { outcome } = await submitted('unseen', config(out));
  // As on a machine where the run directory is not the shared one: no marker there.
  rmSync(join(out, 'queue-run.json'));
  const w = startWorker(redis.url('unseen'));
  workers.push(w);
  const e = await outcome;
  assert.match(
    e.message,
    new RegExp(`worker \\S+ cannot see the run directory ${out} .*ENOENT.*storage every worker shares`),
  );
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { failed: { attempts: number }[] };
  assert.ok(r.failed.length === 5 && r.failed.every((f) => f.attempts === 1));
  assert.doesNotMatch(w.output(), /training process/, 'no training was started');
});

test('--device cuda:N fails at worker start, saying why, where it cannot be used', () => {
  const run = (device: string) =>
    spawnSync(process.execPath, [cli, 'worker', '--queue', redis.url('gpu'), '--device', device], {
      encoding: 'utf8',
      timeout: 60_000,
    });
  if (!cudaAvailable()) {
    const p = run('cuda:0');
    assert.equal(p.status, 1);
    assert.match(
      p.stderr,
      /--device cuda:0: this build of libtorch has no CUDA \(libtorch [\d.]+ is CPU-only\); build the addon against a CUDA LibTorch/,
    );
  } else {
    const p = run('cuda:99');
    assert.equal(p.status, 1);
    assert.match(p.stderr, /--device cuda:99: libtorch has CUDA, but cuda:99 cannot be used/);
  }
  const bad = run('tpu');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--device tpu: expected cpu or cuda:N/);
});

test('a worker stopped with SIGTERM hands its training back without using up an attempt; the next worker resumes it', async () => {
  const url = redis.url('term');
  const run = join(tmp, 'term');
  const base = defaultTrainConfig({
    arch: 'resnet20',
    alpha: 0.25,
    dataset: 'mnist',
    dataDir: writeBands(join(tmp, 'big'), 1500, 30),
    batchSize: 30,
    out: join(run, 'long'),
  });
  const job = { id: 'long', config: { ...base, options: { ...base.options, epochs: 3, lr: 0.05 } } };
  const first = startWorker(url);
  workers.push(first);
  const outcome = queueRunner(url, run, { quiet: true, pollMs: 200 }).run([job], () => {});
  await waitFor(() => existsSync(join(run, 'long', 'checkpoint.json')), 'the first checkpoint');
  first.proc.kill('SIGTERM');
  assert.equal(await first.exited, 0);
  assert.match(first.output(), /SIGTERM: stopping; running trainings go back to the queue/);
  const s = await queueStatus(url);
  assert.deepEqual([s.counts.waiting, s.counts.running, s.counts.retrying, s.counts.failed], [1, 0, 0, 0]);
  const second = startWorker(url);
  workers.push(second);
  const o = await outcome;
  assert.deepEqual([[...o.results.keys()], o.failed], [['long'], []]);
  // the resume follows the second attempt's start (the worker's own start-up line may come between them)
  assert.match(second.output(), /long: attempt 2, training process \d+\n(?:.*\n)*?.*long: resuming after epoch [12]\n/);
});
