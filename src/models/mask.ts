import { keep as keepTensor, noGrad, tensor, tidy, type Tensor } from '../engine/index.js';
import { siteNames } from './build.js';
import { describeNetwork } from './graph.js';
import type { Network } from './network.js';
import { keptFlags, numelOf, type PartialDocument, type PartialSite } from './partial.js';
import type { NetSpec } from './spec.js';

/** Which ReLU sites stay ReLUs, wholly or in part; every other site of `sites` is the identity. */
export interface ReluMask {
  arch: string;
  /** Every site of the network, in forward order. */
  sites: string[];
  /** The sites kept whole, in forward order. */
  kept: string[];
  /** Sites kept in part (never also in `kept`): their kept elements, 0 < count < C*H*W. */
  partial?: Record<string, PartialSite>;
}

/**
 * The JSON form: `{ "arch", "kept": [...] }` or `{ "arch", "removed": [...] }` for whole sites, plus `partial`:
 * `{ site: { shape, relus, channels | bitmap } }` for sites kept in part (in neither list).
 */
export interface MaskDocument {
  arch: string;
  kept?: string[];
  removed?: string[];
  partial?: Record<string, PartialDocument>;
}

function make(arch: string, sites: string[], kept: Iterable<string>, where: string): ReluMask {
  const keep = new Set(kept);
  const valid = new Set(sites);
  const unknown = [...keep].filter((k) => !valid.has(k));
  if (unknown.length)
    throw new Error(`${where}: unknown ReLU site(s) ${unknown.join(', ')} for ${arch}; valid: ${sites.join(', ')}`);
  return { arch, sites: [...sites], kept: sites.filter((s) => keep.has(s)) };
}

/** Every site kept. */
export function fullMask(spec: NetSpec): ReluMask {
  const sites = siteNames(spec);
  return { arch: spec.arch, sites, kept: [...sites] };
}

/** The mask with only the kept (whole or partial) sites that `stays` accepts (none partial left: no `partial` field). */
export function restrict(mask: ReluMask, stays: (site: string) => boolean): ReluMask {
  const left = Object.entries(mask.partial ?? {}).filter(([s]) => stays(s));
  return {
    arch: mask.arch,
    sites: mask.sites,
    kept: mask.kept.filter(stays),
    ...(left.length ? { partial: Object.fromEntries(left) } : {}),
  };
}

/** A mask with the given sites removed, wholly or partly kept before (unknown names throw). */
export function removeSites(mask: ReluMask, removed: readonly string[]): ReluMask {
  make(mask.arch, mask.sites, removed, 'removeSites');
  const drop = new Set(removed);
  return restrict(mask, (s) => !drop.has(s));
}

/**
 * A mask where `site` keeps exactly `elements` (flat C*H*W indices) of its activation of `shape`: all of them make
 * it a whole kept site, none a removed one.
 */
export function setSiteElements(
  mask: ReluMask,
  site: string,
  shape: readonly number[],
  elements: Uint32Array,
): ReluMask {
  make(mask.arch, mask.sites, [site], 'setSiteElements');
  const numel = numelOf(shape);
  for (let i = 0; i < elements.length; i++)
    if (elements[i]! >= numel || (i > 0 && elements[i]! <= elements[i - 1]!))
      throw new Error(`setSiteElements: site '${site}': element indices must be sorted, unique and below ${numel}`);
  const others = restrict(mask, (s) => s !== site).partial ?? {};
  const kept = mask.kept.filter((s) => s !== site);
  if (elements.length === numel) kept.push(site);
  const partial =
    elements.length > 0 && elements.length < numel ? { ...others, [site]: { shape: [...shape], elements } } : others;
  return {
    arch: mask.arch,
    sites: mask.sites,
    kept: mask.sites.filter((s) => kept.includes(s)),
    ...(Object.keys(partial).length ? { partial } : {}),
  };
}

/** Whether a site keeps any ReLU (whole or in part). */
export const keepsAny = (mask: ReluMask, site: string): boolean => mask.kept.includes(site) || !!mask.partial?.[site];

/** The 1-based stage of a `stage{s}.` site, null for others (stem, head). */
export const stageOf = (site: string): number | null => {
  const m = /^stage(\d+)\./.exec(site);
  return m ? Number(m[1]) : null;
};

