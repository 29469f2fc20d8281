// A trained model on disk: model.json (spec, mask, input transform), model.safetensors, mask.json.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSafetensors, saveSafetensors, tidy } from '../engine/index.js';
import {
  buildNetwork,
  maskFromDocument,
  maskToDocument,
  saveMask,
  type MaskDocument,
  type NetSpec,
  type Network,
} from '../models/index.js';
import { checkDatasetName, openData } from '../data/index.js';
import { writeFileAtomic } from '../util/fs.js';
import { packageVersion } from '../util/version.js';
import { resolveModelDir } from '../zoo/zoo.js';

/** How inputs are prepared for the model (from the training data). */
export interface InputTransform {
  dataset: string;
  /** Images are padded from this size to spec.inputSize (e.g. 28 -> 32) with black pixels BEFORE normalisation. */
  padFrom?: number;
  mean: number[];
  std: number[];
  classNames?: string[];
  /** The recipe in words (`inputRecipe`), written on save for readers of model.json; never read back. */
  preprocess?: string;
}

/**
 * How to prepare an image for the model, as the trainer does it: pixel/255, pad with black pixels (0), THEN
 * normalise every pixel, the padding included (so the padding becomes -mean/std, not 0).
 */
export function inputRecipe(input: Pick<InputTransform, 'padFrom' | 'mean' | 'std'>, inputSize: number): string {
  const from = input.padFrom;
  const padded = from !== undefined && from !== inputSize;
  const steps = ['x = pixel / 255 per channel (CHW, float32)'];
  if (padded)
    steps.push(
      `pad symmetrically ${from}x${from} -> ${inputSize}x${inputSize} (${(inputSize - from) / 2} px each side) with black pixels, x = 0`,
    );
  steps.push(`then normalise every pixel${padded ? ', padding included' : ''}: x = (x - mean[c]) / std[c]`);
  const pad = input.mean.map((m, c) => ((0 - m) / input.std[c]!).toFixed(4)).join(', ');
  return `${steps.join('; ')}${padded ? ` (so the padding becomes (0 - mean) / std = ${pad}, not 0)` : ''}`;
}

export interface ModelInfo {
  format: 'deepreduce-model';
  version: string;
  spec: Omit<NetSpec, 'mask'> & { mask?: MaskDocument };
  input: InputTransform;
  metrics?: Record<string, unknown>;
}

/** Writes a model directory: the network's spec with the mask in force (`net.mask`, e.g. one just learned on it). */
export function saveModelDir(
  dir: string,
  net: Network,
  input: InputTransform,
  metrics?: Record<string, unknown>,
): void {
  const { mask: _, ...rest } = net.spec,
    mask = net.mask;
  const info: ModelInfo = {
    format: 'deepreduce-model',
    version: packageVersion(),
    spec: { ...rest, ...(mask ? { mask: maskToDocument(mask) } : {}) },
    input: { ...input, preprocess: inputRecipe(input, net.spec.inputSize) },
    ...(metrics ? { metrics } : {}),
  };
  saveSafetensors(join(dir, 'model.safetensors'), net.stateDict(), { format: 'pt', arch: rest.arch });
  if (mask) saveMask(join(dir, 'mask.json'), mask);
  writeFileAtomic(join(dir, 'model.json'), `${JSON.stringify(info, null, 2)}\n`);
}

/** `dir` may name a zoo model (`zoo:NAME`, materialised by resolveModelDir). */
export function readModelInfo(dir: string): ModelInfo {
  dir = resolveModelDir(dir);
  const file = join(dir, 'model.json');
  if (!existsSync(file)) throw new Error(`${dir}: not a deepreduce model directory (model.json missing)`);
  let info: ModelInfo;
  try {
    info = JSON.parse(readFileSync(file, 'utf8')) as ModelInfo;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (info.format !== 'deepreduce-model') throw new Error(`${file}: field 'format' must be 'deepreduce-model'`);
  if (!info.spec || typeof info.spec.arch !== 'string')
    throw new Error(`${file}: field 'spec' is missing or has no 'arch'`);
  if (!info.input || !Array.isArray(info.input.mean))
    throw new Error(`${file}: field 'input' is missing or has no 'mean'`);
  return info;
}

/** The spec (with its validated mask) a model directory describes. */
export function specOf(info: ModelInfo, source: string): NetSpec {
  const { mask, ...rest } = info.spec;
  const spec = rest as NetSpec;
  return mask ? { ...spec, mask: maskFromDocument(mask, spec, `${source}: spec.mask`) } : spec;
}

/** Builds the network and loads its weights. */
/** A model's test data as it was trained: its dataset (or `o.dataset`), padding and normalisation. */
export function openTestData(info: ModelInfo, o: { dataset?: string; data?: string; limitTest?: number } = {}) {
  return openData(checkDatasetName(o.dataset ?? info.input.dataset), {
    dir: o.data,
    batchSize: 256,
    padTo32: info.input.padFrom !== undefined,
    limitTest: o.limitTest,
    augment: { mean: info.input.mean, std: info.input.std },
  });
}

export function loadModelDir(dir: string): { net: Network; info: ModelInfo } {
  dir = resolveModelDir(dir);
  const info = readModelInfo(dir);
  const net = buildNetwork(specOf(info, join(dir, 'model.json')));
  const wfile = join(dir, 'model.safetensors');
  try {
    tidy(() => net.loadStateDict(loadSafetensors(wfile).tensors, { source: wfile }));
  } catch (e) {
    net.dispose();
    throw e;
  }
  return { net: net.eval() as Network, info };
}
