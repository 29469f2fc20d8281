import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { writeBands } from '../train/bands.js';
import { defaultReduceConfig, reduce, type ReduceConfig, type ReduceResults } from '../../src/reduce/pipeline.js';
import { queueStatus } from '../../src/queue/status.js';
import { queueRunner } from '../../src/queue/runner.js';
import { alive, cli, startRedis, startWorker, waitFor, type WorkerProcess } from './helpers.js';

// Both runs train with one thread, so their numbers can be compared exactly (the workers get --threads 1).
process.env.DEEPREDUCE_THREADS = '1';
const tmp = mkdtempSync(join(tmpdir(), 'dr-queue-'));
// 1,500 training images make the baseline's epochs long enough to kill its worker between two of them; the other
// trainings use 90.
const data = writeBands(join(tmp, 'data'), 1500, 30);
const config = (out: string, over: Partial<ReduceConfig> = {}): ReduceConfig =>
  defaultReduceConfig({
    arch: 'resnet20',
    baseAlpha: 0.25,
    dataset: 'mnist',
    dataDir: data,
    out,
    epochs: { baseline: 4, criticality: 1, candidate: 1 },
    alphas: [1],
    rhos: [1],
    thinning: [false, true],
    depth: false,
    maxCulled: 1,
    batchSize: 30,
    lr: 0.05,
    criticalityLimitTrain: 90,
    candidateLimitTrain: 90,
    finetuneLimitTrain: 90,
    quiet: true,
    ...over,
  });

const redis = await startRedis();
const workers: WorkerProcess[] = [];
after(async () => {
  for (const w of workers) await w.kill();
  await redis.stop();
});

/** Files of every training folder, relative to the run (the queue's marker aside). */
function trainingFiles(run: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(run, p));
    }
  };
  walk(run);
  return out.filter((f) => f !== 'queue-run.json').sort();
}

/** The results without what names the run's folder or how its trainings were run. */
function comparable(r: ReduceResults, run: string): unknown {
  const { config, ...rest } = r;
  const { out: _o, queue: _q, ...cfg } = config;
  return JSON.parse(
    JSON.stringify({ ...rest, config: cfg }, (k, v) =>
      k === 'seconds' ? 0 : typeof v === 'string' ? v.replaceAll(run, 'RUN') : v,
    ),
  );
}

test("a reduce on two queue workers writes what a local run writes; a killed worker's training resumes from its checkpoint", async () => {
  const local = await reduce(config(join(tmp, 'local')), () => {});

  const url = redis.url('reduce');
  workers.push(startWorker(url), startWorker(url));
  const run = join(tmp, 'queued');
  const log: string[] = [];
  const push = (s: string) => log.push(s);
  const queued = reduce(config(run, { queue: url }), push, queueRunner(url, run, { quiet: true, log: push }));
  let settled = false;
  queued.then(
    () => (settled = true),
    () => (settled = true),
  );

  // The baseline reports its epoch and ETA while it trains.
  const st = await waitFor(
    async () => {
      const s = await queueStatus(url);
      const b = s.running.find((r) => r.job.endsWith('/baseline'));
      return b?.progress && b.progress.epoch >= 1 ? b.progress : null;
    },
    'the baseline to report progress',
    120_000,
    200,
  );
  assert.equal(st.epochs, 4);
  assert.equal(st.attempt, 1);
  assert.ok(st.fraction >= 0 && st.fraction <= 1);
  assert.match(st.worker, /\/\d+$/);

  // Kill -9 the baseline's worker once an epoch checkpoint exists; its training process dies with it.
  const ckpt = join(run, 'baseline', 'checkpoint.json');
  await waitFor(() => existsSync(ckpt), "the baseline's first checkpoint");
  const victim = workers.find((w) => /baseline: attempt 1, training process \d+/.test(w.output()))!;
  assert.ok(victim, 'a worker runs the baseline');
  await victim.kill();
  const trainer = Number(/baseline: attempt 1, training process (\d+)/.exec(victim.output())![1]);
  await waitFor(() => !alive(trainer), "the killed worker's training process to exit", 30_000);
  const epoch = (JSON.parse(readFileSync(ckpt, 'utf8')) as { epoch: number }).epoch;
  assert.ok(
    !existsSync(join(run, 'baseline', 'result.json')),
    'the baseline was still training when its worker was killed',
  );
  assert.ok(epoch >= 1 && epoch < 4, `checkpoint after epoch ${epoch}`);

  const r = await queued;
  assert.ok(settled);
  const survivor = workers.find((w) => w !== victim)!;
  // The other worker took the stalled job over (attempt 2) and resumed it after the checkpointed epoch.
  assert.match(
    survivor.output(),
    new RegExp(`baseline: attempt 2, training process \\d+[^]*baseline: resuming after epoch ${epoch}\\n`),
  );
  const metrics = readFileSync(join(run, 'baseline', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { epoch: number });
  assert.deepEqual(
    metrics.map((m) => m.epoch),
    [1, 2, 3, 4],
  );

  // Same trainings, same files, same results (exact resume and one thread on both sides make the numbers equal too).
  assert.deepEqual(
    r.candidates.map((c) => c.id),
    local.candidates.map((c) => c.id),
  );
  assert.deepEqual(r.failed, []);
  assert.deepEqual(trainingFiles(run), trainingFiles(join(tmp, 'local')));
  assert.deepEqual(comparable(r, run), comparable(local, join(tmp, 'local')));
  assert.deepEqual(
    comparable(JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')) as ReduceResults, run),
    comparable(local, join(tmp, 'local')),
  );
  assert.ok(log.some((l) => l.includes(`on the queue 'reduce' at ${url}`)));

  // The queue shows every job done, none failed; the CLI says so too.
  const s = await queueStatus(url);
  assert.equal(s.counts.done, 5 + r.candidates.length);
  assert.equal(s.counts.failed, 0);
  const text = await new Promise<string>((res, rej) => {
    const p = spawn(process.execPath, [cli, 'queue', 'status', '--queue', url], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let o = '';
    p.stdout.on('data', (b: Buffer) => (o += b.toString()));
    p.on('exit', (c) => (c === 0 ? res(o) : rej(new Error(`queue status exited with ${c}`))));
  });
  assert.match(
    text,
    new RegExp(
      `queue 'reduce' at ${url}: 0 waiting, 0 running, 0 to retry, ${s.counts.done} done, 0 failed; 1 worker connection`,
    ),
  );
});
