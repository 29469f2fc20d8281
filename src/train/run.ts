// A complete training run from a JSON-able config: resolve the network, open the data, fit, save.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSafetensors, manualSeed, tidy } from '../engine/index.js';
import { checkDatasetName, networkClasses, openData } from '../data/index.js';
import {
  buildNetwork,
  countRelus,
  loadMask,
  maskFromDocument,
  presetSpec,
  sliceStateDict,
  specFor,
  type MaskDocument,
  type NetSpec,
} from '../models/index.js';
import { writeFileAtomic } from '../util/fs.js';
import { packageVersion } from '../util/version.js';
import {
  defaultTrainOptions,
  evaluate,
  fit,
  type EpochMetrics,
  type StepProgress,
  type TrainOptions,
} from './trainer.js';
import { loadModelDir, readModelInfo, saveModelDir, specOf, type InputTransform } from './modeldir.js';
import { learnMasks, type MaskLearningOptions, type MaskSnapshot } from './snl.js';

export interface TrainConfig {
  arch: string;
  preset?: string;
  maskFile?: string;
  mask?: MaskDocument;
  alpha?: number;
  rho?: number;
  blocks?: number[];
  /** Stage widths and stem width before alpha (e.g. ReLU-balanced widths); default: the arch's. */
  widths?: number[];
  stemWidth?: number;
  dataset: string;
  dataDir?: string;
  /** The network's classes (default: the dataset's): more than the data has, e.g. ImageNet's 1000 on a subset. */
  numClasses?: number;
  /** Pad 28x28 images to 32x32 (default true). */
  pad32?: boolean;
  batchSize: number;
  options: TrainOptions;
  /** Teacher model directory for knowledge distillation. */
  teacher?: string;
  /** Start from this model directory's weights (same shapes) instead of a fresh initialisation. */
  init?: string;
  /** With `init`: its network may be wider per channel group; its weights are channel-sliced (src/models/slice.ts). */
  initSlice?: boolean;
  limitTrain?: number;
  limitTest?: number;
  out: string;
  resume?: boolean;
  /**
   * Learn fine-grained ReLU masks instead of training (src/train/snl.ts): starts from `init` with KD from
   * `teacher` and writes one model directory per budget (`out/budget-<B>/`, weights and exact partial mask).
   */
  learnMask?: MaskLearningOptions;
}

export interface TrainSummary {
  out: string;
  arch: string;
  relus: number;
  test_acc: number;
  epochs: EpochMetrics[];
  /** training (all epochs, across resumes) plus the final evaluation */
  seconds: number;
  kd: boolean;
  /** Mask learning only: each budget's mask, before fine-tuning. */
  snapshots?: MaskSnapshot[];
}

export const defaultTrainConfig = (over: Partial<TrainConfig> & Pick<TrainConfig, 'dataset' | 'out'>): TrainConfig => ({
  arch: 'resnet18',
  batchSize: 128,
  options: { ...defaultTrainOptions },
  ...over,
});

/** The network spec a config asks for, shaped for the data (classes, channels, input size). */
export function resolveSpec(
  c: Pick<
    TrainConfig,
    'arch' | 'preset' | 'alpha' | 'rho' | 'blocks' | 'widths' | 'stemWidth' | 'maskFile' | 'mask' | 'numClasses'
  >,
  data: { numClasses: number; shape: [number, number, number] },
): NetSpec {
  const shape = {
    numClasses: networkClasses(c.numClasses, data.numClasses),
    inChannels: data.shape[0],
    inputSize: data.shape[1],
  };
  if (c.preset) {
    const p = presetSpec(c.preset);
    if (c.arch && c.arch !== p.arch) throw new Error(`preset ${c.preset} is a ${p.arch}, not ${c.arch}`);
    return { ...p, ...shape, ...(c.alpha !== undefined ? { alpha: c.alpha } : {}) };
  }
  const spec = specFor(c.arch, {
    alpha: c.alpha,
    rho: c.rho,
    blocks: c.blocks,
    widths: c.widths,
    stemWidth: c.stemWidth,
    ...shape,
  });
  if (c.maskFile) return { ...spec, mask: loadMask(c.maskFile, spec) };
  if (c.mask) return { ...spec, mask: maskFromDocument(c.mask, spec, 'config.mask') };
  return spec;
}

