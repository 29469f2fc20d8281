// 1-out-of-N random OT (N = 2^λ <= 32) from λ random 1-out-of-2 OTs on any COT (ot.ts), after Naor-Pinkas 1999:
// the pad of message i is P_i = ⊕_{b<λ} F(m_{b, i_b}, i), where m_{b,0}, m_{b,1} are the messages of the b-th random
// OT and F(m, i) is the bit i of m's words (a PRF on the domain [0, N) of an m that is random). The receiver, choosing
// c, learns m_{b, c_b} for every b, hence P_c; for i ≠ c some b has i_b ≠ c_b, so P_i holds bit i of the unknown
// m_{b, 1−c_b}: different i read different bits, so the pads P_i (i ≠ c) are uniform and independent given the
// receiver's view. Each pad has up to 4 bits (one per 32-bit word of the 16-byte messages).
// Replaces KK13 (32 B of extension matrix per OT) when the COT is silent: λ choice bits per OT (the COT's correction)
// and 2λ hashes at the sender instead of 2N.
import type { RotReceiver, RotSender } from './ot.js';

function logN(N: number, what: string): number {
  const l = Math.log2(N);
  if (!Number.isInteger(l) || l < 1 || l > 5) throw new Error(`${what}: N=${N} must be a power of two in [2, 32]`);
  return l;
}

function checkPlanes(planes: number, what: string): void {
  if (!Number.isInteger(planes) || planes < 1 || planes > 4) throw new Error(`${what}: planes=${planes} must be 1..4`);
}

/** Bit masks M_b of the indices i < N with bit b set. */
function sideMasks(N: number, lg: number): number[] {
  return Array.from({ length: lg }, (_, b) => {
    let m = 0;
    for (let i = 0; i < N; i++) if ((i >>> b) & 1) m |= 1 << i;
    return m;
  });
}

/**
 * Sender of m OTs: the low `planes` bits of every pad as bit planes, word j·planes + p has bit i = bit p of P_i of
 * OT j (the layout of KkSender.padPlanes). Receives the COT's choice corrections (λ·m bits).
 */
export async function ncoSendPlanes(rot: RotSender, m: number, N: number, planes: number): Promise<Uint32Array> {
  const lg = logN(N, 'ncoSendPlanes');
  checkPlanes(planes, 'ncoSendPlanes');
  const { m0, m1 } = await rot.sendRandom(lg * m);
  const a = new Int32Array(m0.buffer, m0.byteOffset, 4 * lg * m),
    c = new Int32Array(m1.buffer, m1.byteOffset, 4 * lg * m);
  const M = sideMasks(N, lg),
    full = N === 32 ? -1 : (1 << N) - 1,
    out = new Uint32Array(m * planes);
  for (let j = 0; j < m; j++)
    for (let p = 0; p < planes; p++) {
      let acc = 0;
      for (let b = 0; b < lg; b++) {
        const w = 4 * (j * lg + b) + p;
        acc ^= (a[w]! & ~M[b]!) | (c[w]! & M[b]!);
      }
      out[j * planes + p] = acc & full;
    }
  return out;
}

/**
 * Receiver of m OTs with choices (one byte each, < N): per OT one byte, bit p = bit p of its pad P_c. Its choice
 * corrections go out before the first await (when the COT has the OTs ready).
 */
export async function ncoReceivePads(
  rot: RotReceiver,
  choices: Uint8Array,
  m: number,
  N: number,
  planes: number,
): Promise<Uint8Array> {
  const lg = logN(N, 'ncoReceivePads');
  checkPlanes(planes, 'ncoReceivePads');
  if (choices.length < m) throw new Error(`ncoReceivePads: ${choices.length} choices for ${m} OTs`);
  const bits = new Uint8Array((lg * m + 7) >>> 3);
  for (let j = 0; j < m; j++) {
    const cj = choices[j]!;
    if (cj >= N) throw new Error(`ncoReceivePads: choice ${cj} of OT ${j} is not below N=${N}`);
    for (let b = 0; b < lg; b++) {
      const q = j * lg + b;
      bits[q >>> 3]! |= ((cj >>> b) & 1) << (q & 7);
    }
  }
  const pads = await rot.receiveRandom(bits, lg * m);
  const w = new Int32Array(pads.buffer, pads.byteOffset, 4 * lg * m),
    out = new Uint8Array(m);
  for (let j = 0; j < m; j++) {
    const cj = choices[j]!;
    let v = 0;
    for (let p = 0; p < planes; p++) {
      let acc = 0;
      for (let b = 0; b < lg; b++) acc ^= w[4 * (j * lg + b) + p]! >>> cj;
      v |= (acc & 1) << p;
    }
    out[j] = v;
  }
  return out;
}
