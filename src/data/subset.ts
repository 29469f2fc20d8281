import { channelStats, sharedBytes, sharedInt32, type Dataset } from './dataset.js';

/** The first n images of a split (for quick runs); statistics are recomputed on the subset. */
export function subsetDataset(ds: Dataset, n: number): Dataset {
  if (!(n > 0) || n >= ds.n) return ds;
  const per = ds.c * ds.h * ds.w;
  const images = sharedBytes(n * per);
  images.set(ds.images.subarray(0, n * per));
  const labels = sharedInt32(n);
  labels.set(ds.labels.subarray(0, n));
  return { ...ds, name: `${ds.name}[:${n}]`, images, labels, n, ...channelStats(images, n, ds.c, ds.h * ds.w) };
}
