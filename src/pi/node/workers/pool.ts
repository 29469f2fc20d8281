// The server's worker threads (Node only; the browser client never loads this module): one pool per process, shared by
// every session. Each worker (thread.ts) holds its own HE engine and computes, on request,
//   - whole output groups of an HE layer (linear/he/preprocess.ts groupResponses), the layer's uploads copied to it
//     once per layer, each group's responses sent back as it finishes;
//   - the bit planes of KK13 pads for a slice of a sender batch (ot/kkot.ts kkPadPlanes).
// Jobs run one at a time per worker, in the order they were posted. The session's own thread keeps part of every job,
// so on this project's 2-core machine one worker uses the core the client leaves idle while it waits.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { ResponseCts } from '../../he/serialize.js';
import { HE_PARAMS, type HeParams } from '../../he/params.js';
import type { HeLayerJob, HeParallel } from '../../linear/he/preprocess.js';
import type { KkPlanesHelper } from '../../ot/kkot.js';

/** What the pool posts to a worker. */
export type WorkerRequest =
  | { kind: 'he'; id: number; job: HeLayerJob; ogs: number[] }
  | { kind: 'kk'; id: number; tab: Int32Array; q: Int32Array; first: number; m: number; N: number; planes: number };

/** What a worker posts back: one HE group, KK13 planes, or the failure of a request. */
export type WorkerReply =
  | { id: number; og: number; cts: ResponseCts[] }
  | { id: number; planes: Uint32Array }
  | { id: number; error: string };

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
}

/** Default worker count: one per core beyond the server's own thread, at most 3. */
export const defaultWorkerThreads = () => Math.max(0, Math.min(3, availableParallelism() - 1));

export type ServerWorkers = HeParallel & KkPlanesHelper;

export class WorkerPool implements ServerWorkers {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private ids = 0;
  private dead: Error | null = null;

  /** False once a worker has failed or the pool is closed: sessions then do all their work on their own thread. */
  get alive(): boolean {
    return !this.dead;
  }

  constructor(
    readonly threads: number,
    readonly params: HeParams = HE_PARAMS,
  ) {
    if (!Number.isInteger(threads) || threads < 1)
      throw new Error(`worker threads must be a positive integer, got ${threads}`);
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL('./thread.js', import.meta.url), { workerData: { params } });
      w.unref();
      w.on('message', (r: WorkerReply) => this.reply(r));
      w.on('error', (e) => this.fail(new Error(`server worker ${i}: ${e.message}`)));
      w.on('exit', (code) => this.fail(new Error(`server worker ${i} exited with code ${code}`)));
      this.workers.push(w);
    }
  }

  private reply(r: WorkerReply): void {
    if ('error' in r) {
      for (const [k, p] of this.pending)
        if (k === `${r.id}` || k.startsWith(`${r.id}/`)) {
          this.pending.delete(k);
          p.reject(new Error(r.error));
        }
      return;
    }
    const k = 'og' in r ? `${r.id}/${r.og}` : `${r.id}`,
      p = this.pending.get(k);
    if (!p) return;
    this.pending.delete(k);
    p.resolve('og' in r ? r.cts : r.planes);
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private expect<T>(key: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.dead) reject(this.dead);
      else this.pending.set(key, { resolve, reject });
    });
  }

  private worker(): Worker {
    const w = this.workers[this.next]!;
    this.next = (this.next + 1) % this.workers.length;
    return w;
  }

  groups(job: HeLayerJob, ogs: readonly number[]): Promise<ResponseCts[]>[] {
    const id = this.ids++,
      out = ogs.map((og) => this.expect<ResponseCts[]>(`${id}/${og}`));
    if (this.dead || !ogs.length) return out;
    // groups dealt round-robin over the workers; each worker gets the layer's data once
    const per: number[][] = this.workers.map(() => []);
    ogs.forEach((og, k) => per[(this.next + k) % this.workers.length]!.push(og));
    this.next = (this.next + ogs.length) % this.workers.length;
    per.forEach((mine, i) => {
      if (mine.length) this.workers[i]!.postMessage({ kind: 'he', id, job, ogs: mine } satisfies WorkerRequest);
    });
    return out;
  }

  kkPlanes(tab: Int32Array, q: Int32Array, first: number, m: number, N: number, planes: number): Promise<Uint32Array> {
    const id = this.ids++,
      out = this.expect<Uint32Array>(`${id}`);
    if (!this.dead)
      this.worker().postMessage({ kind: 'kk', id, tab, q, first, m, N, planes } satisfies WorkerRequest, [
        q.buffer as ArrayBuffer,
      ]);
    return out;
  }

  async close(): Promise<void> {
    this.fail(new Error('server worker pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
