// When a session does its offline work, and the budgets that scale with its plan. The offline/online split is a
// choice per deployment (the client asks in its hello, the server decides and sends the schedule with the plan):
//   all     the whole offline phase before the image (every layer's correlations held at once);
//   layer   layer by layer: each layer's offline part, then its online part (about one layer's correlations held);
//   budget  layers grouped ahead while their estimated correlations stay within a byte budget.
// A schedule is the list of segment starts (op indices); a segment runs its offline part, then its online part.
// Deadlines and the plan message's limit scale with the plan, so a large network never meets a size fixed for a
// small one.
import { maxPoolCount, opInputs, reluCount, type PlanBounds, type PublicPlan } from './plan.js';
import { malformed } from './wire.js';

export type OfflineMode = { mode: 'all' } | { mode: 'layer' } | { mode: 'budget'; bytes: number };

/** `all`, `layer` or a byte count (the budget), as the CLI and the hello spell it. */
export type OfflineWish = 'all' | 'layer' | number;

export const offlineMode = (w: OfflineWish): OfflineMode =>
  w === 'all' ? { mode: 'all' } : w === 'layer' ? { mode: 'layer' } : { mode: 'budget', bytes: w };

export const offlineWish = (m: OfflineMode): OfflineWish => (m.mode === 'budget' ? m.bytes : m.mode);

/** Parses `all`, `layer` or a byte count with an optional k/M/G suffix (powers of 1024). */
export function parseOffline(s: string): OfflineMode {
  if (s === 'all' || s === 'layer') return { mode: s };
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)[bB]?$/.exec(s.trim());
  if (!m) throw new Error(`--offline must be all, layer or a byte budget (e.g. 512M), got '${s}'`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  const bytes = Math.round(Number(m[1]) * mult);
  if (!(bytes >= 1)) throw new Error(`--offline budget must be at least 1 byte, got '${s}'`);
  return { mode: 'budget', bytes };
}

/** Checks a client's wish from its hello (untrusted): undefined when it expressed none. */
export function checkOfflineWish(v: unknown, what: string): OfflineWish | undefined {
  if (v === undefined) return undefined;
  if (v === 'all' || v === 'layer') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1) return v;
  throw malformed(`${what}: offline must be 'all', 'layer' or a positive byte budget`);
}

const isLinear = (plan: PublicPlan, i: number) => {
  const o = plan.ops[i]!.op;
  return o === 'conv' || o === 'fc';
};

/** The plan's layers, as segment starts: cut before each conv/fc but the first (the first layer holds the input). */
export function planLayers(plan: PublicPlan): number[] {
  const starts = [0];
  let seen = false;
  for (let i = 0; i < plan.ops.length; i++)
    if (isLinear(plan, i)) {
      if (seen) starts.push(i);
      seen = true;
    }
  return starts;
}

/**
 * Estimated bytes of offline correlations a party holds for ops [lo, hi) between their offline and online parts:
 * the linear layers' shares (8 bytes per output element) and the ReLU protocol's material per kept ReLU and max-pool
 * comparison (heldPerRelu, the larger party's).
 */
export function heldEstimate(plan: PublicPlan, lo: number, hi: number, relu = 'gc'): number {
  const HELD_PER_RELU = heldPerRelu(relu);
  let b = 0;
  for (let i = lo; i < hi; i++) {
    const o = plan.ops[i]!;
    if (o.op === 'conv' || o.op === 'fc') b += 8 * o.size;
    else if (o.op === 'relu') b += HELD_PER_RELU * reluCount(o);
    else if (o.op === 'maxpool') b += HELD_PER_RELU * maxPoolCount(o);
  }
  return b;
}

/**
 * Bytes a party holds per ReLU from its offline to its online part, the larger party's, rounded up from a
 * resnet18 session (test/pi/schedule.test.ts prints them): gc, the client's garbled tables (about 6.2 KB); ot, the
 * OT correlations (under 100 B); ot-online keeps none. Unknown protocols count as gc.
 */
export const heldPerRelu = (relu: string): number => ({ ot: 256, 'ot-online': 64 })[relu] ?? 8192;

/** The segment starts of a mode: one segment (all), one per layer, or consecutive layers within the budget. */
export function planSchedule(plan: PublicPlan, m: OfflineMode, relu = 'gc'): number[] {
  if (m.mode === 'all') return [0];
  const layers = planLayers(plan);
  if (m.mode === 'layer') return layers;
  const out: number[] = [];
  let acc = 0;
  layers.forEach((lo, k) => {
    const b = heldEstimate(plan, lo, layers[k + 1] ?? plan.ops.length, relu);
    if (!out.length || acc + b > m.bytes) {
      out.push(lo);
      acc = 0;
    }
    acc += b;
  });
  return out;
}

