// Silent correlated OT after Ferret (Yang-Weng-Lan-Zhang-Wang, CCS 2020), semi-honest: a round turns base COTs into
// n fresh COTs with one message of 16·t·(2h+1) bytes (sender -> receiver), from
//   MPCOT: t single-point COTs (GGM trees of depth h, one punctured leaf per tree: regular noise e), sender s,
//          receiver w = s ⊕ e·Δ;
//   LPN:   the k code COTs (sender z0, receiver y0 = z0 ⊕ u·Δ) through the public local code A (lpn.ts):
//          sender z = s ⊕ z0·A, receiver y = w ⊕ y0·A and x = e ⊕ u·A, so y = z ⊕ x·Δ.
// SPCOT of one tree: the sender expands a random seed, and per level l sends both level sums masked by the l-th
// base COT, K_0^l ⊕ H(q), K_1^l ⊕ H(q ⊕ Δ), then Δ ⊕ (the sum of the leaves). The receiver, whose base COT has the
// random choice r_l, opens K_{r_l}^l and so knows every leaf except the one on the path α_l = 1 ⊕ r_l: its punctured
// index is set by its base choices, so it sends nothing (unlike Ferret, where α is chosen and sent as corrections).
// H is the tweakable CR hash of crypto/aes.ts (tweak: base index, round, domain); the GGM PRG is that hash with
// tweaks 0 and 1 on the parent.
//
// The first t·h + k outputs of a round seed the next round; the rest are handed out as COTs. Rounds run on
// `reserve` (both parties at the same point of their programs, the sender first) or, when a COT call finds too
// few, inside it: the sender sends its round at once, the receiver awaits it (then its call's message goes out
// after an await: protocols that send before they receive in both directions must reserve).
// Chosen choices: a COT with the receiver's choice c from one with random choice x costs the bits c ⊕ x (1 bit per
// COT, receiver -> sender), after which the sender flips its key by Δ where the bit is set.
import type { Channel } from '../transport/channel.js';
import { systemRandom, type Random } from '../random.js';
import { i32 } from '../bits.js';
import { crHashBatch, fixedKeyAes, fixedKeyAesBytes, AES_BATCH_BLOCKS } from '../crypto/aes.js';
import { gcKernels } from '../crypto/simd.js';
import { malformed } from '../transport/errors.js';
import { iknp, OtExtReceiver, OtExtSender } from './iknp.js';
import {
  baseCount,
  checkParams,
  lpnCode,
  lpnEncodeBits,
  lpnEncodeBlocks,
  roundMessageBytes,
  SILENT_BOOT,
  SILENT_MAIN,
  type LpnParams,
} from './lpn.js';
import type { CotExtension, CotReceiver, CotSender } from './ot.js';

const DOMAIN_SPCOT = 0x53500000;
const DOMAIN_GGM = 0x47470000;

/**
 * One GGM level: children 2i, 2i+1 of parent i (4 words per block) are G_0, G_1 of it,
 * G_b(x) = π(σ(x) ⊕ τ_b) ⊕ σ(x) ⊕ τ_b with τ_b = (b, 0, 0, DOMAIN_GGM): the hash inputs and the final XOR in the
 * WebAssembly kernels (ggmpre, xor), AES in the crypto backend, in slices of parents.
 */
export function ggmLevel(parents: Int32Array, count: number, children: Int32Array): void {
  const S = AES_BATCH_BLOCKS >>> 1,
    K = gcKernels();
  const P = 64,
    U = P + 16 * S,
    E = U + 32 * S;
  K.ensure(E + 32 * S);
  for (let s = 0; s < count; s += S) {
    const m = Math.min(S, count - s);
    K.i32.set(parents.subarray(4 * s, 4 * (s + m)), P >>> 2);
    K.ggmpre(P, U, m);
    K.u8.set(fixedKeyAesBytes(K.u8.subarray(U, U + 32 * m)), E);
    K.xor(E, E, U, 2 * m);
    children.set(K.i32.subarray(E >>> 2, (E >>> 2) + 8 * m), 8 * s);
  }
}

