// Compiles a network into the private-inference plan (plan.ts) and the server's secret layers, and the fixed-point
// plaintext reference of a plan. Server only: it reads the network's weights through libtorch.
import type { BatchNorm2d, Conv2d, Linear } from '../../engine/index.js';
import { describeNetwork, foldBatchNorm, type GraphNode, type Network } from '../../models/index.js';
import { quantize, r64Add, r64FromInts, r64Gather, r64MaxBits, r64Sar, r64Scatter, type R64 } from '../fixed.js';
import { encodePartial, numelOf } from '../../models/partial.js';
import { RingConv2d, RingFc } from './ring.js';
import { ringMaxPoolClear } from '../linear/pool.js';
import type { ConvGeometry } from '../ringlinear.js';
import {
  addChannelBias,
  defaultFixedPoint,
  localOp,
  planDigest,
  reluCount,
  reluElements,
  reluShiftClear,
  type PlanKept,
  type FixedPointOptions,
  type PlanOp,
  type PublicPlan,
  type SecretLayer,
  type ServerModel,
  type WeightQuantization,
} from '../plan.js';

const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** Integer weights at the fixed scale 2^frac; weights beyond the integer range are clipped and counted. */
function quantWeights(
  w: Float32Array | Float64Array,
  o: FixedPointOptions,
  name: string,
  q8n: WeightQuantization,
): Float64Array {
  const lim = 2 ** (o.weightBits - 1) - 1,
    p = 2 ** o.weightFrac,
    q = new Float64Array(w.length);
  let maxAbs = 0,
    clipped = 0;
  for (let i = 0; i < w.length; i++) {
    const a = Math.abs(w[i]!);
    if (!Number.isFinite(a)) throw new Error(`${name}: weight ${i} is ${w[i]}`);
    if (a > maxAbs) maxAbs = a;
    let v = Math.round(w[i]! * p);
    if (v > lim || v < -lim) {
      clipped++;
      v = Math.max(-lim, Math.min(lim, v));
    }
    q[i] = v;
  }
  q8n.layers.push({ name, maxAbs, clipped, weights: w.length });
  q8n.maxAbs = Math.max(q8n.maxAbs, maxAbs);
  q8n.clipped += clipped;
  return q;
}

type Bias = Float32Array | Float64Array | null;

