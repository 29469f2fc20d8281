// ONNX export of a network's graph description (describeNetwork): opset 17, dynamic batch 'N', float32 weights as
// raw_data initializers named by their state-dict keys. Removed ReLU sites produce no node; BN is kept as
// BatchNormalization or folded into the preceding Conv.
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { BatchNorm2d, Conv2d, Linear, tidy, type Tensor } from '../engine/index.js';
import { describeNetwork, foldBatchNorm, type FoldedConv, type GraphNode } from '../models/graph.js';
import type { Network } from '../models/network.js';
import { FAMILIES } from '../models/spec.js';
import { inputRecipe, loadModelDir, readModelInfo } from '../train/modeldir.js';
import { writeFileAtomic } from '../util/fs.js';
import { packageVersion } from '../util/version.js';
import { ONNX_PROTO3, ONNX_PROTO3_VERSION } from './onnx-proto.js';

export const ONNX_OPSET = 17;
/** IR version 8 is the one released with opset 17 (onnx 1.12); readers of newer IRs accept it. */
export const ONNX_IR_VERSION = 8;
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'logits';
export const ONNX_BATCH_DIM = 'N';
/** TensorProto.DataType.FLOAT. */
export const ONNX_FLOAT = 1;
/** TensorProto.DataType.BOOL (one byte per element in raw_data). */
export const ONNX_BOOL = 9;

// Plain-object forms of the messages the exporter writes (protobufjs field names, keepCase).
export interface OnnxAttribute {
  name: string;
  type: 'FLOAT' | 'INT' | 'INTS';
  f?: number;
  i?: number;
  ints?: number[];
}
export interface OnnxNode {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute?: OnnxAttribute[];
  doc_string?: string;
}
export interface OnnxTensor {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}
export interface OnnxDim {
  dim_value?: number;
  dim_param?: string;
}
export interface OnnxValueInfo {
  name: string;
  type: { tensor_type: { elem_type: number; shape?: { dim: OnnxDim[] } } };
}
export interface OnnxGraph {
  name: string;
  node: OnnxNode[];
  initializer: OnnxTensor[];
  input: OnnxValueInfo[];
  output: OnnxValueInfo[];
  value_info: OnnxValueInfo[];
  doc_string?: string;
}
export interface OnnxModel {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  producer_name: string;
  producer_version: string;
  doc_string?: string;
  graph: OnnxGraph;
  metadata_props?: { key: string; value: string }[];
}

let root: protobuf.Root | null = null;
function modelType(): protobuf.Type {
  root ??= protobuf.parse(ONNX_PROTO3, { keepCase: true }).root;
  return root.lookupType('onnx.ModelProto');
}

/** Serialises a model object with the official schema; throws naming the first field protobufjs rejects. */
export function encodeOnnx(model: OnnxModel): Uint8Array {
  const T = modelType();
  const msg = T.fromObject(model);
  const err = T.verify(msg);
  if (err) throw new Error(`onnx encode: ${err}`);
  return T.encode(msg).finish();
}

/** Parses ONNX bytes into the plain-object form (enums as names, int64 as numbers, bytes as Uint8Array). */
export function decodeOnnx(bytes: Uint8Array, source = '<buffer>'): OnnxModel {
  const T = modelType();
  let msg: protobuf.Message;
  try {
    msg = T.decode(bytes);
  } catch (e) {
    throw new Error(`onnx ${source}: not a valid ModelProto (${(e as Error).message})`);
  }
  return T.toObject(msg, { longs: Number, enums: String, arrays: true }) as OnnxModel;
}

export interface OnnxExportOptions {
  /** Fold every BN that alone consumes a conv into that Conv (the others stay BatchNormalization). */
  foldBn?: boolean;
  /** Graph name (default: the network's arch). */
  name?: string;
  /** Extra metadata_props entries. */
  metadata?: Record<string, string>;
}

export interface OnnxExportSummary {
  nodes: number;
  /**
   * Relu nodes in graph order: node name (= site), per-image output shape, and the ReLUs it stands for: all its
   * elements, or for a partial site (Relu then Where by a constant mask) the mask's true elements.
   */
  relus: { name: string; shape: number[]; relus: number; partial: boolean }[];
  /** Sum of the Relu nodes' ReLUs per image (= deepreduce count). */
  reluElements: number;
  batchNorms: number;
  foldedBatchNorms: number;
  initializers: number;
  parameters: number;
}

export interface OnnxExport {
  model: OnnxModel;
  bytes: Uint8Array;
  summary: OnnxExportSummary;
}