/** ggmLevel in plain JS (the reference the kernels are tested against). */
export function ggmLevelJs(parents: Int32Array, count: number, children: Int32Array): void {
  const S = AES_BATCH_BLOCKS >>> 1;
  const u = new Int32Array(8 * Math.min(S, count));
  for (let s = 0; s < count; s += S) {
    const m = Math.min(S, count - s);
    for (let i = 0; i < m; i++) {
      const p = 4 * (s + i),
        q = 8 * i;
      const w0 = parents[p]!,
        w1 = parents[p + 1]!,
        w2 = parents[p + 2]!,
        w3 = parents[p + 3]!;
      u[q] = w2;
      u[q + 1] = w3;
      u[q + 2] = w2 ^ w0;
      u[q + 3] = w3 ^ w1 ^ DOMAIN_GGM;
      u[q + 4] = w2 ^ 1;
      u[q + 5] = w3;
      u[q + 6] = w2 ^ w0;
      u[q + 7] = w3 ^ w1 ^ DOMAIN_GGM;
    }
    const e = fixedKeyAes(u, 2 * m),
      o = 8 * s;
    for (let q = 0; q < 8 * m; q++) children[o + q] = e[q]! ^ u[q]!;
  }
}

/** Two scratch buffers for the inner GGM levels, alternating (fresh pages are slow to touch here); the leaves fresh. */
const scratch: Int32Array<ArrayBuffer>[] = [new Int32Array(0), new Int32Array(0)];
function levelBuffer(l: number, h: number, words: number): Int32Array<ArrayBuffer> {
  if (l === h) return new Int32Array(words);
  const b = l & 1;
  if (scratch[b]!.length < words) scratch[b] = new Int32Array(words);
  return scratch[b]!.subarray(0, words);
}

/** XOR of the even (k[0..3]) and of the odd (k[4..7]) blocks first .. first+count−1 (count even), in one pass. */
function sideSums(v: Int32Array, first: number, count: number, k: Int32Array): void {
  let a0 = 0,
    a1 = 0,
    a2 = 0,
    a3 = 0,
    b0 = 0,
    b1 = 0,
    b2 = 0,
    b3 = 0;
  for (let x = 4 * first, end = 4 * (first + count); x < end; x += 8) {
    a0 ^= v[x]!;
    a1 ^= v[x + 1]!;
    a2 ^= v[x + 2]!;
    a3 ^= v[x + 3]!;
    b0 ^= v[x + 4]!;
    b1 ^= v[x + 5]!;
    b2 ^= v[x + 6]!;
    b3 ^= v[x + 7]!;
  }
  k[0] = a0;
  k[1] = a1;
  k[2] = a2;
  k[3] = a3;
  k[4] = b0;
  k[5] = b1;
  k[6] = b2;
  k[7] = b3;
}

/** Sender's round message layout: tree j's level l (1-based) sums at blocks j(2h+1) + 2(l−1) + {0, 1}, final at +2h. */
const msgBlock = (p: LpnParams, j: number, l: number) => j * (2 * p.h + 1) + 2 * (l - 1);

/**
 * Sender of t SPCOTs (the MPCOT with regular noise): from t seeds (4t words), Δ (4 words) and the t·h level base COTs'
 * keys q, returns its leaves s (n blocks, tree j at [j·2^h, (j+1)·2^h)) and the message.
 */
