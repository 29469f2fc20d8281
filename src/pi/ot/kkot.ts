// KK13 1-out-of-N OT extension (Kolesnikov-Kumaresan 2013), semi-honest: IKNP with the repetition code replaced by
// the 256-bit Walsh-Hadamard code (codeword of i: bit k = parity(i & k), minimum distance 128), on 256 base OTs.
// N <= 256 messages per OT for 32 bytes of extension matrix per OT.
//
// Roles: the sender holds s (256 bits) and the base-OT keys k_{s_i}; the receiver holds both keys k0_i, k1_i and a
// choice r_j < N per OT. Per batch of m OTs (padded to M, a multiple of 32) the receiver sends one message u of 256
// columns, u^i = G(k0_i) ⊕ G(k1_i) ⊕ c^i (32 bytes per OT), c^i_j = C(r_j)_i = parity(r_j & i): column i is the XOR
// of the choices' bit planes b in i, so the code needs no transpose. Then q^i = G(k_{s_i}) ⊕ s_i·u^i, and after each
// party transposes its columns
//   sender rows q_j = t_j ⊕ (C(r_j) ∧ s),   receiver rows t_j (t^i = G(k0_i)).
// The pad of message i is H(q_j ⊕ (C(i) ∧ s), j, i); the receiver knows only H(t_j, j, r_j): for i ≠ r_j the
// unknown part (C(i) ⊕ C(r_j)) ∧ s covers >= 128 secret bits of s.
// H: a 256-bit input hashed by two chained tweakable CR hashes on fixed-key AES,
//   H(x, j, i) = H128(x_lo ⊕ H128(x_hi, (j, i, 1)), (j, i, 2)),   H128(y, t) = π(σ(y) ⊕ t) ⊕ σ(y) ⊕ t
// (the form of crypto/aes.ts, domain DOMAIN_KK), j a per-session OT counter.
//
// Flavours: random OT (sender gets all N pads, receiver its one), chosen-message OT (the sender masks N messages
// with the pads and sends them), both with 1..16-byte outputs. Both parties must run the same sequence of calls.
import type { Channel } from '../transport/channel.js';
import { Prg } from '../crypto/prg.js';
import { fixedKeyAes, fixedKeyAesBytes } from '../crypto/aes.js';
import { gcKernels } from '../crypto/simd.js';
import { systemRandom, type Random } from '../random.js';
import { i32 } from '../bits.js';
import { baseOtReceive, baseOtSend } from './baseot.js';
import { transpose128 } from './transpose.js';

/** Code length = base OTs = extension-matrix bits per OT. */
export const KK_CODE_BITS = 256;
export const KK_MAX_N = 256;
const DOMAIN_KK = 0x4b4b0000;

/** Walsh-Hadamard codewords: codeword i at words [8i, 8i+8), bit k = bit (k & 31) of word k >>> 5. */
const WH = (() => {
  const t = new Int32Array(KK_MAX_N * 8);
  for (let i = 0; i < KK_MAX_N; i++) {
    for (let k = 0; k < KK_CODE_BITS; k++) {
      let v = i & k,
        p = 0;
      while (v) {
        p ^= 1;
        v &= v - 1;
      }
      if (p) t[8 * i + (k >>> 5)] |= 1 << (k & 31);
    }
  }
  return t;
})();

/** Codeword i (8 words): the security of KK13 rests on every two codewords differing in >= 128 bits (κ = 128). */
export const kkCodeword = (i: number): Int32Array => WH.slice(8 * i, 8 * i + 8);

const pad32 = (m: number) => Math.ceil(m / 32) * 32;

function checkCount(m: number, what: string): void {
  if (!Number.isInteger(m) || m < 1 || m > 2 ** 28)
    throw new Error(`${what}: OT count m=${m} must be an integer in [1, 2^28]`);
}

function checkN(N: number, what: string): void {
  if (!Number.isInteger(N) || N < 2 || N > KK_MAX_N)
    throw new Error(`${what}: N=${N} messages per OT must be an integer in [2, ${KK_MAX_N}]`);
}

