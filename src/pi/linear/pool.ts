// Public pooling on Z_2^64 shares by plain loops (no Node API: the browser client runs it): sums over windows, the
// divide being a scale change or folded into the next layer (compile.ts).
import type { R64 } from '../fixed.js';
import type { ConvGeometry } from '../ringlinear.js';

const TWO32 = 4294967296;

/** Per-channel sum over H x W of a CHW ring tensor (global average pooling without the divide). */
export function ringChannelSum(x: R64, shape: readonly number[]): R64 {
  const [c, h, w] = shape as [number, number, number];
  const hw = h * w;
  if (x.lo.length !== c * hw) throw new Error(`ringChannelSum: ${x.lo.length} elements for shape [${shape}]`);
  const lo = new Uint32Array(c),
    hi = new Uint32Array(c);
  for (let ch = 0; ch < c; ch++) {
    let l = 0,
      hsum = 0;
    for (let i = ch * hw; i < (ch + 1) * hw; i++) {
      l += x.lo[i]!;
      hsum += x.hi[i]!;
    }
    // l < 2^32 * hw and hsum < 2^32 * hw stay exact doubles for hw < 2^21.
    const carry = Math.floor(l / TWO32);
    lo[ch] = l >>> 0;
    hi[ch] = (hsum + carry) >>> 0;
  }
  return { lo, hi };
}

/** Window sums of a depthwise pooling geometry (one group per channel, zero padding counted as zeros). */
export function ringAvgPool(x: R64, g: ConvGeometry): R64 {
  const [c, h, w] = g.inShape,
    [oc, oh, ow] = g.outShape;
  if (x.lo.length !== c * h * w) throw new Error(`ringAvgPool: ${x.lo.length} elements for shape [${g.inShape}]`);
  if (oc !== c || g.groups !== c) throw new Error(`ringAvgPool: pooling keeps the ${c} channels, one group each`);
  const { kernel: k, stride: s, padding: p, dilation: d } = g;
  const lo = new Uint32Array(oc * oh * ow),
    hi = new Uint32Array(oc * oh * ow);
  for (let ch = 0; ch < c; ch++) {
    const base = ch * h * w;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        // At most 31 x 31 terms below 2^32 each: the double sums stay exact.
        let l = 0,
          hs = 0;
        for (let ky = 0; ky < k; ky++) {
          const iy = oy * s - p + ky * d;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ix = ox * s - p + kx * d;
            if (ix < 0 || ix >= w) continue;
            l += x.lo[base + iy * w + ix]!;
            hs += x.hi[base + iy * w + ix]!;
          }
        }
        const o = (ch * oh + oy) * ow + ox;
        lo[o] = l >>> 0;
        hi[o] = (hs + Math.floor(l / TWO32)) >>> 0;
      }
    }
  }
  return { lo, hi };
}
