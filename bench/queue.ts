// The reduce bench preset (bench/reduce.js) two ways on this machine, back to back: `--jobs N` (N local processes),
// then through the job queue with N `deepreduce worker` processes (each with cores / N threads, as --jobs N splits
// them). Prints both wall times and the queue's overhead; writes OUT/bench-queue.json.
// Usage: node dist/bench/queue.js [--out runs/bench-queue] [--workers 2] [--redis redis://HOST:PORT (default: starts a
//   throwaway redis-server on a free loopback port)] [any bench/reduce.js option, e.g. for a quick check:
//   --epochs 1,1,1 --baseline-limit-train 2000 --limit-train 1000 --criticality-limit-train 500 --finetune-limit-train 1000 --limit-test 1000]
import './lib/help.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { defaultThreads } from '../src/engine/index.js';
import { checkRedis, KEY_PREFIX, parseQueueUrl } from '../src/queue/connection.js';
import type { TrainSummary } from '../src/train/run.js';

const own = new Map<string, string>([
  ['--out', 'runs/bench-queue'],
  ['--workers', '2'],
  ['--redis', ''],
]);
const pass: string[] = [];
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i]!;
  if (own.has(k)) own.set(k, process.argv[++i] ?? '');
  else if (k === '--jobs' || k === '--queue' || k === '--out') throw new Error(`${k}: set by this bench`);
  else pass.push(k);
}
const out = own.get('--out')!;
const n = Number(own.get('--workers'));
if (!Number.isInteger(n) || n < 1)
  throw new Error(`--workers: expected a whole number >= 1, got '${own.get('--workers')}'`);
if (existsSync(out))
  throw new Error(
    `${out} exists: a rerun would resume its trainings instead of timing them; remove it or pick another --out`,
  );
mkdirSync(out, { recursive: true });
const reduceJs = fileURLToPath(new URL('./reduce.js', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const threads = Math.max(1, Math.floor(defaultThreads() / n));
const procs = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of procs) p.kill('SIGKILL');
});

/** Runs a command with its output prefixed; resolves with its wall time in seconds. */
async function timed(label: string, args: string[]): Promise<number> {
  const t0 = Date.now();
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(p);
  for (const s of [p.stdout!, p.stderr!])
    s.on('data', (b: Buffer) => process.stdout.write(b.toString().replace(/^(?=.)/gm, `[${label}] `)));
  const code = await new Promise<number | null>((res) => p.on('exit', res));
  procs.delete(p);
  if (code !== 0) throw new Error(`${label}: ${args.join(' ')} exited with ${code}`);
  return (Date.now() - t0) / 1000;
}

/** Seconds each finished training of a run spent training and evaluating (its result.json). */
function trainingSeconds(run: string): number {
  let s = 0;
  for (const f of readdirSync(run)) {
    const p = join(run, f);
    if (statSync(p).isDirectory()) s += trainingSeconds(p);
    else if (f === 'result.json') s += (JSON.parse(readFileSync(p, 'utf8')) as TrainSummary).seconds;
  }
  return s;
}

let base = own.get('--redis')!;
let redis: ChildProcess | null = null;
if (!base) {
  const port = await new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port: p } = s.address() as { port: number };
      s.close(() => res(p));
    });
  });
  redis = spawn(
    '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  procs.add(redis);
  base = `redis://127.0.0.1:${port}`;
}
const url = `${base.replace(/\/$/, '')}/bench-queue-${process.pid}`;
const addr = parseQueueUrl(url);
await checkRedis(addr, 10_000);

console.log(
  `reduce bench preset, --jobs ${n} then ${n} queue workers (${threads} threads each) on ${url}; options: ${pass.join(' ') || '(preset)'}`,
);
const local = await timed('local', [reduceJs, '--jobs', String(n), '--out', join(out, 'local'), ...pass]);

const workers = Array.from({ length: n }, (_, i) => {
  const p = spawn(
    process.execPath,
    [cli, 'worker', '--queue', url, '--threads', String(threads), '--name', `bench-${i + 1}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  procs.add(p);
  let log = '';
  for (const s of [p.stdout!, p.stderr!]) s.on('data', (b: Buffer) => (log += b.toString()));
  return { p, log: () => log };
});
const t0 = Date.now();
while (workers.some((w) => !w.log().includes('worker bench-'))) {
  if (workers.some((w) => w.p.exitCode !== null) || Date.now() - t0 > 60_000)
    throw new Error(`a worker did not start:\n${workers.map((w) => w.log()).join('\n')}`);
  await sleep(100);
}
const queued = await timed('queue', [reduceJs, '--queue', url, '--out', join(out, 'queue'), ...pass]);
for (const [i, w] of workers.entries()) {
  w.p.kill('SIGTERM');
  await new Promise((res) => w.p.on('exit', res));
  writeFileSync(join(out, `worker-${i + 1}.log`), w.log());
}

// Per job on the queue: its time outside training (process start, data, model, save: --jobs N children pay the same),
// and how long a free worker took to start the next waiting job.
const q = new Queue(addr.name, { connection: addr.connection, prefix: KEY_PREFIX });
const jobs = (await q.getJobs(['completed'], 0, -1)).filter((j) => j.processedOn && j.finishedOn);
const outside = jobs.map((j) => (j.finishedOn! - j.processedOn!) / 1000 - (j.returnvalue as TrainSummary).seconds);
const gaps: number[] = [];
for (const w of new Set(jobs.map((j) => j.processedBy))) {
  const mine = jobs.filter((j) => j.processedBy === w).sort((x, y) => x.processedOn! - y.processedOn!);
  for (let i = 1; i < mine.length; i++)
    if (mine[i]!.timestamp <= mine[i - 1]!.finishedOn!) gaps.push(mine[i]!.processedOn! - mine[i - 1]!.finishedOn!);
}
await q.obliterate({ force: true });
await q.close();
if (redis) redis.kill();

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const figures = {
  workers: n,
  threads,
  options: pass,
  wall_s: { local: local, queue: queued },
  overhead_s: queued - local,
  overhead_pct: (100 * (queued - local)) / local,
  training_s: { local: trainingSeconds(join(out, 'local')), queue: trainingSeconds(join(out, 'queue')) },
  queue_jobs: jobs.length,
  outside_training_s_per_job: mean(outside),
  dispatch_ms: { mean: mean(gaps), max: Math.max(0, ...gaps), n: gaps.length },
};
writeFileSync(join(out, 'bench-queue.json'), `${JSON.stringify(figures, null, 2)}\n`);
const min = (s: number) => `${(s / 60).toFixed(1)} min`;
console.log('');
console.log(`--jobs ${n}:           ${min(local)} wall; trainings' own time ${min(figures.training_s.local)}`);
console.log(`queue, ${n} workers:    ${min(queued)} wall; trainings' own time ${min(figures.training_s.queue)}`);
console.log(
  `queue overhead:      ${figures.overhead_s >= 0 ? '+' : ''}${figures.overhead_s.toFixed(1)} s wall (${figures.overhead_pct >= 0 ? '+' : ''}${figures.overhead_pct.toFixed(1)}%)`,
);
console.log(
  `per queue job:       ${figures.outside_training_s_per_job.toFixed(1)} s outside training (process start, data, save), ` +
    `next waiting job started ${figures.dispatch_ms.mean.toFixed(0)} ms (max ${figures.dispatch_ms.max.toFixed(0)} ms) after a worker freed (${gaps.length} hand-overs); ${jobs.length} jobs`,
);
console.log(`figures: ${join(out, 'bench-queue.json')}`);