function checkBytes(bytes: number, what: string): void {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 16)
    throw new Error(`${what}: output of ${bytes} bytes must be 1..16`);
}

class Counter {
  private next = 0;
  take(m: number): number {
    const t = this.next;
    if (t + m > 2 ** 32) throw new Error('KK13 OT extension: more than 2^32 OTs in one session; start a new session');
    this.next += m;
    return t;
  }
}

/** Blocks per AES call (node:crypto runs fastest on ~16K blocks at once). */
const SLICE_BLOCKS = 16384;

/**
 * H for `count` blocks given, per block, the inner input v = σ(x_hi) ⊕ (j, i, 1, DOMAIN_KK) and the outer input's
 * known part w = σ(x_lo) ⊕ (j, i, 2, DOMAIN_KK) (4 words each). σ is linear, so the outer input is
 * w ⊕ σ(π(v) ⊕ v). Writes the first `bytes` bytes of H per block into out; v is overwritten.
 */
function hashBlocks(v: Int32Array, w: Int32Array, count: number, out: Uint8Array | null, bytes: number): Int32Array {
  const e = fixedKeyAes(v, count);
  for (let q = 0; q < 4 * count; q += 4) {
    const h0 = e[q]! ^ v[q]!,
      h1 = e[q + 1]! ^ v[q + 1]!,
      h2 = e[q + 2]! ^ v[q + 2]!,
      h3 = e[q + 3]! ^ v[q + 3]!;
    v[q] = w[q]! ^ h2;
    v[q + 1] = w[q + 1]! ^ h3;
    v[q + 2] = w[q + 2]! ^ h2 ^ h0;
    v[q + 3] = w[q + 3]! ^ h3 ^ h1;
  }
  const f = fixedKeyAes(v, count);
  if (!out) {
    for (let q = 0; q < 4 * count; q += 4) f[q] ^= v[q]!;
    return f;
  }
  if (bytes === 1) {
    for (let k = 0; k < count; k++) out[k] = (f[4 * k]! ^ v[4 * k]!) & 255;
    return f;
  }
  for (let q = 0; q < 4 * count; q++) f[q] ^= v[q]!;
  const fb = new Uint8Array(f.buffer, f.byteOffset, 16 * count);
  for (let k = 0; k < count; k++) for (let b = 0; b < bytes; b++) out[k * bytes + b] = fb[16 * k + b]!;
  return f;
}

/** Scratch buffers, reused across calls (fresh memory is slow to touch); each slot is used by one step at a time. */
const scratch = new Map<string, Int32Array>();
function scratchWords(n: number, slot = 'hash'): Int32Array {
  let b = scratch.get(slot);
  if (!b || b.length < n) scratch.set(slot, (b = new Int32Array(n)));
  return b;
}
const scratchBytes = (n: number, slot: string) => {
  const w = scratchWords((n + 3) >>> 2, slot);
  return new Uint8Array(w.buffer, 0, n);
};

/** σ(x) ⊕ t for 4 words at x[o..o+3], into out[p..p+3]. */
function sigmaInto(
  x: Int32Array,
  o: number,
  t0: number,
  t1: number,
  t2: number,
  t3: number,
  out: Int32Array,
  p: number,
): void {
  const x0 = x[o]!,
    x1 = x[o + 1]!,
    x2 = x[o + 2]!,
    x3 = x[o + 3]!;
  out[p] = x2 ^ t0;
  out[p + 1] = x3 ^ t1;
  out[p + 2] = x2 ^ x0 ^ t2;
  out[p + 3] = x3 ^ x1 ^ t3;
}

/** Computes the low bit planes of KK13 pads for a slice of a sender batch (another thread: the server's workers). */
export interface KkPlanesHelper {
  /** False when the helper's threads are gone (the batch is then hashed here alone). */
  readonly alive?: boolean;
  kkPlanes(tab: Int32Array, q: Int32Array, first: number, m: number, N: number, planes: number): Promise<Uint32Array>;
}

/**
 * The low `planes` bits of the N pads of OTs first .. first+m-1 (rows q, 8 words each; `tab` the sender's
 * σ((C(i) ∧ s)) table) as bit planes: word j * planes + k has bit i = bit k of the pad of message i of OT j.
 */
