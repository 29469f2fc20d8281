// A learnable 8x8 MNIST-format (IDX) dataset: class k (0..2) lights a band of rows.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { idxBytes } from '../data/fixtures.js';

export function writeBands(dir: string, nTrain = 90, nTest = 30): string {
  mkdirSync(dir, { recursive: true });
  for (const [prefix, n] of [
    ['train', nTrain],
    ['t10k', nTest],
  ] as const) {
    const im = new Uint8Array(n * 64);
    const lb = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      lb[i] = i % 3;
      for (let p = 0; p < 64; p++)
        im[i * 64 + p] = (Math.floor((p >> 3) / 3) === lb[i] ? 200 : 20) + ((i * 31 + p * 7) % 40);
    }
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), idxBytes(2051, [n, 8, 8], im));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), idxBytes(2049, [n], lb));
  }
  return dir;
}
