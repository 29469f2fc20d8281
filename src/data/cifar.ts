import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeDataset, sharedBytes, sharedInt32, type Dataset } from './dataset.js';
import { isDir, readBytes, readLines } from './files.js';

export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];
const PIXELS = 3 * 32 * 32;

/** The folder holding the binary files: `dir` itself or the folder the official tarball unpacks to. */
function locate(dir: string, sub: string, probe: string): string {
  if (existsSync(join(dir, probe))) return dir;
  if (existsSync(join(dir, sub, probe))) return join(dir, sub);
  if (!isDir(dir)) throw new Error(`${dir}: dataset folder not found`);
  throw new Error(`${join(dir, probe)}: not found (nor ${join(dir, sub, probe)})`);
}

/**
 * Reads fixed-size records `[labelBytes..., 3072 CHW pixels]` from several files. `label` picks which label byte
 * to use; every label byte is range-checked against `limits`.
 */
type Records = ReturnType<typeof readRecords>;

function readRecords(files: string[], labelBytes: number, label: number, limits: number[]) {
  const rec = labelBytes + PIXELS;
  const bufs = files.map((f) => {
    const b = readBytes(f, 'CIFAR batch file');
    if (b.length === 0 || b.length % rec !== 0) {
      const whole = Math.floor(b.length / rec);
      throw new Error(
        `${f}: truncated or corrupt CIFAR file: ${b.length} bytes is not a positive multiple of the ${rec}-byte record` +
          ` (record ${whole} at byte offset ${whole * rec} is incomplete)`,
      );
    }
    return b;
  });
  const n = bufs.reduce((s, b) => s + b.length / rec, 0);
  const images = sharedBytes(n * PIXELS);
  const labels = sharedInt32(n);
  let i = 0;
  bufs.forEach((b, fi) => {
    for (let off = 0; off < b.length; off += rec, i++) {
      for (let k = 0; k < labelBytes; k++) {
        if (b[off + k]! >= limits[k]!)
          throw new Error(`${files[fi]}: label ${b[off + k]} at byte offset ${off + k} is outside [0, ${limits[k]})`);
      }
      labels[i] = b[off + label]!;
      images.set(b.subarray(off + labelBytes, off + rec), i * PIXELS);
    }
  });
  return { images, labels, n };
}

/** A CIFAR split (3x32x32 images) from its records. */
const cifarSet = (name: string, rec: Records, numClasses: number, classNames: string[] | undefined, source: string) =>
  makeDataset({ name, ...rec, c: 3, h: 32, w: 32, numClasses, classNames, source });

/** CIFAR-10 binary version: `data_batch_1..5.bin` (train) or `test_batch.bin` (test). */
export function readCifar10(dir: string, split: 'train' | 'test'): Dataset {
  const root = locate(dir, 'cifar-10-batches-bin', split === 'train' ? 'data_batch_1.bin' : 'test_batch.bin');
  const files =
    split === 'train' ? [1, 2, 3, 4, 5].map((k) => join(root, `data_batch_${k}.bin`)) : [join(root, 'test_batch.bin')];
  const rec = readRecords(files, 1, 0, [10]);
  const meta = join(root, 'batches.meta.txt');
  const classNames = existsSync(meta) ? readLines(meta, 'CIFAR-10 class names') : CIFAR10_CLASSES;
  if (classNames.length !== 10) throw new Error(`${meta}: expected 10 class names, found ${classNames.length}`);
  return cifarSet(`cifar10/${split}`, rec, 10, classNames, root);
}

/** CIFAR-100 binary version: `train.bin` / `test.bin`, records `[coarse, fine, 3072 pixels]`; fine labels by default. */
export function readCifar100(dir: string, split: 'train' | 'test', labelKind: 'fine' | 'coarse' = 'fine'): Dataset {
  const file = split === 'train' ? 'train.bin' : 'test.bin';
  const root = locate(dir, 'cifar-100-binary', file);
  const rec = readRecords([join(root, file)], 2, labelKind === 'fine' ? 1 : 0, [20, 100]);
  const numClasses = labelKind === 'fine' ? 100 : 20;
  const namesFile = join(root, `${labelKind}_label_names.txt`);
  let classNames: string[] | undefined;
  if (existsSync(namesFile)) {
    classNames = readLines(namesFile, 'CIFAR-100 class names');
    if (classNames.length !== numClasses)
      throw new Error(`${namesFile}: expected ${numClasses} class names, found ${classNames.length}`);
  }
  return cifarSet(`cifar100${labelKind === 'coarse' ? '-coarse' : ''}/${split}`, rec, numClasses, classNames, root);
}
