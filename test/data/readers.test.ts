import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readCifar10, readCifar100 } from '../../src/data/cifar.js';
import { readMnistLike } from '../../src/data/idx.js';
import { readTinyImageNet } from '../../src/data/tinyimagenet.js';
import { readImageFolder } from '../../src/data/imagefolder.js';
import { loadDataset } from '../../src/data/registry.js';
import { channelStats } from '../../src/data/dataset.js';
import {
  idxBytes,
  jpegFile,
  pix,
  pngFile,
  tempDir,
  tinyColour,
  writeCifar10,
  writeCifar100,
  writeIdx,
  writeImageFolder,
  writeTinyImageNet,
} from './fixtures.js';

/** Asserts `fn` throws an Error whose message contains every fragment. */
function throwsWith(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: Error) => {
    for (const f of fragments)
      assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

test('CIFAR-10: reads 5 train batches and the test batch, pixels CHW, labels, stats', () => {
  const dir = tempDir('c10');
  const root = writeCifar10(dir, 3);
  const tr = readCifar10(dir, 'train');
  assert.deepEqual([tr.n, tr.c, tr.h, tr.w, tr.numClasses], [15, 3, 32, 32, 10]);
  assert.equal(tr.classNames![0], 'airplane');
  for (const i of [0, 7, 14]) {
    assert.equal(tr.labels[i], i % 10);
    for (const [ch, y, x] of [
      [0, 0, 0],
      [1, 5, 9],
      [2, 31, 31],
    ] as const)
      assert.equal(tr.images[i * 3072 + ch * 1024 + y * 32 + x], pix(i, ch, y, x));
  }
  assert.ok(tr.images.buffer instanceof SharedArrayBuffer);
  const te = readCifar10(root, 'test');
  assert.equal(te.n, 4);
  assert.equal(te.labels[3], 1003 % 10);
  assert.equal(te.images[3 * 3072 + 2 * 1024 + 1], pix(1003, 2, 0, 1));
  // stats: compare with a direct computation
  let s = 0,
    q = 0;
  for (let i = 0; i < tr.n; i++) for (let p = 0; p < 1024; p++) s += tr.images[i * 3072 + 1024 + p]! / 255;
  const m = s / (tr.n * 1024);
  for (let i = 0; i < tr.n; i++) for (let p = 0; p < 1024; p++) q += (tr.images[i * 3072 + 1024 + p]! / 255 - m) ** 2;
  assert.ok(Math.abs(tr.mean[1]! - m) < 1e-12);
  assert.ok(Math.abs(tr.std[1]! - Math.sqrt(q / (tr.n * 1024))) < 1e-12);
  rmSync(dir, { recursive: true });
});

test('CIFAR-10 errors: truncated file, label out of range, missing batch, missing folder', () => {
  const dir = tempDir('c10e');
  const root = writeCifar10(dir, 2);
  const f3 = join(root, 'data_batch_3.bin');
  truncateSync(f3, 3073 + 100);
  throwsWith(() => readCifar10(dir, 'train'), f3, 'truncated', 'byte offset 3073');
  writeCifar10(dir, 2);
  const t = join(root, 'test_batch.bin');
  const b = readFileSync(t);
  b[3 * 3073] = 10;
  writeFileSync(t, b);
  throwsWith(() => readCifar10(dir, 'test'), t, 'label 10', `byte offset ${3 * 3073}`);
  rmSync(join(root, 'data_batch_5.bin'));
  throwsWith(() => readCifar10(dir, 'train'), join(root, 'data_batch_5.bin'), 'not found');
  throwsWith(() => readCifar10(join(dir, 'nope'), 'train'), join(dir, 'nope'), 'not found');
  rmSync(dir, { recursive: true });
});

test('CIFAR-100: fine labels by default, coarse on request; errors name file and offset', () => {
  const dir = tempDir('c100');
  const root = writeCifar100(dir);
  const fine = readCifar100(dir, 'train');
  const coarse = readCifar100(dir, 'train', 'coarse');
  assert.deepEqual([fine.n, fine.numClasses, coarse.numClasses], [6, 100, 20]);
  assert.deepEqual([...fine.labels], [0, 7, 14, 21, 28, 35]);
  assert.deepEqual([...coarse.labels], [0, 1, 2, 3, 4, 5]);
  assert.equal(fine.images[5 * 3072 + 2048 + 33], pix(5, 2, 1, 1));
  const te = readCifar100(dir, 'test');
  assert.equal(te.labels[2], (502 * 7) % 100);
  const f = join(root, 'test.bin');
  const b = readFileSync(f);
  b[3074 + 1] = 100; // fine label of record 1
  writeFileSync(f, b);
  throwsWith(() => readCifar100(dir, 'test'), f, 'label 100', 'byte offset 3075');
  b[3074 + 1] = 0;
  b[2 * 3074] = 20; // coarse label of record 2: checked even when reading fine labels
  writeFileSync(f, b);
  throwsWith(() => readCifar100(dir, 'test'), f, 'label 20', `byte offset ${2 * 3074}`);
  appendFileSync(join(root, 'train.bin'), new Uint8Array(5));
  throwsWith(() => readCifar100(dir, 'train'), join(root, 'train.bin'), 'truncated', `byte offset ${6 * 3074}`);
  rmSync(dir, { recursive: true });
});

test('IDX: raw and gzipped files read identically, values and labels', () => {
  const dir = tempDir('idx');
  writeIdx(join(dir, 'raw'), false);
  writeIdx(join(dir, 'gz'), true);
  const a = readMnistLike(join(dir, 'raw'), 'train', 'mnist');
  const b = readMnistLike(join(dir, 'gz'), 'train', 'fashion-mnist');
  assert.deepEqual([a.n, a.c, a.h, a.w, a.numClasses], [12, 1, 28, 28, 10]);
  assert.deepEqual(a.images, b.images);
  assert.deepEqual(a.labels, b.labels);
  assert.equal(a.images[11 * 784 + 27 * 28 + 3], pix(11, 0, 27, 3));
  assert.equal(b.classNames![9], 'Ankle boot');
  const te = readMnistLike(join(dir, 'gz'), 'test', 'fashion-mnist');
  assert.deepEqual([te.n, te.labels[4]], [5, 104 % 10]);
  rmSync(dir, { recursive: true });
});

test('IDX errors: wrong magic, truncated data, truncated gzip, label out of range, count mismatch, missing file', () => {
  const dir = tempDir('idxe');
  writeIdx(dir, false, 4, 2);
  const im = join(dir, 'train-images-idx3-ubyte');
  const lb = join(dir, 'train-labels-idx1-ubyte');
  const good = readFileSync(im);
  writeFileSync(im, idxBytes(2049, [4, 28, 28], good.subarray(16)));
  throwsWith(
    () => readMnistLike(dir, 'train', 'mnist'),
    im,
    'wrong IDX magic number 2049',
    'byte offset 0',
    'expected 2051',
  );
  writeFileSync(im, good.subarray(0, 16 + 2 * 784 + 10));
  throwsWith(
    () => readMnistLike(dir, 'train', 'mnist'),
    im,
    'truncated',
    `byte offset ${16 + 2 * 784 + 10}`,
    'item 2 of 4',
  );
  writeFileSync(im, good.subarray(0, 10));
  throwsWith(() => readMnistLike(dir, 'train', 'mnist'), im, 'truncated IDX header');
  writeFileSync(im, good);
  const labels = readFileSync(lb);
  labels[8 + 3] = 12;
  writeFileSync(lb, labels);
  throwsWith(() => readMnistLike(dir, 'train', 'mnist'), lb, 'label 12', 'byte offset 11');
  writeFileSync(lb, idxBytes(2049, [3], new Uint8Array(3)));
  throwsWith(() => readMnistLike(dir, 'train', 'mnist'), lb, '3 labels', '4 images');
  rmSync(im);
  const gz = `${im}.gz`;
  writeFileSync(gz, gzipSync(good).subarray(0, 200));
  throwsWith(() => readMnistLike(dir, 'train', 'mnist'), gz, 'corrupt or truncated gzip');
  rmSync(gz);
  throwsWith(() => readMnistLike(dir, 'train', 'mnist'), im, 'not found');
  rmSync(dir, { recursive: true });
});

test('TinyImageNet: train/<wnid>/images and val annotations, sorted wnids, names from words.txt', () => {
  const dir = tempDir('tin');
  const root = writeTinyImageNet(dir);
  const tr = readTinyImageNet(dir, 'train');
  assert.deepEqual([tr.n, tr.c, tr.h, tr.w, tr.numClasses], [6, 3, 8, 8, 3]);
  assert.deepEqual(tr.classNames, ['red thing', 'green thing', 'blue thing']);
  assert.deepEqual([...tr.labels], [0, 0, 1, 1, 2, 2]);
  const close = (a: number, b: number) => Math.abs(a - b) <= 3;
  for (let i = 0; i < tr.n; i++) {
    const rgb = tinyColour(['n01', 'n02', 'n03'][tr.labels[i]!]!);
    for (let ch = 0; ch < 3; ch++)
      assert.ok(close(tr.images[i * 192 + ch * 64 + 27]!, rgb[ch]!), `image ${i} channel ${ch}`);
  }
  const va = readTinyImageNet(root, 'test');
  assert.deepEqual([...va.labels], [2, 0, 1, 0]);
  assert.ok(close(va.images[2 * 192 + 64 + 5]!, 200));
  rmSync(dir, { recursive: true });
});

test('TinyImageNet errors: missing class folder, unknown wnid in annotations, corrupt JPEG, wrong size, missing wnids', () => {
  const dir = tempDir('tine');
  const root = writeTinyImageNet(dir);
  const ann = join(root, 'val', 'val_annotations.txt');
  writeFileSync(ann, 'val_0.JPEG\tn03\nval_1.JPEG\tn77\t0\t0\t1\t1\n');
  throwsWith(() => readTinyImageNet(dir, 'test'), ann, 'line 2', 'n77');
  const bad = join(root, 'train', 'n02', 'images', 'n02_1.JPEG');
  writeFileSync(bad, readFileSync(bad).subarray(0, 40));
  throwsWith(() => readTinyImageNet(dir, 'train'), bad, 'corrupt JPEG');
  jpegFile(bad, 8, 9, [1, 2, 3]);
  throwsWith(() => readTinyImageNet(dir, 'train'), bad, '8x9', 'expected 8x8');
  rmSync(join(root, 'train', 'n03'), { recursive: true });
  throwsWith(() => readTinyImageNet(dir, 'train'), join(root, 'train', 'n03', 'images'), 'not found');
  rmSync(join(root, 'wnids.txt'));
  throwsWith(() => readTinyImageNet(dir, 'train'), join(dir, 'wnids.txt'), 'not found');
  rmSync(dir, { recursive: true });
});

test('image folder: PNG and JPEG classes, train/test splits via the registry, gray detection', () => {
  const dir = writeImageFolder(tempDir('folder'));
  const tr = loadDataset('folder', 'train', { dir });
  assert.deepEqual([tr.n, tr.c, tr.h, tr.w, tr.numClasses], [3, 3, 3, 4, 2]);
  assert.deepEqual(tr.classNames, ['cat', 'dog']);
  assert.deepEqual([...tr.labels], [0, 0, 1]);
  // c1.png pixel (x=2, y=1): R = 21, G = 20, B = 100
  assert.deepEqual([tr.images[36 + 6], tr.images[36 + 12 + 6], tr.images[36 + 24 + 6]], [21, 20, 100]);
  assert.ok(Math.abs(tr.images[2 * 36 + 5]! - 250) <= 3);
  const te = loadDataset('folder', 'test', { dir });
  assert.equal(te.n, 3);
  // all-gray images give one channel
  const g = tempDir('gray');
  mkdirSync(join(g, 'a'));
  mkdirSync(join(g, 'b'));
  pngFile(join(g, 'a', '0.png'), 2, 2, (x, y) => [x + y, x + y, x + y]);
  pngFile(join(g, 'b', '0.png'), 2, 2, () => [9, 9, 9]);
  const gr = readImageFolder(g);
  assert.deepEqual([gr.c, gr.n, [...gr.images]], [1, 2, [0, 1, 1, 2, 9, 9, 9, 9]]);
  rmSync(dir, { recursive: true });
  rmSync(g, { recursive: true });
});

test('image folder errors: different sizes, not an image, empty class, no classes, missing folder, unknown test class', () => {
  const dir = writeImageFolder(tempDir('folde'));
  const odd = join(dir, 'train', 'cat', 'c9.png');
  pngFile(odd, 5, 3, () => [0, 0, 0]);
  throwsWith(() => loadDataset('folder', 'train', { dir }), odd, '5x3', 'expected 4x3', 'same size');
  writeFileSync(odd, 'not an image');
  throwsWith(() => loadDataset('folder', 'train', { dir }), odd, 'not a PNG or JPEG');
  rmSync(odd);
  mkdirSync(join(dir, 'test', 'emu'));
  throwsWith(() => loadDataset('folder', 'test', { dir }), join(dir, 'test', 'emu'), 'not among');
  mkdirSync(join(dir, 'train', 'emu'));
  throwsWith(() => loadDataset('folder', 'train', { dir }), join(dir, 'train', 'emu'), 'no PNG/JPEG images');
  const empty = tempDir('empty');
  throwsWith(() => readImageFolder(empty), empty, 'no class sub-folders');
  throwsWith(() => readImageFolder(join(empty, 'x')), join(empty, 'x'), 'not found');
  rmSync(dir, { recursive: true });
  rmSync(empty, { recursive: true });
});

test('channelStats: exact per-channel mean/std', () => {
  const img = new Uint8Array([0, 255, 10, 20, 0, 255, 30, 40]); // 2 images, 2 channels, 2 pixels
  const s = channelStats(img, 2, 2, 2);
  assert.ok(Math.abs(s.mean[0]! - 0.5) < 1e-12 && Math.abs(s.std[0]! - 0.5) < 1e-12);
  assert.ok(Math.abs(s.mean[1]! - 25 / 255) < 1e-12 && Math.abs(s.std[1]! - Math.sqrt(125) / 255) < 1e-12);
});
