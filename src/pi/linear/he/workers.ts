// The server's worker threads for HE output groups (Node only; the browser client never loads this module). Each
// worker holds its own engine for the parameter set and computes whole output groups of a layer from a HeLayerJob
// (linear/he/preprocess.ts groupResponses): the layer's uploads are copied to it once per layer, each group's
// responses come back as it finishes. Workers serve every session of the process, one layer job at a time each,
// in the order the jobs were posted.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { ResponseCts } from '../../he/serialize.js';
import type { HeParams } from '../../he/params.js';
import { HE_PARAMS } from '../../he/params.js';
import type { HeLayerJob, HeParallel } from './preprocess.js';

/** What a worker posts back. */
export type WorkerReply =
  | { job: number; og: number; cts: ResponseCts[] }
  | { job: number; error: string };

interface Pending { resolve: (c: ResponseCts[]) => void; reject: (e: Error) => void }

/** Default worker count: one per core beyond the server's own thread, at most 3. */
export const defaultHeThreads = () => Math.max(0, Math.min(3, availableParallelism() - 1));

export class HeWorkerPool implements HeParallel {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private jobs = 0;
  private dead: Error | null = null;

  constructor(readonly threads: number, readonly params: HeParams = HE_PARAMS) {
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`HE worker threads must be a positive integer, got ${threads}`);
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { params } });
      w.unref();
      w.on('message', (r: WorkerReply) => this.reply(r));
      w.on('error', (e) => this.fail(new Error(`HE worker ${i}: ${e.message}`)));
      w.on('exit', (code) => this.fail(new Error(`HE worker ${i} exited with code ${code}`)));
      this.workers.push(w);
    }
  }

  private reply(r: WorkerReply): void {
    if ('error' in r) {
      for (const [k, p] of this.pending) if (k.startsWith(`${r.job}/`)) { this.pending.delete(k); p.reject(new Error(r.error)); }
      return;
    }
    const k = `${r.job}/${r.og}`, p = this.pending.get(k);
    if (p) { this.pending.delete(k); p.resolve(r.cts); }
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  groups(job: HeLayerJob, ogs: readonly number[]): Promise<ResponseCts[]>[] {
    const out = ogs.map((og) => new Promise<ResponseCts[]>((resolve, reject) => {
      if (this.dead) reject(this.dead);
      else this.pending.set(`${this.jobs}/${og}`, { resolve, reject });
    }));
    if (this.dead || !ogs.length) return out;
    // groups dealt round-robin over the workers; each worker gets the layer's data once
    const per: number[][] = this.workers.map(() => []);
    ogs.forEach((og, k) => per[(this.next + k) % this.workers.length]!.push(og));
    this.next = (this.next + ogs.length) % this.workers.length;
    per.forEach((mine, i) => { if (mine.length) this.workers[i]!.postMessage({ id: this.jobs, job, ogs: mine }); });
    this.jobs++;
    return out;
  }

  async close(): Promise<void> {
    this.fail(new Error('HE worker pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
