// Base OT: Chou-Orlandi "simplest OT" over ristretto255 (prime order, so no cofactor pitfalls), batched
// with one sender key A for all OTs and the OT index, A and B hashed into every key. Semi-honest.
// Output is random OT: the sender gets (k0_i, k1_i), the receiver gets k_{c_i} (16 bytes each).
// Two messages: A (sender -> receiver), then all B_i (receiver -> sender).
import { cryptoBackend } from '../crypto/backend.js';
import { ristretto255 } from '@noble/curves/ed25519';
import type { Channel } from '../transport/channel.js';
import { systemRandom, type Random } from '../random.js';

const Point = ristretto255.Point;
type Pt = InstanceType<typeof Point>;
const ORDER = Point.Fn.ORDER;

function randomScalar(rand: Random): bigint {
  // 64 random bytes reduced mod the group order: bias < 2^-250.
  let x = 0n;
  for (const b of rand.bytes(64)) x = (x << 8n) | BigInt(b);
  return (x % (ORDER - 1n)) + 1n;
}

function kdf(i: number, A: Uint8Array, B: Uint8Array, P: Pt): Uint8Array {
  const idx = new Uint8Array(4);
  new DataView(idx.buffer).setUint32(0, i, true);
  return cryptoBackend.sha256('deepreduce/pi/co-ot', idx, A, B, P.toBytes()).slice(0, 16);
}

function decodePoint(bytes: Uint8Array, what: string): Pt {
  let p: Pt;
  try {
    p = Point.fromBytes(bytes);
  } catch (e) {
    throw new Error(`base OT: ${what} is not a valid ristretto255 point (${(e as Error).message})`);
  }
  if (p.is0()) throw new Error(`base OT: ${what} is the identity point`);
  return p;
}

/** Sender side of `count` random base OTs. */
export async function baseOtSend(
  ch: Channel,
  count: number,
  rand: Random = systemRandom,
): Promise<{ k0: Uint8Array[]; k1: Uint8Array[] }> {
  const a = randomScalar(rand);
  const A = Point.BASE.multiply(a);
  const Ab = A.toBytes();
  ch.send(Ab);
  const msg = await ch.recvBytes('base OT receiver points', 32 * count);
  const aA = A.multiply(a);
  const k0: Uint8Array[] = [],
    k1: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const Bb = msg.subarray(32 * i, 32 * i + 32);
    const aB = decodePoint(Bb, `receiver point ${i}`).multiply(a);
    k0.push(kdf(i, Ab, Bb, aB));
    k1.push(kdf(i, Ab, Bb, aB.subtract(aA)));
  }
  return { k0, k1 };
}

/** Receiver side: choices[i] in {0, 1}; returns k_{choices[i]}. */
export async function baseOtReceive(
  ch: Channel,
  choices: ArrayLike<number>,
  rand: Random = systemRandom,
): Promise<Uint8Array[]> {
  const count = choices.length;
  const Ab = await ch.recvBytes('base OT sender point', 32);
  const A = decodePoint(Ab, 'sender point A');
  A.precompute(8);
  const out = new Uint8Array(32 * count);
  const bs: bigint[] = [];
  for (let i = 0; i < count; i++) {
    const b = randomScalar(rand);
    bs.push(b);
    const bG = Point.BASE.multiply(b);
    out.set((choices[i] ? A.add(bG) : bG).toBytes(), 32 * i);
  }
  ch.send(out);
  return bs.map((b, i) => kdf(i, Ab, out.subarray(32 * i, 32 * i + 32), A.multiply(b)));
}