export function kkPadPlanes(
  tab: Int32Array,
  q: Int32Array,
  first: number,
  m: number,
  N: number,
  planes: number,
): Uint32Array {
  checkN(N, 'KkSender.padPlanes');
  if (N > 32 || !Number.isInteger(planes) || planes < 1 || planes > 8)
    throw new Error(`KkSender.padPlanes: N=${N} must be <= 32 and planes=${planes} 1..8`);
  if (tab.length !== KK_MAX_N * 8 || q.length < 8 * m)
    throw new Error(`KkSender.padPlanes: table of ${tab.length} words, ${q.length} row words for ${m} OTs`);
  const out = new Uint32Array(m * planes);
  hashPads(tab, q, first, m, N, 1, (j0, cnt, h) => {
    for (let jj = 0, k = 0; jj < cnt; jj++) {
      const o = (j0 + jj) * planes;
      if (planes === 2) {
        let p0 = 0,
          p1 = 0;
        for (let i = 0; i < N; i++, k++) {
          const x = h[4 * k]!;
          p0 |= (x & 1) << i;
          p1 |= ((x >>> 1) & 1) << i;
        }
        out[o] = p0;
        out[o + 1] = p1;
      } else {
        for (let i = 0; i < N; i++, k++) {
          const x = h[4 * k]!;
          for (let p = 0; p < planes; p++) out[o + p] |= ((x >>> p) & 1) << i;
        }
      }
    }
  });
  return out;
}

/**
 * Hashes the N pads of OTs first .. first+m-1 slice by slice: the XOR and σ work runs in WebAssembly (kernels kkpre,
 * kkmid), AES in node:crypto. `each` gets the first `words` words of each 16-byte pad (4 words per block).
 */
function hashPads(
  tab: Int32Array,
  q: Int32Array,
  first: number,
  m: number,
  N: number,
  words: 1 | 4,
  each: (j0: number, cnt: number, h: Int32Array) => void,
): void {
  const K = gcKernels(),
    per = Math.max(1, Math.floor(SLICE_BLOCKS / N));
  const TAB = 64,
    Q = TAB + 32 * KK_MAX_N,
    V = Q + 32 * per,
    W = V + 16 * per * N,
    E = W + 16 * per * N;
  K.ensure(E + 16 * per * N);
  const h = scratchWords(4 * per * N);
  for (let j0 = 0; j0 < m; j0 += per) {
    const cnt = Math.min(per, m - j0),
      count = cnt * N,
      m32 = K.i32;
    m32.set(tab.subarray(0, 8 * N), TAB >>> 2);
    m32.set(q.subarray(8 * j0, 8 * (j0 + cnt)), Q >>> 2);
    K.kkpre(Q, TAB, V, W, cnt, N, (first + j0) | 0);
    K.u8.set(fixedKeyAesBytes(K.u8.subarray(V, V + 16 * count)), E);
    K.kkmid(V, E, W, count);
    const f = i32(fixedKeyAesBytes(K.u8.subarray(V, V + 16 * count))),
      v = V >>> 2;
    if (words === 1) for (let x = 0; x < 4 * count; x += 4) h[x] = f[x]! ^ m32[v + x]!;
    else for (let x = 0; x < 4 * count; x++) h[x] = f[x]! ^ m32[v + x]!;
    each(j0, cnt, h);
  }
}

/** One sender batch: rows q_j (8 words each) for OTs first .. first+m-1 of the session. */
export interface KkSendBatch {
  m: number;
  first: number;
  q: Int32Array;
}

/** One receiver batch: rows t_j (low and high 128 bits, 4 words each) and the choices. */
export interface KkRecvBatch {
  m: number;
  first: number;
  t0: Int32Array;
  t1: Int32Array;
  choices: Uint8Array;
}

export class KkSender {
  private readonly counter = new Counter();
  private readonly s32: Int32Array;
  /** Per message i (8 words): σ((C(i) ∧ s)_hi) ⊕ (0, i, 1, DOMAIN_KK), then σ((C(i) ∧ s)_lo) ⊕ (0, i, 2, DOMAIN_KK). */
  private readonly tab: Int32Array;

