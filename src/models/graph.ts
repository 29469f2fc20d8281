import {
  AdaptiveAvgPool2d,
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  F,
  Flatten,
  Linear,
  MaxPool2d,
  type Module,
  ReLUSite,
  Sequential,
  noGrad,
  tidy,
  where,
  type Tensor,
} from '../engine/index.js';
import type { ReluMask } from './mask.js';
import { Block, type Flow, type Network } from './network.js';

export type GraphOp = 'input' | 'conv' | 'bn' | 'relu' | 'add' | 'maxpool' | 'avgpool' | 'gap' | 'flatten' | 'linear';

/** One operation of a network; `outShape` is per image (CHW, or [features] after flatten). */
export interface GraphNode {
  id: number;
  op: GraphOp;
  /** Ids of the nodes it reads, all lower than its own id (topological order). */
  inputs: number[];
  /** ReLU site name for relu nodes, module path (torchvision state-dict prefix) otherwise. */
  name: string;
  /** The module holding the weights (conv, bn, linear) or the ReLUSite; null for input/add. */
  module: Module | null;
  attributes: Record<string, number>;
  outShape: number[];
  /** relu nodes only: the site name and whether the mask described keeps it (a ReLU) or removes it (the identity). */
  site?: string;
  enabled?: boolean;
  /** relu nodes of partial sites: the mask's kept elements (flat C*H*W indices, sorted); the others pass through. */
  kept?: Uint32Array;
}

const outSize = (n: number, k: number, s: number, p: number, d = 1) =>
  Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1;

/** Shape inference while a network's forward is traced (no tensors are touched); relu nodes follow `mask`. */
export class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  constructor(private readonly mask: ReluMask | null = null) {}

  shape(id: number): number[] {
    return this.node(id).outShape;
  }
  private node(id: number): GraphNode {
    const n = this.nodes[id];
    if (!n) throw new Error(`graph: no node ${id}`);
    return n;
  }
  private push(n: Omit<GraphNode, 'id'>): number {
    const id = this.nodes.length;
    this.nodes.push({ id, ...n });
    return id;
  }

  input(shape: number[]): number {
    return this.push({ op: 'input', inputs: [], name: 'input', module: null, attributes: {}, outShape: shape });
  }

  add(name: string, a: number, b: number): number {
    const sa = this.shape(a),
      sb = this.shape(b);
    if (sa.join() !== sb.join()) throw new Error(`graph: add '${name}' of shapes [${sa}] and [${sb}]`);
    return this.push({ op: 'add', inputs: [a, b], name, module: null, attributes: {}, outShape: sa });
  }

  /** Appends the leaf module m (conv, bn, ReLU site, pooling, flatten, linear) applied to node x. */
  layer(path: string, m: Module, x: number): number {
    const s = this.shape(x);
    const spatial = (what: string, c: number, k: number, st: number, p: number, d = 1): number[] => {
      if (s.length !== 3) throw new Error(`graph: ${what} '${path}' needs a CHW input, got [${s}]`);
      const h = outSize(s[1]!, k, st, p, d),
        w = outSize(s[2]!, k, st, p, d);
      if (h < 1 || w < 1)
        throw new Error(`graph: ${what} '${path}' (kernel ${k}, stride ${st}, padding ${p}) on [${s}] gives ${h}x${w}`);
      return [c, h, w];
    };
    const node = (op: GraphOp, attributes: Record<string, number>, outShape: number[]) =>
      this.push({ op, inputs: [x], name: path, module: m, attributes, outShape });

    if (m instanceof Conv2d) {
      if (s[0] !== m.inChannels) throw new Error(`graph: conv '${path}' expects ${m.inChannels} channels, got [${s}]`);
      const { kernel, stride, padding, dilation, groups } = m;
      const attrs = {
        kernel,
        stride,
        padding,
        dilation,
        groups,
        inChannels: m.inChannels,
        outChannels: m.outChannels,
        bias: m.bias !== null ? 1 : 0,
      };
      return node('conv', attrs, spatial('conv', m.outChannels, kernel, stride, padding, dilation));
    }
    if (m instanceof BatchNorm2d) {
      if (s[0] !== m.channels) throw new Error(`graph: bn '${path}' has ${m.channels} channels, input [${s}]`);
      return node('bn', { channels: m.channels, eps: m.eps }, s);
    }
    if (m instanceof ReLUSite) {
      const p = this.mask?.partial?.[m.site];
      const enabled = !this.mask || this.mask.kept.includes(m.site) || !!p;
      return this.push({
        op: 'relu',
        inputs: [x],
        name: m.site,
        module: m,
        attributes: {},
        outShape: s,
        site: m.site,
        enabled,
        ...(p ? { kept: p.elements } : {}),
      });
    }
    if (m instanceof MaxPool2d)
      return node(
        'maxpool',
        { kernel: m.kernel, stride: m.stride, padding: m.padding },
        spatial('maxpool', s[0]!, m.kernel, m.stride, m.padding),
      );
    if (m instanceof AvgPool2d)
      return node(
        'avgpool',
        { kernel: m.kernel, stride: m.stride, padding: m.padding },
        spatial('avgpool', s[0]!, m.kernel, m.stride, m.padding),
      );
    if (m instanceof AdaptiveAvgPool2d) {
      if (m.out !== 1)
        throw new Error(`graph: '${path}': only global average pooling (output 1) is described, got ${m.out}`);
      return node('gap', { output: 1 }, [s[0]!, 1, 1]);
    }
    if (m instanceof Flatten) return node('flatten', {}, [s.reduce((a, b) => a * b, 1)]);
    if (m instanceof Linear) {
      if (s.length !== 1 || s[0] !== m.inFeatures)
        throw new Error(`graph: linear '${path}' expects [${m.inFeatures}], got [${s}]`);
      return node('linear', { inFeatures: m.inFeatures, outFeatures: m.outFeatures, bias: m.bias !== null ? 1 : 0 }, [
        m.outFeatures,
      ]);
    }
    throw new Error(`graph: module '${path}' (${m.constructor.name}) has no graph description`);
  }
}

