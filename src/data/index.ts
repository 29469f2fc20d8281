export type { Dataset } from './dataset.js';
export { channelStats, makeDataset } from './dataset.js';
export { Rng, deriveSeed } from './rng.js';
export { makeBatch, outputShape, type AugmentOptions, type ImageSource } from './augment.js';
export {
  DataLoader,
  syncBatches,
  epochOrder,
  batchSeed,
  batchesPerEpoch,
  type Batch,
  type LoaderOptions,
} from './loader.js';
export { readCifar10, readCifar100, CIFAR10_CLASSES } from './cifar.js';
export { readIdxPair, readMnistLike, parseIdx, FASHION_MNIST_CLASSES } from './idx.js';
export { readTinyImageNet } from './tinyimagenet.js';
export { readImageFolder } from './imagefolder.js';
export {
  DATASET_NAMES,
  type DatasetName,
  type Split,
  loadDataset,
  openData,
  defaultAugment,
  evalAugment,
  datasetDir,
  dataRoot,
  checkDatasetName,
  isDigits,
  networkClasses,
  DEBIAN_FASHION_MNIST,
  type OpenedData,
  type OpenOptions,
  type LoadOptions,
} from './registry.js';
export {
  fetchDataset,
  downloadFile,
  extractArchive,
  md5File,
  SOURCES,
  FETCHABLE,
  type FetchableName,
  type FetchLike,
  type RemoteFile,
} from './fetch.js';
export { subsetDataset } from './subset.js';
