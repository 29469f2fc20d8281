// `deepreduce import`: a model directory from PyTorch weights (safetensors, torch.save zip) or a torch.onnx.export
// graph of a ResNet. Both become a state dict with torchvision's names and the facts only a graph carries (stem
// stride, max-pool, input shape); the architecture is inferred from the keys and shapes, the network is built and
// loaded strictly, and the directory is written to a temporary sibling and renamed into place.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { decodeSafetensors, tensor, tidy, type Tensor } from '../engine/index.js';
import {
  ARCH_NAMES,
  buildNetwork,
  countRelus,
  scaleWidth,
  specFor,
  type NetSpec,
  type Network,
} from '../models/index.js';
import { saveModelDir, type InputTransform } from '../train/modeldir.js';
import { decodeOnnx, type OnnxModel, type OnnxNode, type OnnxTensor } from './onnx.js';
import { readTorchZip, type RawTensor } from './torchfile.js';

export type ImportFormat = 'safetensors' | 'pytorch' | 'onnx';

export interface ImportOptions {
  /** Architecture name (default: inferred from the weights' keys and shapes). */
  arch?: string;
  /** Number of classes; must equal fc's rows. */
  classes?: number;
  /** Input size (square); an ONNX file's own input shape is used otherwise, then the arch's default. */
  input?: number;
  /** Input channels; must equal conv1's. */
  channels?: number;
  mean?: number[];
  std?: number[];
  /** Dataset name for model.json's input (eval's default dataset). */
  dataset?: string;
  classNames?: string[];
  format?: ImportFormat;
}

export interface ImportResult {
  out: string;
  format: ImportFormat;
  spec: NetSpec;
  parameters: number;
  input: InputTransform;
  notes: string[];
}

/** What a file gives besides the weights: graph facts (ONNX) and preprocessing it declares. */
interface Structure {
  imagenetStem?: boolean;
  stemStride?: number;
  inputShape?: number[];
  input?: Partial<InputTransform>;
}

const SUPPORTED_OPS = [
  'Conv',
  'BatchNormalization',
  'Relu',
  'Add',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'Flatten',
  'Gemm',
];
const SUPPORTED_ARCHS =
  'torchvision-named ResNets: CIFAR layout (3x3 stem, no max-pool: resnet18/34/50, resnet20/32/56) and ImageNet layout (7x7/2 stem + 3x3/2 max-pool: resnet18/34/50-imagenet), basic or bottleneck (v1.5) blocks';

export function detectFormat(file: string, bytes: Uint8Array): ImportFormat {
  if (/\.safetensors$/i.test(file)) return 'safetensors';
  if (/\.onnx$/i.test(file)) return 'onnx';
  if (/\.(pt|pth|bin|ckpt)$/i.test(file)) return 'pytorch';
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return 'pytorch';
  if (bytes.length > 8 && bytes[8] === 0x7b) return 'safetensors'; // a JSON header after the 8-byte length
  throw new Error(
    `${file}: unknown format; supported: .safetensors, .pt/.pth (torch.save of a state dict), .onnx (or --format)`,
  );
}

// ---- safetensors / torch.save: keys as they are

function fromSafetensors(bytes: Uint8Array, source: string): Map<string, RawTensor> {
  return tidy(() => {
    const f = decodeSafetensors(bytes, source);
    const out = new Map<string, RawTensor>();
    for (const [k, t] of f.tensors)
      out.set(k, { shape: t.shape, data: t.to('float32').toArray() as Float32Array, dtype: t.dtype });
    return out;
  });
}

// ---- ONNX: walk a torch.onnx.export ResNet graph, naming every weight by its torchvision key

const BN_EPS = 1e-5; // the engine's BatchNorm2d

