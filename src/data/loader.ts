import { Worker } from 'node:worker_threads';
import { checkAugment, makeBatch, outputShape, type AugmentOptions, type ImageSource } from './augment.js';
import { deriveSeed, Rng } from './rng.js';

/** One batch of NCHW float images and integer labels (the trainer's `Batch`). */
export interface Batch {
  x: Float32Array;
  y: Int32Array;
  n: number;
  shape: [number, number, number, number];
}

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch with a permutation seeded by (seed, epoch). Default true. */
  shuffle?: boolean;
  /** Drop the last incomplete batch. Default false. */
  dropLast?: boolean;
  /** Default 0. */
  seed?: number;
  /** Padding/crop/flip and normalisation. */
  augment: AugmentOptions;
  /** Batches requested ahead of the consumer (worker loader only). Default 4. */
  prefetch?: number;
  /** Worker threads (worker loader only). Default 1; results come back in order whatever the count. */
  workers?: number;
}

const SHUFFLE_STREAM = 0x5348;
const AUGMENT_STREAM = 0x4155;

export function batchesPerEpoch(n: number, o: Pick<LoaderOptions, 'batchSize' | 'dropLast'>): number {
  return o.dropLast ? Math.floor(n / o.batchSize) : Math.ceil(n / o.batchSize);
}

/** The sample order of an epoch: identity, or a permutation determined by (seed, epoch) alone. */
export function epochOrder(n: number, o: Pick<LoaderOptions, 'shuffle' | 'seed'>, epoch: number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (o.shuffle ?? true) new Rng(deriveSeed(o.seed ?? 0, epoch, SHUFFLE_STREAM)).shuffle(order);
  return order;
}

/** Augmentation seed of batch k of an epoch: per batch, so batches can be made in any order or thread. */
export function batchSeed(seed: number, epoch: number, k: number): number {
  return deriveSeed(seed, epoch, k, AUGMENT_STREAM);
}

function checkOptions(src: ImageSource, o: LoaderOptions): void {
  if (!(Number.isInteger(o.batchSize) && o.batchSize > 0))
    throw new Error(`batchSize ${o.batchSize} must be a positive integer`);
  checkAugment(src, o.augment);
}

/**
 * Batches of one epoch made on the calling thread: the reference the worker loader reproduces byte for byte,
 * and the evaluation path (pass augment without crop/flip and shuffle: false).
 */
export function* syncBatches(src: ImageSource, o: LoaderOptions, epoch = 0): Generator<Batch> {
  checkOptions(src, o);
  const [c, H, W] = outputShape(src, o.augment);
  const order = epochOrder(src.n, o, epoch);
  const nb = batchesPerEpoch(src.n, o);
  for (let k = 0; k < nb; k++) {
    const idx = order.subarray(k * o.batchSize, Math.min(src.n, (k + 1) * o.batchSize));
    const { x, y } = makeBatch(src, idx, o.augment, batchSeed(o.seed ?? 0, epoch, k));
    yield { x, y, n: idx.length, shape: [idx.length, c, H, W] };
  }
}

interface Pending {
  resolve: (b: Batch) => void;
  reject: (e: Error) => void;
  n: number;
}

/** What a loader worker receives once (shared image memory: no copy). */
export interface WorkerInit {
  src: ImageSource;
  augment: AugmentOptions;
}

function shared<T extends Uint8Array | Int32Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const copy = new (a.constructor as new (b: SharedArrayBuffer) => T)(new SharedArrayBuffer(a.byteLength));
  copy.set(a as never);
  return copy;
}

/**
 * Makes training batches in worker threads, `prefetch` ahead of the consumer, transferring the batch buffers back.
 * Batch k of epoch e depends only on (seed, e, k), so the output equals `syncBatches` whatever the timing.
 * Idle workers do not keep the process alive; call `close()` when done.
 */
export class DataLoader {
  readonly batchesPerEpoch: number;
  readonly shape: [number, number, number];
  readonly #src: ImageSource;
  readonly #o: LoaderOptions;
  #workers: Worker[] | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #failure: Error | null = null;

