// What `pi serve` / `pi query` / `pi dealer` load: server models from a model directory or a random-weight spec, and
// client images from dataset files or input files (.json, .bin, .png).
import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { PNG } from 'pngjs';
import { manualSeed } from '../../engine/index.js';
import { buildNetwork, type NetSpec } from '../../models/index.js';
import { loadModelDir } from '../../train/modeldir.js';
import { loadDataset, makeBatch, checkDatasetName, type Dataset } from '../../data/index.js';
import { compilePlan } from './compile.js';
import type { FixedPointOptions, PublicPlan, ServerModel } from '../plan.js';
import { imageFitError, inputSpec, prepareImage } from '../image.js';

/** A server model from a trained model directory (with its input transform). */
export function serverModelFromDir(dir: string, fixed: Partial<FixedPointOptions> = {}): ServerModel {
  const { net, info } = loadModelDir(dir);
  try {
    const { dataset, padFrom, mean, std, classNames } = info.input;
    return compilePlan(net, {
      ...fixed,
      input: {
        dataset,
        mean,
        std,
        ...(padFrom !== undefined ? { padFrom } : {}),
        ...(classNames ? { classNames } : {}),
      },
    });
  } finally {
    net.dispose();
  }
}

/** A server model with random (seeded) weights for latency benchmarks; inputs normalised with mean 0, std 1. */
export function serverModelRandom(spec: NetSpec, seed = 0, fixed: Partial<FixedPointOptions> = {}): ServerModel {
  manualSeed(seed);
  const net = buildNetwork(spec).eval();
  try {
    return compilePlan(net, {
      ...fixed,
      input: { mean: new Array(spec.inChannels).fill(0), std: new Array(spec.inChannels).fill(1) },
    });
  } finally {
    net.dispose();
  }
}

/** The test split of a dataset (a client reads it before it connects: decoding it is no part of a session). */
export const testSplit = (name: string, dir?: string): Dataset =>
  loadDataset(checkDatasetName(name), 'test', dir ? { dir } : {});

/** Test image `index` of a dataset (its test split, or `ds` if already read), prepared as the plan's input transform says. */
export function datasetImage(
  plan: PublicPlan,
  name: string,
  index: number,
  dir?: string,
  ds: Dataset = testSplit(name, dir),
): { x: Float32Array; label: number } {
  const [c, h] = plan.ops[0]!.shape as [number, number, number];
  if (ds.c !== c) throw new Error(`dataset ${name} has ${ds.c}-channel images, the model expects ${c}`);
  const { mean, std } = plan.input;
  if (mean.length !== c || std.length !== c)
    throw new Error(`model input transform has ${mean.length} means / ${std.length} stds for ${c} channels`);
  const b = makeBatch(ds, [index], { ...(ds.h !== h ? { padTo: h } : {}), crop: 0, flip: false, mean, std }, 0);
  return { x: b.x, label: b.y[0]! };
}

/**
 * An input file: `.json` (an array of the preprocessed CHW values), `.bin` (raw little-endian float32, the same
 * values) or `.png` (8-bit image: converted to the model's channel count, zero-padded to its size, normalised
 * with the model's mean/std as in training).
 */
export function fileImage(plan: PublicPlan, file: string): Float32Array {
  if (!existsSync(file)) throw new Error(`${file}: input file not found`);
  const n = plan.ops[0]!.size;
  const ext = extname(file).toLowerCase();
  let x: Float32Array;
  if (ext === '.json') {
    const j = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    const flat = Array.isArray(j) ? (j as unknown[]).flat(3) : null;
    if (!flat?.every((v) => typeof v === 'number')) throw new Error(`${file}: expected a JSON array of numbers`);
    x = Float32Array.from(flat as number[]);
  } else if (ext === '.bin') {
    const b = readFileSync(file);
    if (b.byteLength % 4) throw new Error(`${file}: ${b.byteLength} bytes is not a whole number of float32`);
    x = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  } else if (ext === '.png') {
    x = pngImage(plan, file);
  } else throw new Error(`${file}: unknown input format '${ext}' (use .json, .bin or .png)`);
  if (x.length !== n) throw new Error(`${file}: ${x.length} values, the model expects ${n} [${plan.ops[0]!.shape}]`);
  return x;
}

function pngImage(plan: PublicPlan, file: string): Float32Array {
  const png = PNG.sync.read(readFileSync(file));
  const why = imageFitError(inputSpec(plan), png);
  if (why) throw new Error(`${file}: ${why}`);
  return prepareImage(inputSpec(plan), png);
}
