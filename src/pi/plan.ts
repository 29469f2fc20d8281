// The private-inference plan: a list of ring operations on Z_2^64 fixed-point values in topological order, with the
// scale (fractional bits) of every value tracked exactly. This module is the public part both parties run (and the
// browser client: pure TS, no Node API): the plan's types, checkPlan for a plan received from a peer, and the
// share-local ops. compile.ts (server only, libtorch) compiles a network into a plan and the server's secret layers:
//
// - conv (BN folded in; a standalone BN becomes a depthwise 1x1 conv) and fc: secret integer weights of at most
//   16 bits, all at ONE fixed scale of weightFrac fractional bits (a public constant, not taken from the weights, so
//   that the plan's scales and shifts reveal nothing of any layer's weights); larger weights are clipped, counted and
//   warned about. The output scale is the input scale + weightFrac; the bias is quantised at the output scale and
//   added by the server.
// - add: the input of lower scale is shifted up (exact) to the other's scale.
// - global / average pooling: a public sum; the 1/area divide is a scale change when area is a power of two,
//   otherwise it is folded into the next conv/fc's weights.
// - kept ReLU sites: one garbled circuit per element, truncating by scale - f exactly inside the circuit.
// - culled ReLU sites: nothing, except local share truncation by scale - f when the scale exceeds f.
// - partial ReLU sites (learned masks below the site level): a relu op whose `kept` lists the kept elements (a
//   channel list or a bitmap, models/partial.ts); the protocol runs on those only, the others are a culled site's
//   identity with local truncation. The mask is public: it is part of the architecture the client receives.
// - maxpool (kernel, stride, padding: max over each window's valid elements, padding never winning): a comparison
//   tree per window, max(a, b) = b + ReLU(a − b), each level one batch of the ReLU protocol (shift 0) on the
//   differences of shares over every window (linear/pool.ts: maxPoolSchedule; relu/maxpool.ts). Its `width` is the
//   ReLU's + 1: the difference of two values within the headroom needs one more bit. The scale is the input's.
import { r64Add, r64Sar, r64Shl, truncClientShare, truncServerShare, type R64 } from './fixed.js';
import type { ConvGeometry, RingLinear } from './ringlinear.js';
import {
  maxPoolComparisons,
  maxPoolSchedule,
  ringAvgPool,
  ringChannelSum,
  type MaxPoolSchedule,
} from './linear/pool.js';
import type { ReluSite } from './relusite.js';
import { cryptoBackend, toHex } from './crypto/backend.js';
import { malformed } from './transport/errors.js';
import { decodePartial, type KeptDocument } from '../models/partial.js';