function onnxFloats(t: OnnxTensor, source: string): Float32Array {
  const n = t.dims.map(Number).reduce((a, b) => a * b, 1);
  if (t.data_type !== 1)
    throw new Error(`${source}: initializer '${t.name}' has data type ${t.data_type}; supported: FLOAT (1)`);
  const raw = t.raw_data;
  if (raw?.length) {
    if (raw.length !== 4 * n)
      throw new Error(`${source}: initializer '${t.name}' has ${raw.length} bytes, dims [${t.dims}] need ${4 * n}`);
    const copy = new Uint8Array(raw);
    return new Float32Array(copy.buffer, 0, n);
  }
  const f = (t as OnnxTensor & { float_data?: number[] }).float_data ?? [];
  if (f.length !== n)
    throw new Error(`${source}: initializer '${t.name}' has ${f.length} values, dims [${t.dims}] need ${n}`);
  return Float32Array.from(f);
}

function fromOnnx(bytes: Uint8Array, source: string): { sd: Map<string, RawTensor>; structure: Structure } {
  const model: OnnxModel = decodeOnnx(bytes, source);
  const g = model.graph;
  if (!g?.node?.length) throw new Error(`${source}: the ONNX file has no graph nodes (truncated or not a model?)`);
  const fail = (n: OnnxNode | null, msg: string): never => {
    throw new Error(`${source}: ${n ? `node '${n.name || n.output[0]}' (${n.op_type}): ` : ''}${msg}`);
  };
  const consts = new Map<string, OnnxTensor>();
  for (const t of g.initializer ?? []) consts.set(t.name, t);
  const nodes = g.node.filter((n) => {
    if (n.op_type !== 'Constant') return true;
    const t = (n.attribute ?? []).find((a) => a.name === 'value') as { t?: OnnxTensor } | undefined;
    if (!t?.t) fail(n, 'a Constant without a tensor value');
    consts.set(n.output[0]!, { ...t!.t!, name: n.output[0]! });
    return false;
  });
  for (const n of nodes)
    if (!SUPPORTED_OPS.includes(n.op_type) || (n as { domain?: string }).domain)
      fail(
        n,
        `op '${n.op_type}' is not supported; supported ops: ${SUPPORTED_OPS.join(', ')} (a ResNet as torch.onnx.export writes it)`,
      );
  const inputs = (g.input ?? []).filter((v) => !consts.has(v.name));
  if (inputs.length !== 1) fail(null, `the graph has ${inputs.length} non-constant inputs, expected 1 image input`);
  const input = inputs[0]!;
  const dims = (input.type?.tensor_type?.shape?.dim ?? []).map((d) => Number(d.dim_value ?? 0));
  if (dims.length !== 4) fail(null, `input '${input.name}' has rank ${dims.length}, expected [N, C, H, W]`);
  if (dims[2] !== dims[3])
    fail(null, `input '${input.name}' is ${dims[2]}x${dims[3]}; only square inputs are supported`);
  if ((g.output ?? []).length !== 1) fail(null, `the graph has ${g.output?.length ?? 0} outputs, expected 1 (logits)`);

  const consumers = new Map<string, OnnxNode[]>();
  for (const n of nodes)
    for (const v of n.input) if (v && !consts.has(v)) consumers.set(v, [...(consumers.get(v) ?? []), n]);
  const visited = new Set<OnnxNode>();
  const only = (v: string, op: string | null): OnnxNode => {
    const c = consumers.get(v) ?? [];
    if (c.length !== 1) fail(null, `value '${v}' feeds ${c.length} nodes where one ${op ?? 'node'} was expected`);
    if (op && c[0]!.op_type !== op) fail(c[0]!, `expected ${op} here (reading '${v}') for ${SUPPORTED_ARCHS}`);
    visited.add(c[0]!);
    return c[0]!;
  };
  const attr = (n: OnnxNode, name: string) =>
    (n.attribute ?? []).find((a) => a.name === name) as { i?: number; f?: number; ints?: number[] } | undefined;
  const ints = (n: OnnxNode, name: string, d: number[]) => (attr(n, name)?.ints ?? d).map(Number);
  const constant = (n: OnnxNode, i: number): RawTensor => {
    const t =
      consts.get(n.input[i]!) ??
      fail(n, `input ${i} ('${n.input[i]}') is not a constant (weights must be initializers)`);
    return { shape: t.dims.map(Number), data: onnxFloats(t, source), dtype: 'float32' };
  };
  const sd = new Map<string, RawTensor>();
  let size = dims[2]!;
  const out = (k: number, s: number, pad: number) => Math.floor((size + 2 * pad - k) / s) + 1;

  /** Conv (+ BatchNormalization, or a bias from a BN torch.onnx.export folded in) under `name`/`bnName`. */
  const convBn = (n: OnnxNode, name: string, bnName: string, into = sd) => {
    const w = constant(n, 1);
    const k = ints(n, 'kernel_shape', w.shape.slice(2));
    const s = ints(n, 'strides', [1, 1]);
    const pads = ints(n, 'pads', [0, 0, 0, 0]);
    if (k[0] !== k[1] || s[0] !== s[1] || new Set(pads).size !== 1)
      fail(n, `kernel [${k}], strides [${s}], pads [${pads}]: only square kernels, strides and symmetric pads`);
    if (ints(n, 'dilations', [1, 1]).some((d) => d !== 1) || Number(attr(n, 'group')?.i ?? 1) !== 1)
      fail(n, 'dilated or grouped convolutions are not supported');
    if (attr(n, 'auto_pad')) fail(n, 'auto_pad is not supported (explicit pads only)');
    into.set(`${name}.weight`, w);
    const c = w.shape[0]!;
    const bias = n.input[2] ? constant(n, 2).data : null;
    let value = n.output[0]!;
    const next = consumers.get(value) ?? [];
    let gamma: Float32Array = new Float32Array(c).fill(1),
      beta: Float32Array = new Float32Array(c),
      mean: Float32Array = new Float32Array(c),
      vr: Float32Array = new Float32Array(c).fill(1 - BN_EPS);
    if (next.length === 1 && next[0]!.op_type === 'BatchNormalization') {
      const b = next[0]!;
      visited.add(b);
      [gamma, beta, mean, vr] = [1, 2, 3, 4].map((i) => Float32Array.from(constant(b, i).data)) as [
        Float32Array,
        Float32Array,
        Float32Array,
        Float32Array,
      ];
      // the file's epsilon moves into the variance so that the engine's 1e-5 gives the same scale
      const eps = attr(b, 'epsilon')?.f ?? 1e-5;
      for (let i = 0; i < c; i++) vr[i] = vr[i]! + eps - BN_EPS;
      if (bias) for (let i = 0; i < c; i++) mean[i] = mean[i]! - bias[i]!;
      value = b.output[0]!;
    } else if (bias) beta = Float32Array.from(bias);
    for (const [key, data] of [
      ['weight', gamma],
      ['bias', beta],
      ['running_mean', mean],
      ['running_var', vr],
    ] as const)
      into.set(`${bnName}.${key}`, { shape: [c], data, dtype: 'float32' });
    return { value, k: k[0]!, s: s[0]!, pad: pads[0]!, channels: c };
  };

  // stem
  visited.add(only(input.name, 'Conv'));
  const stemNode = consumers.get(input.name)![0]!;
  const stem = convBn(stemNode, 'conv1', 'bn1');
  size = out(stem.k, stem.s, stem.pad);
  let x = only(stem.value, 'Relu').output[0]!;
  let imagenetStem = false;
  const afterStem = consumers.get(x) ?? [];
  if (afterStem.length === 1 && afterStem[0]!.op_type === 'MaxPool') {
    const m = only(x, 'MaxPool');
    const k = ints(m, 'kernel_shape', []),
      s = ints(m, 'strides', [1, 1]),
      p = ints(m, 'pads', [0, 0, 0, 0]);
    if (k.join() !== '3,3' || s.join() !== '2,2' || p.some((v) => v !== 1) || Number(attr(m, 'ceil_mode')?.i ?? 0))
      fail(m, `max-pool kernel [${k}], strides [${s}], pads [${p}]: only torchvision's 3x3/2, pad 1, floor mode`);
    if (stem.k !== 7 || stem.s !== 2 || stem.pad !== 3)
      fail(stemNode, `a max-pool follows a ${stem.k}x${stem.k}/${stem.s} stem; the ImageNet layout needs 7x7/2, pad 3`);
    imagenetStem = true;
    size = out(3, 2, 1);
    x = m.output[0]!;
  } else if (stem.k !== 3 || stem.pad !== 1)
    fail(stemNode, `stem ${stem.k}x${stem.k} pad ${stem.pad} without max-pool: the CIFAR layout needs 3x3, pad 1`);

  // residual blocks: a stride-2 block starts a new stage
  let stage = 1,
    block = 0,
    blocks = 0;
  for (;;) {
    const c = consumers.get(x) ?? [];
    if (c.length === 1 && (c[0]!.op_type === 'GlobalAveragePool' || c[0]!.op_type === 'AveragePool')) break;
    const convs = c.filter((n) => n.op_type === 'Conv');
    const adds = c.filter((n) => n.op_type === 'Add');
    if (!convs.length || convs.length + adds.length !== c.length || convs.length > 2 || adds.length > 1)
      fail(c[0] ?? null, `value '${x}' does not start a residual block (a Conv, and a Conv shortcut or the Add)`);
    // the shortcut conv's (BN's) output goes straight into the Add; the main branch's first conv into a Relu
    const headOf = (n: OnnxNode) => {
      const next = consumers.get(n.output[0]!) ?? [];
      const after = next.length === 1 && next[0]!.op_type === 'BatchNormalization' ? next[0]!.output[0]! : n.output[0]!;
      return (consumers.get(after) ?? [])[0]?.op_type;
    };
    const main = convs.find((n) => headOf(n) === 'Relu') ?? fail(convs[0]!, 'no main branch (Conv, BN, Relu)');
    const short = convs.find((n) => n !== main);
    visited.add(main);
    const chain: OnnxNode[] = [main];
    let v = main.output[0]!;
    let add: OnnxNode | null = null;
    const local = new Map<string, RawTensor>();
    const parts: ReturnType<typeof convBn>[] = [];
    for (let i = 1; ; i++) {
      if (i > 3) fail(chain[0]!, 'a residual branch with more than 3 convolutions');
      const r = convBn(chain[i - 1]!, `conv${i}`, `bn${i}`, local);
      parts.push(r);
      const next = consumers.get(r.value) ?? [];
      if (next.length === 1 && next[0]!.op_type === 'Add') {
        add = next[0]!;
        v = r.value;
        break;
      }
      const relu = only(r.value, 'Relu');
      const conv = only(relu.output[0]!, 'Conv');
      chain.push(conv);
    }
    visited.add(add!);
    const other = add!.input.find((u) => u !== v);
    if (add!.input.length !== 2 || other === undefined) fail(add, 'a residual Add needs two different inputs');
    let stride = 1;
    if (short) {
      visited.add(short);
      const r = convBn(short, 'downsample.0', 'downsample.1', local);
      if (r.value !== other) fail(short, `the shortcut's output '${r.value}' is not the Add's other input '${other}'`);
      if (r.k !== 1 || r.pad !== 0) fail(short, `shortcut ${r.k}x${r.k} pad ${r.pad}; torchvision's is 1x1, pad 0`);
      stride = r.s;
    } else if (other !== x) fail(add, `the Add's other input '${other}' is neither the block input nor a 1x1 shortcut`);
    const bottleneck = parts.length === 3;
    if (parts.length === 1) fail(chain[0]!, 'a residual branch with one convolution');
    const strides = parts.map((q) => q.s);
    const strided = bottleneck ? 1 : 0;
    if (strides.some((s, i) => i !== strided && s !== 1))
      fail(
        chain[0]!,
        `block strides [${strides}]: only ${bottleneck ? 'the 3x3 conv (v1.5)' : 'the first conv'} may be strided`,
      );
    if (short && strides[strided] !== stride)
      fail(short, `shortcut stride ${stride}, branch stride ${strides[strided]}`);
    if (!short && strides[strided] !== 1) fail(chain[0]!, 'a strided block needs a shortcut conv');
    if (strides[strided] === 2) {
      if (blocks === 0) fail(chain[0]!, 'the first block is strided; the first stage keeps the resolution');
      stage++;
      block = 0;
    } else if (strides[strided] !== 1) fail(chain[0]!, `stride ${strides[strided]}; only 1 or 2`);
    const { k, pad } = parts[strided]!;
    size = Math.floor((size + 2 * pad - k) / strides[strided]!) + 1;
    for (const [key, t] of local) sd.set(`layer${stage}.${block}.${key}`, t);
    x = only(add!.output[0]!, 'Relu').output[0]!;
    block++;
    blocks++;
  }

  // head: global average pool (or an average pool over the whole map), flatten, Gemm
  const pool = only(x, null);
  if (pool.op_type === 'AveragePool') {
    const k = ints(pool, 'kernel_shape', []),
      p = ints(pool, 'pads', [0, 0, 0, 0]);
    if (k[0] !== size || k[1] !== size || p.some((q) => q !== 0))
      fail(pool, `average pool kernel [${k}] on a ${size}x${size} map: only a pool over the whole map is supported`);
  }
  const flat = only(pool.output[0]!, 'Flatten');
  if (Number(attr(flat, 'axis')?.i ?? 1) !== 1) fail(flat, 'Flatten axis must be 1');
  const gemm = only(flat.output[0]!, 'Gemm');
  if (Number(attr(gemm, 'alpha')?.f ?? 1) !== 1 || Number(attr(gemm, 'beta')?.f ?? 1) !== 1 || attr(gemm, 'transA')?.i)
    fail(gemm, 'only alpha 1, beta 1, transA 0 (a Linear layer)');
  let w = constant(gemm, 1);
  if (!Number(attr(gemm, 'transB')?.i ?? 0)) {
    const [i, o] = w.shape as [number, number];
    const t = new Float32Array(i * o);
    for (let a = 0; a < i; a++) for (let b = 0; b < o; b++) t[b * i + a] = w.data[a * o + b]!;
    w = { shape: [o, i], data: t, dtype: 'float32' };
  }
  sd.set('fc.weight', w);
  sd.set(
    'fc.bias',
    gemm.input[2] ? constant(gemm, 2) : { shape: [w.shape[0]!], data: new Float32Array(w.shape[0]!), dtype: 'float32' },
  );
  if (gemm.output[0] !== g.output[0]!.name) fail(gemm, `its output is not the graph output '${g.output[0]!.name}'`);
  const missed = nodes.filter((n) => !visited.has(n));
  if (missed.length) fail(missed[0]!, 'this node is not part of the ResNet structure the importer matched');

  const structure: Structure = { imagenetStem, stemStride: stem.s, inputShape: dims.slice(1) };
  const meta = (model.metadata_props ?? []).find((m) => m.key === 'deepreduce.input');
  if (meta)
    try {
      structure.input = JSON.parse(meta.value) as Partial<InputTransform>;
    } catch {
      fail(null, "metadata 'deepreduce.input' is not valid JSON");
    }
  return { sd, structure };
}