const SUPPORTED = ['input', 'conv', 'bn', 'relu', 'add', 'maxpool', 'avgpool', 'gap', 'flatten', 'linear'];
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

const ints = (name: string, v: number[]): OnnxAttribute => ({ name, type: 'INTS', ints: v });
const int = (name: string, v: number): OnnxAttribute => ({ name, type: 'INT', i: v });
const float = (name: string, v: number): OnnxAttribute => ({ name, type: 'FLOAT', f: v });

function valueInfo(name: string, perImage: number[]): OnnxValueInfo {
  const dim: OnnxDim[] = [{ dim_param: ONNX_BATCH_DIM }, ...perImage.map((d) => ({ dim_value: d }))];
  return { name, type: { tensor_type: { elem_type: ONNX_FLOAT, shape: { dim } } } };
}

function initializer(name: string, t: Tensor, where: string): OnnxTensor {
  if (t.dtype !== 'float32') throw new Error(`onnx export: ${where}: tensor '${name}' is ${t.dtype}, expected float32`);
  const a = tidy(() => t.contiguous().toArray() as Float32Array);
  // raw_data is little-endian; copy so the bytes own their buffer
  return {
    name,
    dims: t.shape,
    data_type: ONNX_FLOAT,
    raw_data: new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)),
  };
}

/**
 * Builds the ONNX model of a graph description. `folded` (from foldBatchNorm) replaces those convs' weights and
 * drops their BNs. Every node's output value is named after the node; the last one is `logits`.
 */
