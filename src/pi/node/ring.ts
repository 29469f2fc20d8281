// Exact linear layers on Z_2^64 shares with a float engine: every share is split into L-bit limbs (unsigned),
// the limbs of one input go through libtorch's float64 conv2d / linear as a batch, and the limb results are
// recombined mod 2^64. With integer weights |w| <= W and K terms per output, every partial sum is an integer of
// magnitude <= (2^L - 1) * W * K; L is chosen per layer so that this stays below 2^53, hence every float64
// operation is exact whatever the summation order (direct / im2col+GEMM kernels; no Winograd or FFT for float64
// on CPU). E.g. 16-bit weights and K = 4608 (512 channels x 3x3) give L = 25, 3 limbs.
import { F, tensor, tidy, type Tensor } from '../../engine/index.js';
import type { R64 } from '../fixed.js';
import type { ConvGeometry, RingLinear } from '../ringlinear.js';

export { ringChannelSum } from '../linear/pool.js';

const TWO32 = 4294967296;

/** Largest limb width L (<= 31) with (2^L - 1) * maxAbs * K < 2^53, and the limb count covering 64 bits. */
export function limbPlan(maxAbs: number, terms: number, what: string): { bits: number; limbs: number } {
  const bound = Math.max(1, maxAbs) * Math.max(1, terms);
  let bits = 31;
  while (bits > 0 && (2 ** bits - 1) * bound >= 2 ** 53) bits--;
  if (bits < 8)
    throw new Error(
      `${what}: integer weights up to ${maxAbs} over ${terms} terms leave ${bits}-bit limbs; quantise the weights to fewer bits`,
    );
  return { bits, limbs: Math.ceil(64 / bits) };
}

/** Limbs of x as a Float64Array [limbs * n] (limb j of element i at j*n + i). */
export function toLimbs(x: R64, bits: number, limbs: number): Float64Array {
  const n = x.lo.length,
    out = new Float64Array(limbs * n),
    mask = 2 ** bits - 1;
  for (let j = 0; j < limbs; j++) {
    const start = j * bits,
      o = j * n;
    if (start + bits <= 32) {
      for (let i = 0; i < n; i++) out[o + i] = (x.lo[i] >>> start) & mask;
    } else if (start >= 32) {
      const s = start - 32;
      for (let i = 0; i < n; i++) out[o + i] = (x.hi[i] >>> s) & mask;
    } else {
      const s = 32 - start; // bits taken from lo
      for (let i = 0; i < n; i++) out[o + i] = ((x.lo[i] >>> start) | (x.hi[i] << s)) & mask;
    }
  }
  return out;
}

/** sum_j y[j*n + i] * 2^(j*bits) mod 2^64, for exact integer doubles y (|y| < 2^53). */
export function fromLimbs(y: Float64Array, n: number, bits: number, limbs: number): R64 {
  const lo = new Uint32Array(n),
    hi = new Uint32Array(n);
  for (let j = 0; j < limbs; j++) {
    const p = 2 ** (j * bits),
      o = j * n;
    for (let i = 0; i < n; i++) {
      // v is exact (a power-of-two scaling); ToUint32 reduces any finite double exactly mod 2^32.
      const v = y[o + i] * p;
      const vlo = v >>> 0,
        vhi = Math.floor(v / TWO32) >>> 0;
      const s = lo[i] + vlo;
      lo[i] = s;
      hi[i] = hi[i] + vhi + (s >= TWO32 ? 1 : 0);
    }
  }
  return { lo, hi };
}