// ---- the spec from torchvision keys and shapes

/**
 * Drops what the engine does not keep (num_batches_tracked) and a DataParallel 'module.' prefix; the popular CIFAR
 * port's names (kuangliu/pytorch-cifar: `layer{s}.{b}.shortcut`, `linear`) become torchvision's.
 */
function normalise(sd: Map<string, RawTensor>, notes: string[]): Map<string, RawTensor> {
  const keys = [...sd.keys()];
  const strip = keys.length > 0 && keys.every((k) => k.startsWith('module.'));
  const port = !sd.has('fc.weight') && keys.some((k) => k === 'linear.weight' || k === 'module.linear.weight');
  if (port) notes.push("keys 'linear.*' and '.shortcut.' read as torchvision's 'fc.*' and '.downsample.'");
  const out = new Map<string, RawTensor>();
  for (const [key, v] of sd) {
    if (key.endsWith('num_batches_tracked')) continue;
    let k = strip ? key.slice('module.'.length) : key;
    if (port) k = k.replace(/^linear\./, 'fc.').replace(/^(layer\d+\.\d+)\.shortcut\./, '$1.downsample.');
    out.set(k, v);
  }
  return out;
}

const KNOWN = ARCH_NAMES.filter((a) => !a.startsWith('wrn-'));

