// Issue recipe: ResNet18 (alpha 0.25) on Fashion-MNIST padded to 32x32, random crop + flip, SGD Nesterov lr 0.1
// cosine, batch 128, 5 epochs; and the same network with every ReLU removed, for contrast.
// Usage: node dist/bench/train-fmnist.js [--epochs 5] [--out runs/bench-fmnist] [--only full|linear]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { trainModel, readTrainResult } from '../src/train/run.js';
import { defaultTrainOptions } from '../src/train/trainer.js';

const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '5' },
    out: { type: 'string', default: 'runs/bench-fmnist' },
    only: { type: 'string' },
  },
});
const rows: string[] = [];
for (const variant of ['full', 'linear'] as const) {
  if (a.only && a.only !== variant) continue;
  const out = join(a.out!, variant);
  const s =
    readTrainResult(out) ??
    (await trainModel({
      arch: 'resnet18',
      alpha: 0.25,
      dataset: 'fashion-mnist',
      batchSize: 128,
      out,
      resume: true,
      ...(variant === 'linear' ? { mask: { arch: 'resnet18', kept: [] } } : {}),
      options: { ...defaultTrainOptions, epochs: Number(a.epochs), lr: 0.1, nesterov: true, schedule: 'cosine' },
    }));
  const perEpoch = s.epochs.map((e) => e.seconds);
  rows.push(
    `${variant.padEnd(7)} ReLUs ${String(s.relus).padStart(7)}  test acc ${(100 * s.test_acc).toFixed(2)}%  ` +
      `${(perEpoch.reduce((x, y) => x + y, 0) / perEpoch.length).toFixed(1)} s/epoch (${perEpoch.map((x) => x.toFixed(0)).join(', ')})  ` +
      `${(s.epochs.reduce((x, e) => x + e.img_s, 0) / s.epochs.length).toFixed(0)} img/s`,
  );
}
console.log(`ResNet18 alpha 0.25, Fashion-MNIST 32x32, ${a.epochs} epochs (target: full >= 91.5%)`);
for (const r of rows) console.log(r);
