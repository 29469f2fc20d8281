// Max pooling on shares (plan op 'maxpool'): the comparison tree of linear/pool.ts (maxPoolSchedule), each level one
// batch of the session's ReLU protocol on differences of shares, max(a, b) = b + ReLU(a − b). Protocol-agnostic: a
// level is a ReluSite of shift 0 whose input is the difference (each party subtracts its own shares: share-local) and
// whose output, ReLU(a − b) − r at the server and the client's fresh mask r, is added to each party's share of b.
// So the client knows its share of every level, and of the output, offline, as the session's invariant asks, and the
// server sees only what the ReLU protocol shows it. Browser-safe (the client half runs here).
import { r64Add, r64Gather, r64Sub, type R64 } from '../fixed.js';
import type { MaxPoolLevel, MaxPoolSchedule } from '../linear/pool.js';
import type { ReluClient, ReluServer, ReluSite } from './index.js';

/** One party's level output: [V[b] + z (the pairs' maxima)..., V[carry]...]. */
function nextLevel(v: R64, l: MaxPoolLevel, z: R64): R64 {
  const m = r64Add(r64Gather(v, l.b), z, 'max pool'),
    c = r64Gather(v, l.carry),
    n = m.lo.length + c.lo.length,
    out: R64 = { lo: new Uint32Array(n), hi: new Uint32Array(n) };
  out.lo.set(m.lo);
  out.hi.set(m.hi);
  out.lo.set(c.lo, m.lo.length);
  out.hi.set(c.hi, m.lo.length);
  return out;
}

/** One party's share of a level's differences V[a] − V[b]. */
const levelDiff = (v: R64, l: MaxPoolLevel): R64 => r64Sub(r64Gather(v, l.a), r64Gather(v, l.b), 'max pool');

function checkSites(t: MaxPoolSchedule, sites: readonly ReluSite[]): void {
  if (sites.length !== t.levels.length || sites.some((s, k) => s.size !== t.levels[k]!.a.length || s.shift !== 0))
    throw new Error(`max pool: ${sites.length} sites for a tree of ${t.levels.length} levels`);
}

/** Online, server: its share of the input -> its share of the output (one ReLU op per level, in order). */
export async function serverOnlineMaxPool(
  relu: ReluServer,
  sites: readonly ReluSite[],
  t: MaxPoolSchedule,
  a: R64,
): Promise<R64> {
  checkSites(t, sites);
  let v = a;
  for (let k = 0; k < t.levels.length; k++) {
    const l = t.levels[k]!;
    v = nextLevel(v, l, await relu.online(sites[k]!, levelDiff(v, l)));
  }
  return r64Gather(v, t.out);
}

/** The client's offline shares of a max pool: each level's difference (the ReLU's input) and the output. */
export interface ClientMaxPool {
  diffs: R64[];
  masks: R64[];
  out: R64;
}

/** Offline, client: from its input share b and its masks r (one per level, drawn by the session in order). */
export function clientMaxPoolShares(t: MaxPoolSchedule, b: R64, masks: readonly R64[]): ClientMaxPool {
  if (masks.length !== t.levels.length)
    throw new Error(`max pool: ${masks.length} masks for ${t.levels.length} levels`);
  let v = b;
  const diffs: R64[] = [];
  t.levels.forEach((l, k) => {
    diffs.push(levelDiff(v, l));
    v = nextLevel(v, l, masks[k]!);
  });
  return { diffs, masks: [...masks], out: r64Gather(v, t.out) };
}

/** Offline, client: the protocol's offline part of every level. */
export async function clientOfflineMaxPool(relu: ReluClient, sites: readonly ReluSite[], p: ClientMaxPool) {
  for (let k = 0; k < sites.length; k++) await relu.offline(sites[k]!, p.diffs[k]!, p.masks[k]!);
}

/** Online, client: every level's protocol, in order. */
export async function clientOnlineMaxPool(relu: ReluClient, sites: readonly ReluSite[]) {
  for (const s of sites) await relu.online(s);
}
