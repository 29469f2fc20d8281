// Budget-driven search over stage subsets. DeepReDuce culls stages in a fixed order (least critical first), so
// the stage it scores most critical is never culled; the paper's own C100_49K / C100_12K cull stages 1 and 4. With
// few stages every subset is cheap to enumerate (4 stages: 15 non-empty subsets): for each budget, each subset of
// stages that keeps ReLUs takes its largest configuration (thinning, rho, alpha from the run's options) within the
// budget, and the subsets are ranked by the accuracy their stages recovered alone in the criticality runs (the sum
// of their gains: no extra training). The best `top` per budget are trained like DeepReDuce candidates.
import { countRelus, specFor, type NetSpec } from '../models/index.js';
import type { CriticalityResult } from './criticality.js';

export interface SubsetConfig {
  /** Stages that keep ReLUs (1-based); the others are culled. */
  kept: number[];
  culled: number[];
  thinned: boolean;
  /** Relative to the baseline's alpha. */
  alpha: number;
  rho: number;
  relus: number;
  macs: number;
  flops: number;
}

export interface SubsetRow extends SubsetConfig {
  budget: number;
  /** Sum of the kept stages' criticality gains: the ranking score. */
  score: number;
  rank: number;
  chosen: boolean;
}

const subsetsOf = (n: number): number[][] =>
  Array.from({ length: 2 ** n - 1 }, (_, m) =>
    Array.from({ length: n }, (_, i) => i + 1).filter((s) => (m + 1) & (1 << (s - 1))),
  );

/** Every (subset, thinning, alpha, rho) configuration with its exact ReLU, MAC and FLOP counts. */
export function subsetConfigs(
  base: NetSpec,
  o: { thinning: boolean[]; alphas: number[]; rhos: number[] },
  mask: (spec: NetSpec, culled: number[], thinned: boolean) => NetSpec['mask'],
): SubsetConfig[] {
  const n = base.blocks.length;
  const out: SubsetConfig[] = [];
  for (const kept of subsetsOf(n)) {
    const culled = base.blocks.map((_, i) => i + 1).filter((s) => !kept.includes(s));
    for (const thinned of o.thinning)
      for (const alpha of o.alphas)
        for (const r of o.rhos) {
          // rhos scale the baseline's stem (an ImageNet layout's is already stride 2)
          const rho = base.rho * r;
          const spec0 = specFor(base.arch, { ...base, mask: undefined, alpha: base.alpha * alpha, rho });
          const c = countRelus({ ...spec0, mask: mask(spec0, culled, thinned) });
          out.push({ kept, culled, thinned, alpha, rho, relus: c.total, macs: c.macs, flops: c.flops });
        }
  }
  return out;
}

/**
 * For each budget: per subset its largest configuration within the budget (ties: fewer MACs), ranked by the
 * subset's criticality gain sum (ties: more ReLUs); the first `top` are chosen.
 */
export function searchSubsets(
  configs: SubsetConfig[],
  crit: CriticalityResult,
  budgets: number[],
  top: number,
): SubsetRow[] {
  const gain = new Map(crit.stages.map((s) => [s.stage, s.gain]));
  const rows: SubsetRow[] = [];
  for (const budget of budgets) {
    const best = new Map<string, SubsetConfig>();
    for (const k of configs) {
      if (k.relus > budget || k.relus === 0) continue;
      const key = k.kept.join();
      const b = best.get(key);
      if (!b || k.relus > b.relus || (k.relus === b.relus && k.macs < b.macs)) best.set(key, k);
    }
    const ranked = [...best.values()]
      .map((k) => ({ ...k, score: k.kept.reduce((t, s) => t + (gain.get(s) ?? 0), 0) }))
      .sort((a, b) => b.score - a.score || b.relus - a.relus);
    ranked.forEach((k, i) => rows.push({ ...k, budget, rank: i + 1, chosen: i < top }));
  }
  return rows;
}