function maxAbsOf(w: ArrayLike<number>, what: string): number {
  let m = 0;
  for (let i = 0; i < w.length; i++) {
    if (!Number.isSafeInteger(w[i])) throw new Error(`${what}: weight[${i}] = ${w[i]} is not an integer`);
    m = Math.max(m, Math.abs(w[i]));
  }
  return m;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function checkBound(maxAbs: number, bound: number | undefined, what: string): number {
  if (bound === undefined) return maxAbs;
  if (maxAbs > bound) throw new Error(`${what}: integer weight ${maxAbs} exceeds the bound ${bound}`);
  return bound;
}

/** conv2d with integer weights [Cout, Cin/groups, k, k]. */
export class RingConv2d implements RingLinear {
  readonly inSize: number;
  readonly outSize: number;
  readonly macs: number;
  private readonly w: Tensor;
  private readonly limb: { bits: number; limbs: number };
  /**
   * `weight`: integer weights [Cout, Cin/groups, k, k] (kept: HE preprocessing encodes them). `bound`: a public bound
   * on |w| to plan the limbs for (default the largest |w|), so the time reveals nothing.
   */
  constructor(
    readonly name: string,
    readonly weight: Float64Array,
    readonly g: ConvGeometry,
    bound?: number,
  ) {
    const [ci] = g.inShape,
      [co] = g.outShape;
    const terms = (ci / g.groups) * g.kernel * g.kernel;
    if (weight.length !== co * terms)
      throw new Error(`${name}: ${weight.length} weights, expected ${co}x${ci / g.groups}x${g.kernel}x${g.kernel}`);
    this.limb = limbPlan(checkBound(maxAbsOf(weight, name), bound, name), terms, name);
    this.inSize = numel(g.inShape);
    this.outSize = numel(g.outShape);
    this.macs = this.outSize * terms;
    this.w = tensor(weight, [co, ci / g.groups, g.kernel, g.kernel], 'float64').keep();
  }
  apply(x: R64): R64 {
    if (x.lo.length !== this.inSize)
      throw new Error(`${this.name}: input has ${x.lo.length} elements, expected ${this.inSize} [${this.g.inShape}]`);
    const { bits, limbs } = this.limb,
      g = this.g;
    const y = tidy(() => {
      const xt = tensor(toLimbs(x, bits, limbs), [limbs, ...g.inShape], 'float64');
      const out = F.conv2d(xt, this.w, null, {
        stride: g.stride,
        padding: g.padding,
        dilation: g.dilation,
        groups: g.groups,
      });
      const s = out.shape;
      if (s[1] !== g.outShape[0] || s[2] !== g.outShape[1] || s[3] !== g.outShape[2]) {
        throw new Error(`${this.name}: conv output [${s.slice(1)}] differs from the plan's [${g.outShape}]`);
      }
      return out.contiguous().toArray() as Float64Array;
    });
    return fromLimbs(y, this.outSize, bits, limbs);
  }
  dispose(): void {
    this.w.dispose();
  }
}

/** Fully connected y = W x with integer weights [out, in]. */
export class RingFc implements RingLinear {
  readonly macs: number;
  private readonly w: Tensor;
  private readonly limb: { bits: number; limbs: number };
  /** `weight`: integer weights [out, in] (kept: HE preprocessing encodes them). `bound`: as for RingConv2d. */
  constructor(
    readonly name: string,
    readonly weight: Float64Array,
    readonly inSize: number,
    readonly outSize: number,
    bound?: number,
  ) {
    if (weight.length !== inSize * outSize)
      throw new Error(`${name}: ${weight.length} weights, expected ${outSize}x${inSize}`);
    this.limb = limbPlan(checkBound(maxAbsOf(weight, name), bound, name), inSize, name);
    this.macs = inSize * outSize;
    this.w = tensor(weight, [outSize, inSize], 'float64').keep();
  }
  apply(x: R64): R64 {
    if (x.lo.length !== this.inSize)
      throw new Error(`${this.name}: input has ${x.lo.length} elements, expected ${this.inSize}`);
    const { bits, limbs } = this.limb;
    const y = tidy(
      () =>
        F.linear(tensor(toLimbs(x, bits, limbs), [limbs, this.inSize], 'float64'), this.w, null)
          .contiguous()
          .toArray() as Float64Array,
    );
    return fromLimbs(y, this.outSize, bits, limbs);
  }
  dispose(): void {
    this.w.dispose();
  }
}
