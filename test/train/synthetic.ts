// Tiny synthetic classification data and network for trainer tests.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Sequential,
  Conv2d,
  BatchNorm2d,
  ReLUSite,
  AdaptiveAvgPool2d,
  Flatten,
  Linear,
} from '../../src/engine/index.js';
import type { Batch, TrainData } from '../../src/train/trainer.js';

export function tinyNet(): Sequential {
  return new Sequential(
    new Conv2d(1, 6, 3, { padding: 1 }),
    new BatchNorm2d(6),
    new ReLUSite('a'),
    new Conv2d(6, 6, 3, { padding: 1, stride: 2 }),
    new BatchNorm2d(6),
    new ReLUSite('b'),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(6, 3),
  );
}

function makeSet(n: number, seed: number) {
  const x = new Float32Array(n * 64);
  const y = new Int32Array(n);
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let p = 0; p < 64; p++) {
      const row = p >> 3;
      const band = Math.floor(row / 3) === y[i] ? 1 : 0; // class k lights rows 3k..3k+2
      x[i * 64 + p] = band + 0.5 * (rnd() - 0.5);
    }
  }
  return { x, y };
}

/** A deterministic TrainData: epoch e shuffles with seed e; `delayMs` slows batches so a process can be killed mid-epoch. */
export function syntheticData(
  o: { n?: number; batch?: number; delayMs?: number; failAt?: { epoch: number; batch: number } } = {},
): TrainData {
  const n = o.n ?? 96;
  const bs = o.batch ?? 16;
  const tr = makeSet(n, 1);
  const te = makeSet(48, 2);
  const batches = (set: { x: Float32Array; y: Int32Array }, order: number[]): Batch[] => {
    const out: Batch[] = [];
    for (let i = 0; i < order.length; i += bs) {
      const idx = order.slice(i, i + bs);
      const x = new Float32Array(idx.length * 64);
      const y = new Int32Array(idx.length);
      idx.forEach((j, k) => {
        x.set(set.x.subarray(j * 64, j * 64 + 64), k * 64);
        y[k] = set.y[j]!;
      });
      out.push({ x, y, n: idx.length, shape: [idx.length, 1, 8, 8] });
    }
    return out;
  };
  return {
    trainSize: n,
    testSize: 48,
    numClasses: 3,
    async *train(epoch: number) {
      const order = Array.from({ length: n }, (_, i) => i);
      let s = epoch + 17;
      for (let i = n - 1; i > 0; i--) {
        s = (s * 1103515245 + 12345) >>> 0;
        const j = s % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      let k = 0;
      for (const b of batches(tr, order)) {
        if (o.failAt && o.failAt.epoch === epoch && o.failAt.batch === k) throw new Error('simulated crash');
        if (o.delayMs) await sleep(o.delayMs);
        k++;
        yield b;
      }
    },
    test: () =>
      batches(
        te,
        Array.from({ length: 48 }, (_, i) => i),
      ),
  };
}