function quantBias(b: Bias, n: number, scale: number, name: string): R64 {
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
  const fx: FixedPointOptions = {
    ...defaultFixedPoint,
    ...Object.fromEntries(Object.entries(opts).filter(([k, v]) => k !== 'input' && v !== undefined)),
  };
  if (!(fx.weightBits >= 2 && fx.weightBits <= 16))
    throw new Error(`fixed point: weightBits ${fx.weightBits} must be in [2, 16]`);
  if (!(fx.f >= 0 && fx.f <= 24)) throw new Error(`fixed point: f ${fx.f} must be in [0, 24]`);
  if (!(Number.isInteger(fx.weightFrac) && fx.weightFrac >= 0 && fx.weightFrac <= fx.weightBits - 2))
    throw new Error(
      `fixed point: weightFrac ${fx.weightFrac} must be an integer in [0, weightBits - 2 = ${fx.weightBits - 2}]`,
    );
  const nodes = describeNetwork(net);
  const folded = foldBatchNorm(nodes);
  const warnings: string[] = [];
  const wlim = 2 ** (fx.weightBits - 1) - 1;
  const quant: WeightQuantization = {
    weightFrac: fx.weightFrac,
    limit: wlim / 2 ** fx.weightFrac,
    maxAbs: 0,
    clipped: 0,
    layers: [],
  };
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
    /** A conv op on plan op `inp` and its secret layer: integer weights `q`, `channels` biases at the output's scale. */
    const pushConv = (n: GraphNode, inp: number, geom: ConvGeometry, q: Float64Array, bias: Bias, channels: number) => {
      const scale = ops[inp]!.scale + fx.weightFrac,
        shape = n.outShape;
      return push(
        { op: 'conv', name: n.name, input: inp, shape, size: numelOf(shape), scale, geom },
        { linear: new RingConv2d(n.name, q, geom, wlim), bias: quantBias(bias, channels, scale, n.name) },
      );
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
      if (pendingDiv.has(inp))
        throw new Error(
          `unsupported for PI: ${n.name} (${n.op}) reads an average pool whose area is not a power of two; it must feed a conv or linear layer directly`,
        );
    };

    for (const n of nodes) {
      const shape = n.outShape,
        size = numelOf(shape);
      switch (n.op) {
        case 'input':
          toPlan.set(n.id, push({ op: 'input', name: 'input', shape, size, scale: fx.f }));
          break;
        case 'conv': {
          const inp = src(n),
            m = n.module as Conv2d,
            f = byConv.get(n.name);
          const div = takeDiv(inp, n.name);
          const wf = (f ? f.weight : m.weight).toFloat32();
          const bf = f ? f.bias.toFloat32() : m.bias ? m.bias.toFloat32() : null;
          const w = Float64Array.from(wf, (v) => v / div);
          const q = quantWeights(w, fx, n.name, quant);
          const inShape = ops[inp]!.shape;
          const geom: ConvGeometry = {
            inShape: inShape as [number, number, number],
            outShape: shape as [number, number, number],
            kernel: m.kernel,
            stride: m.stride,
            padding: m.padding,
            dilation: m.dilation,
            groups: m.groups,
          };
          toPlan.set(n.id, pushConv(n, inp, geom, q, bf, shape[0]!));
          break;
        }
        case 'bn': {
          if (foldedBn.has(n.name)) {
            toPlan.set(n.id, src(n));
            break;
          }
          // A BN that does not follow a conv: the per-channel affine map as a depthwise 1x1 conv.
          const inp = src(n),
            m = n.module as BatchNorm2d;
          checkNoDiv(inp, n);
          const g = m.weight.toFloat32(),
            b = m.bias.toFloat32(),
            mu = m.runningMean.toFloat32(),
            v = m.runningVar.toFloat32();
          const c = m.channels;
          const w = new Float64Array(c),
            bias = new Float64Array(c);
          for (let i = 0; i < c; i++) {
            w[i] = g[i] / Math.sqrt(v[i] + m.eps);
            bias[i] = b[i] - mu[i] * w[i];
          }
          const q = quantWeights(w, fx, n.name, quant);
          const geom: ConvGeometry = {
            inShape: shape as [number, number, number],
            outShape: shape as [number, number, number],
            kernel: 1,
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: c,
          };
          toPlan.set(n.id, pushConv(n, inp, geom, q, bias, c));
          break;
        }
        case 'linear': {
          const inp = src(n),
            m = n.module as Linear;
          const div = takeDiv(inp, n.name);
          const w = Float64Array.from(m.weight.toFloat32(), (x) => x / div);
          const q = quantWeights(w, fx, n.name, quant);
          const inSize = ops[inp]!.size,
            scale = ops[inp]!.scale + fx.weightFrac;
          toPlan.set(
            n.id,
            push(
              { op: 'fc', name: n.name, input: inp, inSize, shape, size, scale },
              {
                linear: new RingFc(n.name, q, inSize, size, wlim),
                bias: quantBias(m.bias ? m.bias.toFloat32() : null, size, scale, n.name),
              },
            ),
          );
          break;
        }
        case 'add': {
          const a = src(n, 0),
            b = src(n, 1);
          checkNoDiv(a, n);
          checkNoDiv(b, n);
          const sa = ops[a]!.scale,
            sb = ops[b]!.scale,
            scale = Math.max(sa, sb);
          toPlan.set(
            n.id,
            push({ op: 'add', name: n.name, inputs: [a, b], shifts: [scale - sa, scale - sb], shape, size, scale }),
          );
          break;
        }
        case 'relu': {
          const inp = src(n);
          checkNoDiv(inp, n);
          const s = ops[inp]!.scale,
            shift = Math.max(0, s - fx.f);
          if (n.enabled) {
            const width = s + fx.reluIntBits + 1;
            if (width > 64)
              throw new Error(
                `plan: ReLU site ${n.site}: the circuit would need ${width} bits (scale ${s} + ${fx.reluIntBits} integer bits + sign) and the ring has 64; lower --weight-frac or --f`,
              );
            if (width < shift + 2)
              throw new Error(`plan: ReLU site ${n.site}: circuit width ${width} too small for shift ${shift}`);
            // The mask's own partial site, in its document form.
            const p = net.mask?.partial?.[n.site!];
            let kept: PlanKept | undefined;
            if (p) {
              if (!(p.elements.length > 0 && p.elements.length < size))
                throw new Error(
                  `plan: partial ReLU site ${n.site} keeps ${p.elements.length} of ${size} elements (must be 1..${size - 1})`,
                );
              const { shape: _, ...doc } = encodePartial(p);
              kept = doc;
            }
            toPlan.set(
              n.id,
              push({
                op: 'relu',
                name: n.site!,
                input: inp,
                width,
                shift,
                ...(kept ? { kept } : {}),
                shape,
                size,
                scale: s - shift,
              }),
            );
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
              inShape: inShape as [number, number, number],
              outShape: shape as [number, number, number],
              kernel: n.attributes.kernel!,
              stride: n.attributes.stride!,
              padding: n.attributes.padding!,
              dilation: 1,
              groups: inShape[0]!,
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
          if (pendingDiv.has(inp)) {
            pendingDiv.set(id, pendingDiv.get(inp)!);
            pendingDiv.delete(inp);
          }
          toPlan.set(n.id, id);
          break;
        }
        case 'maxpool': {
          // A comparison tree per window (relu/maxpool.ts): each comparison a ReLU on a difference of two values,
          // which needs one bit more than a ReLU at the input's scale.
          const inp = src(n);
          checkNoDiv(inp, n);
          const inShape = ops[inp]!.shape,
            s = ops[inp]!.scale,
            width = s + fx.reluIntBits + 2;
          if (width > 64)
            throw new Error(
              `plan: max pool ${n.name}: the comparisons would need ${width} bits (scale ${s} + ${fx.reluIntBits} integer bits + sign + 1) and the ring has 64; lower --weight-frac or --f`,
            );
          const { kernel, stride, padding } = n.attributes as { kernel: number; stride: number; padding: number };
          if (2 * padding > kernel)
            throw new Error(
              `unsupported for PI: ${n.name} (maxpool): padding ${padding} over half the kernel ${kernel}`,
            );
          const geom: ConvGeometry = {
            inShape: inShape as [number, number, number],
            outShape: shape as [number, number, number],
            kernel,
            stride,
            padding,
            dilation: 1,
            groups: inShape[0]!,
          };
          toPlan.set(n.id, push({ op: 'maxpool', name: n.name, input: inp, geom, width, shape, size, scale: s }));
          break;
        }
      }
    }
    if (pendingDiv.size)
      throw new Error('unsupported for PI: the network ends in an average pool whose area is not a power of two');
  } catch (e) {
    for (const s of secret) s?.linear.dispose();
    throw e;
  } finally {
    for (const f of folded) {
      f.weight.dispose();
      f.bias.dispose();
    }
  }
  if (quant.clipped) {
    warnings.push(
      `${quant.clipped} weights clipped to +-${quant.limit} (the fixed scale of ${fx.weightFrac} fractional bits in ${fx.weightBits} bits; largest |w| = ${quant.maxAbs.toPrecision(4)}): ` +
        quant.layers
          .filter((l) => l.clipped)
          .map((l) => `${l.name} ${l.clipped}/${l.weights}`)
          .join(', '),
    );
  }
  const plan = finishPlan(net.spec.arch, fx, ops, opts.input ?? { mean: [], std: [] });
  return {
    plan,
    secret,
    warnings,
    quant,
    dispose: () => {
      for (const s of secret) s?.linear.dispose();
    },
  };
}