export function mpcotSend(
  p: LpnParams,
  seeds: Int32Array,
  delta: Int32Array,
  q: Int32Array,
  round: number,
): { leaves: Int32Array; msg: Int32Array } {
  const { t, h } = p,
    msg = new Int32Array(4 * t * (2 * h + 1));
  const hq = new Int32Array(4 * t * h),
    qd = new Int32Array(4 * t * h),
    hqd = new Int32Array(4 * t * h);
  for (let w = 0; w < 4 * t * h; w++) qd[w] = q[w]! ^ delta[w & 3]!;
  crHashBatch(q, hq, t * h, 0, round, 0, DOMAIN_SPCOT);
  crHashBatch(qd, hqd, t * h, 0, round, 0, DOMAIN_SPCOT);
  let cur = seeds.slice(0, 4 * t);
  for (let l = 1; l <= h; l++) {
    const per = 1 << l,
      next = levelBuffer(l, h, 4 * t * per);
    ggmLevel(cur, t * (per >>> 1), next);
    const k = new Int32Array(8);
    for (let j = 0; j < t; j++) {
      sideSums(next, j * per, per, k);
      const b = 4 * (j * h + l - 1),
        o = 4 * msgBlock(p, j, l);
      for (let w = 0; w < 4; w++) {
        msg[o + w] = k[w]! ^ hq[b + w]!;
        msg[o + 4 + w] = k[4 + w]! ^ hqd[b + w]!;
      }
    }
    cur = next;
  }
  const per = 1 << h,
    k = new Int32Array(8);
  for (let j = 0; j < t; j++) {
    sideSums(cur, j * per, per, k);
    const o = 4 * (msgBlock(p, j, h) + 2);
    for (let w = 0; w < 4; w++) msg[o + w] = delta[w]! ^ k[w]! ^ k[4 + w]!;
  }
  return { leaves: cur, msg };
}

/**
 * Receiver of the t SPCOTs: from the sender's message, its level base COTs' keys y and random choices r (one byte 0/1
 * each), returns its leaves w (= s except at each tree's punctured leaf, where w = s ⊕ Δ) and the punctured
 * indices α_j (within tree j).
 */
export function mpcotRecv(
  p: LpnParams,
  msg: Int32Array,
  y: Int32Array,
  r: Uint8Array,
  round: number,
): { leaves: Int32Array; alpha: Int32Array } {
  const { t, h } = p;
  const hy = new Int32Array(4 * t * h);
  crHashBatch(y, hy, t * h, 0, round, 0, DOMAIN_SPCOT);
  const path = new Int32Array(t); // the punctured node of each tree at the current level
  let cur = new Int32Array(4 * t); // the roots: unknown, held as zero
  for (let l = 1; l <= h; l++) {
    const per = 1 << l,
      next = levelBuffer(l, h, 4 * t * per);
    ggmLevel(cur, t * (per >>> 1), next);
    const k = new Int32Array(8);
    for (let j = 0; j < t; j++) {
      const b = j * h + l - 1,
        rl = r[b]! & 1,
        base = j * per;
      const pathChild = 2 * path[j]! + (1 - rl),
        sib = 4 * (base + 2 * path[j]! + rl);
      // The opened sum K_{r_l} covers the side of parity r_l, whose one unknown node is the path's sibling (its
      // slot holds a child of the unknown parent, which the side sum includes and the XOR below removes).
      sideSums(next, base, per, k);
      const o = 4 * msgBlock(p, j, l) + 4 * rl;
      for (let w = 0; w < 4; w++) next[sib + w] ^= msg[o + w]! ^ hy[4 * b + w]! ^ k[4 * rl + w]!;
      next.fill(0, 4 * (base + pathChild), 4 * (base + pathChild) + 4);
      path[j] = pathChild;
    }
    cur = next;
  }
  const per = 1 << h,
    k = new Int32Array(8);
  for (let j = 0; j < t; j++) {
    sideSums(cur, j * per, per, k); // the punctured leaf is 0
    const o = 4 * (msgBlock(p, j, h) + 2),
      a = 4 * (j * per + path[j]!);
    for (let w = 0; w < 4; w++) cur[a + w] = msg[o + w]! ^ k[w]! ^ k[4 + w]!;
  }
  return { leaves: cur, alpha: path };
}

