// Runs a stage's independent trainings: in this process (jobs = 1), in parallel child processes, or (src/queue) on
// a job queue's workers. Every runner gives the same outcome, so the pipeline writes the same results either way.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { defaultThreads } from '../engine/index.js';
import { writeFileAtomic } from '../util/fs.js';
import { readTrainResult, trainModel, type TrainConfig, type TrainSummary } from '../train/run.js';

export interface Job {
  id: string;
  config: TrainConfig;
}

/** A training that failed for good, with its error (results.json lists these). */
export interface JobFailure {
  id: string;
  dir: string;
  error: string;
  /** attempts made (queue runs; a local run makes one) */
  attempts: number;
}

export interface JobOutcome {
  results: Map<string, TrainSummary>;
  failed: JobFailure[];
}

/** Runs (or resumes) every job of a stage; one failure does not stop the others. onDone is called as each finishes. */
export interface JobRunner {
  /** How the jobs run, for the log ("2 at once", "on the queue ..."). */
  readonly describe: string;
  run(list: Job[], onDone: (job: Job, r: TrainSummary) => void): Promise<JobOutcome>;
}

/** The training process's own entry (train/entry.ts), not the CLI. */
const trainEntry = () => fileURLToPath(new URL('../train/entry.js', import.meta.url));

/** Trains one job, resuming its checkpoint if a previous attempt was killed; a finished job is not run again. */
async function runOne(job: Job, inProcess: boolean, threads: number): Promise<TrainSummary> {
  const done = readTrainResult(job.config.out);
  if (done) return done;
  const config: TrainConfig = { ...job.config, resume: true, options: { ...job.config.options, threads, quiet: true } };
  if (inProcess) return trainModel(config);
  const file = join(job.config.out, 'job.json');
  writeFileAtomic(file, JSON.stringify(config));
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [trainEntry(), file], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, OMP_NUM_THREADS: String(threads) },
    });
    let err = '';
    p.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    p.on('error', reject);
    p.on('exit', (code, sig) =>
      code === 0 ? resolve() : reject(new Error(`training ${job.id} failed (${sig ?? `exit ${code}`}): ${err.trim()}`)),
    );
  });
  const r = readTrainResult(job.config.out);
  if (!r) throw new Error(`training ${job.id} exited without ${join(job.config.out, 'result.json')}`);
  return r;
}

/** Runs jobs on this machine with at most `jobs` at once; cores (or DEEPREDUCE_THREADS) are split between them. */
export function localRunner(jobs: number): JobRunner {
  return {
    describe: `${jobs} at once`,
    async run(list, onDone) {
      const results = new Map<string, TrainSummary>();
      const failed: JobFailure[] = [];
      const width = Math.max(1, Math.min(jobs, list.length));
      // the cores, or DEEPREDUCE_THREADS on a shared machine (two threads spin-waiting on a busy shared core trained 4-8x slower than one)
      const threads = Math.max(1, Math.floor(defaultThreads() / width));
      let next = 0;
      const worker = async () => {
        while (next < list.length) {
          const job = list[next++]!;
          let r: TrainSummary;
          try {
            r = await runOne(job, width === 1, threads);
          } catch (e) {
            failed.push({ id: job.id, dir: job.config.out, error: (e as Error).message, attempts: 1 });
            continue;
          }
          results.set(job.id, r);
          onDone(job, r);
        }
      };
      await Promise.all(Array.from({ length: width }, worker));
      return { results, failed };
    },
  };
}