function finishPlan(arch: string, fixed: FixedPointOptions, ops: PlanOp[], input: PublicPlan['input']): PublicPlan {
  let relus = 0,
    culledSites = 0,
    macs = 0;
  for (const o of ops) {
    if (o.op === 'relu') relus += reluCount(o);
    else if (o.op === 'cull') culledSites++;
    else if (o.op === 'conv') macs += o.size * (o.geom.inShape[0] / o.geom.groups) * o.geom.kernel ** 2;
    else if (o.op === 'fc') macs += o.size * o.inSize;
  }
  const body = { format: 'deepreduce-pi-plan' as const, arch, fixed, ops, input, relus, culledSites, macs };
  return { ...body, digest: planDigest(body) };
}

export interface ReferenceResult {
  /** Output (logits) as ring values at the last op's scale. */
  out: R64;
  logits: Float64Array;
  /** Per kept ReLU op: log2 of the largest |x| in its input (must stay below width - 1), and the width; per max pool
   *  the same for its comparisons (one more than its input's: a difference of two of its values). */
  reluBits: { op: number; name: string; bits: number; width: number }[];
  /** Per culled op with truncation: log2 of the largest |x| (local truncation fails with probability ~2^(bits+1-64)). */
  cullBits: { op: number; name: string; bits: number }[];
  /** Every op's output in the clear, in plan order. */
  values: R64[];
}