/** Sender of one round: from its base keys (t·h level COTs, then k code COTs), its outputs z (n blocks) and message. */
export function roundSend(
  p: LpnParams,
  base: Int32Array,
  delta: Int32Array,
  random: Random,
  round: number,
): { z: Int32Array; msg: Int32Array } {
  const th = p.t * p.h;
  const seeds = i32(random.bytes(16 * p.t));
  const { leaves, msg } = mpcotSend(p, seeds, delta, base.subarray(0, 4 * th), round);
  lpnEncodeBlocks(lpnCode(p), p.d, base.subarray(4 * th), leaves, p.n);
  return { z: leaves, msg };
}

/** Receiver of one round: its outputs y (n blocks) and choice bits x (n bytes 0/1), y = z ⊕ x·Δ. */
export function roundRecv(
  p: LpnParams,
  base: Int32Array,
  choice: Uint8Array,
  msg: Int32Array,
  round: number,
): { y: Int32Array; x: Uint8Array } {
  const th = p.t * p.h;
  const { leaves, alpha } = mpcotRecv(p, msg, base.subarray(0, 4 * th), choice.subarray(0, th), round);
  const x = new Uint8Array(p.n),
    per = 1 << p.h;
  for (let j = 0; j < p.t; j++) x[j * per + alpha[j]!] = 1;
  const code = lpnCode(p);
  lpnEncodeBlocks(code, p.d, base.subarray(4 * th), leaves, p.n);
  lpnEncodeBits(code, p.d, choice.subarray(th), x, p.n);
  return { y: leaves, x };
}

/** The parameter chain of an extension: bootstrap rounds, then the steady round repeated. */
export interface SilentParams {
  boot: readonly LpnParams[];
  main: LpnParams;
}

export const SILENT_PARAMS: SilentParams = { boot: [SILENT_BOOT], main: SILENT_MAIN };

function checkChain(c: SilentParams): void {
  const all = [...c.boot, c.main];
  all.forEach((p, i) => checkParams(p, all[i + 1] ?? c.main));
}

/** COTs a round adds to the pool after seeding the next one. */
export const netPerRound = (c: SilentParams): number => c.main.n - baseCount(c.main);

/** The most rounds (messages of roundMessageBytes(main)) one reserve(m) or COT call can run. */
export const roundsFor = (c: SilentParams, m: number): number => Math.ceil(m / netPerRound(c));

/** Base COTs the bootstrap takes from IKNP. */
export const bootCount = (c: SilentParams): number => baseCount(c.boot[0] ?? c.main);

function checkCount(m: number, what: string): void {
  if (!Number.isInteger(m) || m < 0 || m > 2 ** 28) throw new Error(`${what}: OT count m=${m} must be in [0, 2^28]`);
}

/** The unused outputs of past rounds, a queue of rounds' arrays (keys, and the receiver's choice bits). */
class Pool {
  private readonly parts: { keys: Int32Array; choice: Uint8Array | null; pos: number }[] = [];
  left = 0;
  add(keys: Int32Array, choice: Uint8Array | null): void {
    this.parts.push({ keys, choice, pos: 0 });
    this.left += keys.length >>> 2;
  }
  take(m: number): { keys: Int32Array; choice: Uint8Array | null } {
    if (m > this.left) throw new Error(`silent COT: ${m} COTs asked, ${this.left} left`);
    const first = this.parts[0];
    if (first && (first.keys.length >>> 2) - first.pos >= m) {
      // within one round's array: views (each output is handed out once, so the caller may write into it)
      const o = first.pos;
      first.pos += m;
      if (first.pos === first.keys.length >>> 2) this.parts.shift();
      this.left -= m;
      return {
        keys: first.keys.subarray(4 * o, 4 * (o + m)),
        choice: first.choice ? first.choice.subarray(o, o + m) : null,
      };
    }
    const keys = new Int32Array(4 * m),
      choice = this.parts[0]?.choice ? new Uint8Array(m) : null;
    for (let o = 0; o < m; ) {
      const p = this.parts[0]!,
        k = Math.min(m - o, (p.keys.length >>> 2) - p.pos);
      keys.set(p.keys.subarray(4 * p.pos, 4 * (p.pos + k)), 4 * o);
      if (choice) choice.set(p.choice!.subarray(p.pos, p.pos + k), o);
      p.pos += k;
      o += k;
      if (p.pos === p.keys.length >>> 2) this.parts.shift();
    }
    this.left -= m;
    return { keys, choice };
  }
}

