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

/**
 * The comparison tree of a max pool (public: it depends on the geometry only). Level l works on a vector V_l of
 * values, V_0 being the input: it pairs V_l[a[k]] with V_l[b[k]] (max(a, b) = b + ReLU(a − b): one comparison each)
 * and carries V_l[carry[j]] over unpaired; V_{l+1} = [the pairs' maxima..., the carried values...]. The output is
 * V_L[out]. Each window's tree runs over its valid elements only (padded positions never take part: PyTorch's −inf
 * padding), pairing neighbours in row-major order, so a window of k valid elements takes k − 1 comparisons over
 * ceil(log2 k) levels; every window and channel of a level is one batch.
 */
export interface MaxPoolLevel {
  a: Uint32Array;
  b: Uint32Array;
  carry: Uint32Array;
}
export interface MaxPoolSchedule {
  levels: MaxPoolLevel[];
  out: Uint32Array;
  /** Comparisons over all levels (sum of the levels' pairs). */
  comparisons: number;
}

/** The valid input elements (flat CHW indices) of each output element's window, in output order. */
function maxPoolWindows(g: ConvGeometry): number[][] {
  const [c, h, w] = g.inShape,
    [, oh, ow] = g.outShape;
  const { kernel: k, stride: s, padding: p, dilation: d } = g;
  const out: number[][] = [];
  for (let ch = 0; ch < c; ch++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++) {
        const win: number[] = [];
        for (let ky = 0; ky < k; ky++) {
          const iy = oy * s - p + ky * d;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ix = ox * s - p + kx * d;
            if (ix >= 0 && ix < w) win.push((ch * h + iy) * w + ix);
          }
        }
        if (!win.length) throw new Error(`max pool: window (${ch}, ${oy}, ${ox}) has no element of the input`);
        out.push(win);
      }
  return out;
}

/** The comparison tree of a max-pool geometry (one group per channel). */
export function maxPoolSchedule(g: ConvGeometry): MaxPoolSchedule {
  if (g.outShape[0] !== g.inShape[0] || g.groups !== g.inShape[0])
    throw new Error(`max pool: pooling keeps the ${g.inShape[0]} channels, one group each`);
  let cand = maxPoolWindows(g);
  const levels: MaxPoolLevel[] = [];
  let comparisons = 0;
  while (cand.some((w) => w.length > 1)) {
    let pairs = 0,
      carried = 0;
    for (const w of cand) {
      pairs += w.length >>> 1;
      carried += w.length & 1;
    }
    const a = new Uint32Array(pairs),
      b = new Uint32Array(pairs),
      carry = new Uint32Array(carried);
    let p = 0,
      q = 0;
    cand = cand.map((w) => {
      const next: number[] = [];
      for (let k = 0; k + 1 < w.length; k += 2) {
        a[p] = w[k]!;
        b[p] = w[k + 1]!;
        next.push(p++);
      }
      if (w.length & 1) {
        carry[q] = w[w.length - 1]!;
        next.push(pairs + q++);
      }
      return next;
    });
    levels.push({ a, b, carry });
    comparisons += pairs;
  }
  return { levels, out: Uint32Array.from(cand, (w) => w[0]!), comparisons };
}

/** Signed comparison of two ring values as 64-bit integers: a > b. */
const r64Greater = (x: R64, i: number, j: number): boolean => {
  const hi = x.hi[i]! | 0,
    hj = x.hi[j]! | 0;
  return hi !== hj ? hi > hj : x.lo[i]! > x.lo[j]!;
};

/** The max over each window's valid elements, the values read as signed 64-bit integers (the clear reference). */
export function ringMaxPoolClear(x: R64, g: ConvGeometry): R64 {
  const [c, h, w] = g.inShape;
  if (x.lo.length !== c * h * w) throw new Error(`ringMaxPool: ${x.lo.length} elements for shape [${g.inShape}]`);
  const wins = maxPoolWindows(g),
    lo = new Uint32Array(wins.length),
    hi = new Uint32Array(wins.length);
  wins.forEach((win, o) => {
    let m = win[0]!;
    for (const i of win) if (r64Greater(x, i, m)) m = i;
    lo[o] = x.lo[m]!;
    hi[o] = x.hi[m]!;
  });
  return { lo, hi };
}

/** Comparisons of a max pool without building its tree: per window, its valid elements less one (rows x columns). */
export function maxPoolComparisons(g: ConvGeometry): number {
  const [c, h, w] = g.inShape,
    [, oh, ow] = g.outShape;
  const valid = (n: number, o: number) => {
    let v = 0;
    for (let k = 0; k < g.kernel; k++) {
      const i = o * g.stride - g.padding + k * g.dilation;
      if (i >= 0 && i < n) v++;
    }
    return v;
  };
  let rows = 0,
    cols = 0;
  for (let oy = 0; oy < oh; oy++) rows += valid(h, oy);
  for (let ox = 0; ox < ow; ox++) cols += valid(w, ox);
  return c * (rows * cols - oh * ow);
}
