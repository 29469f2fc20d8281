import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { AugmentOptions } from './augment.js';
import { readCifar10, readCifar100 } from './cifar.js';
import type { Dataset } from './dataset.js';
import { isDir } from './files.js';
import { readMnistLike } from './idx.js';
import { classFolders, readImageFolder } from './imagefolder.js';
import { DataLoader, syncBatches, type Batch, type LoaderOptions } from './loader.js';
import { readTinyImageNet } from './tinyimagenet.js';
import { subsetDataset } from './subset.js';

export const DATASET_NAMES = ['cifar10', 'cifar100', 'fashion-mnist', 'mnist', 'tiny-imagenet', 'folder'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];
export type Split = 'train' | 'test';

/** Where Debian's `dataset-fashion-mnist` package puts the gzipped IDX files. */
export const DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

/** Root that `data fetch` downloads into by default: $DEEPREDUCE_DATA or ~/.cache/deepreduce/datasets. */
export function dataRoot(): string {
  return process.env.DEEPREDUCE_DATA || join(homedir(), '.cache', 'deepreduce', 'datasets');
}

/** The classes of a network for data with `dataClasses`: `asked` where given (it must cover the data's labels). */
export function networkClasses(asked: number | undefined, dataClasses: number): number {
  if (asked === undefined) return dataClasses;
  if (!Number.isInteger(asked) || asked < dataClasses)
    throw new Error(
      `--classes ${asked}: the data has ${dataClasses} classes; the network needs at least as many outputs`,
    );
  return asked;
}

export function isDatasetName(s: string): s is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(s);
}

export function checkDatasetName(s: string): DatasetName {
  if (!isDatasetName(s)) throw new Error(`unknown dataset '${s}' (known: ${DATASET_NAMES.join(', ')})`);
  return s;
}

/** Digit datasets: a flipped digit is a different (or no) digit, so no horizontal flips. */
export function isDigits(name: DatasetName): boolean {
  return name === 'mnist';
}

/** The folder a dataset is read from: `dir` when given, else Debian's Fashion-MNIST or the fetch root. */
export function datasetDir(name: DatasetName, dir?: string): string {
  if (dir) return dir;
  if (name === 'folder')
    throw new Error(`dataset 'folder' needs --data DIR (a folder of class folders, or with train/ and test/ inside)`);
  if (name === 'fashion-mnist' && existsSync(DEBIAN_FASHION_MNIST)) return DEBIAN_FASHION_MNIST;
  return join(dataRoot(), name);
}

export interface LoadOptions {
  dir?: string;
  /** CIFAR-100 label set; default fine (100 classes). */
  labels?: 'fine' | 'coarse';
  /** Class names that fix label indices (image folder test split: the train split's classes). */
  classNames?: string[];
}

/**
 * Reads one split. An image folder with `train/` inside uses `train/` and `test/` (or `val/`); one without has only
 * a train split.
 */
export function loadDataset(name: DatasetName, split: Split, o: LoadOptions = {}): Dataset {
  const dir = datasetDir(name, o.dir);
  if (!o.dir && !isDir(dir))
    throw new Error(`${dir}: dataset folder not found; run 'deepreduce data fetch ${name}' or pass --data DIR`);
  switch (name) {
    case 'cifar10':
      return readCifar10(dir, split);
    case 'cifar100':
      return readCifar100(dir, split, o.labels ?? 'fine');
    case 'fashion-mnist':
    case 'mnist':
      return readMnistLike(dir, split, name);
    case 'tiny-imagenet':
      return readTinyImageNet(dir, split);
    case 'folder': {
      const sub = folderSplitDir(dir, split);
      return readImageFolder(sub, {
        name: `folder/${split}`,
        classNames: split === 'test' ? (o.classNames ?? classFolders(folderSplitDir(dir, 'train'))) : o.classNames,
      });
    }
  }
}