/** Sender of the silent COT. */
export class FerretSender implements CotSender {
  private readonly pool = new Pool();
  private base: Int32Array | null = null;
  private round = 0;
  private readonly d: Int32Array;
  /** Rounds run so far (tests and reports). */
  rounds = 0;
  constructor(
    private readonly ch: Channel,
    readonly delta: Uint8Array,
    private readonly random: Random,
    private readonly params: SilentParams,
    private boot: (() => Promise<Int32Array>) | null,
  ) {
    checkChain(params);
    this.d = i32(Uint8Array.from(delta));
  }

  /** Bootstrapped from an IKNP sender (its Δ): takes bootCount COTs of it (one IKNP message from the receiver). */
  static fromIknp(ch: Channel, ot: OtExtSender, random: Random, params: SilentParams = SILENT_PARAMS): FerretSender {
    return new FerretSender(ch, ot.delta, random, params, async () => i32(await ot.sendCot(bootCount(params))));
  }

  /** Runs the bootstrap now (else the first reserve or COT call does). */
  async start(): Promise<void> {
    if (!this.boot) return;
    const b = this.boot;
    this.boot = null;
    this.base = await b();
    for (let i = 0; i < this.params.boot.length; i++) this.step(this.params.boot[i]!, this.params.boot[i + 1]);
  }

  /** One round on `p`: its message goes out; the first baseCount(next round) outputs become the next base. */
  private step(p: LpnParams, next: LpnParams = this.params.main): void {
    const { z, msg } = roundSend(p, this.base!, this.d, this.random, this.round++);
    this.rounds++;
    this.ch.send(new Uint8Array(msg.buffer));
    const nb = baseCount(next);
    this.base = z.slice(0, 4 * nb);
    this.pool.add(z.subarray(4 * nb), null);
  }

  /** COTs available without a round. */
  get available(): number {
    return this.pool.left;
  }

  /** Runs rounds until m COTs are available (the receiver calls reserve(m) at the same point). */
  async reserve(m: number): Promise<void> {
    checkCount(m, 'FerretSender.reserve');
    await this.start();
    while (this.pool.left < m) this.step(this.params.main);
  }

  async sendCot(m: number): Promise<Uint8Array> {
    checkCount(m, 'sendCot');
    await this.reserve(m);
    const { keys } = this.pool.take(m);
    const fix = await this.ch.recvBytes('silent COT: choice corrections', (m + 7) >>> 3);
    if (m & 7 && fix[fix.length - 1]! >>> (m & 7)) throw malformed('silent COT: choice corrections: bits beyond m');
    const d = this.d;
    for (let j = 0; j < m; j++)
      if ((fix[j >>> 3]! >>> (j & 7)) & 1) for (let w = 0; w < 4; w++) keys[4 * j + w] ^= d[w]!;
    return new Uint8Array(keys.buffer, keys.byteOffset, keys.byteLength);
  }
}

/** Receiver of the silent COT. */
export class FerretReceiver implements CotReceiver {
  private readonly pool = new Pool();
  private base: { keys: Int32Array; choice: Uint8Array } | null = null;
  private round = 0;
  rounds = 0;
  constructor(
    private readonly ch: Channel,
    private readonly params: SilentParams,
    private boot: (() => Promise<{ keys: Int32Array; choice: Uint8Array }>) | null,
  ) {
    checkChain(params);
  }