  private constructor(
    private readonly ch: Channel,
    s: Uint8Array,
    private readonly prgs: Prg[],
  ) {
    this.s32 = new Int32Array(s.slice().buffer);
    const cs = new Int32Array(KK_MAX_N * 8);
    for (let i = 0; i < KK_MAX_N; i++) for (let w = 0; w < 8; w++) cs[8 * i + w] = WH[8 * i + w]! & this.s32[w]!;
    this.tab = new Int32Array(KK_MAX_N * 8);
    for (let i = 0; i < KK_MAX_N; i++) {
      sigmaInto(cs, 8 * i + 4, 0, i, 1, DOMAIN_KK, this.tab, 8 * i);
      sigmaInto(cs, 8 * i, 0, i, 2, DOMAIN_KK, this.tab, 8 * i + 4);
    }
  }

  /** 256 base OTs (as their receiver, choices = the bits of a fresh random s); every coin from `random`. */
  static async setup(ch: Channel, random: Random = systemRandom): Promise<KkSender> {
    const s = random.bytes(32);
    const keys = await baseOtReceive(
      ch,
      Array.from({ length: KK_CODE_BITS }, (_, i) => (s[i >>> 3]! >>> (i & 7)) & 1),
      random,
    );
    return KkSender.fromBase(ch, s, keys);
  }

  /** From 256 random OTs already held as their receiver: choices s (32 bytes, bit i = bit i&7 of byte i>>3), keys k_{s_i}. */
  static fromBase(ch: Channel, s: Uint8Array, keys: Uint8Array[]): KkSender {
    if (s.length !== 32 || keys.length !== KK_CODE_BITS)
      throw new Error(`KkSender: need 32 bytes of s and ${KK_CODE_BITS} keys, got ${s.length} and ${keys.length}`);
    return new KkSender(
      ch,
      s,
      keys.map((k) => new Prg(k)),
    );
  }

  /** Receives the receiver's matrix for m OTs. */
  async extend(m: number): Promise<KkSendBatch> {
    checkCount(m, 'KkSender.extend');
    const M = pad32(m),
      cb = M >>> 3,
      cw = cb >>> 2,
      half = 128 * cw;
    const u = i32(await this.ch.recvBytes('KK13 OT extension matrix', KK_CODE_BITS * cb));
    const g = scratchBytes(KK_CODE_BITS * cb, 'cols0');
    for (let i = 0; i < KK_CODE_BITS; i++) this.prgs[i]!.fill(g.subarray(i * cb, (i + 1) * cb));
    const G = i32(g),
      s = this.s32;
    for (let i = 0; i < KK_CODE_BITS; i++) {
      if (!((s[i >>> 5]! >>> (i & 31)) & 1)) continue;
      for (let w = i * cw; w < (i + 1) * cw; w++) G[w] ^= u[w]!;
    }
    const q0 = transpose128(G.subarray(0, half), M, scratchWords(4 * M, 'rows0'));
    const q1 = transpose128(G.subarray(half), M, scratchWords(4 * M, 'rows1'));
    const q = new Int32Array(8 * m);
    // rows interleaved: low 128 bits then high 128 bits of each (a plain loop: a subarray per row was 2 allocations per OT)
    for (let j = 0, a = 0, o = 0; j < m; j++, a += 4, o += 8) {
      q[o] = q0[a]!;
      q[o + 1] = q0[a + 1]!;
      q[o + 2] = q0[a + 2]!;
      q[o + 3] = q0[a + 3]!;
      q[o + 4] = q1[a]!;
      q[o + 5] = q1[a + 1]!;
      q[o + 6] = q1[a + 2]!;
      q[o + 7] = q1[a + 3]!;
    }
    return { m, first: this.counter.take(m), q };
  }