export function inferSpec(
  sd: Map<string, RawTensor>,
  structure: Structure,
  o: ImportOptions,
  source: string,
): { spec: NetSpec; notes: string[] } {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const shape = (k: string) =>
    sd.get(k)?.shape ??
    fail(
      `no tensor '${k}'; the importer reads ${SUPPORTED_ARCHS} (keys conv1.weight, bn1.*, layer{s}.{b}.conv1.weight, ..., fc.weight); keys found: ${[...sd.keys()].slice(0, 6).join(', ')}${sd.size > 6 ? ', ...' : ''}`,
    );
  const notes: string[] = [];
  const stem = shape('conv1.weight');
  if (stem.length !== 4) fail(`conv1.weight has shape [${stem}], expected [out, in, k, k]`);
  const [stemC, inC, k] = stem as [number, number, number, number];
  const fc = shape('fc.weight');
  if (fc.length !== 2) fail(`fc.weight has shape [${fc}], expected [classes, features]`);
  const imagenet = structure.imagenetStem ?? k === 7;
  if (k !== (imagenet ? 7 : 3))
    fail(`conv1.weight is ${k}x${k}; supported stems: 7x7 (ImageNet layout, with max-pool) or 3x3 (CIFAR layout)`);
  if (structure.imagenetStem === undefined)
    notes.push(
      imagenet
        ? '7x7 conv1: ImageNet layout (stride 2, then a 3x3/2 max-pool)'
        : '3x3 conv1: CIFAR layout (stride 1, no max-pool)',
    );
  const blocks: number[] = [];
  const widths: number[] = [];
  for (let s = 1; sd.has(`layer${s}.0.conv1.weight`); s++) {
    let b = 0;
    while (sd.has(`layer${s}.${b}.conv1.weight`)) b++;
    blocks.push(b);
    widths.push(shape(`layer${s}.0.conv1.weight`)[0]!);
  }
  if (!blocks.length) shape('layer1.0.conv1.weight');
  const blockType = sd.has('layer1.0.conv3.weight') ? 'bottleneck' : 'basic';
  const family = imagenet ? 'resnet-imagenet' : blocks.length === 3 ? 'resnet-thin' : 'resnet-cifar';
  const candidates = KNOWN.map((a) => specFor(a)).filter((s) => s.family === family && s.blockType === blockType);
  const base =
    (o.arch ? specFor(o.arch) : undefined) ??
    candidates.find((s) => s.blocks.join() === blocks.join()) ??
    candidates.find((s) => s.blocks.length === blocks.length) ??
    fail(
      `${blocks.length} stages of ${blockType} blocks [${blocks}] with a ${k}x${k} stem match no supported network; supported: ${SUPPORTED_ARCHS}`,
    );
  if (o.arch && (base.family !== family || base.blockType !== blockType || base.blocks.length !== blocks.length))
    fail(
      `--arch ${o.arch} is ${base.family} with ${base.blocks.length} stages of ${base.blockType} blocks, but the weights are ${family} with ${blocks.length} stages of ${blockType} blocks [${blocks}]`,
    );
  // widths as alpha times the arch's, when one alpha explains them all; otherwise the widths themselves
  const alpha = widths[0]! / base.widths[0]!;
  const fits =
    widths.every((w, i) => scaleWidth(base.widths[i]!, alpha) === w) &&
    scaleWidth(base.stemWidth ?? base.widths[0]!, alpha) === stemC;
  const rho = 1 / (structure.stemStride ?? (imagenet ? 2 : 1));
  const inputSize = o.input ?? structure.inputShape?.[1] ?? base.inputSize;
  if (o.input === undefined && !structure.inputShape)
    notes.push(`input size ${inputSize} (the arch's default; --input to set it)`);
  if (o.input !== undefined && structure.inputShape && structure.inputShape[1] !== o.input)
    fail(`--input ${o.input}, but the graph's input is ${structure.inputShape[1]}x${structure.inputShape[2]}`);
  if (o.channels !== undefined && o.channels !== inC)
    fail(`--channels ${o.channels}, but conv1.weight reads ${inC} channels`);
  if (o.classes !== undefined && o.classes !== fc[0]) fail(`--classes ${o.classes}, but fc.weight has ${fc[0]} rows`);
  const spec = specFor(base.arch, {
    blocks,
    rho,
    inputSize,
    inChannels: inC,
    numClasses: fc[0]!,
    ...(fits ? { alpha } : { alpha: 1, widths, stemWidth: stemC }),
  });
  return { spec, notes };
}

