// Runs independent trainings, in this process (jobs = 1) or in parallel child processes.
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

const cli = () => fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Trains one job, resuming its checkpoint if a previous attempt was killed; a finished job is not run again. */
async function runOne(job: Job, inProcess: boolean, threads: number): Promise<TrainSummary> {
  const done = readTrainResult(job.config.out);
  if (done) return done;
  const config: TrainConfig = { ...job.config, resume: true, options: { ...job.config.options, threads, quiet: true } };
  if (inProcess) return trainModel(config);
  const file = join(job.config.out, 'job.json');
  writeFileAtomic(file, JSON.stringify(config));
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [cli(), 'train-config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
    let err = '';
    p.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    p.on('error', reject);
    p.on('exit', (code, sig) => (code === 0 ? resolve() : reject(new Error(`training ${job.id} failed (${sig ?? `exit ${code}`}): ${err.trim()}`))));
  });
  const r = readTrainResult(job.config.out);
  if (!r) throw new Error(`training ${job.id} exited without ${join(job.config.out, 'result.json')}`);
  return r;
}

/** Runs jobs with at most `jobs` at once; cores are split between them. Calls onDone as each finishes. */
export async function runJobs(list: Job[], jobs: number, onDone: (job: Job, r: TrainSummary) => void): Promise<Map<string, TrainSummary>> {
  const results = new Map<string, TrainSummary>();
  const width = Math.max(1, Math.min(jobs, list.length));
  // the cores, or DEEPREDUCE_THREADS on a shared machine (two threads spin-waiting on a busy shared core trained 4-8x slower than one)
  const threads = Math.max(1, Math.floor(defaultThreads() / width));
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const job = list[next++]!;
      const r = await runOne(job, width === 1, threads);
      results.set(job.id, r);
      onDone(job, r);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}
