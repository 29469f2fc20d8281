// The base OTs of a PI session's set-up: milliseconds per batch of 128 Chou-Orlandi OTs, both parties in this process
// (one thread, so the CPU time is both parties' work together), for the construction in use and the ones it replaced:
//   p256-node    P-256, scalar multiplications by node:crypto ECDH (OpenSSL): what Node runs now
//   p256-web     P-256, the browser back-end (WebCrypto ECDH + noble fixed-base) on Node's WebCrypto
//   p256-js      P-256, every multiplication in pure JS (@noble/curves): the browser's fallback without crypto.subtle
//   ristretto    ristretto255 in pure JS (@noble/curves): the construction before (deepreduce-pi/5), kept here only
// Reps interleave the variants (a shared machine drifts); medians and minima are reported.
// Usage: node dist/bench/baseot.js [--count 128] [--reps 15] [--only p256-node,ristretto,...] [--json]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { ristretto255 } from '@noble/curves/ed25519';
import { p256 } from '@noble/curves/nist';
import { normalizeZ } from '@noble/curves/abstract/curve';
import { channelPair, type Channel } from '../src/pi/transport/channel.js';
import { baseOtReceive, baseOtSend } from '../src/pi/ot/baseot.js';
import { cryptoBackend, type P256Backend } from '../src/pi/crypto/backend.js';
import { pairCount } from '../src/pi/crypto/ec.js';
import { platformP256 as nodeEc } from '../src/pi/crypto/platform.js';
import { platformP256 as webEc } from '../src/pi/crypto/platform.browser.js';
import { systemRandom, type Random } from '../src/pi/random.js';

const { values: a } = parseArgs({
  options: {
    count: { type: 'string', default: '128' },
    reps: { type: 'string', default: '15' },
    only: { type: 'string' },
    json: { type: 'boolean' },
  },
});
const count = Number(a.count),
  reps = Number(a.reps);
if (!(count >= 1 && count <= 4096 && reps >= 1)) throw new Error('--count in 1..4096, --reps >= 1');

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

type Variant = { name: string; what: string; run: (s: Channel, r: Channel, c: number[]) => Promise<unknown> };
const p256With = (ec: P256Backend) => (s: Channel, r: Channel, c: number[]) =>
  Promise.all([baseOtSend(s, c.length, systemRandom, ec), baseOtReceive(r, c, systemRandom, ec)]);
const all: Variant[] = [
  { name: 'p256-node', what: nodeEc.name, run: p256With(nodeEc) },
  { name: 'p256-web', what: `${webEc.name} (on Node's WebCrypto)`, run: p256With(webEc) },
  { name: 'p256-js', what: jsEc.name, run: p256With(jsEc) },
  {
    name: 'ristretto',
    what: 'ristretto255, @noble/curves (pure JS; before)',
    run: (s, r, c) => Promise.all([ristrettoSend(s, c.length), ristrettoReceive(r, c)]),
  },
];
const only = a.only?.split(',');
const variants = only ? all.filter((v) => only.includes(v.name)) : all;
if (!variants.length) throw new Error(`--only: none of ${all.map((v) => v.name).join(', ')}`);

async function once(v: Variant): Promise<{ wall: number; cpu: number }> {
  const [s, r] = channelPair();
  const choices = Array.from(systemRandom.bytes(count), (x) => x & 1);
  const c0 = process.cpuUsage(),
    t0 = performance.now();
  await v.run(s, r, choices);
  const wall = performance.now() - t0,
    cu = process.cpuUsage(c0);
  return { wall, cpu: (cu.user + cu.system) / 1e3 };
}

const samples = new Map(variants.map((v) => [v.name, { wall: [] as number[], cpu: [] as number[] }]));
for (const v of variants) await once(v); // warm-up (JIT, noble's precomputed tables)
for (let k = 0; k < reps; k++)
  for (const v of variants) {
    const t = await once(v);
    samples.get(v.name)!.wall.push(t.wall);
    samples.get(v.name)!.cpu.push(t.cpu);
  }
const median = (x: number[]) => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const r1 = (x: number) => Math.round(x * 10) / 10;
const rows = variants.map((v) => {
  const s = samples.get(v.name)!;
  return {
    variant: v.name,
    what: v.what,
    count,
    reps,
    wallMsMedian: r1(median(s.wall)),
    wallMsMin: r1(Math.min(...s.wall)),
    cpuMsMedian: r1(median(s.cpu)),
    cpuMsMin: r1(Math.min(...s.cpu)),
  };
});
if (a.json) console.log(JSON.stringify({ bench: 'baseot', node: process.version, rows }, null, 2));
else {
  const base = rows.find((r) => r.variant === 'ristretto');
  console.log(`base OTs: ${count} per batch, both parties in one process, ${reps} reps (median / min, ms)`);
  for (const r of rows)
    console.log(
      `${r.variant.padEnd(10)} wall ${String(r.wallMsMedian).padStart(7)} / ${String(r.wallMsMin).padStart(7)}   cpu ${String(r.cpuMsMedian).padStart(7)} / ${String(r.cpuMsMin).padStart(7)}${base && r !== base ? `   x${r1(base.cpuMsMedian / r.cpuMsMedian)} vs ristretto (cpu)` : ''}   ${r.what}`,
    );
}