/** The fixed-point plaintext reference: the plan's integer arithmetic in the clear, with exact truncations. */
export function referenceForward(model: ServerModel, xq: R64): ReferenceResult {
  const { plan, secret } = model;
  const vals: R64[] = [];
  const reluBits: ReferenceResult['reluBits'] = [],
    cullBits: ReferenceResult['cullBits'] = [];
  plan.ops.forEach((o, i) => {
    switch (o.op) {
      case 'input':
        if (xq.lo.length !== o.size)
          throw new Error(`reference: input has ${xq.lo.length} elements, expected ${o.size} [${o.shape}]`);
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
        const x = vals[o.input]!,
          el = reluElements(o);
        if (!el) {
          reluBits.push({ op: i, name: o.name, bits: r64MaxBits(x), width: o.width });
          vals.push(reluShiftClear(x, o.shift));
          break;
        }
        // A partial site: ReLU on the kept elements, the others an exact shift (what a culled site does).
        const xk = r64Gather(x, el);
        reluBits.push({ op: i, name: o.name, bits: r64MaxBits(xk), width: o.width });
        if (o.shift) cullBits.push({ op: i, name: o.name, bits: r64MaxBits(x) });
        vals.push(r64Scatter(r64Sar(x, o.shift), el, reluShiftClear(xk, o.shift)));
        break;
      }
      case 'maxpool': {
        // The differences of two values of the input must fit the comparisons' width.
        const x = vals[o.input]!;
        reluBits.push({ op: i, name: o.name, bits: r64MaxBits(x) + 1, width: o.width });
        vals.push(ringMaxPoolClear(x, o.geom));
        break;
      }
      default:
        if (o.op === 'cull' && o.shift) cullBits.push({ op: i, name: o.name, bits: r64MaxBits(vals[o.input]!) });
        vals.push(localOp(plan, i, vals, 'clear'));
    }
  });
  const out = vals[vals.length - 1]!,
    last = plan.ops[plan.ops.length - 1]!;
  const logits = new Float64Array(out.lo.length);
  const p = 2 ** -last.scale;
  for (let i = 0; i < logits.length; i++) logits[i] = ((out.hi[i]! | 0) * 4294967296 + out.lo[i]!) * p;
  return { out, logits, reluBits, cullBits, values: vals };
}
