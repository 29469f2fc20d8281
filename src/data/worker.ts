// Loader worker: makes batches from shared image memory and transfers them back.
import { parentPort, workerData } from 'node:worker_threads';
import { makeBatch } from './augment.js';
import type { WorkerInit } from './loader.js';

const { src, augment } = workerData as WorkerInit;

parentPort!.on('message', (m: { id: number; indices: Int32Array; seed: number }) => {
  try {
    const { x, y } = makeBatch(src, m.indices, augment, m.seed);
    parentPort!.postMessage({ id: m.id, x, y }, [x.buffer as ArrayBuffer, y.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
