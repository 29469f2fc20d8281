// Channel slicing: a narrower network (per-stage widths, the same layers otherwise) initialised from a trained one.
// After Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient ConvNets" (ICLR 2017): each conv keeps
// the output channels whose filters have the largest L1 norms; the next layers keep the matching input channels and
// BN parameters. Channels that residual adds tie together (a stage's stream, the stem) are one group, scored by the
// sum of the L1 norms of every filter that writes them. The groups come from the traced graph of the one network
// definition, so any family built by build.ts slices the same way. A network with fewer blocks per stage keeps the
// first blocks of each stage (the one with the stride and shortcut, then the next): a residual network degrades
// gracefully when later blocks are dropped (Veit, Wilber, Belongie, NeurIPS 2016), and KD recovers the rest.
import { tensor, type Tensor, type TypedArray } from '../engine/index.js';
import { shapeNetwork } from './build.js';
import { describeNetwork, type GraphNode } from './graph.js';
import type { NetSpec } from './spec.js';

/** The channel groups of a network: every node's output channels belong to one group (adds merge groups). */
interface Groups {
  nodes: GraphNode[];
  /** Group of each node's output channels (a root id), or -1 for fixed ones (the input, the logits). */
  of: number[];
  size: Map<number, number>;
}

function channelGroups(spec: NetSpec): Groups {
  const nodes = describeNetwork(shapeNetwork(spec), null);
  const parent = new Map<number, number>();
  const find = (g: number): number => {
    while (parent.get(g) !== g) g = parent.get(g)!;
    return g;
  };
  const of: number[] = [];
  for (const n of nodes) {
    const inG = n.inputs.length ? of[n.inputs[0]!]! : -1;
    switch (n.op) {
      case 'input':
      case 'linear':
        of.push(-1);
        break;
      case 'conv':
        if (n.attributes.groups !== 1) throw new Error(`channel slicing: grouped conv '${n.name}' is not supported`);
        parent.set(n.id, n.id);
        of.push(n.id);
        break;
      case 'add': {
        const a = find(of[n.inputs[0]!]!),
          b = find(of[n.inputs[1]!]!);
        parent.set(Math.max(a, b), Math.min(a, b));
        of.push(Math.min(a, b));
        break;
      }
      case 'flatten':
        if (nodes[n.inputs[0]!]!.outShape.slice(1).some((d) => d !== 1))
          throw new Error(`channel slicing: '${n.name}' flattens a spatial map; only [C,1,1] is supported`);
        of.push(inG);
        break;
      default:
        of.push(inG);
    }
  }
  const roots = of.map((g) => (g < 0 ? g : find(g)));
  const size = new Map<number, number>();
  nodes.forEach((n, i) => {
    if (roots[i]! >= 0) size.set(roots[i]!, n.outShape[0]!);
  });
  return { nodes, of: roots, size };
}

const arr = (t: Tensor | undefined, key: string): TypedArray => {
  if (!t) throw new Error(`channel slicing: the source state dict has no '${key}'`);
  return t.toArray();
};

/**
 * For each channel group of `to` (by the conv node id that opens it), the source channels it keeps: all of them in
 * order when the widths agree, else the `to`-many with the largest summed filter L1 norm, in increasing index order
 * (ties: the lower index). Throws where `to` is wider or differs in structure.
 */
export function selectChannels(source: Map<string, Tensor>, from: NetSpec, to: NetSpec): Map<number, number[]> {
  const a = channelGroups(from),
    b = channelGroups(to);
  const sig = (g: Groups) => g.nodes.map((n) => `${n.op}:${n.name}:${n.inputs.join('.')}:${g.of[n.id]}`).join('|');
  if (sig(a) !== sig(b))
    throw new Error(
      `channel slicing: ${to.arch} with widths [${to.widths}] differs in structure from the source network (layers, shortcuts or residual groups)`,
    );
  const out = new Map<number, number[]>();
  for (const [g, n] of a.size) {
    const k = b.size.get(g)!;
    if (k > n) throw new Error(`channel slicing: a group of ${n} channels cannot widen to ${k}`);
    if (k === n) {
      out.set(
        g,
        Array.from({ length: n }, (_, i) => i),
      );
      continue;
    }
    const score = new Float64Array(n);
    for (const node of a.nodes)
      if (node.op === 'conv' && a.of[node.id] === g) {
        const key = `${node.name}.weight`;
        const w = arr(source.get(key), key);
        const per = w.length / n;
        for (let c = 0; c < n; c++) for (let i = c * per; i < (c + 1) * per; i++) score[c]! += Math.abs(w[i] as number);
      }
    const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => score[y]! - score[x]! || x - y);
    out.set(
      g,
      order.slice(0, k).sort((x, y) => x - y),
    );
  }
  return out;
}

