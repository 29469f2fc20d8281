// Writes small datasets in every supported on-disk format for the data tests.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `deepreduce-data-${tag}-`));
}

/** Deterministic pixel value of image i, channel ch, row y, column x. */
export function pix(i: number, ch: number, y: number, x: number): number {
  return (i * 31 + ch * 70 + y * 3 + x * 5) & 255;
}

function cifarRecords(n: number, labelBytes: (i: number) => number[], base: number): Uint8Array {
  const rec = labelBytes(0).length + 3072;
  const out = new Uint8Array(n * rec);
  for (let i = 0; i < n; i++) {
    const lb = labelBytes(base + i);
    out.set(lb, i * rec);
    for (let ch = 0; ch < 3; ch++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++) out[i * rec + lb.length + ch * 1024 + y * 32 + x] = pix(base + i, ch, y, x);
  }
  return out;
}

/** CIFAR-10 binary layout: 5 train batches of `per` images and a test batch; label of global image i is i % 10. */
export function writeCifar10(dir: string, per = 3): string {
  const root = join(dir, 'cifar-10-batches-bin');
  mkdirSync(root, { recursive: true });
  for (let k = 1; k <= 5; k++)
    writeFileSync(
      join(root, `data_batch_${k}.bin`),
      cifarRecords(per, (i) => [i % 10], (k - 1) * per),
    );
  writeFileSync(
    join(root, 'test_batch.bin'),
    cifarRecords(4, (i) => [i % 10], 1000),
  );
  return root;
}

/** CIFAR-100 binary layout: image i has coarse label i % 20 and fine label (i * 7) % 100. */
export function writeCifar100(dir: string, nTrain = 6, nTest = 3): string {
  const root = join(dir, 'cifar-100-binary');
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, 'train.bin'),
    cifarRecords(nTrain, (i) => [i % 20, (i * 7) % 100], 0),
  );
  writeFileSync(
    join(root, 'test.bin'),
    cifarRecords(nTest, (i) => [i % 20, (i * 7) % 100], 500),
  );
  return root;
}

export function idxBytes(magic: number, dims: number[], data: Uint8Array): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, magic);
  dims.forEach((d, k) => dv.setUint32(4 + 4 * k, d));
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(data, head.length);
  return out;
}

/** MNIST-style IDX files (28x28, label i % 10), raw or gzipped. */
export function writeIdx(dir: string, gz: boolean, nTrain = 12, nTest = 5): void {
  mkdirSync(dir, { recursive: true });
  const put = (name: string, b: Uint8Array) => writeFileSync(join(dir, gz ? `${name}.gz` : name), gz ? gzipSync(b) : b);
  for (const [prefix, n, base] of [
    ['train', nTrain, 0],
    ['t10k', nTest, 100],
  ] as const) {
    const im = new Uint8Array(n * 784);
    const lb = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      lb[i] = (base + i) % 10;
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) im[i * 784 + y * 28 + x] = pix(base + i, 0, y, x);
    }
    put(`${prefix}-images-idx3-ubyte`, idxBytes(2051, [n, 28, 28], im));
    put(`${prefix}-labels-idx1-ubyte`, idxBytes(2049, [n], lb));
  }
}

/** A flat-colour RGB(A) image: JPEG is lossy, so tests check flat colours within a tolerance. */
function flat(w: number, h: number, rgb: [number, number, number]): Buffer {
  const d = Buffer.alloc(w * h * 4);
  for (let p = 0; p < w * h; p++) d.set([...rgb, 255], p * 4);
  return d;
}

export function jpegFile(path: string, w: number, h: number, rgb: [number, number, number], textured = false): void {
  const data = flat(w, h, rgb);
  // textured: a diagonal ramp over the colour (an image's channels then vary, as a normalisation needs)
  if (textured)
    for (let p = 0; p < w * h; p++)
      for (let c = 0; c < 3; c++) data[4 * p + c] = (rgb[c]! + ((p % w) + Math.floor(p / w)) * 3) & 255;
  writeFileSync(path, jpeg.encode({ width: w, height: h, data }, 95).data);
}

export function pngFile(
  path: string,
  w: number,
  h: number,
  rgba: (x: number, y: number) => [number, number, number],
): void {
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) png.data.set([...rgba(x, y), 255], (y * w + x) * 4);
  writeFileSync(path, PNG.sync.write(png));
}

export const TINY_WNIDS = ['n02', 'n01', 'n03']; // deliberately unsorted in wnids.txt
export const tinyColour = (wnid: string): [number, number, number] =>
  wnid === 'n01' ? [200, 30, 30] : wnid === 'n02' ? [30, 200, 30] : [30, 30, 200];

/**
 * TinyImageNet-200 layout with side x side (default 8x8) JPEGs, flat colours (or `textured`): 2 train images per
 * class, 4 val images.
 */
export function writeTinyImageNet(dir: string, side = 8, textured = false): string {
  const root = join(dir, 'tiny-imagenet-200');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'wnids.txt'), `${TINY_WNIDS.join('\n')}\n`);
  writeFileSync(join(root, 'words.txt'), 'n01\tred thing\nn02\tgreen thing\nn03\tblue thing\nn99\tunused\n');
  for (const w of TINY_WNIDS) {
    const d = join(root, 'train', w, 'images');
    mkdirSync(d, { recursive: true });
    for (let k = 0; k < 2; k++) jpegFile(join(d, `${w}_${k}.JPEG`), side, side, tinyColour(w), textured);
    writeFileSync(join(root, 'train', w, `${w}_boxes.txt`), '');
  }
  mkdirSync(join(root, 'val', 'images'), { recursive: true });
  const val = ['n03', 'n01', 'n02', 'n01'];
  val.forEach((w, i) => jpegFile(join(root, 'val', 'images', `val_${i}.JPEG`), side, side, tinyColour(w), textured));
  writeFileSync(
    join(root, 'val', 'val_annotations.txt'),
    `${val.map((w, i) => `val_${i}.JPEG\t${w}\t0\t0\t7\t7`).join('\n')}\n`,
  );
  return root;
}

/** Image folder with train/ and test/: classes `cat` (PNG, gradient) and `dog` (JPEG, flat); 4x3 images. */
export function writeImageFolder(dir: string): string {
  for (const split of ['train', 'test']) {
    mkdirSync(join(dir, split, 'cat'), { recursive: true });
    mkdirSync(join(dir, split, 'dog'), { recursive: true });
    for (let k = 0; k < 2; k++)
      pngFile(join(dir, split, 'cat', `c${k}.png`), 4, 3, (x, y) => [x * 10 + k, y * 20, 100]);
    jpegFile(join(dir, split, 'dog', 'd0.jpg'), 4, 3, [250, 250, 10]);
  }
  return dir;
}

/** ImageNet's layout as an image folder: `train/<wnid>/` and `val/<wnid>/`, one side x side textured JPEG each. */
export function writeImageNetFolder(dir: string, side = 224): string {
  for (const split of ['train', 'val'])
    for (const w of TINY_WNIDS) {
      mkdirSync(join(dir, split, w), { recursive: true });
      jpegFile(join(dir, split, w, `${w}_${split}.JPEG`), side, side, tinyColour(w), true);
    }
  return dir;
}
