// Compiles a network into the private-inference plan: a list of ring operations on Z_2^64 fixed-point values in
// topological order, with the scale (fractional bits) of every value tracked exactly.
//
// - conv (BN folded in; a standalone BN becomes a depthwise 1x1 conv) and fc: secret integer weights of at most
//   16 bits, quantised per layer with wFrac = min(weightFrac, bits the largest |w| allows) fractional bits; the
//   output scale is the input scale + wFrac; the bias is quantised at the output scale and added by the server.
// - add: the input of lower scale is shifted up (exact) to the other's scale.
// - global / average pooling: a public sum; the 1/area divide is a scale change when area is a power of two,
//   otherwise it is folded into the next conv/fc's weights.
// - kept ReLU sites: one garbled circuit per element, truncating by scale - f exactly inside the circuit.
// - culled ReLU sites: nothing, except local share truncation by scale - f when the scale exceeds f.
// - maxpool: unsupported (a comparison tree per window would need its own circuits).
import { createHash } from 'node:crypto';
import type { BatchNorm2d, Conv2d, Linear } from '../engine/index.js';
import { describeNetwork, foldBatchNorm, type GraphNode, type Network } from '../models/index.js';
import {
  quantize, r64Add, r64FromInts, r64MaxBits, r64Sar, r64Shl, truncClientShare, truncServerShare, type R64,
} from './fixed.js';
import { RingConv2d, RingFc, ringChannelSum, type ConvGeometry, type RingLinear } from './linear/ring.js';

export interface FixedPointOptions {
  /** Fractional bits of activations (the scale after every ReLU / culled site and of the input). */
  f: number;
  /** Most fractional bits of the weights (fewer for a layer whose largest weight needs them). */
  weightFrac: number;
  /** Weight bit width (signed), <= 16. */
  weightBits: number;
  /** Integer bits of headroom in each ReLU circuit: it reads the low scale + reluIntBits + 1 bits of x. */
  reluIntBits: number;
}

export const defaultFixedPoint: FixedPointOptions = { f: 12, weightFrac: 12, weightBits: 16, reluIntBits: 20 };

interface OpBase {
  /** Node name (module path or ReLU site). */
  name: string;
  /** Output shape per image and element count. */
  shape: number[];
  size: number;
  /** Fractional bits of the output. */
  scale: number;
}

export type PlanOp =
  | (OpBase & { op: 'input' })
  | (OpBase & { op: 'conv'; input: number; geom: ConvGeometry; wFrac: number })
  | (OpBase & { op: 'fc'; input: number; inSize: number; wFrac: number })
  | (OpBase & { op: 'add'; inputs: [number, number]; shifts: [number, number] })
  | (OpBase & { op: 'gap'; input: number })
  | (OpBase & { op: 'avgpool'; input: number; geom: ConvGeometry })
  | (OpBase & { op: 'flatten'; input: number })
  /** A kept ReLU site: garbled circuit of width `width` reading x mod 2^width, output (ReLU(x) >> shift). */
  | (OpBase & { op: 'relu'; input: number; width: number; shift: number })
  /** A culled site: identity, with local share truncation by `shift` (0: nothing at all). */
  | (OpBase & { op: 'cull'; input: number; shift: number });

/** Everything public: the client receives it from the server and runs the same plan on its shares. */
export interface PublicPlan {
  format: 'deepreduce-pi-plan';
  arch: string;
  fixed: FixedPointOptions;
  ops: PlanOp[];
  input: { mean: number[]; std: number[]; padFrom?: number; dataset?: string; classNames?: string[] };
  /** Kept ReLUs (garbled circuits), culled sites, multiply-accumulates of the secret layers. */
  relus: number;
  culledSites: number;
  macs: number;
  digest: string;
}

/** The server's secret per-op data (conv / fc only). */
export interface SecretLayer {
  linear: RingLinear;
  /** Quantised bias at the op's output scale. */
  bias: R64;
}

