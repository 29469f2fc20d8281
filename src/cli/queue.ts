import type { Command } from 'commander';
import { defaultThreads } from '../engine/index.js';
import { startWorker } from '../queue/worker.js';
import { queueStatus, statusLines } from '../queue/status.js';

/** The number `v` reads as when it passes `ok`; otherwise "NAME: expected WHAT, got 'V'". */
const numberOf = (name: string, ok: (n: number) => boolean, what: string) => (v: string) => {
  const n = Number(v);
  if (!ok(n)) throw new Error(`${name}: expected ${what}, got '${v}'`);
  return n;
};
const posInt = (name: string) => numberOf(name, (n) => Number.isInteger(n) && n >= 1, 'a whole number >= 1');
const seconds = (name: string) => numberOf(name, (n) => Number.isFinite(n) && n > 0, 'seconds > 0');

export function registerQueueCommands(program: Command): void {
  program
    .command('worker')
    .description('run training jobs from a queue (deepreduce reduce --queue) on this machine; see docs/queue.md')
    .requiredOption('--queue <url>', 'the queue: redis://HOST:PORT/NAME (password in DEEPREDUCE_REDIS_PASSWORD)')
    .option('--device <name>', 'cpu or cuda:N (needs the addon built against a CUDA LibTorch)', 'cpu')
    .option('--concurrency <k>', 'trainings at once, each in its own process', posInt('--concurrency'), 1)
    .option(
      '--threads <t>',
      'libtorch threads per training (default: cores, or DEEPREDUCE_THREADS, / concurrency)',
      posInt('--threads'),
    )
    .option('--name <name>', 'worker name in queue status and job logs (default HOST/PID)')
    .option(
      '--lock-duration <s>',
      "job lock lifetime: a dead worker's job is taken over after about this (default 60)",
      seconds('--lock-duration'),
    )
    .option(
      '--stalled-interval <s>',
      'how often workers look for jobs whose worker died (default 30)',
      seconds('--stalled-interval'),
    )
    .action(async (o: Record<string, any>) => {
      const log = (s: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${s}`);
      const w = await startWorker({
        queue: o.queue,
        device: o.device,
        concurrency: o.concurrency,
        threads: o.threads ?? Math.max(1, Math.floor(defaultThreads() / o.concurrency)),
        name: o.name,
        log,
        ...(o.lockDuration ? { lockDurationMs: 1000 * o.lockDuration } : {}),
        ...(o.stalledInterval ? { stalledIntervalMs: 1000 * o.stalledInterval } : {}),
      });
      let stopping = false;
      const stop = (sig: string) => {
        // A second signal does not wait for the jobs to be handed back.
        if (stopping) process.exit(1);
        stopping = true;
        log(`${sig}: stopping; running trainings go back to the queue`);
        w.close().then(
          () => process.exit(0),
          (e: Error) => {
            log(`stopping: ${e.message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });

  program
    .command('queue')
    .description('inspect a job queue')
    .command('status')
    .description('jobs waiting, running (epoch, ETA, worker), to retry, done and failed')
    .requiredOption('--queue <url>', 'the queue: redis://HOST:PORT/NAME')
    .option('--limit <n>', 'jobs listed per state', posInt('--limit'), 20)
    .option('--json', 'JSON output')
    .action(async (o: Record<string, any>) => {
      const s = await queueStatus(o.queue, o.limit);
      console.log(o.json ? JSON.stringify(s, null, 2) : statusLines(s).join('\n'));
    });
}