/**
 * The network as a list of nodes in topological (= forward) order, the last node the output: its forward traced
 * (Block.run on graph nodes), with names from the module tree; relu nodes follow `mask` (default: the network's).
 */
export function describeNetwork(net: Network, mask: ReluMask | null = net.mask): GraphNode[] {
  const g = new GraphBuilder(mask);
  const paths = new Map<Module, string>([...net.modules()].map(([p, m]) => [m, p]));
  const path = (m: Module): string => {
    const p = paths.get(m);
    if (p === undefined)
      throw new Error(
        `graph: ${net.spec.arch}'s forward applies a ${m.constructor.name} that is not a registered child module`,
      );
    return p;
  };
  // An add or flatten is named in its block's scope: `layer1.0.add`, then `layer1.0.add1`, ... for more in one block.
  let scope = '';
  const used = new Map<string, number>();
  const within = (name: string) => {
    const base = scope ? `${scope}.${name}` : name,
      k = used.get(base) ?? 0;
    used.set(base, k + 1);
    return k ? `${base}${k}` : base;
  };
  const f: Flow<number> = Object.assign(
    (m: Module, x: number): number => {
      if (m instanceof Sequential) return m.layers.reduce((y, c) => f(c, y), x);
      if (!(m instanceof Block)) return g.layer(path(m), m, x);
      const outer = scope;
      scope = path(m);
      const y = m.run(f, x);
      scope = outer;
      return y;
    },
    {
      add: (a: number, b: number) => g.add(within('add'), a, b),
      flatten: (x: number) => g.layer(within('flatten'), new Flatten(), x),
    },
  );
  net.run(f, g.input([net.spec.inChannels, net.spec.inputSize, net.spec.inputSize]));
  return g.nodes;
}

/** A conv with the batch norm that alone consumes it folded in; `weight`/`bias` belong to the caller (dispose them). */
export interface FoldedConv {
  conv: string;
  bn: string;
  weight: Tensor;
  bias: Tensor;
}

/**
 * For each conv whose only consumer is a BN: w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta
 * (the BN's eval-mode transform). Accepts a network or an already computed description.
 */
