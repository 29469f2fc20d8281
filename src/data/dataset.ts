/** An in-memory image classification split: uint8 CHW planar images and integer labels. */
export interface Dataset {
  /** e.g. `cifar10/train`. */
  name: string;
  /** n*c*h*w bytes, image i at i*c*h*w, each image CHW planar. Shared memory, so loader workers read it without a copy. */
  images: Uint8Array;
  labels: Int32Array;
  n: number;
  c: number;
  h: number;
  w: number;
  numClasses: number;
  classNames?: string[];
  /** Per-channel mean and standard deviation of pixel/255 over this split. */
  mean: number[];
  std: number[];
  /** Where it was read from. */
  source: string;
}

/** A Uint8Array over shared memory (worker threads see it without a copy). */
export function sharedBytes(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n));
}

export function sharedInt32(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * 4));
}

/** Exact per-channel mean/std of pixel/255, from per-channel byte histograms. */
export function channelStats(images: Uint8Array, n: number, c: number, hw: number): { mean: number[]; std: number[] } {
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    const hist = new Float64Array(256);
    const counts = new Uint32Array(256);
    for (let i = 0; i < n; i++) {
      const off = (i * c + ch) * hw;
      for (let p = off, end = off + hw; p < end; p++) counts[images[p]!]!++;
      // flush before a 32-bit bin could overflow
      if ((i & 0xfff) === 0xfff)
        for (let v = 0; v < 256; v++) {
          hist[v]! += counts[v]!;
          counts[v] = 0;
        }
    }
    for (let v = 0; v < 256; v++) hist[v]! += counts[v]!;
    let total = 0;
    let s = 0;
    for (let v = 0; v < 256; v++) {
      total += hist[v]!;
      s += hist[v]! * v;
    }
    const m = total ? s / total : 0;
    let q = 0;
    for (let v = 0; v < 256; v++) q += hist[v]! * (v - m) * (v - m);
    mean.push(m / 255);
    std.push(total ? Math.sqrt(q / total) / 255 : 0);
  }
  return { mean, std };
}

/** Builds a Dataset, checking sizes and label range, and computing channel statistics. */
export function makeDataset(o: Omit<Dataset, 'mean' | 'std'>): Dataset {
  const { n, c, h, w } = o;
  if (o.images.length !== n * c * h * w)
    throw new Error(
      `${o.source}: ${o.name} has ${o.images.length} image bytes, expected n*c*h*w = ${n}*${c}*${h}*${w}`,
    );
  if (o.labels.length !== n) throw new Error(`${o.source}: ${o.name} has ${o.labels.length} labels for ${n} images`);
  for (let i = 0; i < n; i++) {
    const y = o.labels[i]!;
    if (y < 0 || y >= o.numClasses)
      throw new Error(`${o.source}: ${o.name} label ${y} of image ${i} is outside [0, ${o.numClasses})`);
  }
  return { ...o, ...channelStats(o.images, n, c, h * w) };
}