// ---- the command's work

const csv = (v: number[] | undefined, c: number, name: string, dflt: number, source: string) => {
  const a = v ?? [dflt];
  if (a.length === 1) return new Array<number>(c).fill(a[0]!);
  if (a.length !== c) throw new Error(`${source}: --${name} has ${a.length} values for ${c} input channels`);
  return a;
};

/** Imports `file` into the model directory `out` (which must not exist or be empty); nothing is written on failure. */
export function importModel(file: string, out: string, o: ImportOptions = {}): ImportResult {
  const source = file;
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length))
    throw new Error(`${out}: exists and is not empty; choose a new model directory`);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
  const format = o.format ?? detectFormat(file, bytes);
  let raw: Map<string, RawTensor>;
  let structure: Structure = {};
  if (format === 'safetensors') raw = fromSafetensors(bytes, source);
  else if (format === 'pytorch') raw = readTorchZip(bytes, source);
  else ({ sd: raw, structure } = fromOnnx(bytes, source));
  const renames: string[] = [];
  const sd = normalise(raw, renames);
  const { spec, notes } = inferSpec(sd, structure, o, source);
  notes.unshift(...renames);
  const c = spec.inChannels;
  const fileInput = structure.input ?? {};
  const input: InputTransform = {
    dataset: o.dataset ?? fileInput.dataset ?? 'imported',
    mean: csv(o.mean ?? fileInput.mean, c, 'mean', 0, source),
    std: csv(o.std ?? fileInput.std, c, 'std', 1, source),
    ...((o.classNames ?? fileInput.classNames) ? { classNames: o.classNames ?? fileInput.classNames } : {}),
  };
  if (input.classNames && input.classNames.length !== spec.numClasses)
    throw new Error(`${source}: ${input.classNames.length} class names for ${spec.numClasses} classes`);
  if (!o.mean && !fileInput.mean) notes.push('no --mean/--std: inputs are pixel/255, not normalised');
  let net: Network | null = null;
  const tmp = join(dirname(resolve(out)), `.${basename(out)}.import-${process.pid}-${Date.now()}`);
  try {
    net = buildNetwork(spec);
    const n = net;
    tidy(() => {
      const tensors = new Map<string, Tensor>();
      for (const [k, t] of sd) tensors.set(k, tensor(t.data, t.shape, 'float32'));
      try {
        n.loadStateDict(tensors, { source });
      } catch (e) {
        throw new Error(`${(e as Error).message}; supported: ${SUPPORTED_ARCHS}, as ${spec.arch} (${spec.family})`);
      }
    });
    n.eval();
    // no test accuracy: run deepreduce eval on the data it was trained for
    saveModelDir(tmp, n, input, { relus: countRelus(spec).total, importedFrom: basename(file), importFormat: format });
    if (existsSync(out)) rmdirSync(out);
    else mkdirSync(dirname(resolve(out)), { recursive: true });
    renameSync(tmp, out);
    const parameters = n.parameters().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    return { out, format, spec, parameters, input, notes };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    net?.dispose();
  }
}