export interface ServerModel {
  plan: PublicPlan;
  secret: (SecretLayer | null)[];
  /** Weight clipping and other quantisation notes. */
  warnings: string[];
  dispose(): void;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

function quantWeights(w: Float32Array | Float64Array, o: FixedPointOptions, name: string, warnings: string[]): { q: Float64Array; frac: number } {
  const lim = 2 ** (o.weightBits - 1) - 1;
  let maxAbs = 0;
  for (const v of w) maxAbs = Math.max(maxAbs, Math.abs(v));
  let frac = o.weightFrac;
  if (maxAbs > 0) frac = Math.min(frac, Math.floor(Math.log2(lim / maxAbs)));
  if (frac < 0) frac = 0;
  const p = 2 ** frac, q = new Float64Array(w.length);
  let clipped = 0;
  for (let i = 0; i < w.length; i++) {
    let v = Math.round(w[i] * p);
    if (v > lim || v < -lim) { clipped++; v = Math.max(-lim, Math.min(lim, v)); }
    q[i] = v;
  }
  if (clipped) warnings.push(`${name}: ${clipped} weights clipped to +-${lim} at ${frac} fractional bits (largest |w| = ${maxAbs})`);
  return { q, frac };
}

function quantBias(b: Float32Array | Float64Array | null, n: number, scale: number, name: string): R64 {
  if (!b) return r64FromInts(new Float64Array(n));
  if (b.length !== n) throw new Error(`${name}: bias has ${b.length} values, expected ${n}`);
  return quantize(b, scale, `${name}: bias at scale ${scale}`);
}

/** Options for compilePlan beyond the fixed-point format. */
export interface CompileOptions extends Partial<FixedPointOptions> {
  input?: PublicPlan['input'];
}

/** Compiles `net` (eval mode; its ReLU mask as described) into the plan and the server's secret layers. */
export function compilePlan(net: Network, opts: CompileOptions = {}): ServerModel {
  const fx: FixedPointOptions = { ...defaultFixedPoint, ...Object.fromEntries(Object.entries(opts).filter(([k, v]) => k !== 'input' && v !== undefined)) };
  if (!(fx.weightBits >= 2 && fx.weightBits <= 16)) throw new Error(`fixed point: weightBits ${fx.weightBits} must be in [2, 16]`);
  if (!(fx.f >= 0 && fx.f <= 24)) throw new Error(`fixed point: f ${fx.f} must be in [0, 24]`);
  const nodes = describeNetwork(net);
  const folded = foldBatchNorm(nodes);
  const warnings: string[] = [];
  const ops: PlanOp[] = [];
  const secret: (SecretLayer | null)[] = [];
  const toPlan = new Map<number, number>();
  // Pending 1/area factors of non-power-of-two average pools, keyed by plan op, to fold into the next weights.
  const pendingDiv = new Map<number, number>();
  try {
    const byConv = new Map(folded.map((f) => [f.conv, f]));
    const foldedBn = new Set(folded.map((f) => f.bn));
    const push = (o: PlanOp, s: SecretLayer | null = null): number => {
      ops.push(o);
      secret.push(s);
      return ops.length - 1;
    };
    const src = (n: GraphNode, i = 0): number => {
      const p = toPlan.get(n.inputs[i]!);
      if (p === undefined) throw new Error(`plan: node '${n.name}' reads node ${n.inputs[i]} which has no plan op`);
      return p;
    };
    const takeDiv = (inp: number, name: string): number => {
      const d = pendingDiv.get(inp) ?? 1;
      pendingDiv.delete(inp);
      if (d !== 1) warnings.push(`${name}: average-pool divisor ${d} folded into the weights`);
      return d;
    };
    const checkNoDiv = (inp: number, n: GraphNode) => {
      if (pendingDiv.has(inp)) throw new Error(`unsupported for PI: ${n.name} (${n.op}) reads an average pool whose area is not a power of two; it must feed a conv or linear layer directly`);
    };

    for (const n of nodes) {
      const shape = n.outShape, size = numel(shape);
      switch (n.op) {
        case 'input':
          toPlan.set(n.id, push({ op: 'input', name: 'input', shape, size, scale: fx.f }));
          break;
        case 'conv': {
          const inp = src(n), m = n.module as Conv2d, f = byConv.get(n.name);
          const div = takeDiv(inp, n.name);
          const wf = (f ? f.weight : m.weight).toFloat32();
          const bf = f ? f.bias.toFloat32() : m.bias ? m.bias.toFloat32() : null;
          const w = Float64Array.from(wf, (v) => v / div);
          const { q, frac } = quantWeights(w, fx, n.name, warnings);
          const inShape = ops[inp]!.shape;
          const geom: ConvGeometry = {
            inShape: inShape as [number, number, number], outShape: shape as [number, number, number],
            kernel: m.kernel, stride: m.stride, padding: m.padding, dilation: m.dilation, groups: m.groups,
          };
          const scale = ops[inp]!.scale + frac;
          toPlan.set(n.id, push({ op: 'conv', name: n.name, input: inp, shape, size, scale, geom, wFrac: frac }, {
            linear: new RingConv2d(n.name, q, geom), bias: quantBias(bf, shape[0]!, scale, n.name),
          }));
          break;
        }
        case 'bn': {
          if (foldedBn.has(n.name)) {
            toPlan.set(n.id, src(n));
            break;
          }
          // A BN that does not follow a conv: the per-channel affine map as a depthwise 1x1 conv.
          const inp = src(n), m = n.module as BatchNorm2d;
          checkNoDiv(inp, n);
          const g = m.weight.toFloat32(), b = m.bias.toFloat32(), mu = m.runningMean.toFloat32(), v = m.runningVar.toFloat32();
          const c = m.channels;
          const w = new Float64Array(c), bias = new Float64Array(c);
          for (let i = 0; i < c; i++) {
            w[i] = g[i] / Math.sqrt(v[i] + m.eps);
            bias[i] = b[i] - mu[i] * w[i];
          }
          const { q, frac } = quantWeights(w, fx, n.name, warnings);
          const geom: ConvGeometry = { inShape: shape as [number, number, number], outShape: shape as [number, number, number], kernel: 1, stride: 1, padding: 0, dilation: 1, groups: c };
          const scale = ops[inp]!.scale + frac;
          toPlan.set(n.id, push({ op: 'conv', name: n.name, input: inp, shape, size, scale, geom, wFrac: frac }, {
            linear: new RingConv2d(n.name, q, geom), bias: quantBias(bias, c, scale, n.name),
          }));
          break;
        }
        case 'linear': {
          const inp = src(n), m = n.module as Linear;
          const div = takeDiv(inp, n.name);
          const w = Float64Array.from(m.weight.toFloat32(), (x) => x / div);
          const { q, frac } = quantWeights(w, fx, n.name, warnings);
          const inSize = ops[inp]!.size, scale = ops[inp]!.scale + frac;
          toPlan.set(n.id, push({ op: 'fc', name: n.name, input: inp, inSize, shape, size, scale, wFrac: frac }, {
            linear: new RingFc(n.name, q, inSize, size), bias: quantBias(m.bias ? m.bias.toFloat32() : null, size, scale, n.name),
          }));
          break;
        }
        case 'add': {
          const a = src(n, 0), b = src(n, 1);
          checkNoDiv(a, n);
          checkNoDiv(b, n);
          const sa = ops[a]!.scale, sb = ops[b]!.scale, scale = Math.max(sa, sb);
          toPlan.set(n.id, push({ op: 'add', name: n.name, inputs: [a, b], shifts: [scale - sa, scale - sb], shape, size, scale }));
          break;
        }
        case 'relu': {
          const inp = src(n);
          checkNoDiv(inp, n);
          const s = ops[inp]!.scale, shift = Math.max(0, s - fx.f);
          if (n.enabled) {
            const width = Math.min(64, s + fx.reluIntBits + 1);
            if (width < shift + 2) throw new Error(`plan: ReLU ${n.site}: circuit width ${width} too small for shift ${shift}`);
            toPlan.set(n.id, push({ op: 'relu', name: n.site!, input: inp, width, shift, shape, size, scale: s - shift }));
          } else {
            toPlan.set(n.id, push({ op: 'cull', name: n.site!, input: inp, shift, shape, size, scale: s - shift }));
          }
          break;
        }
        case 'gap':
        case 'avgpool': {
          const inp = src(n);
          checkNoDiv(inp, n);
          const inShape = ops[inp]!.shape;
          const area = n.op === 'gap' ? inShape[1]! * inShape[2]! : n.attributes.kernel! ** 2;
          const s = ops[inp]!.scale + (isPow2(area) ? Math.log2(area) : 0);
          let id: number;
          if (n.op === 'gap') id = push({ op: 'gap', name: n.name, input: inp, shape, size, scale: s });
          else {
            const geom: ConvGeometry = {
              inShape: inShape as [number, number, number], outShape: shape as [number, number, number],
              kernel: n.attributes.kernel!, stride: n.attributes.stride!, padding: n.attributes.padding!, dilation: 1, groups: inShape[0]!,
            };
            id = push({ op: 'avgpool', name: n.name, input: inp, geom, shape, size, scale: s });
          }
          if (!isPow2(area)) pendingDiv.set(id, area);
          toPlan.set(n.id, id);
          break;
        }
        case 'flatten': {
          const inp = src(n);
          const id = push({ op: 'flatten', name: n.name, input: inp, shape, size, scale: ops[inp]!.scale });
          if (pendingDiv.has(inp)) { pendingDiv.set(id, pendingDiv.get(inp)!); pendingDiv.delete(inp); }
          toPlan.set(n.id, id);
          break;
        }
        case 'maxpool':
          throw new Error(`unsupported for PI: ${n.name} (maxpool); use an architecture without max-pooling (resnet-cifar, resnet-thin, wrn)`);
      }
    }
    if (pendingDiv.size) throw new Error('unsupported for PI: the network ends in an average pool whose area is not a power of two');
  } catch (e) {
    for (const s of secret) s?.linear.dispose();
    throw e;
  } finally {
    for (const f of folded) { f.weight.dispose(); f.bias.dispose(); }
  }
  const plan = finishPlan(net.spec.arch, fx, ops, opts.input ?? { mean: [], std: [] });
  return { plan, secret, warnings, dispose: () => { for (const s of secret) s?.linear.dispose(); } };
}

function finishPlan(arch: string, fixed: FixedPointOptions, ops: PlanOp[], input: PublicPlan['input']): PublicPlan {
  let relus = 0, culledSites = 0, macs = 0;
  for (const o of ops) {
    if (o.op === 'relu') relus += o.size;
    else if (o.op === 'cull') culledSites++;
    else if (o.op === 'conv') macs += o.size * (o.geom.inShape[0] / o.geom.groups) * o.geom.kernel ** 2;
    else if (o.op === 'fc') macs += o.size * o.inSize;
  }
  const body = { format: 'deepreduce-pi-plan' as const, arch, fixed, ops, input, relus, culledSites, macs };
  const digest = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  return { ...body, digest };
}

/** Checks a plan received from a peer (structure and digest) so that malformed plans fail with a clear error. */
export function checkPlan(p: unknown, what: string): PublicPlan {
  const bad = (why: string): never => { throw new Error(`${what}: malformed plan: ${why}`); };
  if (!p || typeof p !== 'object') bad('not an object');
  const plan = p as PublicPlan;
  if (plan.format !== 'deepreduce-pi-plan') bad(`format '${String(plan.format)}'`);
  if (!Array.isArray(plan.ops) || !plan.ops.length || plan.ops[0]!.op !== 'input') bad('ops must start with the input');
  const { digest, ...body } = plan;
  const d = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  if (d !== digest) bad(`digest ${digest} does not match its content (${d})`);
  return plan;
}

/** Public ring ops of a plan (pooling) that both parties apply to their own shares. */
export class PublicOps {
  private readonly pools = new Map<number, RingConv2d>();
  constructor(readonly plan: PublicPlan) {}
  avgpool(i: number, x: R64): R64 {
    const o = this.plan.ops[i]!;
    if (o.op !== 'avgpool') throw new Error(`plan op ${i} is ${o.op}, not avgpool`);
    let c = this.pools.get(i);
    if (!c) {
      const k = o.geom.kernel;
      c = new RingConv2d(o.name, new Float64Array(o.geom.outShape[0] * k * k).fill(1), o.geom);
      this.pools.set(i, c);
    }
    return c.apply(x);
  }
  dispose(): void {
    for (const c of this.pools.values()) c.dispose();
    this.pools.clear();
  }
}

/** Applies a share-local op (everything but conv / fc / relu) to one party's values. */
export function localOp(pub: PublicOps, i: number, vals: R64[], role: 'server' | 'client' | 'clear'): R64 {
  const o = pub.plan.ops[i]!;
  switch (o.op) {
    case 'add': {
      const [a, b] = o.inputs, [sa, sb] = o.shifts;
      return r64Add(sa ? r64Shl(vals[a]!, sa) : vals[a]!, sb ? r64Shl(vals[b]!, sb) : vals[b]!, o.name);
    }
    case 'gap': {
      const inShape = pub.plan.ops[o.input]!.shape;
      return ringChannelSum(vals[o.input]!, inShape);
    }
    case 'avgpool':
      return pub.avgpool(i, vals[o.input]!);
    case 'flatten':
      return vals[o.input]!;
    case 'cull': {
      const x = vals[o.input]!;
      if (o.shift === 0) return x;
      return role === 'server' ? truncServerShare(x, o.shift) : role === 'client' ? truncClientShare(x, o.shift) : r64Sar(x, o.shift);
    }
    default:
      throw new Error(`plan op ${i} (${o.op} '${o.name}') is not share-local`);
  }
}

/** ReLU then arithmetic shift in the clear on 64-bit values: the reference of a kept site. */
export function reluShiftClear(x: R64, shift: number): R64 {
  const n = x.lo.length, lo = new Uint32Array(n), hi = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    if ((x.hi[i] | 0) >= 0) { lo[i] = x.lo[i]; hi[i] = x.hi[i]; }
  }
  return r64Sar({ lo, hi }, shift);
}

