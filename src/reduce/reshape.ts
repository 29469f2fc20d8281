// Reshaping (after DeepReShape: Jha and Reagen, TMLR 2024): per-stage channel widths as a candidate dimension,
// searched jointly with culling and thinning under each budget (ReLUs or seconds). Once ReLUs are few, FLOPs and
// layers decide PI latency, so a stage whose ReLUs are culled can be narrowed at no ReLU cost. For each budget, every
// (culled set, thinning, widths) configuration within it is scored, without training, by the criticality gains of
// the stages that keep ReLUs, each weighted by its width factor (a narrowed ReLU stage loses that share of its
// gain; a culled stage's width costs no score), ties to more ReLUs, then more MACs (capacity), then the lower cost.
// The best `top`
// per budget are trained, initialised from the teacher by channel slicing (src/models/slice.ts) and distilled.
import { scaleWidth, specFor, type NetSpec } from '../models/index.js';
import type { CriticalityResult } from './criticality.js';
import { budgetLabel, objectiveCost, withinBudget, type Budget, type CostEstimate, type Objective } from './latency.js';

export interface ReshapeOptions {
  /** Width factors each stage may take (relative to the teacher's channels); their product over stages is the grid. */
  factors: number[];
  /** Explicit channel sets (one channel count per stage) instead of the grid. */
  widths?: number[][];
  /** Culled-stage counts, taken from the criticality order. */
  culls: number[];
  thinning: boolean[];
  /** Configurations trained per budget. */
  top: number;
}

export const defaultReshapeOptions = (): ReshapeOptions => ({
  factors: [1, 0.5, 0.25],
  culls: [0, 1, 2],
  thinning: [false, true],
  top: 1,
});

export interface ReshapeConfig {
  culled: number[];
  thinned: boolean;
  /** Channels per stage (alpha 1). */
  channels: number[];
  /** channels / the teacher's channels, per stage. */
  factors: number[];
  spec: NetSpec;
  relus: number;
  macs: number;
  flops: number;
  cost: CostEstimate;
  score: number;
}

export interface ReshapeRow extends Omit<ReshapeConfig, 'spec' | 'cost'> {
  /** The budget in words ('6,144' ReLUs, '500 ms') and, for a ReLU budget, its count. */
  budget: string;
  reluBudget?: number;
  latency_s: number;
  online_s: number | null;
  rank: number;
}

/** The teacher's channels per stage. */
export const teacherChannels = (base: NetSpec): number[] => base.widths.map((w) => scaleWidth(w, base.alpha));

/** A reshaped network: base's layers with `channels` per stage (alpha 1); the stem follows stage 1 unless base fixes it. */
export function reshapedSpec(base: NetSpec, channels: number[]): NetSpec {
  return specFor(base.arch, {
    ...base,
    mask: undefined,
    alpha: 1,
    widths: channels,
    stemWidth: base.stemWidth !== undefined ? scaleWidth(base.stemWidth, base.alpha) : undefined,
  });
}

export const reshapeId = (x: { culled: number[]; thinned: boolean; channels: number[] }): string =>
  `rs-${x.culled.length ? `cull${x.culled.join('')}` : 'all'}${x.thinned ? '-thin' : ''}-w${x.channels.join('x')}`;

function widthSets(base: NetSpec, o: ReshapeOptions): number[][] {
  const t = teacherChannels(base);
  if (o.widths) {
    for (const w of o.widths)
      if (w.length !== t.length || !w.every((c, i) => Number.isInteger(c) && c >= 1 && c <= t[i]!))
        throw new Error(
          `--reshape-widths: ${w.join('x')} needs ${t.length} channel counts, each from 1 to the teacher's (${t.join('x')})`,
        );
    return o.widths;
  }
  let sets: number[][] = [[]];
  for (const c of t)
    sets = sets.flatMap((s) =>
      [...new Set(o.factors.map((f) => Math.max(1, Math.round(c * f))))].map((w) => [...s, w]),
    );
  return sets;
}

/**
 * Every configuration of the grid (the teacher's own widths left out: those are DeepReDuce's candidates), with its
 * counts and estimates. `make(spec, culled, thinned)` applies the candidate mask; `cost` estimates a masked spec.
 */
export function reshapeConfigs(
  base: NetSpec,
  crit: CriticalityResult,
  o: ReshapeOptions,
  make: (spec: NetSpec, culled: number[], thinned: boolean) => NetSpec,
  cost: (spec: NetSpec) => { relus: number; macs: number; flops: number } & CostEstimate,
): ReshapeConfig[] {
  const t = teacherChannels(base);
  const gain = new Map(crit.stages.map((s) => [s.stage, Math.max(0, s.gain)]));
  const out: ReshapeConfig[] = [];
  for (const k of [...new Set(o.culls)].filter((k) => k < base.blocks.length)) {
    const culled = crit.order.slice(0, k).sort((a, b) => a - b);
    for (const thinned of o.thinning.filter((x) => x || k > 0))
      for (const channels of widthSets(base, o)) {
        if (channels.every((c, i) => c === t[i])) continue;
        const spec = make(reshapedSpec(base, channels), culled, thinned);
        const factors = channels.map((c, i) => c / t[i]!);
        const score = factors.reduce((a, f, i) => a + (culled.includes(i + 1) ? 0 : gain.get(i + 1)! * f), 0);
        const x = cost(spec);
        out.push({
          culled,
          thinned,
          channels,
          factors,
          spec,
          relus: x.relus,
          macs: x.macs,
          flops: x.flops,
          cost: { latency_s: x.latency_s, online_s: x.online_s },
          score,
        });
      }
  }
  return out;
}

/**
 * Per budget, the configurations within it ranked (score, then more ReLUs, then more MACs, then the lower cost on
 * the objective's axis); the best `top` are chosen, and the best five per budget are kept for the report.
 */
export function searchReshape(
  configs: ReshapeConfig[],
  budgets: Budget[],
  o: Pick<ReshapeOptions, 'top'>,
  objective: Objective,
): { rows: ReshapeRow[]; chosen: ReshapeConfig[] } {
  const rows: ReshapeRow[] = [];
  const chosen = new Map<string, ReshapeConfig>();
  const eps = 1e-12;
  for (const b of budgets) {
    const fit = configs
      .filter((x) => withinBudget({ relus: x.relus, ...x.cost }, b, objective))
      .sort(
        (p, q) =>
          (Math.abs(q.score - p.score) > eps ? q.score - p.score : 0) ||
          q.relus - p.relus ||
          q.macs - p.macs ||
          objectiveCost({ relus: p.relus, ...p.cost }, objective) -
            objectiveCost({ relus: q.relus, ...q.cost }, objective),
      );
    fit.slice(0, Math.max(o.top, 5)).forEach((x, i) => {
      const { spec: _, cost, ...rest } = x;
      rows.push({
        ...rest,
        budget: budgetLabel(b),
        ...('relus' in b ? { reluBudget: b.relus } : {}),
        latency_s: cost.latency_s,
        online_s: cost.online_s,
        rank: i + 1,
      });
      if (i < o.top) chosen.set(reshapeId(x), x);
    });
  }
  return { rows, chosen: [...chosen.values()] };
}
