// Correlated OT with an additive correlation over Z_2^64, derandomized from precomputed random OTs (Beaver 1995):
//   offline: m random OTs from an IKNP extension; the sender keeps R0_j, R1_j (the low 64 bits of its two pads), the
//            receiver a random choice ρ_j and R_{ρ_j};
//   online:  the receiver, with its actual choice b_j, sends e_j = b_j ⊕ ρ_j (1 bit per OT); the sender, with its
//            correlation Δ_j, outputs x0_j = −R_{e_j} and sends y_j = Δ_j + R_{1⊕e_j} − R_{e_j} (8 bytes per OT);
//            the receiver outputs (b_j ? y_j : 0) − R_{ρ_j} = x0_j + b_j·Δ_j.
// e is uniform (ρ is hidden by the extension); y is padded by R_{1⊕ρ}, the pad the receiver did not choose.
import type { R64 } from '../fixed.js';
import type { Random } from '../random.js';
import { clampBits, getBit, randomBitWords, type Bits } from '../bits.js';
import type { RotReceiver, RotSender } from './ot.js';

export interface RotSender64 {
  r0: R64;
  r1: R64;
}

export interface RotReceiver64 {
  /** ρ, packed. */
  choice: Bits;
  /** R_ρ. */
  r: R64;
}

/** The low 64 bits of each 16-byte pad. */
function low64(pads: Uint8Array, m: number): R64 {
  const w = new Uint32Array(pads.buffer, pads.byteOffset, 4 * m);
  const lo = new Uint32Array(m),
    hi = new Uint32Array(m);
  for (let j = 0; j < m; j++) {
    lo[j] = w[4 * j]!;
    hi[j] = w[4 * j + 1]!;
  }
  return { lo, hi };
}

/** Offline, sender side of m random OTs with 64-bit messages. */
export async function rotSend64(ot: RotSender, m: number): Promise<RotSender64> {
  const { m0, m1 } = await ot.sendRandom(m);
  return { r0: low64(m0, m), r1: low64(m1, m) };
}

/** Offline, receiver side: draws the random choices ρ from `rand`. */
export async function rotReceive64(ot: RotReceiver, m: number, rand: Random): Promise<RotReceiver64> {
  const choice = clampBits(randomBitWords(rand, m), m);
  const pads = await ot.receiveRandom(new Uint8Array(choice.buffer, 0, (m + 7) >>> 3), m);
  return { choice, r: low64(pads, m) };
}

/** Online, receiver: e = b ⊕ ρ (to send). */
export function cotChoiceCorrection(p: RotReceiver64, b: Bits): Bits {
  const e = new Uint32Array(b.length);
  for (let w = 0; w < b.length; w++) e[w] = b[w]! ^ p.choice[w]!;
  return e;
}

/** Online, sender: from the receiver's e and the correlations Δ, its output x0 and the message y to send. */
export function cotSendOnline(p: RotSender64, e: Bits, delta: R64): { x0: R64; y: R64 } {
  const m = delta.lo.length;
  const x0: R64 = { lo: new Uint32Array(m), hi: new Uint32Array(m) },
    y: R64 = { lo: new Uint32Array(m), hi: new Uint32Array(m) };
  const { r0, r1 } = p;
  for (let j = 0; j < m; j++) {
    const f = getBit(e, j);
    const aLo = f ? r1.lo[j]! : r0.lo[j]!,
      aHi = f ? r1.hi[j]! : r0.hi[j]!; // R_e
    const bLo = f ? r0.lo[j]! : r1.lo[j]!,
      bHi = f ? r0.hi[j]! : r1.hi[j]!; // R_{1⊕e}
    // x0 = −R_e
    x0.lo[j] = -aLo;
    x0.hi[j] = ~aHi + (aLo === 0 ? 1 : 0);
    // y = Δ + R_{1⊕e} − R_e
    const s = delta.lo[j]! + bLo,
      c = s >= 4294967296 ? 1 : 0,
      sl = s >>> 0;
    const d = sl - aLo,
      br = d < 0 ? 1 : 0;
    y.lo[j] = d;
    y.hi[j] = delta.hi[j]! + bHi + c - aHi - br;
  }
  return { x0, y };
}

/** Online, receiver: its output (b ? y : 0) − R_ρ = x0 + b·Δ. */
export const cotReceiveOnline = (p: RotReceiver64, b: Bits, y: R64): R64 => selectSub(b, y, p.r);

/** (b_j ? y_j : 0) − r_j for every j, mod 2^64. */
export function selectSub(b: Bits, y: R64, r: R64): R64 {
  const m = y.lo.length,
    out: R64 = { lo: new Uint32Array(m), hi: new Uint32Array(m) };
  for (let j = 0; j < m; j++) {
    const yl = getBit(b, j) ? y.lo[j]! : 0,
      yh = getBit(b, j) ? y.hi[j]! : 0;
    const d = yl - r.lo[j]!;
    out.lo[j] = d;
    out.hi[j] = yh - r.hi[j]! - (d < 0 ? 1 : 0);
  }
  return out;
}