/** Where a training's messages and per-step progress go (default: stderr unless options.quiet; none). */
export interface TrainHooks {
  log?: (s: string) => void;
  onProgress?: (p: StepProgress) => void;
}

export async function trainModel(c: TrainConfig, hooks: TrainHooks = {}): Promise<TrainSummary> {
  const dataset = checkDatasetName(c.dataset);
  const data = openData(dataset, {
    dir: c.dataDir,
    batchSize: c.batchSize,
    seed: c.options.seed,
    padTo32: c.pad32 ?? true,
    limitTrain: c.limitTrain,
    limitTest: c.limitTest,
  });
  try {
    const spec = resolveSpec(c, data);
    // The initial weights depend on the seed alone, not on what this process trained before (--jobs 1 trains in
    // process, --jobs N and queue workers in fresh processes: all give the same networks).
    manualSeed(c.options.seed);
    const net = buildNetwork(spec);
    if (c.init) {
      const f = join(c.init, 'model.safetensors');
      if (!existsSync(f)) throw new Error(`--init ${c.init}: model.safetensors not found`);
      const from = c.initSlice ? specOf(readModelInfo(c.init), join(c.init, 'model.json')) : null;
      tidy(() => {
        const sd = loadSafetensors(f).tensors;
        net.loadStateDict(from ? sliceStateDict(sd, from, spec) : sd, { source: f });
      });
    }
    const teacher = c.teacher ? loadModelDir(c.teacher).net : undefined;
    writeFileAtomic(
      join(c.out, 'config.json'),
      `${JSON.stringify({ ...c, version: packageVersion(), spec: { ...spec, mask: spec.mask?.kept } }, null, 2)}\n`,
    );
    const input: InputTransform = {
      dataset,
      mean: data.augment.mean,
      std: data.augment.std,
      classNames: data.classNames,
      ...(data.augment.padTo !== undefined && data.augment.padTo !== data.trainSet.h
        ? { padFrom: data.trainSet.h }
        : {}),
    };
    const kd = c.options.kd ?? { temperature: 4, lambda: 0.9 };
    if (c.learnMask) {
      if (!teacher) throw new Error(`${c.out}: learnMask needs a teacher (masks are learned with KD)`);
      const r = await learnMasks(net, spec, data, teacher, c.learnMask, {
        out: c.out,
        input,
        batchSize: c.batchSize,
        seed: c.options.seed,
        threads: c.options.threads,
        quiet: c.options.quiet,
        kd,
      });
      const last = r.snapshots[r.snapshots.length - 1]!;
      const summary: TrainSummary = {
        out: c.out,
        arch: spec.arch,
        relus: last.relus,
        test_acc: last.acc,
        epochs: [],
        seconds: r.seconds,
        kd: true,
        snapshots: r.snapshots,
      };
      writeFileAtomic(join(c.out, 'result.json'), `${JSON.stringify(summary, null, 2)}\n`);
      teacher.dispose();
      net.dispose();
      return summary;
    }
    const result = await fit(net, data, { ...c.options, kd: teacher ? kd : undefined }, c.out, {
      resume: c.resume,
      teacher,
      ...hooks,
    });
    const tEval = Date.now();
    const ev = await evaluate(net, data);
    const relus = countRelus(spec).total;
    saveModelDir(c.out, net, input, { test_acc: ev.acc, relus });
    const summary: TrainSummary = {
      out: c.out,
      arch: spec.arch,
      relus,
      test_acc: ev.acc,
      epochs: result.epochs,
      // epochs' own time (summed across resumes) plus the final evaluation, so a resumed run reports its whole cost
      seconds: result.epochs.reduce((t, e) => t + e.seconds, 0) + (Date.now() - tEval) / 1000,
      kd: !!teacher,
    };
    writeFileAtomic(
      join(c.out, 'result.json'),
      `${JSON.stringify({ ...summary, confusion: ev.confusion }, null, 2)}\n`,
    );
    teacher?.dispose();
    net.dispose();
    return summary;
  } finally {
    await data.close();
  }
}

/** A finished run's summary, or null when the run has not completed. */
export function readTrainResult(out: string): TrainSummary | null {
  const f = join(out, 'result.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as TrainSummary) : null;
}