/** Keeps `idx` along dimension `dim` (0 or 1) of a row-major tensor. */
function take(t: Tensor, dim: 0 | 1, idx: number[]): Tensor {
  const s = t.shape,
    src = t.toArray();
  const inner = s.slice(dim + 1).reduce((p, q) => p * q, 1);
  const outer = s.slice(0, dim).reduce((p, q) => p * q, 1);
  const ctor = src.constructor as new (n: number) => TypedArray;
  const dst = new ctor(outer * idx.length * inner);
  for (let o = 0; o < outer; o++)
    idx.forEach((c, j) => {
      const from = (o * s[dim]! + c) * inner;
      dst.set(src.subarray(from, from + inner) as never, (o * idx.length + j) * inner);
    });
  const shape = [...s];
  shape[dim] = idx.length;
  return tensor(dst, shape, t.dtype);
}

/**
 * The state dict of `to` (same layers, per-group channels no wider) sliced from `source`, a state dict of `from`:
 * conv weights by output and input channels, BN parameters and running statistics by channel, fc weights by input
 * feature. With equal widths it is a copy, so the network computes the same function.
 */
export function sliceStateDict(source: Map<string, Tensor>, from: NetSpec, to: NetSpec): Map<string, Tensor> {
  if (to.blocks.join() !== from.blocks.join()) {
    const shallow = dropBlocks(source, from, to.blocks);
    try {
      return sliceStateDict(shallow, { ...from, blocks: to.blocks }, to);
    } finally {
      for (const t of shallow.values()) t.dispose();
    }
  }
  const keep = selectChannels(source, from, to);
  const g = channelGroups(from);
  const chans = (nodeId: number) => {
    const grp = g.of[nodeId]!;
    return grp < 0 ? null : keep.get(grp)!;
  };
  const out = new Map<string, Tensor>();
  const put = (key: string, f: (t: Tensor) => Tensor) => {
    const t = source.get(key);
    if (t) out.set(key, f(t));
  };
  for (const n of g.nodes) {
    const own = chans(n.id),
      inp = n.inputs.length ? chans(n.inputs[0]!) : null;
    if (n.op === 'conv') {
      put(`${n.name}.weight`, (t) => {
        const o = own ? take(t, 0, own) : t;
        if (!inp) return o;
        const r = take(o, 1, inp);
        if (o !== t) o.dispose();
        return r;
      });
      put(`${n.name}.bias`, (t) => (own ? take(t, 0, own) : t.clone()));
    } else if (n.op === 'bn') {
      for (const p of ['weight', 'bias', 'running_mean', 'running_var'])
        put(`${n.name}.${p}`, (t) => (own ? take(t, 0, own) : t.clone()));
      put(`${n.name}.num_batches_tracked`, (t) => t.clone());
    } else if (n.op === 'linear') {
      put(`${n.name}.weight`, (t) => (inp ? take(t, 1, inp) : t.clone()));
      put(`${n.name}.bias`, (t) => t.clone());
    }
  }
  for (const [k, t] of source) if (!out.has(k)) out.set(k, t.clone());
  return out;
}

/**
 * The state dict of `from`'s network with `blocks` blocks per stage (each at most from's): every tensor of a layer that
 * network has, copied; the later blocks' tensors left out. Throws on more stages or more blocks than `from` has.
 */
export function dropBlocks(source: Map<string, Tensor>, from: NetSpec, blocks: number[]): Map<string, Tensor> {
  if (blocks.length !== from.blocks.length || blocks.some((b, i) => b < 1 || b > from.blocks[i]!))
    throw new Error(
      `channel slicing: blocks [${blocks}] are not a prefix of the source network's blocks [${from.blocks}] per stage`,
    );
  const names = new Set(describeNetwork(shapeNetwork({ ...from, blocks, mask: undefined }), null).map((n) => n.name));
  const out = new Map<string, Tensor>();
  for (const [k, t] of source) {
    const owner = k.slice(0, k.lastIndexOf('.'));
    if (names.has(owner)) out.set(k, t.clone());
  }
  return out;
}
