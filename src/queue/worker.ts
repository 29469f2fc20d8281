// `deepreduce worker`: takes training jobs from the queue and runs each in a child process on this machine's device.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { readTrainResult, type TrainConfig, type TrainSummary } from '../train/run.js';
import { checkRedis, KEY_PREFIX, parseQueueUrl } from './connection.js';
import { checkDevice } from './device.js';
import { checkRunDir, LOCK_DEFAULTS, type ChildMessage, type JobProgress, type TrainJobData } from './spec.js';

export interface WorkerOptions {
  queue: string;
  device: string;
  /** trainings at once, each in its own process */
  concurrency: number;
  /** libtorch threads per training */
  threads: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** shown in `queue status` and job logs (default HOST/PID) */
  name?: string;
  log: (s: string) => void;
}

export interface RunningWorker {
  name: string;
  /** Stops taking jobs; running trainings are killed and their jobs put back to waiting (no attempt is used up). */
  close(): Promise<void>;
}

const childScript = () => fileURLToPath(new URL('./child.js', import.meta.url));
const PROGRESS_EVERY_MS = 2000;

type TrainJob = Job<TrainJobData, TrainSummary>;

function checkJobData(job: TrainJob): TrainJobData {
  const d = job.data as Partial<TrainJobData> | undefined;
  if (
    d?.kind !== 'deepreduce-train' ||
    typeof d.run !== 'string' ||
    typeof d.token !== 'string' ||
    typeof d.id !== 'string' ||
    typeof d.config?.out !== 'string'
  )
    throw new UnrecoverableError(
      `job ${job.id}: not a deepreduce training job (fields kind, run, token, id, config.out)`,
    );
  return d as TrainJobData;
}

export async function startWorker(o: WorkerOptions): Promise<RunningWorker> {
  const device = checkDevice(o.device);
  const a = parseQueueUrl(o.queue);
  await checkRedis(a);
  const name = o.name ?? `${hostname()}/${process.pid}`;
  let closing = false;

  /** Trains one job in a child process; resolves with its summary, or rejects with a retryable or final error. */
  async function train(job: TrainJob, d: TrainJobData, signal?: AbortSignal): Promise<TrainSummary> {
    const attempt = job.attemptsStarted;
    const config: TrainConfig = {
      ...d.config,
      resume: true,
      options: { ...d.config.options, threads: o.threads, device, quiet: true },
    };
    const child = spawn(process.execPath, [childScript()], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, OMP_NUM_THREADS: String(o.threads) },
    });
    o.log(`${d.id}: attempt ${attempt}, training process ${child.pid}`);
    void job.log(`attempt ${attempt} on ${name} (training process ${child.pid})`).catch(() => {});
    let stderr = '';
    let outcome: ChildMessage | null = null;
    let sent = 0;
    let start: { t: number; done: number } | null = null;
    const onAbort = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'log') {
        o.log(`${d.id}: ${m.line}`);
        void job.log(m.line).catch(() => {});
      } else if (m.type === 'progress') {
        const now = Date.now();
        const total = m.epochs * m.total;
        const done = m.epoch * m.total + m.seen;
        // The rate of this attempt only: a resumed training starts part-way.
        start ??= { t: now, done };
        const rate = (done - start.done) / Math.max(1e-3, (now - start.t) / 1000);
        if (now - sent < PROGRESS_EVERY_MS && m.seen < m.total) return;
        sent = now;
        const p: JobProgress = {
          worker: name,
          attempt,
          epoch: m.epoch + 1,
          epochs: m.epochs,
          fraction: total ? done / total : 0,
          eta_s: rate > 0 ? (total - done) / rate : null,
        };
        void job.updateProgress(p).catch(() => {});
      } else outcome = m;
    });
    child.send(config);
    const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((res, rej) => {
      child.on('error', rej);
      child.on('close', (c, s) => res([c, s]));
    });
    signal?.removeEventListener('abort', onAbort);
    const end = outcome as ChildMessage | null;
    if (end?.type === 'done') return end.summary;
    if (end?.type === 'error') throw end.retryable ? new Error(end.message) : new UnrecoverableError(end.message);
    if (signal?.aborted) throw new Error(`the training was stopped: ${String(signal.reason ?? 'cancelled')}`);
    // Killed (out of memory, by hand) or crashed in native code: another attempt may succeed.
    throw new Error(
      `the training process ended by ${sig ?? `exit ${code}`} without a result${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
    );
  }

  const worker = new Worker<TrainJobData, TrainSummary>(
    a.name,
    async (job, token, signal) => {
      const d = checkJobData(job);
      try {
        checkRunDir(d.run, d.token, name);
      } catch (e) {
        throw new UnrecoverableError((e as Error).message);
      }
      const done = readTrainResult(d.config.out);
      if (done) return done;
      try {
        return await train(job, d, signal);
      } catch (e) {
        if (!closing || !token) throw e;
        // Shutting down: hand the job back untouched; the next worker resumes its checkpoint.
        await job.moveToWait(token);
        throw new WaitingError();
      }
    },
    {
      connection: a.connection,
      prefix: KEY_PREFIX,
      name,
      concurrency: o.concurrency,
      lockDuration: o.lockDurationMs ?? LOCK_DEFAULTS.lockDurationMs,
      stalledInterval: o.stalledIntervalMs ?? LOCK_DEFAULTS.stalledIntervalMs,
      maxStalledCount: LOCK_DEFAULTS.maxStalledCount,
    },
  );
  // Redis errors repeat while the server is away (the worker reconnects by itself): say so once a minute at most.
  let lastError = 0;
  worker.on('error', (e) => {
    if (Date.now() - lastError < 60_000) return;
    lastError = Date.now();
    o.log(`queue error (${a.url}): ${e.message}`);
  });
  // Another worker may take over a job whose lock this one lost: stop training it here.
  worker.on('lockRenewalFailed', (ids: string[]) => {
    for (const id of ids) worker.cancelJob(id, 'the job lock was lost');
  });
  worker.on('completed', (job, r) =>
    o.log(`${job.data.id}: done, ${(100 * r.test_acc).toFixed(2)}% (${join(job.data.config.out, 'result.json')})`),
  );
  worker.on(
    'failed',
    (job, e) =>
      job &&
      o.log(
        `${job.data.id}: attempt ${job.attemptsStarted} failed${e instanceof UnrecoverableError ? ' for good' : ''}: ${e.message}`,
      ),
  );
  await worker.waitUntilReady();
  o.log(
    `worker ${name}: queue '${a.name}' at ${a.url}, device ${device}, ${o.concurrency} training${o.concurrency > 1 ? 's' : ''} at once, ${o.threads} thread${o.threads > 1 ? 's' : ''} each`,
  );
  return {
    name,
    async close() {
      closing = true;
      worker.cancelAllJobs('the worker is shutting down');
      await worker.close();
    },
  };
}
