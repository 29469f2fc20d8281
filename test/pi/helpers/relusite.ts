// Shared set-up of the OT ReLU tests (relu-ot, relu-silent): shares of values at a site's range edges, and one session
// per batch size whose sites get distinct op indices.
import { channelPair, type Channel } from '../../../src/pi/transport/channel.js';
import type { ReluClient, ReluProtocol, ReluServer, ReluSite } from '../../../src/pi/relu/index.js';
import { r64Add, r64FromBig, type R64 } from '../../../src/pi/fixed.js';
import { clientRandomness, randomR64, serverRandomness, systemRandom } from '../../../src/pi/random.js';
import { randBig, shiftEdges } from '../helpers.js';

const M = 1n << 64n;

/** How many edge values reluInputs puts first. */
export const EDGES = 16;

/** x values at the edges of a site's range, then random ones; b uniform (the session's client shares are). */
export function reluInputs(width: number, shift: number, nRandom: number): { x: bigint[]; a: R64; b: R64 } {
  const H = 1n << BigInt(width - 1),
    F = 1n << BigInt(shift);
  const edge = [...shiftEdges(F), H - F - 1n, -H, -H + 1n, H / 2n, -H / 2n];
  const x = [...edge, ...Array.from({ length: nRandom }, () => (randBig(width) % (2n * H - F)) - H)];
  const b = x.map(() => randBig(64));
  const a = x.map((v, i) => (((v - b[i]!) % M) + M) % M);
  return { x, a: r64FromBig(a), b: r64FromBig(b) };
}

/** Sessions of `proto` (one per batch size: its set-up runs the base OTs) and one site's offline + online run. */
export function reluHarness(proto: ReluProtocol) {
  const sessions = new Map<number, Promise<[Channel, Channel, ReluServer, ReluClient]>>();
  let op = 0;
  /** A fresh op index for a site run on a session directly. */
  const nextOp = () => op++;
  const session = (batch: number) => {
    let p = sessions.get(batch);
    if (!p) {
      const [s, c] = channelPair();
      p = Promise.all([
        proto.server(s, { batch, random: serverRandomness() }),
        proto.client(c, { batch, random: clientRandomness() }),
      ]).then(([S, C]) => [s, c, S, C]);
      sessions.set(batch, p);
    }
    return p;
  };
  /** y = the site's output (the server's share z plus the client's mask r), and each phase's channel counters. */
  const runSite = async (site0: ReluSite, a: R64, b: R64, batch = 16384) => {
    const [s, c, S, C] = await session(batch);
    const site = { ...site0, op: nextOp() };
    s.resetStats();
    c.resetStats();
    const r = randomR64(systemRandom, site.size);
    await Promise.all([S.offline(site), C.offline(site, b, r)]);
    const off = { s: s.resetStats(), c: c.resetStats() };
    const [z] = await Promise.all([S.online(site, a), C.online(site)]);
    const on = { s: s.resetStats(), c: c.resetStats() };
    return { y: r64Add(z, r), off, on, site };
  };
  return { session, runSite, nextOp };
}
