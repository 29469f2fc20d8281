import { cullStages, fullMask, removeSites, thin } from './mask.js';
import { specFor, type NetSpec } from './spec.js';

/** A released DeepReDuce ResNet18 configuration (shared/reference/deepreduce.md); `relus` is the published count. */
export interface Preset {
  name: string;
  dataset: 'cifar100' | 'tinyimagenet';
  relus: number;
  alpha: number;
  rho: number;
  culled: number[];
  thinned: boolean;
  blocks: number[];
}

const B = [2, 2, 2, 2];
/** Presets of one dataset, in the published tables' column order (blocks: ResNet18's unless given). */
const presetsOf =
  (dataset: Preset['dataset']) =>
  (
    name: string,
    relus: number,
    alpha: number,
    rho: number,
    culled: number[],
    thinned: boolean,
    blocks = B,
  ): Preset => ({ name, dataset, relus, alpha, rho, culled, thinned, blocks });
const c100 = presetsOf('cifar100'),
  tiny = presetsOf('tinyimagenet');

export const PRESETS: readonly Preset[] = [
  c100('C100_230K', 229_376, 1, 1, [1], false),
  c100('C100_115K', 114_688, 1, 1, [1], true),
  c100('C100_57K', 57_344, 0.5, 1, [1], true),
  c100('C100_49K', 49_152, 0.5, 1, [1, 4], true),
  c100('C100_29K', 28_672, 1, 0.5, [1], true),
  c100('C100_14K', 14_336, 0.5, 0.5, [1], true),
  c100('C100_12K', 12_288, 0.5, 0.5, [1, 4], true),
  c100('C100_7K', 7_168, 0.5, 0.5, [1], true, [2, 1, 1, 1]),
  tiny('TINY_918K', 917_504, 1, 1, [1], false),
  tiny('TINY_459K', 458_752, 1, 1, [1], true),
  tiny('TINY_393K', 393_216, 1, 1, [1, 2], false),
  tiny('TINY_229K', 229_376, 0.5, 1, [1], true),
  tiny('TINY_197K', 196_608, 1, 1, [1, 2], true),
  tiny('TINY_115K', 114_688, 1, 0.5, [1], true),
  tiny('TINY_98K', 98_304, 0.5, 1, [1, 2], true),
  tiny('TINY_57K', 57_344, 0.5, 0.5, [1], true),
  tiny('TINY_49K', 49_152, 1, 0.5, [1, 2], true),
];

export const presetNames = (): string[] => PRESETS.map((p) => p.name);

export function getPreset(name: string): Preset {
  const p = PRESETS.find((q) => q.name === name);
  if (!p) throw new Error(`unknown preset '${name}'; valid: ${presetNames().join(', ')}`);
  return p;
}

/**
 * The preset's ResNet18 spec (CIFAR layout; 100 classes at 32x32 or 200 at 64x64) with its mask: stem ReLU removed,
 * stages culled, and if thinned one ReLU per block kept (relu1 for CIFAR-100, relu2 for the TinyImageNet port).
 */
export function presetSpec(name: string): NetSpec {
  const p = getPreset(name);
  const c = p.dataset === 'cifar100';
  const spec = specFor('resnet18', {
    alpha: p.alpha,
    rho: p.rho,
    blocks: p.blocks,
    numClasses: c ? 100 : 200,
    inputSize: c ? 32 : 64,
  });
  let mask = cullStages(removeSites(fullMask(spec), ['stem.relu']), p.culled);
  if (p.thinned) mask = thin(mask, c ? 'relu1' : 'relu2');
  return { ...spec, mask };
}
