// The base-OT variants of bench/baseot.ts, browser-safe (the page entry lib/baseot-page.ts runs them in Chromium):
// P-256 on the platform back-end or in pure JS, and the ristretto255 construction used before (deepreduce-pi/5).
import { ristretto255 } from '@noble/curves/ed25519';
import { p256 } from '@noble/curves/nist';
import { normalizeZ } from '@noble/curves/abstract/curve';
import type { Channel } from '../../src/pi/transport/channel.js';
import { baseOtReceive, baseOtSend } from '../../src/pi/ot/baseot.js';
import { cryptoBackend, type P256Backend } from '../../src/pi/crypto/backend.js';
import { pairCount } from '../../src/pi/crypto/ec.js';
import { systemRandom, type Random } from '../../src/pi/random.js';

const P = p256.Point;
const toBig = (b: Uint8Array) => b.reduce((x, v) => (x << 8n) | BigInt(v), 0n);
/** P-256 with no native help. */
const jsEc: P256Backend = {
  name: '@noble/curves P-256 (pure JS)',
  async keys(scalars) {
    const pts = normalizeZ(
      P,
      scalars.map((d) => P.BASE.multiply(toBig(d))),
    );
    return pts.map((p, i) => ({ d: scalars[i]!, pub: p.toBytes(false) }));
  },
  async sharedX(keys, points) {
    const n = pairCount(keys.length, points.length);
    return Array.from({ length: n }, (_, i) =>
      P.fromBytes(points[points.length === 1 ? 0 : i]!)
        .multiply(toBig(keys[keys.length === 1 ? 0 : i]!.d))
        .toBytes(false)
        .slice(1, 33),
    );
  },
};

// The previous construction (ristretto255, full points hashed), for the before figure.
const R = ristretto255.Point;
type RPt = InstanceType<typeof R>;
function rScalar(rand: Random): bigint {
  let x = 0n;
  for (const b of rand.bytes(64)) x = (x << 8n) | BigInt(b);
  return (x % (R.Fn.ORDER - 1n)) + 1n;
}
function rKdf(i: number, A: Uint8Array, B: Uint8Array, p: RPt): Uint8Array {
  const idx = new Uint8Array(4);
  new DataView(idx.buffer).setUint32(0, i, true);
  return cryptoBackend.sha256('deepreduce/pi/co-ot', idx, A, B, p.toBytes()).slice(0, 16);
}
async function ristrettoSend(ch: Channel, n: number): Promise<Uint8Array[]> {
  const s = rScalar(systemRandom),
    A = R.BASE.multiply(s),
    Ab = A.toBytes();
  ch.send(Ab);
  const msg = await ch.recvBytes('B', 32 * n);
  const aA = A.multiply(s);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const Bb = msg.subarray(32 * i, 32 * i + 32);
    const p = R.fromBytes(Bb);
    if (p.is0()) throw new Error('identity');
    const aB = p.multiply(s);
    out.push(rKdf(i, Ab, Bb, aB), rKdf(i, Ab, Bb, aB.subtract(aA)));
  }
  return out;
}
async function ristrettoReceive(ch: Channel, choices: number[]): Promise<Uint8Array[]> {
  const Ab = await ch.recvBytes('A', 32);
  const A = R.fromBytes(Ab);
  A.precompute(8);
  const out = new Uint8Array(32 * choices.length),
    bs: bigint[] = [];
  choices.forEach((c, i) => {
    const b = rScalar(systemRandom);
    bs.push(b);
    const bG = R.BASE.multiply(b);
    out.set((c ? A.add(bG) : bG).toBytes(), 32 * i);
  });
  ch.send(out);
  return bs.map((b, i) => rKdf(i, Ab, out.subarray(32 * i, 32 * i + 32), A.multiply(b)));
}

export type Variant = { name: string; what: string; run: (s: Channel, r: Channel, c: number[]) => Promise<unknown> };
const p256With = (ec: P256Backend) => (s: Channel, r: Channel, c: number[]) =>
  Promise.all([baseOtSend(s, c.length, systemRandom, ec), baseOtReceive(r, c, systemRandom, ec)]);
/** The variants on `ec` (the platform's P-256: node:crypto or WebCrypto) and without native help. */
export const variants = (ec: P256Backend, label: string): Variant[] => [
  { name: label, what: ec.name, run: p256With(ec) },
  { name: 'p256-js', what: jsEc.name, run: p256With(jsEc) },
  {
    name: 'ristretto',
    what: 'ristretto255, @noble/curves (pure JS; before)',
    run: (s, r, c) => Promise.all([ristrettoSend(s, c.length), ristrettoReceive(r, c)]),
  },
];

export interface Row {
  variant: string;
  what: string;
  count: number;
  reps: number;
  wallMsMedian: number;
  wallMsMin: number;
  /** This process's CPU time (both parties); null where there is no such clock (the page). */
  cpuMsMedian: number | null;
  cpuMsMin: number | null;
}

const median = (x: number[]) => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const r1 = (x: number) => Math.round(x * 10) / 10;

/** One warm-up per variant, then `reps` interleaved rounds of `count` OTs on an in-process channel pair. */
export async function measure(
  vs: Variant[],
  count: number,
  reps: number,
  pair: () => [Channel, Channel],
  cpuMs: (() => number) | null,
): Promise<Row[]> {
  const once = async (v: Variant) => {
    const [s, r] = pair();
    const choices = Array.from(systemRandom.bytes(count), (x) => x & 1);
    const c0 = cpuMs?.() ?? 0,
      t0 = performance.now();
    await v.run(s, r, choices);
    return { wall: performance.now() - t0, cpu: (cpuMs?.() ?? 0) - c0 };
  };
  const samples = vs.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (const v of vs) await once(v); // JIT, noble's precomputed tables
  for (let k = 0; k < reps; k++)
    for (const [j, v] of vs.entries()) {
      const t = await once(v);
      samples[j]!.wall.push(t.wall);
      samples[j]!.cpu.push(t.cpu);
    }
  return vs.map((v, j) => ({
    variant: v.name,
    what: v.what,
    count,
    reps,
    wallMsMedian: r1(median(samples[j]!.wall)),
    wallMsMin: r1(Math.min(...samples[j]!.wall)),
    cpuMsMedian: cpuMs ? r1(median(samples[j]!.cpu)) : null,
    cpuMsMin: cpuMs ? r1(Math.min(...samples[j]!.cpu)) : null,
  }));
}
