// The model's input from an 8-bit RGBA image, as the plan's input transform says: converted to the model's channel
// count, zero-padded symmetrically to its size, normalised with its mean/std as in training. One function for the CLI
// client (PNG files, bench.ts) and the browser page (canvas pixels), so both send the same values for the same image.
import type { PublicPlan } from './plan.js';

export interface RgbaImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, row-major RGBA. */
  data: ArrayLike<number>;
}

/** The model's input: its CHW shape and normalisation. */
export interface InputSpec {
  shape: readonly number[];
  mean: readonly number[];
  std: readonly number[];
}

export const inputSpec = (plan: PublicPlan): InputSpec => ({
  shape: plan.ops[0]!.shape,
  mean: plan.input.mean,
  std: plan.input.std,
});

/** Why `img` cannot be the model's input (too large, or not paddable symmetrically), or null. */
export function imageFitError(spec: InputSpec, img: { width: number; height: number }): string | null {
  const [, H, W] = spec.shape as [number, number, number];
  if (img.width > W || img.height > H || (W - img.width) % 2 || (H - img.height) % 2) {
    return `a ${img.width}x${img.height} image cannot be padded symmetrically to the model's ${W}x${H}`;
  }
  return null;
}

/** The preprocessed CHW float input for `img` (throws if imageFitError). */
export function prepareImage(spec: InputSpec, img: RgbaImage): Float32Array {
  const why = imageFitError(spec, img);
  if (why) throw new Error(why);
  if (img.data.length !== 4 * img.width * img.height)
    throw new Error(`image data has ${img.data.length} bytes for ${img.width}x${img.height} RGBA`);
  const [c, H, W] = spec.shape as [number, number, number];
  const { mean, std } = spec;
  if (mean.length !== c || std.length !== c)
    throw new Error(`model input transform has ${mean.length} means / ${std.length} stds for ${c} channels`);
  const ox = (W - img.width) / 2,
    oy = (H - img.height) / 2,
    px = img.data;
  const x = new Float32Array(c * H * W);
  for (let ch = 0; ch < c; ch++) {
    const zero = (0 - mean[ch]!) / std[ch]!;
    x.fill(zero, ch * H * W, (ch + 1) * H * W);
    for (let y = 0; y < img.height; y++) {
      for (let xx = 0; xx < img.width; xx++) {
        const p = 4 * (y * img.width + xx);
        const v = c === 1 ? px[p]! * 0.299 + px[p + 1]! * 0.587 + px[p + 2]! * 0.114 : px[p + Math.min(ch, 2)]!;
        x[(ch * H + y + oy) * W + xx + ox] = (v / 255 - mean[ch]!) / std[ch]!;
      }
    }
  }
  return x;
}