export function graphToOnnx(
  nodes: GraphNode[],
  o: { name: string; folded?: FoldedConv[]; metadata?: Record<string, string> },
): OnnxModel {
  const fail = (n: GraphNode, msg: string): never => {
    throw new Error(`onnx export of '${o.name}': node #${n.id} '${n.name}' (${String(n.op)}): ${msg}`);
  };
  const first = nodes[0];
  if (first?.op !== 'input') throw new Error(`onnx export of '${o.name}': the graph must start with an input node`);
  if (first.outShape.length !== 3) fail(first, `input shape [${first.outShape}] is not CHW`);
  const folded = new Map((o.folded ?? []).map((f) => [f.conv, f]));
  const foldedBns = new Set((o.folded ?? []).map((f) => f.bn));
  const out: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  const infos: OnnxValueInfo[] = [];
  const value: string[] = []; // ONNX value of each graph node's output
  const last = nodes.length - 1;
  const names = new Set<string>([ONNX_INPUT]);
  const claim = (n: GraphNode, name: string) => {
    if (names.has(name)) fail(n, `name '${name}' is used twice`);
    names.add(name);
    return name;
  };
  const addInit = (n: GraphNode, name: string, t: Tensor) => {
    inits.push(initializer(claim(n, name), t, `node '${n.name}'`));
    return name;
  };
  const addBool = (n: GraphNode, name: string, dims: number[], flags: Uint8Array) => {
    inits.push({ name: claim(n, name), dims, data_type: ONNX_BOOL, raw_data: flags });
    return name;
  };
  const module = <M>(n: GraphNode, cls: abstract new (...a: never[]) => M): M =>
    n.module instanceof cls
      ? (n.module as M)
      : fail(n, `expected a ${cls.name} module, got ${n.module?.constructor.name ?? 'none'}`);
  /** Adds the node (named `name`) that computes `n`'s value, named after `n` (`logits` for the last node). */
  const emit = (
    n: GraphNode,
    op_type: string,
    input: string[],
    attribute: OnnxAttribute[] = [],
    doc?: string,
    name = n.name,
  ) => {
    const output = n.id === last ? ONNX_OUTPUT : claim(n, n.name);
    out.push({
      name,
      op_type,
      input,
      output: [output],
      ...(attribute.length ? { attribute } : {}),
      ...(doc ? { doc_string: doc } : {}),
    });
    if (n.id !== last) infos.push(valueInfo(output, n.outShape));
    value[n.id] = output;
  };
  /** The weight and optional bias initializers of a Conv or Gemm. */
  const weights = (n: GraphNode, m: { weight: Tensor; bias: Tensor | null }) => [
    addInit(n, `${n.name}.weight`, m.weight),
    ...(m.bias ? [addInit(n, `${n.name}.bias`, m.bias)] : []),
  ];
  const alias = (n: GraphNode) => {
    value[n.id] = value[n.inputs[0]!]!;
  };
  const pool = (n: GraphNode) => {
    const a = n.attributes;
    return [
      ints('kernel_shape', [a.kernel!, a.kernel!]),
      ints('strides', [a.stride!, a.stride!]),
      ints('pads', [a.padding!, a.padding!, a.padding!, a.padding!]),
    ];
  };

  for (const n of nodes) {
    if (n.id !== value.length) fail(n, `ids must be 0..${last} in order`);
    for (const i of n.inputs) if (!(i >= 0 && i < n.id)) fail(n, `reads node ${i}, which does not precede it`);
    const x = value[n.inputs[0]!]!;
    switch (n.op) {
      case 'input':
        if (n.id !== 0) fail(n, 'a second input node');
        value[0] = ONNX_INPUT;
        break;
      case 'conv': {
        const m = module(n, Conv2d);
        const f = folded.get(n.name);
        const attrs = [
          ints('kernel_shape', [m.kernel, m.kernel]),
          ints('strides', [m.stride, m.stride]),
          ints('pads', [m.padding, m.padding, m.padding, m.padding]),
          ints('dilations', [m.dilation, m.dilation]),
          int('group', m.groups),
        ];
        const inputs = f
          ? [x, addInit(n, `${n.name}.folded_weight`, f.weight), addInit(n, `${n.name}.folded_bias`, f.bias)]
          : [x, ...weights(n, m)];
        emit(n, 'Conv', inputs, attrs, f ? `BatchNorm '${f.bn}' folded in` : undefined);
        break;
      }
      case 'bn': {
        const m = module(n, BatchNorm2d);
        if (foldedBns.has(n.name)) {
          alias(n);
          break;
        }
        const params = { weight: m.weight, bias: m.bias, running_mean: m.runningMean, running_var: m.runningVar };
        const inputs = [x, ...Object.entries(params).map(([k, t]) => addInit(n, `${n.name}.${k}`, t))];
        emit(n, 'BatchNormalization', inputs, [float('epsilon', m.eps)]);
        break;
      }
      case 'relu':
        if (typeof n.enabled !== 'boolean' || !n.site) fail(n, 'a relu node needs its site and enabled flag');
        if (n.enabled && n.kept) {
          // Partial site: Relu on the whole tensor, then Where(mask, relu, x) keeps it on the mask's elements only.
          const numel = prod(n.outShape);
          const flags = new Uint8Array(numel);
          for (const i of n.kept) {
            if (i >= numel) fail(n, `partial site element ${i} is outside its ${numel} elements`);
            flags[i] = 1;
          }
          const relu = claim(n, `${n.name}.relu`);
          out.push({
            name: n.name,
            op_type: 'Relu',
            input: [x],
            output: [relu],
            doc_string: `partial site: ${n.kept.length} of ${numel} elements are ReLUs (mask '${n.name}.mask')`,
          });
          infos.push(valueInfo(relu, n.outShape));
          const mask = addBool(n, `${n.name}.mask`, [1, ...n.outShape], flags);
          emit(n, 'Where', [mask, relu, x], [], undefined, `${n.name}.select`);
        } else if (n.enabled) emit(n, 'Relu', [x]);
        else alias(n);
        break;
      case 'add':
        if (n.inputs.length !== 2) fail(n, `add needs 2 inputs, got ${n.inputs.length}`);
        emit(n, 'Add', [x, value[n.inputs[1]!]!]);
        break;
      case 'maxpool':
        emit(n, 'MaxPool', [x], pool(n));
        break;
      case 'avgpool':
        // libtorch's avg_pool2d as the engine calls it counts the zero padding
        emit(n, 'AveragePool', [x], [...pool(n), int('count_include_pad', 1)]);
        break;
      case 'gap':
        emit(n, 'GlobalAveragePool', [x]);
        break;
      case 'flatten':
        emit(n, 'Flatten', [x], [int('axis', 1)]);
        break;
      case 'linear': {
        const m = module(n, Linear);
        emit(n, 'Gemm', [x, ...weights(n, m)], [int('transB', 1)]);
        break;
      }
      default:
        fail(n, `op '${String(n.op)}' is not handled by the ONNX exporter (supported: ${SUPPORTED.join(', ')})`);
    }
  }
  // the last node was an identity (removed site, folded BN): name its value
  if (value[last] !== ONNX_OUTPUT)
    out.push({ name: 'output', op_type: 'Identity', input: [value[last]!], output: [ONNX_OUTPUT] });

  return {
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'deepreduce',
    producer_version: packageVersion(),
    doc_string: `deepreduce ${o.name}; schema onnx ${ONNX_PROTO3_VERSION} proto3`,
    graph: {
      name: o.name,
      node: out,
      initializer: inits,
      input: [valueInfo(ONNX_INPUT, first.outShape)],
      output: [valueInfo(ONNX_OUTPUT, nodes[last]!.outShape)],
      value_info: infos,
    },
    ...(o.metadata && Object.keys(o.metadata).length
      ? { metadata_props: Object.entries(o.metadata).map(([key, v]) => ({ key, value: v })) }
      : {}),
  };
}

