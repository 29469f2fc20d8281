import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { makeDataset, type Dataset } from '../../src/data/dataset.js';
import { DataLoader, syncBatches, type Batch, type LoaderOptions } from '../../src/data/loader.js';
import { openData } from '../../src/data/registry.js';
import { Rng } from '../../src/data/rng.js';
import type { TrainData } from '../../src/train/trainer.js';
import { tempDir, writeCifar10 } from './fixtures.js';

/** n images 3x8x8 on ordinary (non-shared) buffers; label i = i so batches show the sample order. */
function synthetic(n: number): Dataset {
  const r = new Rng(5);
  return makeDataset({
    name: 'synthetic',
    images: new Uint8Array(n * 192).map(() => r.below(256)),
    labels: Int32Array.from({ length: n }, (_, i) => i),
    n,
    c: 3,
    h: 8,
    w: 8,
    numClasses: n,
    source: 'memory',
  });
}

const aug = { crop: 2, flip: true, mean: [0.5, 0.4, 0.3], std: [0.2, 0.3, 0.25] };

async function collect(it: AsyncIterable<Batch> | Iterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

test('sync path: same seed and epoch give identical batches; epochs and seeds differ; each sample once', () => {
  const ds = synthetic(50);
  const o: LoaderOptions = { batchSize: 16, seed: 3, augment: aug };
  const a = [...syncBatches(ds, o, 0)];
  assert.deepEqual(a, [...syncBatches(ds, o, 0)]);
  assert.deepEqual(
    a.map((b) => b.n),
    [16, 16, 16, 2],
  );
  assert.deepEqual(a[3]!.shape, [2, 3, 8, 8]);
  const order = a.flatMap((b) => [...b.y]);
  assert.deepEqual(
    [...order].sort((x, y) => x - y),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.notDeepEqual(
    order,
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.notDeepEqual(
    order,
    [...syncBatches(ds, o, 1)].flatMap((b) => [...b.y]),
  );
  assert.notDeepEqual(
    order,
    [...syncBatches(ds, { ...o, seed: 4 }, 0)].flatMap((b) => [...b.y]),
  );
  const drop = [...syncBatches(ds, { ...o, dropLast: true }, 0)];
  assert.deepEqual(
    drop.map((b) => b.n),
    [16, 16, 16],
  );
  assert.deepEqual(drop, a.slice(0, 3));
  const plain = [...syncBatches(ds, { ...o, shuffle: false }, 0)];
  assert.deepEqual(
    [...plain[0]!.y],
    Array.from({ length: 16 }, (_, i) => i),
  );
});

test('worker loader yields exactly the sync batches (1 and 2 workers, small prefetch, several epochs)', async () => {
  const ds = synthetic(70);
  for (const extra of [
    { workers: 1, prefetch: 1 },
    { workers: 2, prefetch: 3 },
  ]) {
    const o: LoaderOptions = { batchSize: 16, seed: 11, augment: aug, ...extra };
    const loader = new DataLoader(ds, o);
    assert.equal(loader.batchesPerEpoch, 5);
    for (const epoch of [0, 1, 7]) {
      const got = await collect(loader.epoch(epoch));
      const want = [...syncBatches(ds, o, epoch)];
      assert.deepEqual(got, want, `epoch ${epoch} ${JSON.stringify(extra)}`);
    }
    await loader.close();
  }
});

test('worker loader: early break, concurrent epochs, dropLast, bad options', async () => {
  const ds = synthetic(40);
  const o: LoaderOptions = { batchSize: 8, seed: 2, augment: aug, dropLast: true, prefetch: 4 };
  const loader = new DataLoader(ds, o);
  for await (const b of loader.epoch(0)) {
    assert.equal(b.n, 8);
    break; // prefetched batches are abandoned
  }
  const [e1, e2] = await Promise.all([collect(loader.epoch(1)), collect(loader.epoch(2))]);
  assert.deepEqual(e1, [...syncBatches(ds, o, 1)]);
  assert.deepEqual(e2, [...syncBatches(ds, o, 2)]);
  assert.equal(e1.length, 5);
  await loader.close();
  assert.throws(() => new DataLoader(ds, { batchSize: 0, augment: aug }), /batchSize 0/);
  assert.throws(
    () => new DataLoader(ds, { batchSize: 4, augment: { mean: [0], std: [1] } }),
    /1 means \/ 1 stds for 3-channel/,
  );
  assert.throws(() => new DataLoader(ds, { batchSize: 4, augment: { ...aug, std: [1, 0, 1] } }), /std 0 must be > 0/);
});

test("openData: the trainer's TrainData on CIFAR-10 files; test batches are plain normalisation with train stats", async () => {
  const dir = tempDir('open');
  writeCifar10(dir, 4);
  const data = openData('cifar10', { dir, batchSize: 6, seed: 1 });
  const asTrainData: TrainData = data; // compile-time check of the trainer contract
  assert.deepEqual([asTrainData.trainSize, data.testSize, data.numClasses], [20, 4, 10]);
  assert.deepEqual(data.augment, { crop: 4, flip: true, mean: data.trainSet.mean, std: data.trainSet.std });
  const tr = await collect(data.train(0));
  assert.deepEqual(
    tr.map((b) => b.n),
    [6, 6, 6, 2],
  );
  assert.deepEqual(tr[0]!.shape, [6, 3, 32, 32]);
  const te = await collect(data.test());
  assert.deepEqual(
    te.map((b) => [...b.y]),
    [[0, 1, 2, 3]],
  );
  const { mean, std } = data.trainSet;
  for (const [i, ch, p] of [
    [0, 0, 0],
    [3, 2, 1023],
    [2, 1, 500],
  ] as const)
    assert.equal(
      te[0]!.x[(i * 3 + ch) * 1024 + p],
      Math.fround((data.testSet.images[(i * 3 + ch) * 1024 + p]! / 255 - mean[ch]!) / std[ch]!),
    );
  await data.close();
  rmSync(dir, { recursive: true });
});

test('batches are made off the main thread: after the consumer is busy, prefetched batches are ready at once', async () => {
  const r = new Rng(1);
  const n = 4 * 512;
  const ds = makeDataset({
    name: 'big',
    images: new Uint8Array(n * 3072).map(() => r.u32() & 255),
    labels: new Int32Array(n),
    n,
    c: 3,
    h: 32,
    w: 32,
    numClasses: 1,
    source: 'memory',
  });
  const o: LoaderOptions = {
    batchSize: 512,
    seed: 0,
    augment: { crop: 4, flip: true, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    prefetch: 3,
  };
  let t = performance.now();
  const first = syncBatches(ds, o, 0).next();
  const makeMs = performance.now() - t;
  assert.ok(!first.done);
  const loader = new DataLoader(ds, o);
  const it = loader.epoch(0);
  await it.next();
  // busy consumer: long enough for the worker to finish the prefetched batches
  const until = performance.now() + Math.max(200, 8 * makeMs);
  while (performance.now() < until);
  t = performance.now();
  await it.next();
  await it.next();
  const waitMs = performance.now() - t;
  assert.ok(
    waitMs < makeMs,
    `waited ${waitMs.toFixed(1)} ms for two prefetched batches; making one takes ${makeMs.toFixed(1)} ms`,
  );
  await it.return(undefined);
  await loader.close();
});

test('an unclosed loader does not keep the process alive', async () => {
  const { spawnSync } = await import('node:child_process');
  const url = new URL('../../src/data/loader.js', import.meta.url).href;
  const code = `import { DataLoader } from '${url}';
const n = 64; const ds = { images: new Uint8Array(n * 4), labels: new Int32Array(n), n, c: 1, h: 2, w: 2 };
const l = new DataLoader(ds, { batchSize: 8, augment: { mean: [0], std: [1] } });
let k = 0; for await (const b of l.epoch(0)) k += b.n; console.log(k);`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stdout.trim(), '64');
});
