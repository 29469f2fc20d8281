import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/fs.js';
import type { Network } from './network.js';
import type { NetSpec } from './spec.js';

/** Which ReLU sites stay ReLUs; every other site of `sites` is the identity. */
export interface ReluMask {
  arch: string;
  /** Every site of the network, in forward order. */
  sites: string[];
  /** The kept sites, in forward order. */
  kept: string[];
}

/** The JSON form: `{ "arch", "kept": [...] }` or `{ "arch", "removed": [...] }`. */
export interface MaskDocument {
  arch: string;
  kept?: string[];
  removed?: string[];
}

/** Site names a spec's network has, in forward order (the same names Network.sites() carries). */
export function siteNames(spec: NetSpec): string[] {
  const perBlock = spec.blockType === 'bottleneck' ? ['relu1', 'relu2', 'relu3'] : ['relu1', 'relu2'];
  const blocks = spec.blocks.flatMap((n, s) =>
    Array.from({ length: n }, (_, b) => perBlock.map((r) => `stage${s + 1}.block${b}.${r}`)).flat(),
  );
  return spec.family === 'wrn' ? [...blocks, 'head.relu'] : ['stem.relu', ...blocks];
}

const validList = (names: readonly string[]) => names.join(', ');

function make(arch: string, sites: string[], kept: Iterable<string>, where: string): ReluMask {
  const keep = new Set(kept);
  const valid = new Set(sites);
  const unknown = [...keep].filter((k) => !valid.has(k));
  if (unknown.length) throw new Error(`${where}: unknown ReLU site(s) ${unknown.join(', ')} for ${arch}; valid: ${validList(sites)}`);
  return { arch, sites: [...sites], kept: sites.filter((s) => keep.has(s)) };
}

/** Every site kept. */
export function fullMask(spec: NetSpec): ReluMask {
  const sites = siteNames(spec);
  return { arch: spec.arch, sites, kept: [...sites] };
}

/** A mask with the given sites removed (unknown names throw). */
export function removeSites(mask: ReluMask, removed: readonly string[]): ReluMask {
  make(mask.arch, mask.sites, removed, 'removeSites');
  const drop = new Set(removed);
  return { ...mask, kept: mask.kept.filter((s) => !drop.has(s)) };
}

const stageOf = (site: string): number | null => {
  const m = /^stage(\d+)\./.exec(site);
  return m ? Number(m[1]) : null;
};

function checkStages(mask: ReluMask, stages: readonly number[], what: string): void {
  const have = [...new Set(mask.sites.map(stageOf).filter((s): s is number => s !== null))];
  const bad = stages.filter((s) => !have.includes(s));
  if (bad.length) throw new Error(`${what}: ${mask.arch} has no stage ${bad.join(', ')}; valid stages: ${have.join(', ')}`);
}

/** Culling: removes every ReLU of the given (1-based) stages. */
export function cullStages(mask: ReluMask, stages: readonly number[]): ReluMask {
  checkStages(mask, stages, 'cullStages');
  return { ...mask, kept: mask.kept.filter((s) => !stages.includes(stageOf(s) ?? -1)) };
}

/** Thinning: in every block of `stages` (default all) keeps only the `keep` site (e.g. relu1) and drops the others. */
export function thin(mask: ReluMask, keep: 'relu1' | 'relu2' | 'relu3', stages?: readonly number[]): ReluMask {
  if (stages) checkStages(mask, stages, 'thin');
  const inBlock = (s: string) => /^stage\d+\.block\d+\./.test(s);
  if (!mask.sites.some((s) => inBlock(s) && s.endsWith(`.${keep}`)))
    throw new Error(`thin: ${mask.arch} blocks have no site '${keep}'; valid: ${[...new Set(mask.sites.filter(inBlock).map((s) => s.split('.')[2]))].join(', ')}`);
  const touched = (s: string) => inBlock(s) && (!stages || stages.includes(stageOf(s)!));
  return { ...mask, kept: mask.kept.filter((s) => !touched(s) || s.endsWith(`.${keep}`)) };
}

/** Sets every site of net to a ReLU (kept) or the identity (removed). */
export function applyMask(net: Network, mask: ReluMask): void {
  if (mask.arch !== net.spec.arch) throw new Error(`applyMask: mask is for '${mask.arch}', network is '${net.spec.arch}'`);
  const sites = net.sites();
  make(mask.arch, sites.map((s) => s.site), mask.kept, 'applyMask');
  const keep = new Set(mask.kept);
  for (const s of sites) s.enabled = keep.has(s.site);
}

/** Validates a parsed mask document against spec's sites. */
export function maskFromDocument(doc: unknown, spec: NetSpec, source = 'mask'): ReluMask {
  const d = doc as Partial<MaskDocument> | null;
  const strings = (v: unknown) => Array.isArray(v) && v.every((e) => typeof e === 'string');
  if (!d || typeof d !== 'object') throw new Error(`${source}: expected an object { arch, kept | removed }`);
  if (typeof d.arch !== 'string') throw new Error(`${source}: field 'arch' must be a string`);
  if (d.arch !== spec.arch) throw new Error(`${source}: mask is for '${d.arch}', network is '${spec.arch}'`);
  if ((d.kept === undefined) === (d.removed === undefined)) throw new Error(`${source}: give exactly one of 'kept' or 'removed'`);
  const sites = siteNames(spec);
  if (d.kept !== undefined) {
    if (!strings(d.kept)) throw new Error(`${source}: field 'kept' must be an array of site names`);
    return make(spec.arch, sites, d.kept, source);
  }
  if (!strings(d.removed)) throw new Error(`${source}: field 'removed' must be an array of site names`);
  make(spec.arch, sites, d.removed!, source);
  const drop = new Set(d.removed);
  return { arch: spec.arch, sites, kept: sites.filter((s) => !drop.has(s)) };
}

export const maskToDocument = (mask: ReluMask): MaskDocument => ({ arch: mask.arch, kept: [...mask.kept] });

export function loadMask(file: string, spec: NetSpec): ReluMask {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`mask ${file}: ${(e as Error).message}`);
  }
  return maskFromDocument(doc, spec, `mask ${file}`);
}

export function saveMask(file: string, mask: ReluMask): void {
  writeFileAtomic(file, `${JSON.stringify(maskToDocument(mask), null, 2)}\n`);
}
