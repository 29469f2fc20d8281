// The pipeline's trainings on a BullMQ queue: each stage's jobs are enqueued once the previous stage's results are in
// (the pipeline's own order: baseline and criticality, then the candidates), and the stage waits for its workers.
import { isAbsolute, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, type Job as QueueJob } from 'bullmq';
import type { Job, JobFailure, JobRunner } from '../reduce/jobs.js';
import { readTrainResult, type TrainConfig, type TrainSummary } from '../train/run.js';
import { checkRedis, KEY_PREFIX, parseQueueUrl } from './connection.js';
import { QueueDisplay } from './display.js';
import { ensureRunMarker, JOB_OPTIONS, jobIdFor, type JobProgress, type TrainJobData } from './spec.js';

export interface QueueRunnerOptions {
  quiet?: boolean;
  log?: (s: string) => void;
  /** how often the stage's jobs are looked at (default 1 s) */
  pollMs?: number;
}

const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(p));

/** Workers on other machines resolve paths against nothing of ours: every path a job names is made absolute. */
function absolutePaths(c: TrainConfig): TrainConfig {
  return {
    ...c,
    out: abs(c.out)!,
    dataDir: abs(c.dataDir),
    teacher: abs(c.teacher),
    init: abs(c.init),
    maskFile: abs(c.maskFile),
  };
}

/** Runs a reduce's trainings on the queue at `url`; `run` is the run directory every worker must see. */
export function queueRunner(url: string, run: string, o: QueueRunnerOptions = {}): JobRunner {
  const a = parseQueueUrl(url);
  const runDir = resolve(run);
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  return {
    describe: `on the queue '${a.name}' at ${a.url}`,
    async run(list: Job[], onDone: (job: Job, r: TrainSummary) => void) {
      const results = new Map<string, TrainSummary>();
      const failed: JobFailure[] = [];
      await checkRedis(a);
      const token = ensureRunMarker(runDir, a.url);
      const queue = new Queue<TrainJobData, TrainSummary>(a.name, { connection: a.connection, prefix: KEY_PREFIX });
      let lastError = 0;
      queue.on('error', (e) => {
        if (Date.now() - lastError < 60_000) return;
        lastError = Date.now();
        log(`queue error (${a.url}): ${e.message}; waiting for Redis`);
      });
      const display = new QueueDisplay(process.stderr, o.quiet);
      try {
        const pending = new Map<string, { job: Job; out: string }>();
        for (const job of list) {
          const config = absolutePaths(job.config);
          const done = readTrainResult(config.out);
          if (done) {
            results.set(job.id, done);
            onDone(job, done);
            continue;
          }
          const jobId = jobIdFor(runDir, token, job.id);
          pending.set(jobId, { job, out: config.out });
          const old = await queue.getJob(jobId);
          if (old) {
            // Still queued or training from an earlier `reduce` of this run: wait for it. Finished (result.json gone)
            // or failed: run it again, as a local rerun would.
            const state = await old.getState();
            if (state !== 'completed' && state !== 'failed' && state !== 'unknown') continue;
            await old.remove();
          }
          await queue.add(
            job.id,
            { kind: 'deepreduce-train', run: runDir, token, id: job.id, config },
            { ...JOB_OPTIONS, jobId },
          );
        }
        while (pending.size) {
          const running: { id: string; progress: JobProgress | null }[] = [];
          let waiting = 0;
          let retrying = 0;
          for (const [jobId, { job, out }] of pending) {
            const j = (await queue.getJob(jobId)) as QueueJob<TrainJobData, TrainSummary> | undefined;
            const state = j ? await j.getState() : 'unknown';
            if (!j || state === 'unknown') {
              failed.push({
                id: job.id,
                dir: out,
                error: `job ${jobId} was removed from the queue before it finished`,
                attempts: 0,
              });
              pending.delete(jobId);
            } else if (state === 'completed') {
              pending.delete(jobId);
              const r = readTrainResult(out);
              if (!r) {
                failed.push({
                  id: job.id,
                  dir: out,
                  attempts: j.attemptsMade,
                  error: `a worker finished ${job.id}, but ${join(out, 'result.json')} is not visible here: the run directory must be on storage this machine and every worker share`,
                });
                continue;
              }
              results.set(job.id, r);
              display.pause(() => onDone(job, r));
            } else if (state === 'failed') {
              pending.delete(jobId);
              failed.push({ id: job.id, dir: out, error: j.failedReason ?? 'failed', attempts: j.attemptsMade });
              display.pause(() =>
                log(
                  `  ${job.id} FAILED after ${j.attemptsMade} attempt${j.attemptsMade === 1 ? '' : 's'}: ${j.failedReason}`,
                ),
              );
            } else if (state === 'active')
              running.push({
                id: job.id,
                progress: typeof j.progress === 'object' ? (j.progress as unknown as JobProgress) : null,
              });
            else if (state === 'delayed') retrying++;
            else waiting++;
          }
          display.render({ total: list.length, done: results.size, failed: failed.length, waiting, retrying, running });
          if (pending.size) await sleep(o.pollMs ?? 1000);
        }
      } finally {
        display.stop();
        await queue.close();
      }
      return { results, failed };
    },
  };
}