function folderSplitDir(dir: string, split: Split): string {
  if (!isDir(join(dir, 'train'))) {
    if (split === 'train') return dir;
    throw new Error(
      `${join(dir, 'test')}: image folder has no train/ and test/ sub-folders, so there is no test split`,
    );
  }
  if (split === 'train') return join(dir, 'train');
  for (const s of ['test', 'val']) if (isDir(join(dir, s))) return join(dir, s);
  throw new Error(`${join(dir, 'test')}: test (or val) folder not found next to ${join(dir, 'train')}`);
}

/**
 * The standard training recipe for a dataset: random crop with 4 px padding, flips except for digits,
 * 28x28 padded to 32x32 when `padTo32`, normalised with the training split's statistics `stats`.
 */
export function defaultAugment(
  name: DatasetName,
  stats: { mean: number[]; std: number[]; h: number; w: number },
  o: { padTo32?: boolean } = {},
): AugmentOptions {
  return {
    ...(o.padTo32 && stats.h === 28 && stats.w === 28 ? { padTo: 32 } : {}),
    crop: 4,
    flip: !isDigits(name),
    mean: stats.mean,
    std: stats.std,
  };
}

/** Evaluation transform: the same padding and normalisation, no randomness. */
export function evalAugment(train: AugmentOptions): AugmentOptions {
  return {
    ...(train.padTo !== undefined ? { padTo: train.padTo } : {}),
    crop: 0,
    flip: false,
    mean: train.mean,
    std: train.std,
  };
}

export interface OpenOptions extends LoadOptions {
  batchSize: number;
  seed?: number;
  /** Overrides of the default training augmentation (`defaultAugment`). */
  augment?: Partial<AugmentOptions>;
  padTo32?: boolean;
  dropLast?: boolean;
  testBatchSize?: number;
  prefetch?: number;
  workers?: number;
  /** Use only the first N training / test images (quick runs). */
  limitTrain?: number;
  limitTest?: number;
}

/** Train and test splits with a worker loader for training and the synchronous path for test (the trainer's `TrainData`). */
export interface OpenedData {
  name: DatasetName;
  trainSet: Dataset;
  testSet: Dataset;
  trainSize: number;
  testSize: number;
  numClasses: number;
  classNames?: string[];
  augment: AugmentOptions;
  shape: [number, number, number];
  train(epoch: number): AsyncIterable<Batch>;
  test(): Iterable<Batch>;
  close(): Promise<void>;
}

export function openData(name: DatasetName, o: OpenOptions): OpenedData {
  const fullTrain = loadDataset(name, 'train', o);
  const trainSet = o.limitTrain ? subsetDataset(fullTrain, o.limitTrain) : fullTrain;
  const fullTest = loadDataset(name, 'test', { ...o, classNames: o.classNames ?? trainSet.classNames });
  const testSet = o.limitTest ? subsetDataset(fullTest, o.limitTest) : fullTest;
  if (testSet.c !== trainSet.c || testSet.h !== trainSet.h || testSet.w !== trainSet.w)
    throw new Error(
      `${testSet.source}: test images are ${testSet.c}x${testSet.h}x${testSet.w} but train images (${trainSet.source}) are ${trainSet.c}x${trainSet.h}x${trainSet.w}`,
    );
  const augment: AugmentOptions = { ...defaultAugment(name, trainSet, o), ...o.augment };
  const lo: LoaderOptions = {
    batchSize: o.batchSize,
    seed: o.seed ?? 0,
    shuffle: true,
    dropLast: o.dropLast ?? false,
    augment,
    prefetch: o.prefetch,
    workers: o.workers,
  };
  const loader = new DataLoader(trainSet, lo);
  const testOpts: LoaderOptions = {
    batchSize: o.testBatchSize ?? o.batchSize,
    shuffle: false,
    augment: evalAugment(augment),
  };
  return {
    name,
    trainSet,
    testSet,
    trainSize: trainSet.n,
    testSize: testSet.n,
    numClasses: trainSet.numClasses,
    classNames: trainSet.classNames,
    augment,
    shape: loader.shape,
    train: (epoch) => loader.epoch(epoch),
    test: () => syncBatches(testSet, testOpts),
    close: () => loader.close(),
  };
}