  /** Pads of all N messages of every OT in the batch: `bytes` bytes each, at ((j * N) + i) * bytes. */
  pads(b: KkSendBatch, N: number, bytes: number): Uint8Array {
    checkN(N, 'KkSender.pads');
    checkBytes(bytes, 'KkSender.pads');
    const out = new Uint8Array(b.m * N * bytes);
    hashPads(this.tab, b.q, b.first, b.m, N, bytes > 4 ? 4 : 1, (j0, cnt, h) => {
      const hb = new Uint8Array(h.buffer, h.byteOffset, 16 * cnt * N),
        o = j0 * N * bytes;
      for (let k = 0; k < cnt * N; k++) for (let x = 0; x < bytes; x++) out[o + k * bytes + x] = hb[16 * k + x]!;
    });
    return out;
  }

  /**
   * The low `planes` bits of every pad as bit planes (N <= 32): word j * planes + k has bit i = bit k of the pad of
   * message i of OT j (e.g. a comparison leaf's N gt pads and N eq pads in two words).
   */
  padPlanes(b: KkSendBatch, N: number, planes: number): Uint32Array {
    return kkPadPlanes(this.tab, b.q, b.first, b.m, N, planes);
  }

  /**
   * padPlanes with the batch's second half hashed by `helper` (another thread) while this thread hashes the first:
   * the same result. Small batches stay here.
   */
  async padPlanesShared(
    b: KkSendBatch,
    N: number,
    planes: number,
    helper: KkPlanesHelper | null,
  ): Promise<Uint32Array> {
    if (!helper || helper.alive === false || b.m < 4096) return this.padPlanes(b, N, planes);
    const h = b.m >>> 1;
    const remote = helper.kkPlanes(this.tab, b.q.slice(8 * h, 8 * b.m), b.first + h, b.m - h, N, planes);
    const out = new Uint32Array(b.m * planes);
    out.set(kkPadPlanes(this.tab, b.q, b.first, h, N, planes));
    out.set(await remote, h * planes);
    return out;
  }

  /** m random OTs: all N pads of each (`bytes` bytes each, at ((j * N) + i) * bytes); the receiver learns pad r_j. */
  async sendRandom(m: number, N: number, bytes: number): Promise<Uint8Array> {
    return this.pads(await this.extend(m), N, bytes);
  }

  /** m chosen-message OTs: msgs holds N messages of `bytes` bytes per OT (same layout as the pads). */
  async sendChosen(msgs: Uint8Array, m: number, N: number, bytes: number): Promise<void> {
    if (msgs.byteLength !== m * N * bytes)
      throw new Error(`KkSender.sendChosen: ${msgs.byteLength} bytes of messages, expected ${m} OTs x ${N} x ${bytes}`);
    const p = await this.sendRandom(m, N, bytes);
    for (let k = 0; k < p.length; k++) p[k] ^= msgs[k]!;
    this.ch.send(p);
  }
}

export class KkReceiver {
  private readonly counter = new Counter();
  private constructor(
    private readonly ch: Channel,
    private readonly prg0: Prg[],
    private readonly prg1: Prg[],
  ) {}

  /** 256 base OTs as their sender; every coin from `random`. */
  static async setup(ch: Channel, random: Random = systemRandom): Promise<KkReceiver> {
    const { k0, k1 } = await baseOtSend(ch, KK_CODE_BITS, random);
    return KkReceiver.fromBase(ch, k0, k1);
  }

  /** From 256 random OTs already held as their sender (both keys of each). */
  static fromBase(ch: Channel, k0: Uint8Array[], k1: Uint8Array[]): KkReceiver {
    if (k0.length !== KK_CODE_BITS || k1.length !== KK_CODE_BITS)
      throw new Error(`KkReceiver: need ${KK_CODE_BITS} key pairs, got ${k0.length} / ${k1.length}`);
    return new KkReceiver(
      ch,
      k0.map((k) => new Prg(k)),
      k1.map((k) => new Prg(k)),
    );
  }