/** Checks the schedule a server sent (untrusted): strictly increasing op indices from 0, each below the op count. */
export function checkSchedule(v: unknown, plan: PublicPlan, what: string): number[] {
  const n = plan.ops.length;
  if (!Array.isArray(v) || v.length < 1 || v.length > n) throw malformed(`${what}: schedule is not 1..${n} op indices`);
  v.forEach((x, k) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= n || (k === 0 ? x !== 0 : x <= v[k - 1]))
      throw malformed(`${what}: schedule entry ${k} is not an increasing op index from 0`);
  });
  return v as number[];
}

/** [lo, hi) op ranges of a schedule. */
export const segments = (starts: readonly number[], n: number): [number, number][] =>
  starts.map((lo, k) => [lo, starts[k + 1] ?? n]);

/** For each op, the last op that reads its value (the last op's own index for the output, which is never read). */
export function lastUses(plan: PublicPlan): Int32Array {
  const last = Int32Array.from(plan.ops, (_, i) => i);
  plan.ops.forEach((o, i) => {
    for (const j of opInputs(o)) last[j] = Math.max(last[j]!, i);
  });
  last[plan.ops.length - 1] = plan.ops.length;
  return last;
}

/** Drops (sets to undefined) every value whose last reader is before `upTo`: a streamed session holds only live values. */
export function releaseValues(values: unknown[], last: Int32Array, upTo: number): void {
  for (let j = 0; j < values.length; j++) if (values[j] !== undefined && last[j]! < upTo) values[j] = undefined;
}

/** The deadlines that scale with the plan (the rest do not). */
export interface ScaledDeadlines {
  offlineMs: number;
  onlineMs: number;
  idleMs: number;
  onlineIdleMs: number;
}

/**
 * Work units: a kept ReLU or max-pool comparison, or 1024 MACs. The default deadlines fit plans of up to REF_WORK
 * units (4M: about four ResNet-18s at 32x32, which takes 8.6 s on LAN against 600 s offline), the idle timeouts ops
 * of up to REF_OP units (a 64x64x64 ReLU op); past them they grow in proportion.
 */
const REF_WORK = 1 << 22,
  REF_OP = 1 << 18;

function work(plan: PublicPlan): { total: number; op: number } {
  let total = 0,
    op = 0;
  plan.ops.forEach((o) => {
    const w =
      o.op === 'relu'
        ? reluCount(o)
        : o.op === 'maxpool'
          ? maxPoolCount(o)
          : o.op === 'conv'
            ? (o.size * (o.geom.inShape[0] / o.geom.groups) * o.geom.kernel ** 2) / 1024
            : o.op === 'fc'
              ? (o.size * o.inSize) / 1024
              : 0;
    total += w;
    op = Math.max(op, w);
  });
  return { total, op };
}

/**
 * Deadlines for this plan: the phase deadlines grow with the plan's work past a ResNet-18's, the idle timeouts with
 * its largest op's; a deadline the user gave is kept as given. In a streamed session (more than one segment) the
 * online phase carries the later segments' offline work, so its deadline is the offline and online deadlines
 * together and the server's online idle timeout is the offline one (it waits for HE uploads there).
 */
export function planDeadlines(
  plan: PublicPlan,
  dl: ScaledDeadlines,
  given: Partial<ScaledDeadlines> | undefined,
  streamed: boolean,
): ScaledDeadlines {
  const w = work(plan),
    k = Math.max(1, w.total / REF_WORK),
    kOp = Math.max(1, w.op / REF_OP);
  const pick = (key: keyof ScaledDeadlines, v: number) => given?.[key] ?? Math.ceil(v);
  const offlineMs = pick('offlineMs', dl.offlineMs * k),
    idleMs = pick('idleMs', dl.idleMs * kOp);
  const onlineMs = pick('onlineMs', dl.onlineMs * k);
  const onlineIdleMs = pick('onlineIdleMs', dl.onlineIdleMs * kOp);
  return streamed
    ? { offlineMs, onlineMs: onlineMs + offlineMs, idleMs, onlineIdleMs: Math.max(onlineIdleMs, idleMs) }
    : { offlineMs, onlineMs, idleMs, onlineIdleMs };
}

/**
 * Frame limit of the plan message for plans within `bounds`: a few KiB per op (names, shapes, geometry) and the
 * partial sites' bitmaps (base64: one character per 6 elements, at most every element of the plan).
 */
export const planMaxBytes = (bounds: PlanBounds): number =>
  65536 + 1024 * bounds.maxOps + Math.ceil(bounds.maxTotalElements / 6);