  /** Bootstrapped from an IKNP receiver with random choices from `random` (its IKNP message goes out first). */
  static fromIknp(
    ch: Channel,
    ot: OtExtReceiver,
    random: Random,
    params: SilentParams = SILENT_PARAMS,
  ): FerretReceiver {
    return new FerretReceiver(ch, params, async () => {
      const m = bootCount(params),
        packed = random.bytes((m + 7) >>> 3);
      const keys = i32(await ot.recvCot(packed, m));
      const choice = Uint8Array.from({ length: m }, (_, j) => (packed[j >>> 3]! >>> (j & 7)) & 1);
      return { keys, choice };
    });
  }

  async start(): Promise<void> {
    if (!this.boot) return;
    const b = this.boot;
    this.boot = null;
    this.base = await b();
    for (let i = 0; i < this.params.boot.length; i++) await this.step(this.params.boot[i]!, this.params.boot[i + 1]);
  }

  private async step(p: LpnParams, next: LpnParams = this.params.main): Promise<void> {
    const bytes = await this.ch.recvBytes('silent COT: round message', roundMessageBytes(p));
    const { y, x } = roundRecv(p, this.base!.keys, this.base!.choice, i32(bytes), this.round++);
    this.rounds++;
    const nb = baseCount(next);
    this.base = { keys: y.slice(0, 4 * nb), choice: x.slice(0, nb) };
    this.pool.add(y.subarray(4 * nb), x.subarray(nb));
  }

  get available(): number {
    return this.pool.left;
  }

  async reserve(m: number): Promise<void> {
    checkCount(m, 'FerretReceiver.reserve');
    await this.start();
    while (this.pool.left < m) await this.step(this.params.main);
  }

  /** With m COTs reserved, the corrections go out before this returns (no await before the send). */
  recvCot(choices: Uint8Array, m: number): Promise<Uint8Array> {
    checkCount(m, 'recvCot');
    if (choices.byteLength * 8 < m) throw new Error(`recvCot: ${choices.byteLength} bytes of choice bits for m=${m}`);
    if (this.boot || this.pool.left < m) return this.reserve(m).then(() => this.take(choices, m));
    return Promise.resolve(this.take(choices, m));
  }

  private take(choices: Uint8Array, m: number): Uint8Array {
    const { keys, choice } = this.pool.take(m);
    const nb = (m + 7) >>> 3,
      fix = new Uint8Array(nb),
      x = choice!;
    for (let q = 0, j = 0; q < nb; q++, j += 8) {
      let b = 0;
      for (let k = 0; k < 8 && j + k < m; k++) b |= x[j + k]! << k;
      fix[q] = (choices[q]! ^ b) & (j + 8 <= m ? 255 : (1 << (m - j)) - 1);
    }
    this.ch.send(fix);
    return new Uint8Array(keys.buffer, keys.byteOffset, keys.byteLength);
  }
}

/**
 * The silent COT as an OT extension (ot.ts): IKNP set-up (base OTs) or IKNP from base OTs held, then the bootstrap
 * round. `sender` / `receiver` run the bootstrap before they return; the FromBase variants run it on first use.
 */
export function silentCot(params: SilentParams = SILENT_PARAMS): CotExtension {
  return {
    name: 'silent',
    async sender(ch, o) {
      const random = o.random ?? systemRandom;
      const s = FerretSender.fromIknp(ch, (await iknp.sender(ch, o)) as OtExtSender, random, params);
      await s.start();
      return s;
    },
    async receiver(ch, o) {
      const random = o.random ?? systemRandom;
      const r = FerretReceiver.fromIknp(ch, (await iknp.receiver(ch, o)) as OtExtReceiver, random, params);
      await r.start();
      return r;
    },
    senderFromBase: (ch, delta, keys) =>
      FerretSender.fromIknp(ch, OtExtSender.fromBase(ch, delta, keys), systemRandom, params),
    receiverFromBase: (ch, k0, k1) =>
      FerretReceiver.fromIknp(ch, OtExtReceiver.fromBase(ch, k0, k1), systemRandom, params),
  };
}