function checkStages(mask: ReluMask, stages: readonly number[], what: string): void {
  const have = [...new Set(mask.sites.map(stageOf).filter((s): s is number => s !== null))];
  const bad = stages.filter((s) => !have.includes(s));
  if (bad.length)
    throw new Error(`${what}: ${mask.arch} has no stage ${bad.join(', ')}; valid stages: ${have.join(', ')}`);
}

/** Culling: removes every ReLU of the given (1-based) stages. */
export function cullStages(mask: ReluMask, stages: readonly number[]): ReluMask {
  checkStages(mask, stages, 'cullStages');
  const culled = (s: string) => stages.includes(stageOf(s) ?? -1);
  return restrict(mask, (s) => !culled(s));
}

/** Thinning: in every block of `stages` (default all) keeps only the `keep` site (e.g. relu1) and drops the others. */
export function thin(mask: ReluMask, keep: 'relu1' | 'relu2' | 'relu3', stages?: readonly number[]): ReluMask {
  if (stages) checkStages(mask, stages, 'thin');
  const inBlock = (s: string) => /^stage\d+\.block\d+\./.test(s);
  if (!mask.sites.some((s) => inBlock(s) && s.endsWith(`.${keep}`)))
    throw new Error(
      `thin: ${mask.arch} blocks have no site '${keep}'; valid: ${[...new Set(mask.sites.filter(inBlock).map((s) => s.split('.')[2]))].join(', ')}`,
    );
  const touched = (s: string) => inBlock(s) && (!stages || stages.includes(stageOf(s)!));
  const stays = (s: string) => !touched(s) || s.endsWith(`.${keep}`);
  return restrict(mask, stays);
}

/**
 * Puts mask in force on net (`net.mask`, which its graph follows) and sets every site for the forward: a ReLU
 * (kept), the identity (removed) or, for a partial site, a ReLU on its kept elements only (a constant bool gate).
 * Partial sites must have the network's activation shape. `learned` gives sites a float gate g instead while
 * masks are learned (train/snl.ts: y = x + g * (relu(x) - x)); they must be kept by the mask.
 */
export function applyMask(net: Network, mask: ReluMask, learned?: ReadonlyMap<string, Tensor>): void {
  checkMask(net, mask);
  const partial = mask.partial ?? {},
    keepSet = new Set(mask.kept);
  const off = [...(learned?.keys() ?? [])].filter((s) => !keepsAny(mask, s));
  if (off.length) throw new Error(`applyMask: learned gate(s) for ${off.join(', ')}, which the mask removes`);
  for (const s of net.sites()) {
    const p = partial[s.site];
    // A float gate belongs to whoever learns it; the bool gates are this function's.
    if (s.gate?.dtype === 'bool') s.gate.dispose();
    s.enabled = keepSet.has(s.site) || !!p;
    s.gate = learned?.get(s.site) ?? null;
    // channels_last like the activations (the default layout): a mismatched gate made training steps ~1.6x slower
    if (p && !s.gate)
      s.gate = keepTensor(
        noGrad(() =>
          tidy(() =>
            tensor(keptFlags(p), [1, ...p.shape], 'uint8')
              .contiguous('channels_last')
              .to('bool'),
          ),
        ),
      );
  }
  net.mask = mask;
}

/** Throws unless mask fits net: its arch, known sites, none both whole and partial, partial shapes the network's. */
export function checkMask(net: Network, mask: ReluMask): void {
  if (mask.arch !== net.spec.arch)
    throw new Error(`applyMask: mask is for '${mask.arch}', network is '${net.spec.arch}'`);
  const names = net.sites().map((s) => s.site);
  make(mask.arch, names, [...mask.kept, ...Object.keys(mask.partial ?? {})], 'applyMask');
  const partial = mask.partial ?? {};
  const both = mask.kept.filter((s) => partial[s]);
  if (both.length) throw new Error(`applyMask: site(s) ${both.join(', ')} are both kept whole and partial`);
  const shapes = Object.keys(partial).length
    ? new Map(
        describeNetwork(net, null)
          .filter((n) => n.op === 'relu')
          .map((n) => [n.site!, n.outShape]),
      )
    : new Map<string, number[]>();
  for (const [site, p] of Object.entries(partial)) {
    const want = shapes.get(site)!;
    if (p.shape.join() !== want.join())
      throw new Error(
        `applyMask: partial site '${site}' has shape [${p.shape.join(', ')}], the network's site is [${want.join(', ')}]`,
      );
  }
}
