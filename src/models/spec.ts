import type { ReluMask } from './mask.js';

/** The built-in families, and any registered with registerFamily (build.ts). */
export type Family = 'resnet-cifar' | 'resnet-imagenet' | 'resnet-thin' | 'wrn' | (string & {});
/** Every family a network can be built for, in registration order (registerFamily adds to it). */
export const FAMILIES = new Set<string>(['resnet-cifar', 'resnet-imagenet', 'resnet-thin', 'wrn']);
export type BlockType = 'basic' | 'bottleneck';

/** Everything that determines a network's shapes and ReLU sites. */
export interface NetSpec {
  arch: string;
  family: Family;
  blockType: BlockType;
  /** Blocks per stage. */
  blocks: number[];
  /** Stage widths before alpha (a bottleneck stage outputs 4x this). */
  widths: number[];
  /** Stem conv width before alpha; defaults to widths[0] (WRN: 16). */
  stemWidth?: number;
  /** Width multiplier: channels = max(1, round(w * alpha)). */
  alpha: number;
  /** Stem stride = 1/rho (rho 0.5 -> stride-2 stem, 4x fewer activations after it). */
  rho: number;
  numClasses: number;
  inputSize: number;
  inChannels: number;
  mask?: ReluMask;
}

type Base = Omit<NetSpec, 'arch' | 'alpha' | 'rho' | 'inChannels' | 'mask'> & { rho?: number };

const cifar = (blocks: number[], blockType: BlockType = 'basic'): Base => ({
  family: 'resnet-cifar',
  blockType,
  blocks,
  widths: [64, 128, 256, 512],
  numClasses: 100,
  inputSize: 32,
});
// rho 0.5 is the ImageNet layout's native stride-2 stem.
const imagenet = (blocks: number[], blockType: BlockType = 'basic'): Base => ({
  family: 'resnet-imagenet',
  blockType,
  blocks,
  widths: [64, 128, 256, 512],
  numClasses: 1000,
  inputSize: 224,
  rho: 0.5,
});
const thin = (n: number): Base => ({
  family: 'resnet-thin',
  blockType: 'basic',
  blocks: [n, n, n],
  widths: [16, 32, 64],
  numClasses: 100,
  inputSize: 32,
});

const ARCHS: Record<string, Base> = {
  resnet18: cifar([2, 2, 2, 2]),
  resnet34: cifar([3, 4, 6, 3]),
  resnet50: cifar([3, 4, 6, 3], 'bottleneck'),
  'resnet18-imagenet': imagenet([2, 2, 2, 2]),
  'resnet34-imagenet': imagenet([3, 4, 6, 3]),
  'resnet50-imagenet': imagenet([3, 4, 6, 3], 'bottleneck'),
  resnet20: thin(3),
  resnet32: thin(5),
  resnet56: thin(9),
};

/** WRN-d-k (Zagoruyko & Komodakis): (d-4)/6 pre-activation blocks per stage, widths 16k/32k/64k. */
function wrn(arch: string): Base | undefined {
  const m = /^wrn-(\d+)-(\d+)$/.exec(arch);
  if (!m) return undefined;
  const d = Number(m[1]),
    k = Number(m[2]);
  if ((d - 4) % 6 !== 0 || d < 10 || k < 1)
    throw new Error(`arch '${arch}': WRN depth must be 6n+4 (>= 10) and width >= 1`);
  const n = (d - 4) / 6;
  return {
    family: 'wrn',
    blockType: 'basic',
    blocks: [n, n, n],
    widths: [16 * k, 32 * k, 64 * k],
    stemWidth: 16,
    numClasses: 100,
    inputSize: 32,
  };
}

export const ARCH_NAMES: readonly string[] = [...Object.keys(ARCHS), 'wrn-22-8', 'wrn-<6n+4>-<k>'];

/** The spec of a named architecture, with overrides applied and validated. */
export function specFor(arch: string, overrides: Partial<Omit<NetSpec, 'arch' | 'family'>> = {}): NetSpec {
  const base = ARCHS[arch] ?? wrn(arch);
  if (!base) throw new Error(`unknown arch '${arch}'; valid: ${ARCH_NAMES.join(', ')}`);
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return validateSpec({ arch, alpha: 1, rho: 1, inChannels: 3, ...base, ...defined });
}

const posInt = (v: number) => Number.isInteger(v) && v > 0;

/** Throws on a spec no network can be built from; returns it otherwise. */
export function validateSpec(s: NetSpec): NetSpec {
  const bad = (field: string, why: string): never => {
    throw new Error(`spec '${s.arch}': ${field} ${why}`);
  };
  if (!FAMILIES.has(s.family)) bad('family', `must be one of ${[...FAMILIES].join(', ')}, got '${s.family}'`);
  if (!s.blocks.length || !s.blocks.every(posInt)) bad('blocks', `must be positive integers, got [${s.blocks}]`);
  if (s.widths.length !== s.blocks.length)
    bad('widths', `has ${s.widths.length} stages but blocks has ${s.blocks.length}`);
  if (!s.widths.every(posInt)) bad('widths', `must be positive integers, got [${s.widths}]`);
  if (s.stemWidth !== undefined && !posInt(s.stemWidth))
    bad('stemWidth', `must be a positive integer, got ${s.stemWidth}`);
  if (!(s.alpha > 0) || !Number.isFinite(s.alpha)) bad('alpha', `must be > 0, got ${s.alpha}`);
  if (!(s.rho > 0) || !posInt(Math.round(1 / s.rho)) || Math.abs(1 / s.rho - Math.round(1 / s.rho)) > 1e-9)
    bad('rho', `must be 1/k for an integer stride k, got ${s.rho}`);
  for (const f of ['numClasses', 'inputSize', 'inChannels'] as const)
    if (!posInt(s[f])) bad(f, `must be a positive integer, got ${s[f]}`);
  if (s.blockType === 'bottleneck' && s.family !== 'resnet-cifar' && s.family !== 'resnet-imagenet')
    bad('blockType', `'bottleneck' needs family resnet-cifar or resnet-imagenet, got ${s.family}`);
  return s;
}

/** channels = max(1, round(w * alpha)). */
export const scaleWidth = (w: number, alpha: number): number => Math.max(1, Math.round(w * alpha));
/** Stem stride from rho. */
export const stemStride = (s: NetSpec): number => Math.round(1 / s.rho);
