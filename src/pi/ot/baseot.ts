// Base OT: Chou-Orlandi "simplest OT" over NIST P-256 (prime order, cofactor 1: every valid point is in the group),
// batched with one sender key A for all OTs. The scalar multiplications run natively (crypto/backend.ts's
// P256Backend: node:crypto or WebCrypto ECDH, which yield x-coordinates only); point checks, additions and
// subtractions run in JS (@noble/curves). Semi-honest. Output is random OT: the sender gets (k0_i, k1_i), the
// receiver gets k_{c_i} (16 bytes each). Two messages: A (sender -> receiver), then all B_i (receiver -> sender).
//   sender:   a, A = a·G;  k_j,i = H(i, j, A, B_i, x(a·(B_i - j·A)))
//   receiver: b_i, B_i = b_i·G + c_i·A;  k_c,i = H(i, c_i, A, B_i, x(b_i·A))
// j is hashed because x(P) = x(-P): a receiver sending B = A/2 would otherwise make k0 = k1.
import { p256 } from '@noble/curves/nist';
import { normalizeZ } from '@noble/curves/abstract/curve';
import { cryptoBackend, p256Backend, type P256Backend } from '../crypto/backend.js';
import type { Channel } from '../transport/channel.js';
import { systemRandom, type Random } from '../random.js';

const Point = p256.Point;
type Pt = InstanceType<typeof Point>;
const ORDER = Point.Fn.ORDER;

/** Bytes of a point on the wire: SEC1 uncompressed (0x04 || x || y), what both native APIs take. */
export const POINT_BYTES = 65;
/** Bytes of the receiver's message for `count` OTs (the larger of the two). */
export const baseOtMessageBytes = (count: number): number => POINT_BYTES * count;

function randomScalar(rand: Random): Uint8Array {
  // 64 random bytes reduced mod the group order: bias < 2^-250.
  let x = 0n;
  for (const b of rand.bytes(64)) x = (x << 8n) | BigInt(b);
  x = (x % (ORDER - 1n)) + 1n;
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--, x >>= 8n) out[i] = Number(x & 255n);
  return out;
}

function kdf(i: number, j: number, A: Uint8Array, B: Uint8Array, x: Uint8Array): Uint8Array {
  const idx = new Uint8Array(5);
  new DataView(idx.buffer).setUint32(0, i, true);
  idx[4] = j;
  return cryptoBackend.sha256('deepreduce/pi/co-ot/p256', idx, A, B, x).slice(0, 16);
}

/** A peer's point: exactly 65 bytes, uncompressed, canonical coordinates, on the curve, not the identity. */
export function decodePoint(bytes: Uint8Array, what: string): Pt {
  if (bytes.length !== POINT_BYTES || bytes[0] !== 4)
    throw new Error(
      `base OT: ${what} is not an uncompressed P-256 point (want ${POINT_BYTES} bytes starting 0x04, got ${bytes.length} starting 0x${(bytes[0] ?? 0).toString(16)})`,
    );
  if (bytes.subarray(1).every((b) => b === 0)) throw new Error(`base OT: ${what} is the identity point`);
  let p: Pt;
  try {
    p = Point.fromBytes(bytes);
    p.assertValidity();
  } catch (e) {
    throw new Error(`base OT: ${what} is not a valid P-256 point (${(e as Error).message})`);
  }
  // Coordinates >= p would decode to the same point under another encoding; only the canonical one is hashed.
  const canon = p.toBytes(false);
  if (canon.some((b, k) => b !== bytes[k])) throw new Error(`base OT: ${what} is not canonically encoded`);
  return p;
}

/** Sender side of `count` random base OTs. */
export async function baseOtSend(
  ch: Channel,
  count: number,
  rand: Random = systemRandom,
  ec: P256Backend = p256Backend,
): Promise<{ k0: Uint8Array[]; k1: Uint8Array[] }> {
  const [key] = await ec.keys([randomScalar(rand)]);
  const Ab = key!.pub;
  const A = Point.fromBytes(Ab);
  ch.send(Ab);
  const msg = await ch.recvBytes('base OT receiver points', baseOtMessageBytes(count));
  const Bs: Uint8Array[] = [],
    diffs: Pt[] = [];
  for (let i = 0; i < count; i++) {
    const Bb = msg.subarray(POINT_BYTES * i, POINT_BYTES * (i + 1));
    const D = decodePoint(Bb, `receiver point ${i}`).subtract(A);
    // B = A would make B - A the identity, which has no x-coordinate (and no ECDH).
    if (D.is0()) throw new Error(`base OT: receiver point ${i} equals the sender point A`);
    Bs.push(Bb);
    diffs.push(D);
  }
  const Db = normalizeZ(Point, diffs).map((p) => p.toBytes(false));
  const [x0, x1] = await Promise.all([ec.sharedX([key!], Bs), ec.sharedX([key!], Db)]);
  return {
    k0: Bs.map((Bb, i) => kdf(i, 0, Ab, Bb, x0[i]!)),
    k1: Bs.map((Bb, i) => kdf(i, 1, Ab, Bb, x1[i]!)),
  };
}

/** Receiver side: choices[i] in {0, 1}; returns k_{choices[i]}. */
export async function baseOtReceive(
  ch: Channel,
  choices: ArrayLike<number>,
  rand: Random = systemRandom,
  ec: P256Backend = p256Backend,
): Promise<Uint8Array[]> {
  const count = choices.length;
  const Ab = await ch.recvBytes('base OT sender point', POINT_BYTES);
  const A = decodePoint(Ab, 'sender point A');
  const scalars = Array.from({ length: count }, () => randomScalar(rand));
  const keys = await ec.keys(scalars);
  // b·G + A for every OT, then a masked byte select: the work does not depend on the choices.
  const sums = normalizeZ(
    Point,
    keys.map((k) => Point.fromBytes(k.pub).add(A)),
  ).map((p) => p.toBytes(false));
  const out = new Uint8Array(baseOtMessageBytes(count));
  for (let i = 0; i < count; i++) {
    const m = -(choices[i] ? 1 : 0) & 255,
      b0 = keys[i]!.pub,
      b1 = sums[i]!;
    for (let k = 0; k < POINT_BYTES; k++) out[POINT_BYTES * i + k] = b0[k]! ^ (m & (b0[k]! ^ b1[k]!));
  }
  ch.send(out);
  const xs = await ec.sharedX(keys, [Ab]);
  return xs.map((x, i) => kdf(i, choices[i] ? 1 : 0, Ab, out.subarray(POINT_BYTES * i, POINT_BYTES * (i + 1)), x));
}
