import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { DEBIAN_FASHION_MNIST, loadDataset } from '../../src/data/registry.js';

test('real Fashion-MNIST from the Debian package: 60000/10000, 28x28, 10 balanced classes, known statistics', {
  skip: !existsSync(DEBIAN_FASHION_MNIST) && `${DEBIAN_FASHION_MNIST} not installed`,
}, () => {
  const tr = loadDataset('fashion-mnist', 'train');
  const te = loadDataset('fashion-mnist', 'test');
  assert.deepEqual([tr.n, tr.c, tr.h, tr.w, tr.numClasses, te.n], [60000, 1, 28, 28, 10, 10000]);
  assert.equal(tr.source, `${DEBIAN_FASHION_MNIST}/train-images-idx3-ubyte.gz`);
  const counts = new Array(10).fill(0);
  for (const y of tr.labels) counts[y]++;
  assert.deepEqual(counts, new Array(10).fill(6000));
  // the commonly quoted normalisation constants
  assert.ok(Math.abs(tr.mean[0]! - 0.286) < 1e-4, `mean ${tr.mean[0]}`);
  assert.ok(Math.abs(tr.std[0]! - 0.353) < 1e-4, `std ${tr.std[0]}`);
  assert.equal(tr.labels[0], 9); // the first training image is an ankle boot
});