/** What an exported model contains, read back from its graph (Relu shapes from value_info). */
export function summarizeOnnx(model: OnnxModel): OnnxExportSummary {
  const g = model.graph;
  const shapes = new Map(
    [...g.value_info, ...g.output].map((v) => [
      v.name,
      (v.type.tensor_type.shape?.dim ?? []).slice(1).map((d) => Number(d.dim_value ?? 0)),
    ]),
  );
  // A Relu whose output a Where selects by a constant bool mask is a partial site: its ReLUs are the mask's trues.
  const masks = new Map(g.initializer.filter((t) => t.data_type === ONNX_BOOL).map((t) => [t.name, t.raw_data]));
  const selected = new Map(
    g.node
      .filter((n) => n.op_type === 'Where' && masks.has(n.input[0]!))
      .map((n) => [n.input[1]!, masks.get(n.input[0]!)!]),
  );
  const relus = g.node
    .filter((n) => n.op_type === 'Relu')
    .map((n) => {
      const shape = shapes.get(n.output[0]!) ?? [];
      const m = selected.get(n.output[0]!);
      return { name: n.name, shape, relus: m ? m.reduce((a, b) => a + (b ? 1 : 0), 0) : prod(shape), partial: !!m };
    });
  return {
    nodes: g.node.length,
    relus,
    reluElements: relus.reduce((a, r) => a + r.relus, 0),
    batchNorms: g.node.filter((n) => n.op_type === 'BatchNormalization').length,
    foldedBatchNorms: g.initializer.filter((t) => t.name.endsWith('.folded_weight')).length,
    initializers: g.initializer.length,
    parameters: g.initializer.reduce((a, t) => a + prod(t.dims.map(Number)), 0),
  };
}

/** Exports a network (with its current ReLU mask and eval-mode BN statistics) to ONNX bytes. */
export function exportOnnx(net: Network, o: OnnxExportOptions = {}): OnnxExport {
  const name = o.name ?? net.spec.arch;
  let nodes: GraphNode[];
  try {
    nodes = describeNetwork(net);
  } catch (e) {
    throw new Error(`onnx export of '${name}': ${(e as Error).message}`);
  }
  const folded = o.foldBn ? foldBatchNorm(nodes) : [];
  try {
    const model = graphToOnnx(nodes, { name, folded, metadata: o.metadata });
    return { model, bytes: encodeOnnx(model), summary: summarizeOnnx(model) };
  } finally {
    for (const f of folded) {
      f.weight.dispose();
      f.bias.dispose();
    }
  }
}

export interface ModelDirExport extends OnnxExport {
  arch: string;
  out: string;
}

/**
 * Exports a model directory (model.json + model.safetensors) to an ONNX file, written atomically. The spec and
 * input transform travel as metadata_props `deepreduce.spec` / `deepreduce.input` (JSON).
 */
export function exportModelDirToOnnx(
  dir: string,
  out: string,
  o: Omit<OnnxExportOptions, 'metadata'> = {},
): ModelDirExport {
  const info = readModelInfo(dir);
  const family = (info.spec as { family?: unknown }).family;
  if (typeof family !== 'string' || !FAMILIES.has(family))
    throw new Error(
      `${join(dir, 'model.json')}: field 'spec.family' is ${JSON.stringify(family)}, which the exporter does not support (supported: ${[...FAMILIES].join(', ')})`,
    );
  const { net } = loadModelDir(dir);
  try {
    // The recipe is rebuilt from the transform, so files exported from older model directories state it too.
    const input = { ...info.input, preprocess: inputRecipe(info.input, info.spec.inputSize) };
    const e = exportOnnx(net, {
      ...o,
      metadata: { 'deepreduce.spec': JSON.stringify(info.spec), 'deepreduce.input': JSON.stringify(input) },
    });
    writeFileAtomic(out, e.bytes);
    return { ...e, arch: net.spec.arch, out };
  } finally {
    net.dispose();
  }
}