export interface FixedPointOptions {
  /** Fractional bits of activations (the scale after every ReLU / culled site and of the input). */
  f: number;
  /** Fractional bits of every layer's weights (one public scale; |w| >= 2^(weightBits - 1 - weightFrac) clips). */
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
  | (OpBase & { op: 'conv'; input: number; geom: ConvGeometry })
  | (OpBase & { op: 'fc'; input: number; inSize: number })
  | (OpBase & { op: 'add'; inputs: [number, number]; shifts: [number, number] })
  | (OpBase & { op: 'gap'; input: number })
  | (OpBase & { op: 'avgpool'; input: number; geom: ConvGeometry })
  /** Max pooling: a comparison tree per window, each comparison a ReLU of width `width` (shift 0) on a difference. */
  | (OpBase & { op: 'maxpool'; input: number; geom: ConvGeometry; width: number })
  | (OpBase & { op: 'flatten'; input: number })
  /** A kept ReLU site: garbled circuit of width `width` reading x mod 2^width, output (ReLU(x) >> shift). */
  /** With `kept`, only on those elements (a partial site); the others pass through as at a culled site. */
  | (OpBase & { op: 'relu'; input: number; width: number; shift: number; kept?: PlanKept })
  /** A culled site: identity, with local share truncation by `shift` (0: nothing at all). */
  | (OpBase & { op: 'cull'; input: number; shift: number });

/** The kept elements of a partial site: the mask document's form (models/partial.ts), the shape being the op's. */
export type PlanKept = KeptDocument;

type ReluOp = Extract<PlanOp, { op: 'relu' }>;

/** ReLUs a relu op evaluates: its kept count for a partial site, else its size. */
export const reluCount = (o: ReluOp): number => o.kept?.relus ?? o.size;

const keptCache = new WeakMap<ReluOp, Uint32Array>();

/** The sorted flat indices a partial relu op keeps (decoded once per op object), or null when it keeps all. */
export function reluElements(o: ReluOp): Uint32Array | null {
  if (!o.kept) return null;
  let e = keptCache.get(o);
  if (!e) {
    e = decodePartial({ shape: o.shape, ...o.kept }, o.shape, `plan: ReLU site ${o.name}`).elements;
    keptCache.set(o, e);
  }
  return e;
}

type MaxPoolOp = Extract<PlanOp, { op: 'maxpool' }>;

const poolCache = new WeakMap<MaxPoolOp, MaxPoolSchedule>();

/** A max-pool op's comparison tree (built once per op object). */
export function maxPoolTree(o: MaxPoolOp): MaxPoolSchedule {
  let t = poolCache.get(o);
  if (!t) {
    t = maxPoolSchedule(o.geom);
    poolCache.set(o, t);
  }
  return t;
}

/** Comparisons (ReLU-like ops) of a max-pool op. */
export const maxPoolCount = (o: MaxPoolOp): number => maxPoolComparisons(o.geom);

/** Comparisons over all the max-pool ops of a plan. */
export const planComparisons = (plan: PublicPlan): number =>
  plan.ops.reduce((a, o) => a + (o.op === 'maxpool' ? maxPoolCount(o) : 0), 0);

/**
 * The ReLU sites of a max-pool op: one per level of its tree, in order, each the level's comparisons (shift 0).
 * Their `op` keys are unique in the session: plan.ops.length * (level + 1) + the op's index, past every op index.
 */
export function maxPoolSites(plan: PublicPlan, i: number): ReluSite[] {
  const o = plan.ops[i]!;
  if (o.op !== 'maxpool') throw new Error(`plan op ${i} is not a max pool`);
  return maxPoolTree(o).levels.map((l, k) => ({
    op: plan.ops.length * (k + 1) + i,
    name: `${o.name}/max${k + 1}`,
    size: l.a.length,
    width: o.width,
    shift: 0,
  }));
}

/** Everything public: the client receives it from the server and runs the same plan on its shares. */
export interface PublicPlan {
  format: 'deepreduce-pi-plan';
  arch: string;
  fixed: FixedPointOptions;
  ops: PlanOp[];
  input: { mean: number[]; std: number[]; padFrom?: number; dataset?: string; classNames?: string[] };
  /** Kept ReLUs (partial sites: their kept elements), culled sites, multiply-accumulates of the secret layers. */
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

/** How the weights fitted the fixed scale (server-private: it describes the weights). */
export interface WeightQuantization {
  weightFrac: number;
  /** Largest |w| a weight may have without clipping: (2^(weightBits-1) - 1) / 2^weightFrac. */
  limit: number;
  /** Largest |w| of the model (BN folded in, pooling divisors folded in). */
  maxAbs: number;
  /** Weights clipped to the limit, over all layers. */
  clipped: number;
  layers: { name: string; maxAbs: number; clipped: number; weights: number }[];
}

export interface ServerModel {
  plan: PublicPlan;
  secret: (SecretLayer | null)[];
  /** Weight clipping and other quantisation notes. */
  warnings: string[];
  quant: WeightQuantization;
  dispose(): void;
}

const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/**
 * Bounds on a plan received from a peer, so that a hostile server cannot make the client allocate or compute without
 * bound: the client holds a ring share (8 bytes) of every op's output and, with garbled ReLUs, their tables until
 * online. Defaults admit ResNet-50 at 224x224 (9.6M ReLUs, 27M elements) with room to spare.
 */
export interface PlanBounds {
  maxOps: number;
  /** Elements of one op's output. */
  maxOpElements: number;
  /** Elements over all ops (the client keeps a share of each: 8 bytes per element). */
  maxTotalElements: number;
  /** Kept ReLUs. */
  maxRelus: number;
  /** Channels, height and width of any shape; kernel size. */
  maxDim: number;
  maxKernel: number;
}

export const DEFAULT_PLAN_BOUNDS: PlanBounds = {
  maxOps: 4096,
  maxOpElements: 1 << 24,
  maxTotalElements: 1 << 26,
  maxRelus: 1 << 25,
  maxDim: 65536,
  maxKernel: 31,
};

/** The digest of a plan's body (everything but the digest): SHA-256 of its JSON, 16 hex digits. */
export const planDigest = (body: Omit<PublicPlan, 'digest'>): string =>
  toHex(cryptoBackend.sha256(JSON.stringify(body))).slice(0, 16);

const OP_KEYS: Record<PlanOp['op'], string[]> = {
  input: [],
  conv: ['input', 'geom'],
  fc: ['input', 'inSize'],
  add: ['inputs', 'shifts'],
  gap: ['input'],
  avgpool: ['input', 'geom'],
  maxpool: ['input', 'geom', 'width'],
  flatten: ['input'],
  relu: ['input', 'width', 'shift', 'kept'],
  cull: ['input', 'shift'],
};
const BASE_KEYS = ['op', 'name', 'shape', 'size', 'scale'];
const GEOM_KEYS = ['inShape', 'outShape', 'kernel', 'stride', 'padding', 'dilation', 'groups'];

const convOut = (n: number, k: number, s: number, p: number, d: number) =>
  Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1;

/**
 * Checks a plan received from a peer: every field's type and range, op references pointing backwards, shapes and
 * scales consistent with the ops (the fixed-point rules of compilePlan: one weight scale, exact shifts, ReLU widths
 * within 64 bits), sizes within `bounds`, totals and digest. Throws MALFORMED naming the op and field.
 */
export function checkPlan(p: unknown, what: string, bounds: PlanBounds = DEFAULT_PLAN_BOUNDS): PublicPlan {
  const bad = (why: string): never => {
    throw malformed(`${what}: malformed plan: ${why}`);
  };
  const obj = (v: unknown, w: string): Record<string, unknown> =>
    v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : bad(`${w} is not an object`);
  const keys = (o: Record<string, unknown>, allowed: string[], w: string) => {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(`${w} has an unexpected field '${k.slice(0, 40)}'`);
  };
  const int = (v: unknown, lo: number, hi: number, w: string): number =>
    typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi
      ? v
      : bad(`${w} = ${JSON.stringify(v)?.slice(0, 40)} is not an integer in [${lo}, ${hi}]`);
  const str = (v: unknown, max: number, w: string): string =>
    typeof v === 'string' && v.length <= max ? v : bad(`${w} is not a string of at most ${max} characters`);
  const arr = (v: unknown, lo: number, hi: number, w: string): unknown[] =>
    Array.isArray(v) && v.length >= lo && v.length <= hi ? v : bad(`${w} is not an array of ${lo}..${hi} entries`);
  const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

  const plan = obj(p, 'the plan');
  keys(plan, ['format', 'arch', 'fixed', 'ops', 'input', 'relus', 'culledSites', 'macs', 'digest'], 'the plan');
  if (plan.format !== 'deepreduce-pi-plan') bad(`format '${String(plan.format).slice(0, 40)}'`);
  str(plan.arch, 64, 'arch');
  const fx = obj(plan.fixed, 'fixed');
  keys(fx, ['f', 'weightFrac', 'weightBits', 'reluIntBits'], 'fixed');
  const f = int(fx.f, 0, 24, 'fixed.f'),
    weightBits = int(fx.weightBits, 2, 16, 'fixed.weightBits');
  const weightFrac = int(fx.weightFrac, 0, weightBits - 2, 'fixed.weightFrac'),
    reluIntBits = int(fx.reluIntBits, 1, 62, 'fixed.reluIntBits');
  const ops = arr(plan.ops, 1, bounds.maxOps, 'ops');
  let total = 0,
    relus = 0,
    comparisons = 0,
    culled = 0,
    macs = 0;
  const checked: PlanOp[] = [];
  ops.forEach((raw, i) => {
    const o = obj(raw, `op ${i}`);
    const kind = o.op as PlanOp['op'];
    if (typeof kind !== 'string' || !Object.hasOwn(OP_KEYS, kind))
      bad(`op ${i}: unknown op ${JSON.stringify(o.op)?.slice(0, 40)}`);
    const w = `op ${i} (${kind})`;
    keys(o, [...BASE_KEYS, ...OP_KEYS[kind]], w);
    str(o.name, 256, `${w}.name`);
    const shape = arr(o.shape, 1, 3, `${w}.shape`).map((d, k) => int(d, 1, bounds.maxDim, `${w}.shape[${k}]`));
    const size = int(o.size, 1, bounds.maxOpElements, `${w}.size`);
    if (shape.reduce((a, b) => a * b, 1) !== size) bad(`${w}: size ${size} is not the product of shape [${shape}]`);
    total += size;
    if (total > bounds.maxTotalElements) bad(`more than ${bounds.maxTotalElements} elements over all ops (at op ${i})`);
    const scale = int(o.scale, 0, 62, `${w}.scale`);
    if ((i === 0) !== (kind === 'input')) bad(`${w}: the input must be op 0 and only op 0`);
    const ref = (v: unknown, k: string): PlanOp => checked[int(v, 0, i - 1, `${w}.${k}`)]!;
    const geom = (v: unknown, inShape: number[], groupsOf?: number): ConvGeometry => {
      const g = obj(v, `${w}.geom`);
      keys(g, GEOM_KEYS, `${w}.geom`);
      const kernel = int(g.kernel, 1, bounds.maxKernel, `${w}.geom.kernel`),
        stride = int(g.stride, 1, bounds.maxKernel, `${w}.geom.stride`);
      const padding = int(g.padding, 0, bounds.maxKernel, `${w}.geom.padding`),
        dilation = int(g.dilation, 1, bounds.maxKernel, `${w}.geom.dilation`);
      const gin = arr(g.inShape, 3, 3, `${w}.geom.inShape`) as number[],
        gout = arr(g.outShape, 3, 3, `${w}.geom.outShape`) as number[];
      if (inShape.length !== 3 || !same(gin, inShape))
        bad(`${w}: geom.inShape [${gin}] is not its input's shape [${inShape}]`);
      if (!same(gout, shape)) bad(`${w}: geom.outShape [${gout}] is not its shape [${shape}]`);
      const groups = int(g.groups, 1, bounds.maxDim, `${w}.geom.groups`);
      if (inShape[0]! % groups || shape[0]! % groups)
        bad(`${w}: ${groups} groups do not divide ${inShape[0]} -> ${shape[0]} channels`);
      if (groupsOf !== undefined && (groups !== groupsOf || shape[0] !== inShape[0]))
        bad(`${w}: pooling must keep the ${inShape[0]} channels, one group each`);
      const oh = convOut(inShape[1]!, kernel, stride, padding, dilation),
        ow = convOut(inShape[2]!, kernel, stride, padding, dilation);
      if (oh !== shape[1] || ow !== shape[2])
        bad(
          `${w}: kernel ${kernel}, stride ${stride}, padding ${padding}, dilation ${dilation} on [${inShape}] give ${oh}x${ow}, not [${shape}]`,
        );
      return {
        inShape: gin as ConvGeometry['inShape'],
        outShape: gout as ConvGeometry['outShape'],
        kernel,
        stride,
        padding,
        dilation,
        groups,
      };
    };
    const base = { name: o.name as string, shape, size, scale };
    let op: PlanOp;
    switch (kind) {
      case 'input':
        if (shape.length !== 3) bad(`${w}: the input shape [${shape}] is not CHW`);
        if (scale !== f) bad(`${w}: scale ${scale} is not f = ${f}`);
        op = { op: 'input', ...base };
        break;
      case 'conv': {
        const x = ref(o.input, 'input');
        const g = geom(o.geom, x.shape);
        if (scale !== x.scale + weightFrac)
          bad(`${w}: scale ${scale} is not its input's ${x.scale} + weightFrac ${weightFrac}`);
        macs += size * (g.inShape[0] / g.groups) * g.kernel ** 2;
        op = { op: 'conv', ...base, input: o.input as number, geom: g };
        break;
      }
      case 'fc': {
        const x = ref(o.input, 'input');
        if (int(o.inSize, 1, bounds.maxOpElements, `${w}.inSize`) !== x.size)
          bad(`${w}: inSize ${String(o.inSize)} is not its input's size ${x.size}`);
        if (shape.length !== 1) bad(`${w}: shape [${shape}] is not a vector`);
        if (scale !== x.scale + weightFrac)
          bad(`${w}: scale ${scale} is not its input's ${x.scale} + weightFrac ${weightFrac}`);
        macs += size * x.size;
        op = { op: 'fc', ...base, input: o.input as number, inSize: x.size };
        break;
      }
      case 'add': {
        const ins = arr(o.inputs, 2, 2, `${w}.inputs`),
          sh = arr(o.shifts, 2, 2, `${w}.shifts`);
        const a = ref(ins[0], 'inputs[0]'),
          b = ref(ins[1], 'inputs[1]');
        if (!same(a.shape, shape) || !same(b.shape, shape))
          bad(`${w}: inputs of shapes [${a.shape}] and [${b.shape}] for [${shape}]`);
        const s0 = Math.max(a.scale, b.scale);
        if (scale !== s0 || sh[0] !== s0 - a.scale || sh[1] !== s0 - b.scale)
          bad(
            `${w}: scale ${scale} / shifts ${JSON.stringify(sh)} do not align input scales ${a.scale} and ${b.scale}`,
          );
        op = {
          op: 'add',
          ...base,
          inputs: [ins[0] as number, ins[1] as number],
          shifts: [sh[0] as number, sh[1] as number],
        };
        break;
      }
      case 'gap': {
        const x = ref(o.input, 'input');
        if (x.shape.length !== 3 || !same(shape, [x.shape[0]!, 1, 1]))
          bad(`${w}: shape [${shape}] for an input of [${x.shape}]`);
        const area = x.shape[1]! * x.shape[2]!;
        if (scale !== x.scale + (isPow2(area) ? Math.log2(area) : 0))
          bad(`${w}: scale ${scale} for an area of ${area} at scale ${x.scale}`);
        op = { op: 'gap', ...base, input: o.input as number };
        break;
      }
      case 'avgpool': {
        const x = ref(o.input, 'input');
        const g = geom(o.geom, x.shape, x.shape[0]);
        if (scale !== x.scale + (isPow2(g.kernel ** 2) ? Math.log2(g.kernel ** 2) : 0))
          bad(`${w}: scale ${scale} for a ${g.kernel}x${g.kernel} pool at scale ${x.scale}`);
        op = { op: 'avgpool', ...base, input: o.input as number, geom: g };
        break;
      }
      case 'maxpool': {
        const x = ref(o.input, 'input');
        const g = geom(o.geom, x.shape, x.shape[0]);
        if (g.dilation !== 1 || 2 * g.padding > g.kernel)
          bad(`${w}: dilation ${g.dilation} / padding ${g.padding} (a max pool has dilation 1, padding <= kernel / 2)`);
        if (scale !== x.scale) bad(`${w}: scale ${scale} is not its input's ${x.scale}`);
        const width = int(o.width, 2, 64, `${w}.width`);
        if (width !== x.scale + reluIntBits + 2)
          bad(`${w}: width ${width} is not scale ${x.scale} + ${reluIntBits} integer bits + sign + 1 (a difference)`);
        op = { op: 'maxpool', ...base, input: o.input as number, geom: g, width };
        comparisons += maxPoolCount(op);
        if (relus + comparisons > bounds.maxRelus)
          bad(`more than ${bounds.maxRelus} kept ReLUs and max-pool comparisons (at op ${i})`);
        break;
      }
      case 'flatten': {
        const x = ref(o.input, 'input');
        if (shape.length !== 1 || size !== x.size || scale !== x.scale)
          bad(`${w}: [${shape}] at scale ${scale} is not its input [${x.shape}] at ${x.scale} flattened`);
        op = { op: 'flatten', ...base, input: o.input as number };
        break;
      }
      case 'relu':
      case 'cull': {
        const x = ref(o.input, 'input');
        if (!same(shape, x.shape)) bad(`${w}: shape [${shape}] is not its input's [${x.shape}]`);
        const shift = int(o.shift, 0, 62, `${w}.shift`);
        if (shift !== Math.max(0, x.scale - f) || scale !== x.scale - shift)
          bad(`${w}: shift ${shift} / scale ${scale} do not bring scale ${x.scale} to f = ${f}`);
        if (kind === 'cull') {
          culled++;
          op = { op: 'cull', ...base, input: o.input as number, shift };
          break;
        }
        const width = int(o.width, 2, 64, `${w}.width`);
        if (width !== x.scale + reluIntBits + 1)
          bad(`${w}: width ${width} is not scale ${x.scale} + ${reluIntBits} integer bits + sign`);
        if (width < shift + 2) bad(`${w}: width ${width} too small for shift ${shift}`);
        op = { op: 'relu', ...base, input: o.input as number, width, shift };
        if (o.kept !== undefined) {
          op.kept = checkKept(o.kept, base.name, shape, size, `${w} (ReLU site ${base.name.slice(0, 256)})`, bad);
          // The plan returned is the received object: decode its kept elements once, here.
          keptCache.set(o as unknown as ReluOp, decodePartial({ shape, ...op.kept }, shape, '').elements);
        }
        relus += reluCount(op);
        if (relus + comparisons > bounds.maxRelus) bad(`more than ${bounds.maxRelus} kept ReLUs (at op ${i})`);
        break;
      }
    }
    checked.push(op);
  });
  const inp = checked[0]!,
    last = checked[checked.length - 1]!;
  const input = obj(plan.input, 'input');
  keys(input, ['mean', 'std', 'padFrom', 'dataset', 'classNames'], 'input');
  const c = inp.shape[0]!;
  // mean/std: one per input channel, or none (a plan without normalisation, e.g. random weights in tests).
  const nums = (v: unknown, w: string, pos: boolean) =>
    arr(v, 0, c, w).forEach((x, k, all) => {
      if (all.length !== c) bad(`${w} has ${all.length} entries for ${c} channels`);
      if (typeof x !== 'number' || !Number.isFinite(x) || (pos && !(x > 0)))
        bad(`${w}[${k}] = ${JSON.stringify(x)} is not a ${pos ? 'positive ' : ''}finite number`);
    });
  nums(input.mean, 'input.mean', false);
  nums(input.std, 'input.std', true);
  if (input.padFrom !== undefined) int(input.padFrom, 1, inp.shape[1]!, 'input.padFrom');
  if (input.dataset !== undefined) str(input.dataset, 64, 'input.dataset');
  if (input.classNames !== undefined)
    arr(input.classNames, last.size, last.size, 'input.classNames').forEach((n, k) =>
      str(n, 256, `input.classNames[${k}]`),
    );
  if (plan.relus !== relus || plan.culledSites !== culled || plan.macs !== macs) {
    bad(
      `totals (relus ${String(plan.relus)}, culled sites ${String(plan.culledSites)}, MACs ${String(plan.macs)}) do not match the ops (${relus}, ${culled}, ${macs})`,
    );
  }
  const { digest, ...body } = plan as unknown as PublicPlan;
  const d = planDigest(body);
  if (d !== digest) bad(`digest ${String(digest).slice(0, 40)} does not match its content (${d})`);
  return plan as unknown as PublicPlan;
}

/**
 * A received partial site's `kept`: sizes bounded by the op's shape before anything is decoded (a channel list of at
 * most C distinct indices, a bitmap of exactly ceil(size / 8) bytes), every index in range, and `relus` in
 * 1..size - 1 equal to the count the list or bitmap gives.
 */
function checkKept(
  v: unknown,
  site: string,
  shape: number[],
  size: number,
  w: string,
  bad: (why: string) => never,
): PlanKept {
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad(`${w}: kept is not an object`);
  const k = v as Record<string, unknown>;
  for (const key of Object.keys(k))
    if (!['relus', 'channels', 'bitmap'].includes(key)) bad(`${w}: kept has an unexpected field '${key.slice(0, 40)}'`);
  const relus = k.relus;
  if (typeof relus !== 'number' || !Number.isInteger(relus) || relus < 1 || relus >= size)
    bad(
      `${w}: kept.relus = ${JSON.stringify(relus)?.slice(0, 40)} is not an integer in [1, ${size - 1}] (a partial site keeps some but not all of its ${size} elements)`,
    );
  if ((k.channels === undefined) === (k.bitmap === undefined))
    bad(`${w}: kept needs exactly one of 'channels' or 'bitmap'`);
  if (k.channels !== undefined) {
    if (shape.length !== 3) bad(`${w}: a channel list needs a [C, H, W] site, not [${shape}]`);
    if (!Array.isArray(k.channels) || k.channels.length > shape[0]!)
      bad(`${w}: kept.channels is not an array of at most ${shape[0]} channel indices`);
  } else {
    const b64 = 4 * Math.ceil(Math.ceil(size / 8) / 3);
    if (typeof k.bitmap !== 'string' || k.bitmap.length !== b64)
      bad(`${w}: kept.bitmap is not a base64 string of ${b64} characters (${size} bits)`);
  }
  try {
    decodePartial({ shape, ...k }, shape, `ReLU site ${site.slice(0, 256)}`);
  } catch (e) {
    bad(`${w}: ${(e as Error).message}`);
  }
  return (
    k.channels !== undefined
      ? { relus, channels: [...(k.channels as number[])] }
      : { relus, bitmap: k.bitmap as string }
  ) as PlanKept;
}

/** The ops an op reads, by index (none for the input). */
export function opInputs(o: PlanOp): number[] {
  return o.op === 'input' ? [] : o.op === 'add' ? [...o.inputs] : [o.input];
}

/**
 * The conv/fc ops whose input the client re-masks (true at their index). The client's offline share of a value is
 * known before any HE answer when it is the input's mask, a whole ReLU site's mask, or share-local ops of such
 * values; a conv/fc output, a partial site or a max pool of a conv output waits for answers. A linear layer reading
 * such a value uploads a fresh mask instead (its HE work no longer waits for the layer before), and the client later
 * sends the difference to the server, offline (protocol.ts). Public: both parties derive it from the plan.
 */
export function remaskedLinears(plan: PublicPlan): boolean[] {
  const early: boolean[] = [];
  for (const o of plan.ops) {
    early.push(
      o.op === 'input' ||
        (o.op === 'relu' && !o.kept) ||
        (o.op !== 'conv' && o.op !== 'fc' && opInputs(o).every((j) => early[j])),
    );
  }
  return plan.ops.map((o) => (o.op === 'conv' || o.op === 'fc') && !early[o.input]);
}

/** Applies a share-local op (everything but conv / fc / relu / maxpool) to one party's values. */
export function localOp(plan: PublicPlan, i: number, vals: R64[], role: 'server' | 'client' | 'clear'): R64 {
  const o = plan.ops[i]!;
  switch (o.op) {
    case 'add': {
      const [a, b] = o.inputs,
        [sa, sb] = o.shifts;
      return r64Add(sa ? r64Shl(vals[a]!, sa) : vals[a]!, sb ? r64Shl(vals[b]!, sb) : vals[b]!, o.name);
    }
    case 'gap': {
      const inShape = plan.ops[o.input]!.shape;
      return ringChannelSum(vals[o.input]!, inShape);
    }
    case 'avgpool':
      return ringAvgPool(vals[o.input]!, o.geom);
    case 'flatten':
      return vals[o.input]!;
    case 'cull': {
      const x = vals[o.input]!;
      if (o.shift === 0) return x;
      return role === 'server'
        ? truncServerShare(x, o.shift)
        : role === 'client'
          ? truncClientShare(x, o.shift)
          : r64Sar(x, o.shift);
    }
    default:
      throw new Error(`plan op ${i} (${o.op} '${o.name}') is not share-local`);
  }
}

/** ReLU then arithmetic shift in the clear on 64-bit values: the reference of a kept site. */
export function reluShiftClear(x: R64, shift: number): R64 {
  const n = x.lo.length,
    lo = new Uint32Array(n),
    hi = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    if ((x.hi[i] | 0) >= 0) {
      lo[i] = x.lo[i];
      hi[i] = x.hi[i];
    }
  }
  return r64Sar({ lo, hi }, shift);
}

/** y + bias[channel] for a CHW tensor (bias one ring value per channel). */
export function addChannelBias(y: R64, bias: R64, shape: readonly number[]): R64 {
  const c = shape[0]!,
    hw = y.lo.length / c;
  const lo = new Uint32Array(y.lo.length),
    hi = new Uint32Array(y.lo.length);
  for (let ch = 0; ch < c; ch++) {
    const bl = bias.lo[ch]!,
      bh = bias.hi[ch]!;
    for (let i = ch * hw; i < (ch + 1) * hw; i++) {
      const s = y.lo[i]! + bl;
      lo[i] = s;
      hi[i] = y.hi[i]! + bh + (s >= 4294967296 ? 1 : 0);
    }
  }
  return { lo, hi };
}
