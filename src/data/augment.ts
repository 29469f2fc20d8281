import type { Dataset } from './dataset.js';
import { Rng } from './rng.js';

/** How a batch is made from uint8 images. Pads are in raw pixel space (value 0, as torchvision's Pad/RandomCrop on images). */
export interface AugmentOptions {
  /** Pad every image symmetrically to this square size first (28 -> 32: 2 px each side). */
  padTo?: number;
  /** Random crop with this much zero padding on each side (the standard CIFAR recipe uses 4); 0 = off. */
  crop?: number;
  /** Random horizontal flip with probability 1/2 (keep off for digits). */
  flip?: boolean;
  /** Normalisation, per channel, in pixel/255 units: out = (pixel/255 - mean) / std. */
  mean: number[];
  std: number[];
}

/** The parts of a Dataset a batch needs (what a worker receives). */
export type ImageSource = Pick<Dataset, 'images' | 'labels' | 'n' | 'c' | 'h' | 'w'>;

/** Output image size [c, H, W] after `padTo`. */
export function outputShape(src: { c: number; h: number; w: number }, aug: AugmentOptions): [number, number, number] {
  if (aug.padTo === undefined) return [src.c, src.h, src.w];
  const p = aug.padTo;
  if (p < src.h || p < src.w || (p - src.h) % 2 || (p - src.w) % 2)
    throw new Error(`padTo ${p}: cannot pad ${src.h}x${src.w} images symmetrically to ${p}x${p}`);
  return [src.c, p, p];
}

export function checkAugment(src: { c: number; h: number; w: number }, aug: AugmentOptions): void {
  if (aug.mean.length !== src.c || aug.std.length !== src.c)
    throw new Error(`normalisation has ${aug.mean.length} means / ${aug.std.length} stds for ${src.c}-channel images`);
  for (const s of aug.std) if (!(s > 0)) throw new Error(`normalisation std ${s} must be > 0`);
  if (aug.crop !== undefined && !(Number.isInteger(aug.crop) && aug.crop >= 0))
    throw new Error(`crop padding ${aug.crop} must be an integer >= 0`);
  outputShape(src, aug);
}

/**
 * Makes one batch: images `indices` of `src`, padded, randomly cropped and flipped with an Rng seeded by `seed`
 * (draws per image, in order: crop dy, crop dx, flip), then normalised. Pure function of its inputs, so a worker
 * and the main thread produce identical bytes.
 */
export function makeBatch(
  src: ImageSource,
  indices: ArrayLike<number>,
  aug: AugmentOptions,
  seed: number,
): { x: Float32Array; y: Int32Array } {
  const [c, H, W] = outputShape(src, aug);
  const { h, w, images } = src;
  const n = indices.length;
  const x = new Float32Array(n * c * H * W);
  const y = new Int32Array(n);
  const rng = new Rng(seed);
  const crop = aug.crop ?? 0;
  const ey = (H - h) / 2;
  const ex = (W - w) / 2;
  // pixel -> normalised value, one table per channel
  const lut = new Float32Array(c * 256);
  for (let ch = 0; ch < c; ch++)
    for (let v = 0; v < 256; v++) lut[ch * 256 + v] = (v / 255 - aug.mean[ch]!) / aug.std[ch]!;
  for (let b = 0; b < n; b++) {
    const idx = indices[b]!;
    if (!(idx >= 0 && idx < src.n)) throw new RangeError(`image index ${idx} is outside [0, ${src.n})`);
    y[b] = src.labels[idx]!;
    // source pixel of output (r, col) is (r + oy, col + ox) before the flip
    let oy = -ey;
    let ox = -ex;
    if (crop > 0) {
      oy += rng.below(2 * crop + 1) - crop;
      ox += rng.below(2 * crop + 1) - crop;
    }
    const flip = aug.flip ? rng.u32() >>> 31 === 1 : false;
    // output columns whose source column is inside the image
    const c0 = flip ? Math.max(0, W - w + ox) : Math.max(0, -ox);
    const c1 = flip ? Math.min(W, W + ox) : Math.min(W, w - ox);
    for (let ch = 0; ch < c; ch++) {
      const L = ch * 256;
      const pad = lut[L]!;
      const sbase = (idx * c + ch) * h * w;
      const obase = (b * c + ch) * H * W;
      for (let r = 0; r < H; r++) {
        const sy = r + oy;
        const o = obase + r * W;
        if (sy < 0 || sy >= h || c0 >= c1) {
          x.fill(pad, o, o + W);
          continue;
        }
        if (c0 > 0) x.fill(pad, o, o + c0);
        if (c1 < W) x.fill(pad, o + c1, o + W);
        const srow = sbase + sy * w;
        if (flip) {
          // output col -> source col W-1-col+ox
          for (let col = c0, s = srow + W - 1 - c0 + ox; col < c1; col++, s--) x[o + col] = lut[L + images[s]!]!;
        } else {
          for (let col = c0, s = srow + c0 + ox; col < c1; col++, s++) x[o + col] = lut[L + images[s]!]!;
        }
      }
    }
  }
  return { x, y };
}
