// `deepreduce queue status`: what a queue holds: jobs waiting, running (epoch, ETA, worker), done and failed.
import { Queue } from 'bullmq';
import type { TrainSummary } from '../train/run.js';
import { checkRedis, KEY_PREFIX, parseQueueUrl } from './connection.js';
import { progressText, type JobProgress, type TrainJobData } from './spec.js';

export interface QueueStatus {
  queue: string;
  url: string;
  workers: number;
  counts: { waiting: number; running: number; retrying: number; done: number; failed: number };
  running: { job: string; progress: JobProgress | null }[];
  waiting: string[];
  retrying: { job: string; attempts: number; reason: string }[];
  failed: { job: string; attempts: number; reason: string; finished: string | null }[];
  done: { job: string; acc: number | null; finished: string | null }[];
}

/** `limit` caps each list (the counts are always complete). */
export async function queueStatus(url: string, limit = 20): Promise<QueueStatus> {
  const a = parseQueueUrl(url);
  await checkRedis(a);
  const q = new Queue<TrainJobData, TrainSummary>(a.name, { connection: a.connection, prefix: KEY_PREFIX });
  try {
    const c = await q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed');
    const at = (t: number | undefined) => (t ? new Date(t).toISOString() : null);
    const [active, waiting, delayed, failed, completed] = await Promise.all([
      q.getJobs(['active'], 0, limit - 1),
      q.getJobs(['waiting', 'prioritized'], 0, limit - 1, true),
      q.getJobs(['delayed'], 0, limit - 1),
      q.getJobs(['failed'], 0, limit - 1),
      q.getJobs(['completed'], 0, limit - 1),
    ]);
    return {
      queue: a.name,
      url: a.url,
      workers: await q.getWorkersCount(),
      counts: {
        waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
        running: c.active ?? 0,
        retrying: c.delayed ?? 0,
        done: c.completed ?? 0,
        failed: c.failed ?? 0,
      },
      running: active.map((j) => ({
        job: j.id!,
        progress: typeof j.progress === 'object' ? (j.progress as unknown as JobProgress) : null,
      })),
      waiting: waiting.map((j) => j.id!),
      retrying: delayed.map((j) => ({ job: j.id!, attempts: j.attemptsMade, reason: j.failedReason ?? '' })),
      failed: failed.map((j) => ({
        job: j.id!,
        attempts: j.attemptsMade,
        reason: j.failedReason ?? '',
        finished: at(j.finishedOn),
      })),
      done: completed.map((j) => ({
        job: j.id!,
        acc:
          typeof (j.returnvalue as TrainSummary | null)?.test_acc === 'number'
            ? (j.returnvalue as TrainSummary).test_acc
            : null,
        finished: at(j.finishedOn),
      })),
    };
  } finally {
    await q.close();
  }
}

export function statusLines(s: QueueStatus): string[] {
  const n = s.counts;
  /** A titled list of the shown jobs, and how many more there are; nothing when none is shown. */
  const section = (title: string, lines: string[], total: number) =>
    lines.length ? [title, ...lines, ...(total > lines.length ? [`  ... and ${total - lines.length} more`] : [])] : [];
  return [
    `queue '${s.queue}' at ${s.url}: ${n.waiting} waiting, ${n.running} running, ${n.retrying} to retry, ${n.done} done, ${n.failed} failed; ${s.workers} worker connection${s.workers === 1 ? '' : 's'}`,
    ...section(
      'running:',
      s.running.map(
        (r) =>
          `  ${r.job}: ${progressText(r.progress)}${r.progress ? ` on ${r.progress.worker} (attempt ${r.progress.attempt})` : ''}`,
      ),
      n.running,
    ),
    ...section(
      'waiting:',
      s.waiting.map((j) => `  ${j}`),
      n.waiting,
    ),
    ...section(
      'to retry:',
      s.retrying.map((r) => `  ${r.job}: attempt ${r.attempts} failed: ${r.reason}`),
      n.retrying,
    ),
    ...section(
      'failed:',
      s.failed.map((f) => `  ${f.job} (${f.attempts} attempt${f.attempts === 1 ? '' : 's'}): ${f.reason}`),
      n.failed,
    ),
    ...section(
      'done (newest first):',
      s.done.map((d) => `  ${d.job}${d.acc !== null ? `: ${(100 * d.acc).toFixed(2)}%` : ''}`),
      n.done,
    ),
  ];
}
