import { ReLUSite, noGrad, randn, tidy, type Tensor } from '../engine/index.js';
import { shapeNetwork } from './build.js';
import { checkMask } from './mask.js';
import { describeNetwork, type GraphNode } from './graph.js';
import type { Network } from './network.js';
import type { NetSpec } from './spec.js';

export interface SiteCount {
  site: string;
  /** First component of the site name: stem, stage1..., head. */
  stage: string;
  /** Activation shape per image (CHW). */
  shape: number[];
  /** Activation elements per image. */
  elements: number;
  /** ReLUs per image the site costs when enabled: its elements, or the kept ones of a partial site. */
  relus: number;
  enabled: boolean;
  /** Kept in part: `relus` of `elements` are ReLUs, the others pass through. */
  partial: boolean;
}
export interface StageCount {
  stage: string;
  /** ReLUs of the kept sites. */
  relus: number;
  kept: number;
  sites: number;
}
export interface LayerCost {
  name: string;
  op: 'conv' | 'linear';
  inShape: number[];
  outShape: number[];
  macs: number;
}
export interface ReluCount {
  arch: string;
  inputSize: number;
  sites: SiteCount[];
  stages: StageCount[];
  /** ReLUs per image at the kept sites. */
  total: number;
  /** ReLUs per image if every site were kept whole. */
  totalAllSites: number;
  layers: LayerCost[];
  /** Multiply-accumulates per image of convs and linears (BN is foldable, so not counted). */
  macs: number;
  /**
   * Max-pool comparisons per image: non-linear ops beside the ReLUs (not in `total`). Under PI each is one ReLU on a
   * difference (max(a, b) = b + ReLU(a − b)), a window of k valid elements taking k − 1 of them (pi/linear/pool.ts).
   */
  maxPoolComparisons: number;
  /** Levels of the max pools' comparison trees: each one ReLU op (a batch with its own online flights) under PI. */
  maxPoolLevels: number;
  /**
   * Floating-point operations per image: 2 per MAC, plus one per output element of every conv (its bias, i.e. the
   * folded BN) and linear with bias, of every residual add and of every kept ReLU. Pooling is not counted.
   */
  flops: number;
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const stageOf = (site: string) => site.split('.')[0]!;

function stagesOf(sites: { site: string; relus: number; enabled: boolean }[]): StageCount[] {
  const out = new Map<string, StageCount>();
  for (const s of sites) {
    const st = stageOf(s.site);
    const c = out.get(st) ?? { stage: st, relus: 0, kept: 0, sites: 0 };
    c.sites++;
    if (s.enabled) {
      c.kept++;
      c.relus += s.relus;
    }
    out.set(st, c);
  }
  return [...out.values()];
}

/** Comparisons and tree levels of a max pool (each window: its valid elements less one, over ceil(log2 k) levels). */
export function maxPoolCost(
  inShape: number[],
  kernel: number,
  stride: number,
  padding: number,
): { comparisons: number; levels: number } {
  const [c, h, w] = inShape as [number, number, number];
  const out = (n: number) => Math.floor((n + 2 * padding - kernel) / stride) + 1;
  const valid = (n: number, o: number) => {
    let v = 0;
    for (let k = 0; k < kernel; k++) {
      const i = o * stride - padding + k;
      if (i >= 0 && i < n) v++;
    }
    return v;
  };
  let rows = 0,
    cols = 0,
    most = 1;
  for (let oy = 0; oy < out(h); oy++) rows += valid(h, oy);
  for (let ox = 0; ox < out(w); ox++) cols += valid(w, ox);
  for (let oy = 0; oy < out(h); oy++)
    for (let ox = 0; ox < out(w); ox++) most = Math.max(most, valid(h, oy) * valid(w, ox));
  return { comparisons: c * (rows * cols - out(h) * out(w)), levels: Math.ceil(Math.log2(most)) };
}

/** Counts ReLUs and MACs from a network description (shape inference only). */
export function countGraph(nodes: GraphNode[], arch: string): ReluCount {
  const inShape = (n: GraphNode) => nodes[n.inputs[0]!]!.outShape;
  const sites: SiteCount[] = nodes
    .filter((n) => n.op === 'relu')
    .map((n) => {
      const partial = !!(n.enabled && n.kept);
      return {
        site: n.site!,
        stage: stageOf(n.site!),
        shape: n.outShape,
        elements: prod(n.outShape),
        relus: partial ? n.kept!.length : prod(n.outShape),
        enabled: n.enabled!,
        partial,
      };
    });
  const layers: LayerCost[] = nodes
    .filter((n) => n.op === 'conv' || n.op === 'linear')
    .map((n) => {
      const a = n.attributes;
      const macs =
        n.op === 'conv'
          ? prod(n.outShape) * (a.inChannels! / a.groups!) * a.kernel! * a.kernel!
          : a.inFeatures! * a.outFeatures!;
      return { name: n.name, op: n.op as 'conv' | 'linear', inShape: inShape(n), outShape: n.outShape, macs };
    });
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const pools = nodes
    .filter((n) => n.op === 'maxpool')
    .map((n) => maxPoolCost(inShape(n), n.attributes.kernel!, n.attributes.stride!, n.attributes.padding!));
  const total = sum(sites.filter((s) => s.enabled).map((s) => s.relus));
  const macs = sum(layers.map((l) => l.macs));
  const elementwise = sum(
    nodes
      .filter((n) => n.op === 'conv' || n.op === 'add' || (n.op === 'linear' && n.attributes.bias))
      .map((n) => prod(n.outShape)),
  );
  return {
    arch,
    inputSize: nodes[0]!.outShape[1]!,
    sites,
    stages: stagesOf(sites),
    total,
    totalAllSites: sum(sites.map((s) => s.elements)),
    layers,
    macs,
    maxPoolComparisons: sum(pools.map((p) => p.comparisons)),
    maxPoolLevels: sum(pools.map((p) => p.levels)),
    flops: 2 * macs + elementwise + total,
  };
}

/** ReLUs per site/stage/total and MACs per layer of spec (with its mask), traced without weights — no forward pass. */
export function countRelus(spec: NetSpec): ReluCount {
  const net = shapeNetwork(spec);
  if (spec.mask) checkMask(net, spec.mask);
  return countGraph(describeNetwork(net, spec.mask ?? null), spec.arch);
}

export interface ForwardCount {
  sites: { site: string; relus: number }[];
  stages: StageCount[];
  total: number;
}

/** Runs one image of inputSize through net (eval mode, no grad) and counts activation elements at enabled sites. */
export function countByForward(net: Network, inputSize = net.spec.inputSize): ForwardCount {
  const seen: { site: string; relus: number; enabled: boolean }[] = [];
  const prevHook = ReLUSite.onForward;
  const modes = [...net.modules()].map(([, m]) => [m, m.training] as const);
  ReLUSite.onForward = (s: ReLUSite, x: Tensor) => {
    // A partial site's ReLUs are the elements its gate selects.
    const relus = s.enabled && s.gate ? s.gate.ne(0).sum().item() : x.numel / x.shape[0]!;
    seen.push({ site: s.site, relus, enabled: s.enabled });
  };
  try {
    net.eval();
    noGrad(() => tidy(() => void net.forward(randn([1, net.spec.inChannels, inputSize, inputSize]))));
  } finally {
    ReLUSite.onForward = prevHook;
    for (const [m, t] of modes) m.training = t;
  }
  const kept = seen.filter((s) => s.enabled);
  return {
    sites: kept.map(({ site, relus }) => ({ site, relus })),
    stages: stagesOf(seen),
    total: kept.reduce((a, s) => a + s.relus, 0),
  };
}

/**
 * Linear operators the PI runtime runs for spec (its mask in force): its conv/fc layers, with the linear operations
 * that no ReLU or max pool separates counted once, since the runtime may fuse them into one operator (a culled block
 * or stage with its BNs, residual adds and shortcut convs). Nodes join when one reads the other and both lie after
 * the same number of non-linear layers (a residual add reading a value stored before a kept ReLU does not join it).
 * With every site kept this is the conv/fc count, as `pi bench --calibrate` counts layers. The cost model's
 * per-layer term multiplies this count: if the runtime fuses differently, this is the one function to change.
 */
export function linearLayers(spec: NetSpec): number {
  const nodes = describeNetwork(shapeNetwork(spec), spec.mask ?? null);
  const boundary = (n: GraphNode) => n.op === 'input' || n.op === 'maxpool' || (n.op === 'relu' && !!n.enabled);
  const depth = nodes.map(() => 0);
  for (const n of nodes)
    depth[n.id] = Math.max(
      0,
      ...n.inputs.map((i) => depth[i]! + (boundary(nodes[i]!) && nodes[i]!.op !== 'input' ? 1 : 0)),
    );
  const parent = nodes.map((n) => n.id);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  for (const n of nodes)
    if (!boundary(n))
      for (const i of n.inputs) if (!boundary(nodes[i]!) && depth[i] === depth[n.id]) parent[find(i)] = find(n.id);
  return new Set(nodes.filter((n) => n.op === 'conv' || n.op === 'linear').map((n) => find(n.id))).size;
}