  constructor(src: ImageSource, o: LoaderOptions) {
    checkOptions(src, o);
    if (o.prefetch !== undefined && !(o.prefetch >= 1)) throw new Error(`prefetch ${o.prefetch} must be >= 1`);
    if (o.workers !== undefined && !(Number.isInteger(o.workers) && o.workers >= 1))
      throw new Error(`workers ${o.workers} must be an integer >= 1`);
    // Workers get shared memory; a dataset built on ordinary buffers is copied once here.
    this.#src = { ...src, images: shared(src.images), labels: shared(src.labels) };
    this.#o = o;
    this.batchesPerEpoch = batchesPerEpoch(src.n, o);
    this.shape = outputShape(src, o.augment);
  }

  /** The batches of epoch `epoch` (any number of epochs may be iterated, also concurrently). */
  async *epoch(epoch: number): AsyncGenerator<Batch> {
    const order = epochOrder(this.#src.n, this.#o, epoch);
    const bs = this.#o.batchSize;
    const ahead = this.#o.prefetch ?? 4;
    const queue: Promise<Batch>[] = [];
    let next = 0;
    const fill = (): void => {
      while (next < this.batchesPerEpoch && queue.length < ahead) {
        const k = next++;
        // a copy, transferred: the worker owns it
        const idx = order.slice(k * bs, Math.min(this.#src.n, (k + 1) * bs));
        queue.push(this.#request(k, idx, batchSeed(this.#o.seed ?? 0, epoch, k)));
      }
    };
    fill();
    while (queue.length) {
      const b = await queue.shift()!;
      fill();
      yield b;
    }
  }

  /** Stops the workers; batches still pending are rejected. */
  async close(): Promise<void> {
    const ws = this.#workers ?? [];
    this.#workers = null;
    this.#fail(new Error('data loader closed'));
    this.#failure = null;
    await Promise.all(ws.map((w) => w.terminate()));
  }

  #start(): Worker[] {
    const init: WorkerInit = { src: this.#src, augment: this.#o.augment };
    const ws: Worker[] = [];
    for (let i = 0; i < (this.#o.workers ?? 1); i++) {
      // no inherited node flags: the parent's (--eval, --input-type, --test ...) are meaningless or fatal for this module
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: init, execArgv: [] });
      w.on('message', (m: { id: number; x?: Float32Array; y?: Int32Array; error?: string }) => this.#onMessage(m));
      w.on('error', (e) => this.#fail(new Error(`data loader worker failed: ${e.message}`)));
      w.on('exit', (code) => {
        if (this.#workers?.includes(w)) this.#fail(new Error(`data loader worker exited with code ${code}`));
      });
      w.unref();
      ws.push(w);
    }
    return ws;
  }

  #request(k: number, indices: Int32Array, seed: number): Promise<Batch> {
    if (this.#failure) return Promise.reject(this.#failure);
    this.#workers ??= this.#start();
    const id = this.#nextId++;
    const p = new Promise<Batch>((resolve, reject) => this.#pending.set(id, { resolve, reject, n: indices.length }));
    p.catch(() => {}); // a consumer that stops early abandons prefetched batches; their failures are not unhandled
    const w = this.#workers[k % this.#workers.length]!;
    if (this.#pending.size === 1) for (const x of this.#workers) x.ref(); // keep the process alive while work is in flight
    w.postMessage({ id, indices, seed }, [indices.buffer as ArrayBuffer]);
    return p;
  }

  #onMessage(m: { id: number; x?: Float32Array; y?: Int32Array; error?: string }): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    this.#idle();
    if (m.error !== undefined) p.reject(new Error(m.error));
    else {
      const [c, H, W] = this.shape;
      p.resolve({ x: m.x!, y: m.y!, n: p.n, shape: [p.n, c, H, W] });
    }
  }

  #fail(e: Error): void {
    this.#failure = e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
    this.#idle();
  }

  #idle(): void {
    if (this.#pending.size === 0) for (const w of this.#workers ?? []) w.unref();
  }
}