export function foldBatchNorm(netOrNodes: Network | GraphNode[]): FoldedConv[] {
  const nodes = Array.isArray(netOrNodes) ? netOrNodes : describeNetwork(netOrNodes);
  const consumers = new Map<number, number>();
  for (const n of nodes) for (const i of n.inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const out: FoldedConv[] = [];
  for (const bnNode of nodes) {
    if (bnNode.op !== 'bn') continue;
    const convNode = nodes[bnNode.inputs[0]!]!;
    if (convNode.op !== 'conv' || consumers.get(convNode.id) !== 1) continue;
    const conv = convNode.module as Conv2d,
      bn = bnNode.module as BatchNorm2d;
    const folded = noGrad(() =>
      tidy(() => {
        const scale = bn.weight.mul(bn.runningVar.add(bn.eps).rsqrt());
        const weight = conv.weight.mul(scale.reshape([-1, 1, 1, 1]));
        const bias = (conv.bias ? conv.bias.sub(bn.runningMean) : bn.runningMean.neg()).mul(scale).add(bn.bias);
        return { weight, bias };
      }),
    );
    out.push({ conv: convNode.name, bn: bnNode.name, ...folded });
  }
  return out;
}

/**
 * Which relu/add nodes may overwrite an input in place: the input's tensor is a fresh result (not the graph input)
 * that no other node reads. Pass-through nodes (folded BN, removed ReLU, flatten) share their input's tensor.
 */
export function inplaceNodes(nodes: GraphNode[], foldedBns: ReadonlySet<string>): Map<number, number> {
  const ok = overwritable(nodes, foldedBns);
  const out = new Map<number, number>();
  for (const n of nodes) {
    if (!((n.op === 'relu' && n.enabled && !n.kept) || n.op === 'add')) continue;
    const i = n.inputs.find((j) => ok(n, j));
    if (i !== undefined) out.set(n.id, i);
  }
  return out;
}

/** Whether node n may overwrite its input i in place (see inplaceNodes). */
function overwritable(nodes: GraphNode[], foldedBns: ReadonlySet<string>): (n: GraphNode, i: number) => boolean {
  const alias = (n: GraphNode) =>
    (n.op === 'bn' && foldedBns.has(n.name)) || (n.op === 'relu' && !n.enabled) || n.op === 'flatten';
  // owner: the node whose output tensor a value is; an in-place write starts a new version (its own id).
  const owner: number[] = [];
  const readers = new Map<number, number>();
  for (const n of nodes) for (const i of n.inputs) if (!alias(n)) readers.set(i, (readers.get(i) ?? 0) + 1);
  for (const n of nodes) owner[n.id] = alias(n) ? owner[n.inputs[0]!]! : n.id;
  const readersOf = (o: number) => nodes.reduce((t, v) => t + (owner[v.id] === o ? (readers.get(v.id) ?? 0) : 0), 0);
  return (n, i) =>
    nodes[owner[i]!]!.op !== 'input' &&
    owner[i] !== owner[n.inputs.find((j) => j !== i) ?? -1] &&
    readersOf(owner[i]!) === 1;
}

/** How runGraph runs one convolution fused with what follows it (oneDNN post-ops). */
export interface ConvFusion {
  relu: boolean;
  /** Value added before the ReLU (the other input of a residual add). */
  sum?: number;
  /** The sum's tensor may be overwritten (nothing else reads it). */
  sumInplace: boolean;
  /** Nodes whose value is now the convolution's output (folded BNs, removed ReLUs, the add, the ReLU). */
  absorbed: number[];
}

/**
 * For inference: which convolutions absorb the ReLU or residual add (+ ReLU) that alone consume them, through
 * folded BNs and removed ReLUs. A residual is fused into the later of its two producers.
 */
export function fusionPlan(nodes: GraphNode[], foldedBns: ReadonlySet<string>): Map<number, ConvFusion> {
  const consumers: number[][] = nodes.map(() => []);
  for (const n of nodes) for (const i of n.inputs) consumers[i]!.push(n.id);
  const pass = (n: GraphNode) => (n.op === 'bn' && foldedBns.has(n.name)) || (n.op === 'relu' && !n.enabled);
  // From value v through pass-through nodes while each value has one reader: the chain and the next real node.
  const follow = (v: number) => {
    const chain: number[] = [];
    for (;;) {
      const c = consumers[v]!;
      if (c.length !== 1) return { chain, last: v, next: null };
      const n = nodes[c[0]!]!;
      if (!pass(n)) return { chain, last: v, next: n };
      chain.push(n.id);
      v = n.id;
    }
  };
  const ok = overwritable(nodes, foldedBns);
  const plan = new Map<number, ConvFusion>();
  for (const c of nodes) {
    if (c.op !== 'conv') continue;
    const a = follow(c.id);
    // A partial ReLU is a select by its mask, not a post-op.
    if (a.next?.op === 'relu' && !a.next.kept) {
      plan.set(c.id, { relu: true, sumInplace: false, absorbed: [...a.chain, a.next.id] });
    } else if (a.next?.op === 'add') {
      const d = a.next,
        other = d.inputs.find((i) => i !== a.last);
      // The other input must exist already (computed earlier) and be a different value.
      if (other === undefined || other > c.id || d.inputs.filter((i) => i === a.last).length !== 1) continue;
      const b = follow(d.id);
      const relu = b.next?.op === 'relu' && !b.next.kept;
      plan.set(c.id, {
        relu,
        sum: other,
        sumInplace: ok(d, other),
        absorbed: [...a.chain, d.id, ...b.chain, ...(relu ? [b.next!.id] : [])],
      });
    }
  }
  return plan;
}

export interface RunGraphOptions {
  folded?: FoldedConv[];
  /** No autograd: ReLUs and adds may overwrite inputs nothing else reads. */
  inplace?: boolean;
  /** No autograd, float32 channels-last on the CPU: convolutions absorb the ReLU / residual add after them
   * (oneDNN post-ops; true = libtorch's direct algorithm, 'auto' lets oneDNN choose, 'winograd' = direct plus
   * Winograd where it pays, see winogradPays). Needs hasFusedConv() ('winograd' also hasWinograd()). */
  fuse?: boolean | 'direct' | 'auto' | 'winograd';
  /** Adds each node's wall time in ms (layout conversions included) under its op and name, e.g. 'conv stage2.0.conv1'. */
  profile?: Map<string, number>;
}

/**
 * Whether a fused convolution runs as Winograd F(4x4, 3x3) under fuse 'winograd': 3x3, stride 1, dense, with at
 * least 32 input and output channels. Measured on ResNet-20's shapes (batch 128, 2 threads, AVX-512): 2.0-2.3x faster
 * than direct at 32 and 64 channels, 1.4x slower at 16 (bench/train-throughput; docs/CONVENTIONS.md).
 */
export function winogradPays(m: Conv2d): boolean {
  return (
    m.kernel === 3 &&
    m.stride === 1 &&
    m.dilation === 1 &&
    m.groups === 1 &&
    m.inChannels >= 32 &&
    m.outChannels >= 32 &&
    m.inChannels % 16 === 0 &&
    m.outChannels % 16 === 0
  );
}

/**
 * Evaluates a description on a batch x (BN in eval mode; relu nodes as described). With `folded`, those convs use
 * the folded weights and their BNs pass through. With `inplace` (no autograd: inference), ReLUs and residual adds
 * overwrite an input that nothing else reads, as PyTorch's in-place ReLU does: the write lands in memory that is
 * still in cache. Call inside tidy(): intermediates are not freed here.
 */
export function runGraph(nodes: GraphNode[], x: Tensor, o: RunGraphOptions = {}): Tensor {
  const byConv = new Map((o.folded ?? []).map((f) => [f.conv, f]));
  const foldedBns = new Set((o.folded ?? []).map((f) => f.bn));
  const inplace = o.inplace ? inplaceNodes(nodes, foldedBns) : new Map<number, number>();
  const fusion = o.fuse ? fusionPlan(nodes, foldedBns) : new Map<number, ConvFusion>();
  const absorbedBy = new Map<number, number>();
  for (const [c, p] of fusion) for (const n of p.absorbed) absorbedBy.set(n, c);
  const vals: Tensor[] = [];
  // Under fuse 'winograd' a value may be held in oneDNN's blocked layout ([N, C/16, H, W, 16]); other ops get it
  // back as [N, C, H, W]. Converted copies are kept per value: a copy has the readers its value has, so in-place
  // writes into it stay as safe as into the value.
  const blocked: boolean[] = [];
  const copies = new Map<number, Tensor>();
  const as = (i: number, b: boolean): Tensor => {
    if ((blocked[i] ?? false) === b) return vals[i]!;
    let c = copies.get(i);
    if (!c) copies.set(i, (c = b ? F.toBlocked16(vals[i]!) : F.fromBlocked16(vals[i]!)));
    return c;
  };
  for (const n of nodes) {
    const t0 = o.profile ? performance.now() : 0;
    let a = vals[n.inputs[0]!]!;
    let y: Tensor;
    const by = absorbedBy.get(n.id);
    if (by !== undefined) {
      vals.push(vals[by]!);
      blocked.push(blocked[by] ?? false);
      continue;
    }
    // Layout-agnostic ops keep their input's layout; the rest read [N, C, H, W].
    // A partial ReLU's [1, C, H, W] gate needs [N, C, H, W].
    const keeps =
      (n.op === 'relu' && !n.kept) ||
      n.op === 'add' ||
      (n.op === 'bn' && foldedBns.has(n.name)) ||
      (n.op === 'conv' && fusion.has(n.id));
    let outBlocked = keeps && n.inputs.length > 0 && (blocked[n.inputs[0]!] ?? false);
    if (!keeps && n.inputs.length > 0) a = as(n.inputs[0]!, false);
    switch (n.op) {
      case 'input':
        y = x;
        break;
      case 'conv': {
        const m = n.module as Conv2d,
          f = byConv.get(n.name),
          p = fusion.get(n.id);
        const opts = { stride: m.stride, padding: m.padding, dilation: m.dilation, groups: m.groups };
        const [w, b] = f ? [f.weight, f.bias] : [m.weight, m.bias];
        if (p) {
          const wino = o.fuse === 'winograd' && winogradPays(m);
          const srcBlocked = wino || (blocked[n.inputs[0]!] ?? false);
          outBlocked = srcBlocked && m.outChannels % 16 === 0;
          const algorithm = wino ? 'winograd' : o.fuse === 'auto' ? 'auto' : 'direct';
          y = F.conv2dFused(as(n.inputs[0]!, srcBlocked), w, b, {
            ...opts,
            relu: p.relu,
            sum: p.sum === undefined ? null : as(p.sum, outBlocked),
            sumInplace: p.sumInplace,
            algorithm,
            srcBlocked,
            dstBlocked: outBlocked,
          });
        } else {
          y = F.conv2d(a, w, b, opts);
        }
        break;
      }
      case 'bn': {
        const m = n.module as BatchNorm2d;
        y = foldedBns.has(n.name)
          ? a
          : F.batchNorm(a, {
              weight: m.weight,
              bias: m.bias,
              runningMean: m.runningMean,
              runningVar: m.runningVar,
              training: false,
              eps: m.eps,
            });
        break;
      }
      case 'relu':
        if (n.enabled && n.kept) {
          const gate = (n.module as ReLUSite).gate;
          if (gate?.dtype !== 'bool')
            throw new Error(`runGraph: partial site '${n.name}' has no mask gate (apply the mask to the network)`);
          y = where(gate, a.relu(), a);
        } else y = !n.enabled ? a : inplace.has(n.id) ? a.relu_() : a.relu();
        break;
      case 'add': {
        const w = inplace.get(n.id);
        outBlocked = (blocked[n.inputs[0]!] ?? false) || (blocked[n.inputs[1]!] ?? false);
        a = as(n.inputs[0]!, outBlocked);
        const b = as(n.inputs[1]!, outBlocked);
        y = w === undefined ? a.add(b) : w === n.inputs[0] ? a.add_(b) : b.add_(a);
        break;
      }
      case 'maxpool':
        y = F.maxPool2d(a, n.attributes.kernel!, n.attributes.stride!, n.attributes.padding!);
        break;
      case 'avgpool':
        y = F.avgPool2d(a, n.attributes.kernel!, n.attributes.stride!, n.attributes.padding!);
        break;
      case 'gap':
        y = F.adaptiveAvgPool2d(a, 1);
        break;
      case 'flatten':
        y = a.flatten(1);
        break;
      case 'linear': {
        const m = n.module as Linear;
        y = F.linear(a, m.weight, m.bias);
        break;
      }
    }
    vals.push(y);
    blocked.push(outBlocked);
    if (o.profile)
      o.profile.set(`${n.op} ${n.name}`, (o.profile.get(`${n.op} ${n.name}`) ?? 0) + performance.now() - t0);
  }
  if (vals.length === 0) throw new Error('runGraph: empty graph');
  return as(vals.length - 1, false);
}