export interface ReferenceResult {
  /** Output (logits) as ring values at the last op's scale. */
  out: R64;
  logits: Float64Array;
  /** Per kept ReLU op: log2 of the largest |x| in its input (must stay below width - 1), and the width. */
  reluBits: { op: number; name: string; bits: number; width: number }[];
  /** Per culled op with truncation: log2 of the largest |x| (local truncation fails with probability ~2^(bits+1-64)). */
  cullBits: { op: number; name: string; bits: number }[];
}

/** The fixed-point plaintext reference: the plan's integer arithmetic in the clear, with exact truncations. */
export function referenceForward(model: ServerModel, xq: R64): ReferenceResult {
  const { plan, secret } = model;
  const pub = new PublicOps(plan);
  const vals: R64[] = [];
  const reluBits: ReferenceResult['reluBits'] = [], cullBits: ReferenceResult['cullBits'] = [];
  try {
    plan.ops.forEach((o, i) => {
      switch (o.op) {
        case 'input':
          if (xq.lo.length !== o.size) throw new Error(`reference: input has ${xq.lo.length} elements, expected ${o.size} [${o.shape}]`);
          vals.push(xq);
          break;
        case 'conv':
        case 'fc': {
          const s = secret[i]!;
          const y = s.linear.apply(vals[o.input]!);
          vals.push(o.op === 'conv' ? addChannelBias(y, s.bias, o.shape) : r64Add(y, s.bias));
          break;
        }
        case 'relu': {
          const x = vals[o.input]!;
          reluBits.push({ op: i, name: o.name, bits: r64MaxBits(x), width: o.width });
          vals.push(reluShiftClear(x, o.shift));
          break;
        }
        default:
          if (o.op === 'cull' && o.shift) cullBits.push({ op: i, name: o.name, bits: r64MaxBits(vals[o.input]!) });
          vals.push(localOp(pub, i, vals, 'clear'));
      }
    });
  } finally {
    pub.dispose();
  }
  const out = vals[vals.length - 1]!, last = plan.ops[plan.ops.length - 1]!;
  const logits = new Float64Array(out.lo.length);
  const p = 2 ** -last.scale;
  for (let i = 0; i < logits.length; i++) logits[i] = ((out.hi[i]! | 0) * 4294967296 + out.lo[i]!) * p;
  return { out, logits, reluBits, cullBits };
}

/** y + bias[channel] for a CHW tensor (bias one ring value per channel). */
export function addChannelBias(y: R64, bias: R64, shape: readonly number[]): R64 {
  const c = shape[0]!, hw = y.lo.length / c;
  const lo = new Uint32Array(y.lo.length), hi = new Uint32Array(y.lo.length);
  for (let ch = 0; ch < c; ch++) {
    const bl = bias.lo[ch]!, bh = bias.hi[ch]!;
    for (let i = ch * hw; i < (ch + 1) * hw; i++) {
      const s = y.lo[i]! + bl;
      lo[i] = s;
      hi[i] = y.hi[i]! + bh + (s >= 4294967296 ? 1 : 0);
    }
  }
  return { lo, hi };
}
