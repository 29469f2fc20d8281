// The reduction's objective: every candidate's estimated PI latency (total and online) from the cost model
// (src/pi/node/costmodel.ts), the objective that picks the front and the recommended model, and budgets in ReLUs or
// seconds.
import { countRelus, linearLayers, type NetSpec } from '../models/index.js';
import { estimateLatency, estimateOnline, type CostModel, type LatencyContext } from '../pi/node/costmodel.js';
import { cheapestAtLeast, paretoFront } from './pareto.js';

export const OBJECTIVES = ['relus', 'latency', 'online'] as const;
export type Objective = (typeof OBJECTIVES)[number];

export const OBJECTIVE_LABELS: Record<Objective, string> = {
  relus: 'ReLUs per image',
  latency: 'estimated PI latency (offline + online, s)',
  online: 'estimated online PI latency (s)',
};

export function parseObjective(v: string): Objective {
  if (!(OBJECTIVES as readonly string[]).includes(v))
    throw new Error(`--objective must be one of ${OBJECTIVES.join(', ')}, got '${v}'`);
  return v as Objective;
}

/**
 * Online terms for cost models without them (the defaults, and files from before online calibration): the fit of
 * docs/pi.md ("Online time against the cost model": 0.81 us per OT ReLU, 2.0 ns per MAC, 0.24 ms per layer) and the
 * per-ReLU online bytes and CPU of its "GC and OT side by side" table (ot 58.8 B, gc 728 B and 4.2 us).
 */
export const DEFAULT_ONLINE = {
  perMac_s: 2.0e-9,
  perLayer_s: 0.24e-3,
  relu: {
    ot: { perRelu_s: 0.81e-6, bytes: 58.8 },
    gc: { perRelu_s: 4.2e-6, bytes: 728 },
  } as Record<string, { perRelu_s: number; bytes: number }>,
};

export interface CostEstimate {
  /** Estimated seconds of one inference, offline + online. */
  latency_s: number;
  /** Estimated online seconds, or null when neither the cost model nor DEFAULT_ONLINE has the protocol's online terms. */
  online_s: number | null;
}

/**
 * The cost model's estimates for spec's network with `relus` ReLUs (spec's own count by default; a learned mask's
 * budget for an unmasked spec). Kept ReLU ops (sites with a ReLU left, and each level of a max pool's tree) pay the
 * protocol's online flights; max-pool comparisons cost a ReLU each; the per-layer terms count linearLayers(spec).
 */
export function estimateSpec(spec: NetSpec, model: CostModel, ctx: LatencyContext, relus?: number): CostEstimate {
  const c = countRelus(spec);
  relus ??= c.total;
  const layers = linearLayers(spec);
  const ops = c.sites.filter((x) => x.relus > 0).length + c.maxPoolLevels;
  const r = relus + c.maxPoolComparisons;
  return {
    latency_s: estimateLatency(model, r, c.macs, layers, ctx, ops),
    online_s: onlineSeconds(model, r, c.macs, layers, ctx, ops),
  };
}

/**
 * Online seconds: estimateOnline's compute (the model's online terms, else DEFAULT_ONLINE's) plus, over a link, the
 * online bytes' serialisation and the kept ReLU ops' flights.
 */
export function onlineSeconds(
  m: CostModel,
  relus: number,
  macs: number,
  layers: number,
  ctx: LatencyContext,
  reluOps: number,
): number | null {
  const r = m.relu[ctx.relu],
    d = DEFAULT_ONLINE.relu[ctx.relu];
  const perRelu = r?.online?.perRelu_s ?? d?.perRelu_s;
  if (!r || perRelu === undefined) return null;
  const full: CostModel = {
    ...m,
    online: m.online ?? { perMac_s: DEFAULT_ONLINE.perMac_s, perLayer_s: DEFAULT_ONLINE.perLayer_s },
    relu: { ...m.relu, [ctx.relu]: { ...r, online: { perRelu_s: perRelu } } },
  };
  const wire = ctx.link
    ? relus * (((d?.bytes ?? 0) * 8) / ctx.link.bandwidth) + (relus ? reluOps : 0) * r.flights * (ctx.link.rttMs / 2e3)
    : 0;
  return estimateOnline(full, relus, macs, layers, ctx.relu) + wire;
}

