// Loader throughput: Fashion-MNIST padded 28 -> 32, random crop (4 px) + flip + normalise, batch 128, through the
// worker DataLoader. The issue asks for it next to ResNet-20 training img/s and a ratio >= 10.
// Usage: node dist/bench/loader.js [--epochs N] [--batch B] [--workers W] [--data DIR] [--json]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { DataLoader, syncBatches, type LoaderOptions } from '../src/data/loader.js';
import { defaultAugment, loadDataset } from '../src/data/registry.js';
import { F, SGD, labels, manualSeed, tensor, tidy } from '../src/engine/index.js';
import { buildNetwork, specFor } from '../src/models/index.js';

const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '3' },
    batch: { type: 'string', default: '128' },
    workers: { type: 'string', default: '1' },
    data: { type: 'string' },
    json: { type: 'boolean', default: false },
    'train-steps': { type: 'string', default: '30' },
  },
});
const epochs = Number(a.epochs);
const batchSize = Number(a.batch);

let t = performance.now();
const ds = loadDataset('fashion-mnist', 'train', { dir: a.data });
const loadS = (performance.now() - t) / 1000;
const o: LoaderOptions = {
  batchSize,
  seed: 0,
  augment: defaultAugment('fashion-mnist', ds, { padTo32: true }),
  workers: Number(a.workers),
  prefetch: 4,
};

// main-thread path, for reference (what the loader would cost the training thread without a worker)
t = performance.now();
let seen = 0;
for (const b of syncBatches(ds, o, 0)) seen += b.n;
const syncImgS = seen / ((performance.now() - t) / 1000);

const loader = new DataLoader(ds, o);
const perEpoch: number[] = [];
for (let e = 0; e < epochs; e++) {
  t = performance.now();
  seen = 0;
  for await (const b of loader.epoch(e)) seen += b.n;
  perEpoch.push(seen / ((performance.now() - t) / 1000));
}
await loader.close();
// epoch 0 includes worker start-up; report the best later epoch when there is one
const loaderImgS = perEpoch.length > 1 ? Math.max(...perEpoch.slice(1)) : perEpoch[0]!;

// ResNet-20 training img/s on the same loader's batches (same batch size, all cores for libtorch).
async function trainRate(steps: number): Promise<number> {
  manualSeed(0);
  const net = buildNetwork(
    specFor('resnet20', { numClasses: ds.numClasses, inChannels: ds.c, inputSize: loader.shape[1] }),
  );
  const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  const train = new DataLoader(ds, o);
  let n = 0;
  let k = 0;
  let t0 = 0;
  for await (const b of train.epoch(0)) {
    if (k === 2) t0 = performance.now(); // after warm-up
    tidy(() => {
      const loss = F.crossEntropy(net.forward(tensor(b.x, b.shape)), labels(b.y));
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
    if (k >= 2) n += b.n;
    if (++k >= steps + 2) break;
  }
  await train.close();
  net.dispose();
  return n / ((performance.now() - t0) / 1000);
}
const trainImgS: number | null = await trainRate(Number(a['train-steps']));

const ratio = trainImgS ? loaderImgS / trainImgS : null;
const result = {
  dataset: 'fashion-mnist/train',
  images: ds.n,
  shape: [batchSize, ...loader.shape],
  augment: o.augment,
  workers: o.workers,
  load_s: +loadS.toFixed(3),
  sync_img_s: Math.round(syncImgS),
  loader_img_s_per_epoch: perEpoch.map(Math.round),
  loader_img_s: Math.round(loaderImgS),
  train_img_s: trainImgS,
  ratio: ratio && +ratio.toFixed(1),
};
if (a.json) console.log(JSON.stringify(result));
else {
  console.log(
    `Fashion-MNIST train (${ds.n} images) read in ${loadS.toFixed(2)} s; batches ${result.shape.join('x')}, crop 4 + flip + normalise`,
  );
  console.log(`main-thread batch making:  ${result.sync_img_s} img/s`);
  console.log(
    `worker loader:             ${result.loader_img_s} img/s (per epoch: ${result.loader_img_s_per_epoch.join(', ')})`,
  );
  console.log(
    trainImgS === null
      ? 'ResNet-20 training:        not measured'
      : `ResNet-20 training:        ${Math.round(trainImgS)} img/s -> loader is ${ratio!.toFixed(1)}x faster (need >= 10x)`,
  );
}
if (ratio !== null && ratio < 10) process.exitCode = 1;
