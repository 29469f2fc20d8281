// What travels on the queue: a training job's data, its progress, the retry and lock policy, and the marker that
// proves a worker sees the run directory the job was submitted from.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { JobsOptions } from 'bullmq';
import type { StepProgress } from '../train/trainer.js';
import type { TrainConfig, TrainSummary } from '../train/run.js';
import { writeFileAtomic } from '../util/fs.js';

export interface TrainJobData {
  kind: 'deepreduce-train';
  /** The run directory (absolute): every worker must see it at this path. */
  run: string;
  /** The run marker's token (RUN/queue-run.json). */
  token: string;
  /** The training's id within the run: baseline, criticality/stage1, cull1-a1-r1, ... */
  id: string;
  config: TrainConfig;
}

/** What a worker reports while a job trains (BullMQ job progress). */
export interface JobProgress {
  worker: string;
  attempt: number;
  /** 1-based epoch in progress */
  epoch: number;
  epochs: number;
  /** share of the whole training done, 0..1 */
  fraction: number;
  /** seconds left at this attempt's rate, null until it has one */
  eta_s: number | null;
}

/**
 * Retries: a failure a retry can fix (the training process died, a transient I/O or CUDA memory error) gets 3 attempts
 * in all, 30 s then 60 s apart; a deterministic one (bad config, missing data) fails at once (UnrecoverableError).
 * Finished jobs stay listed for `queue status` for 14 days, failed ones for 30.
 */
export const JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 30_000 },
  removeOnComplete: { age: 14 * 86_400 },
  removeOnFail: { age: 30 * 86_400 },
};

/**
 * Locks: a worker renews its jobs' locks every lockDuration / 2. A worker that died stops renewing; within lockDuration
 * plus up to two stalledInterval checks another worker moves the job back to waiting, and it resumes from its last
 * epoch checkpoint. Trainings run in child processes, so the worker's event loop is free to renew on time. A job
 * found stalled more than maxStalledCount times (it keeps killing its workers) fails.
 */
export const LOCK_DEFAULTS = { lockDurationMs: 60_000, stalledIntervalMs: 30_000, maxStalledCount: 2 };

/** Messages from a worker's training process. */
export type ChildMessage =
  | ({ type: 'progress' } & StepProgress)
  | { type: 'log'; line: string }
  | { type: 'done'; summary: TrainSummary }
  | { type: 'error'; message: string; retryable: boolean };

export const MARKER = 'queue-run.json';

/** The run's token: written once into RUN/queue-run.json by the submitting `reduce`, reused when it is run again. */
export function ensureRunMarker(run: string, queue: string): string {
  const file = join(run, MARKER);
  if (existsSync(file)) {
    const m = JSON.parse(readFileSync(file, 'utf8')) as { token?: unknown };
    if (typeof m.token === 'string' && /^[0-9a-f]{32}$/.test(m.token)) return m.token;
    throw new Error(`${file}: field 'token' is missing or malformed (remove the file to start a new queue run)`);
  }
  const token = randomBytes(16).toString('hex');
  writeFileAtomic(
    file,
    `${JSON.stringify({ token, queue, created: new Date().toISOString(), host: hostname() }, null, 2)}\n`,
  );
  return token;
}

/** Readable, unique job id: the run folder's name and token, then the training id (BullMQ forbids ':' in ids). */
export function jobIdFor(run: string, token: string, id: string): string {
  return `${basename(run).replace(/[^A-Za-z0-9._-]/g, '_')}-${token.slice(0, 8)}/${id}`;
}

/**
 * Throws unless this machine sees the same run directory the job was submitted from (same marker token) and can
 * write there: artifacts must go to storage every worker shares.
 */
export function checkRunDir(run: string, token: string, worker: string): void {
  const file = join(run, MARKER);
  const shared = 'the run directory must be on storage every worker shares (e.g. NFS), mounted at the same path';
  let m: { token?: unknown };
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as { token?: unknown };
  } catch (e) {
    throw new Error(
      `worker ${worker} cannot see the run directory ${run} (${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): ${shared}`,
    );
  }
  if (m.token !== token)
    throw new Error(
      `worker ${worker}: ${run} here is not the run directory the job was submitted from (${MARKER} has another token): ${shared}`,
    );
  const probe = join(run, `.write-probe-${hostname()}-${process.pid}`);
  try {
    writeFileSync(probe, worker);
    unlinkSync(probe);
  } catch (e) {
    throw new Error(
      `worker ${worker} cannot write to the run directory ${run} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): ${shared}, writable by the workers`,
    );
  }
}

const TRANSIENT_CODES = new Set([
  'EIO',
  'ESTALE',
  'ENOSPC',
  'EAGAIN',
  'EBUSY',
  'EMFILE',
  'ENFILE',
  'ENOMEM',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * Whether a training error may go away on another attempt: I/O trouble of shared storage, exhausted file handles or
 * memory, CUDA running out of memory or faulting. Anything else a training throws (bad config, missing dataset,
 * divergence) comes back the same on every attempt, so it is not retried.
 */
export function isRetryable(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  return /out of memory|CUDA error|CUBLAS_STATUS_ALLOC_FAILED/i.test((e as Error | null)?.message ?? '');
}

export const fmtDuration = (s: number): string =>
  s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`
      : `${Math.max(0, Math.round(s))}s`;

/** "epoch 2/5, 31%, ETA 4m10s" */
export function progressText(p: JobProgress | null | undefined): string {
  if (!p || typeof p.epoch !== 'number') return 'starting';
  return `epoch ${p.epoch}/${p.epochs}, ${(100 * p.fraction).toFixed(0)}%, ETA ${p.eta_s === null ? '?' : fmtDuration(p.eta_s)}`;
}