  /** Sends the matrix for choices[0..m) (each < N) and returns the rows t_j. */
  extend(choices: Uint8Array, m: number, N: number): KkRecvBatch {
    checkCount(m, 'KkReceiver.extend');
    checkN(N, 'KkReceiver.extend');
    if (choices.length < m) throw new Error(`KkReceiver.extend: ${choices.length} choices for m=${m} OTs`);
    for (let j = 0; j < m; j++)
      if (choices[j]! >= N) throw new Error(`KkReceiver.extend: choice ${choices[j]} of OT ${j} is not below N=${N}`);
    const M = pad32(m),
      cb = M >>> 3,
      cw = cb >>> 2,
      half = 128 * cw;
    // The code's columns: one per pattern p of the choices' bits (p < 2^bits), p = (p & (p - 1)) + its lowest bit.
    const bits = 32 - Math.clz32(N - 1),
      P = 1 << bits,
      code = scratchWords(P * cw, 'code');
    code.fill(0, 0, cw);
    for (let b = 0; b < bits; b++) {
      const plane = code.subarray((1 << b) * cw, ((1 << b) + 1) * cw);
      plane.fill(0);
      for (let j = 0; j < m; j++) plane[j >>> 5] |= ((choices[j]! >>> b) & 1) << (j & 31);
    }
    for (let p = 3; p < P; p++) {
      if (!(p & (p - 1))) continue;
      const lo = p & -p,
        o = p * cw,
        a = (p ^ lo) * cw,
        c = lo * cw;
      for (let w = 0; w < cw; w++) code[o + w] = code[a + w]! ^ code[c + w]!;
    }
    const t = scratchBytes(KK_CODE_BITS * cb, 'cols0'),
      u = new Uint8Array(KK_CODE_BITS * cb);
    for (let i = 0; i < KK_CODE_BITS; i++) {
      this.prg0[i]!.fill(t.subarray(i * cb, (i + 1) * cb));
      this.prg1[i]!.fill(u.subarray(i * cb, (i + 1) * cb));
    }
    const T = i32(t),
      U = new Int32Array(u.buffer);
    for (let i = 0; i < KK_CODE_BITS; i++) {
      const o = i * cw,
        c = (i & (P - 1)) * cw;
      for (let w = 0; w < cw; w++) U[o + w] ^= T[o + w]! ^ code[c + w]!;
    }
    this.ch.send(u);
    return {
      m,
      first: this.counter.take(m),
      choices: choices.slice(0, m),
      t0: transpose128(T.subarray(0, half), M),
      t1: transpose128(T.subarray(half), M),
    };
  }

  /** The pad of the chosen message of every OT in the batch (`bytes` bytes each). */
  pads(b: KkRecvBatch, bytes: number): Uint8Array {
    checkBytes(bytes, 'KkReceiver.pads');
    const out = new Uint8Array(b.m * bytes),
      buf = scratchWords(8 * SLICE_BLOCKS);
    for (let j0 = 0; j0 < b.m; j0 += SLICE_BLOCKS) {
      const count = Math.min(SLICE_BLOCKS, b.m - j0);
      const v = buf.subarray(0, 4 * count),
        w = buf.subarray(4 * SLICE_BLOCKS, 4 * SLICE_BLOCKS + 4 * count);
      for (let k = 0; k < count; k++) {
        const r = 4 * (j0 + k),
          tw = b.first + j0 + k,
          i = b.choices[j0 + k]!;
        sigmaInto(b.t1, r, tw, i, 1, DOMAIN_KK, v, 4 * k);
        sigmaInto(b.t0, r, tw, i, 2, DOMAIN_KK, w, 4 * k);
      }
      hashBlocks(v, w, count, out.subarray(j0 * bytes), bytes);
    }
    return out;
  }

  /** m random OTs: the pad of message choices[j] of each. */
  async receiveRandom(choices: Uint8Array, m: number, N: number, bytes: number): Promise<Uint8Array> {
    return this.pads(this.extend(choices, m, N), bytes);
  }

  /** m chosen-message OTs: message choices[j] of each (`bytes` bytes). */
  async receiveChosen(choices: Uint8Array, m: number, N: number, bytes: number): Promise<Uint8Array> {
    const p = this.pads(this.extend(choices, m, N), bytes);
    const y = await this.ch.recvBytes('KK13 masked messages', m * N * bytes);
    for (let j = 0; j < m; j++) {
      const o = (j * N + choices[j]!) * bytes;
      for (let b = 0; b < bytes; b++) p[j * bytes + b] ^= y[o + b]!;
    }
    return p;
  }
}