/** A candidate's cost on the objective's axis (online without an online estimate: +Infinity, never picked). */
export function objectiveCost(x: { relus: number } & CostEstimate, o: Objective): number {
  return o === 'relus' ? x.relus : o === 'latency' ? x.latency_s : (x.online_s ?? Number.POSITIVE_INFINITY);
}

/** A budget: a ReLU count, or seconds on the objective's time axis (online seconds under --objective online). */
export type Budget = { relus: number } | { seconds: number };

/** `6144` (ReLUs), `0.5s` or `300ms` (seconds); anything else throws naming `what`. */
export function parseBudget(v: string, what = '--budgets'): Budget {
  const t = v.trim();
  const m = /^(\d+(?:\.\d+)?|\.\d+)(s|ms)$/.exec(t);
  if (m) {
    const s = Number(m[1]) / (m[2] === 'ms' ? 1e3 : 1);
    if (!(s > 0)) throw new Error(`${what}: a time budget must be > 0, got '${v}'`);
    return { seconds: s };
  }
  const n = Number(t);
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(n) || n < 1)
    throw new Error(`${what}: '${v}' is neither a ReLU count (a positive integer) nor a time (e.g. 0.5s, 300ms)`);
  return { relus: n };
}

export const parseBudgets = (v: string, what = '--budgets'): Budget[] =>
  v
    .split(',')
    .filter((s) => s.trim())
    .map((s) => parseBudget(s, what));

export const budgetLabel = (b: Budget): string =>
  'relus' in b
    ? b.relus.toLocaleString('en-US')
    : b.seconds < 1
      ? `${+(b.seconds * 1e3).toPrecision(4)} ms`
      : `${+b.seconds.toPrecision(4)} s`;

/** The time axis a seconds budget is on: online seconds under the online objective, otherwise total seconds. */
export const timeAxis = (o: Objective): 'latency_s' | 'online_s' => (o === 'online' ? 'online_s' : 'latency_s');

/** Whether a candidate fits a budget (a seconds budget on the objective's time axis). */
export function withinBudget(x: { relus: number } & CostEstimate, b: Budget, o: Objective): boolean {
  if ('relus' in b) return x.relus <= b.relus;
  const v = x[timeAxis(o)];
  return v !== null && v <= b.seconds;
}

/**
 * The largest ReLU count whose estimate for spec's network (its linear layers and ops fixed, as for a learned mask)
 * fits `seconds`, or 0 if none: the estimate is affine in the count, so two evaluations give it.
 */
export function reluBudgetFor(
  seconds: number,
  spec: NetSpec,
  model: CostModel,
  ctx: LatencyContext,
  o: Objective,
): number {
  const at = (r: number) => estimateSpec(spec, model, ctx, r)[timeAxis(o)];
  const a = at(1),
    b = at(2);
  if (a === null || b === null || a > seconds) return 0;
  const slope = b - a;
  const total = countRelus({ ...spec, mask: undefined }).total;
  return slope > 0 ? Math.min(total, 1 + Math.floor((seconds - a) / slope + 1e-9)) : total;
}

type Costed = { id: string; acc: number; relus: number } & CostEstimate;

/** The Pareto front (ids, increasing cost) on the objective's axis; candidates without that cost are left out. */
export function frontOn(xs: Costed[], o: Objective): string[] {
  return paretoFront(
    xs.map((x) => ({ id: x.id, cost: objectiveCost(x, o), acc: x.acc })).filter((p) => Number.isFinite(p.cost)),
  ).map((p) => p.id);
}

/** The cheapest candidate on the objective's axis with accuracy at least minAcc, or null. */
export function pickOn<T extends Costed>(xs: T[], o: Objective, minAcc: number): T | null {
  const p = cheapestAtLeast(
    xs.map((x) => ({ id: x.id, cost: objectiveCost(x, o), acc: x.acc })).filter((q) => Number.isFinite(q.cost)),
    minAcc,
  );
  return p ? xs.find((x) => x.id === p.id)! : null;
}
