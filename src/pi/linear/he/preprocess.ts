// `--preprocess he`: the linear layers' offline correlations between client and server alone, with the RLWE scheme of
// src/pi/he (docs/pi-he.md). The client holds the secret key. Per secret linear layer M, in plan order:
//   both:   the packing, a function of the public plan (the cost model's choice with the defaults); the server
//           computes it itself and refuses an upload that declares another (MALFORMED, before any work)
//   client: symmetric encryptions of its input share c in the layout (one message)
//   server: for each output ciphertext sum_g Enc(c_g) k_g - s, re-randomised, its kept coefficients flooded over the
//           whole noise region, switched down, only the kept coefficients of c0 (one message per output group); it
//           keeps s (uniform in Z_2^64 per output, each used once)
//   client: decrypts M c - s + carry, carry in {-1, 0, 1} (docs/pi-he.md: the linear layers' error)
// The first layer's message is preceded by the client's public key (once per session). Everything either side
// receives is checked (header, packing, sizes, residues); a fault is a MALFORMED error naming the message (the peer
// is told the code only, wire.ts). All coins (the client's key, errors and seeds; the server's s, re-randomisation and
// flooding) come from the party's injected randomness (ctx.random), so tests can fix them.
import { noiseBudget, HE_PARAMS, type HeParams } from '../../he/params.js';
import { HeEngine } from '../../he/kernels.js';
import {
  convGeometry,
  fcGeometry,
  choosePacking,
  ConvLayout,
  DEFAULT_COST,
  type PackingCostModel,
  type LinearGeometry,
  type Packing,
} from '../../he/layout.js';
import {
  decryptResponse,
  encryptUploads,
  keyGen,
  loadPublicKey,
  respond,
  type InputCt,
  type PublicKeyData,
  type SecretKey,
  type ServerPublicKey,
  type SparsePlain,
} from '../../he/rlwe.js';
import { randomSeed, Xof } from '../../he/sample.js';
import {
  publicKeyBytes,
  readPublicKey,
  readResponses,
  readUpload,
  responsesBytes,
  uploadBytes,
  writePublicKey,
  writeResponses,
  writeUpload,
  type ResponseCts,
} from '../../he/serialize.js';
import type { Poly } from '../../he/kernels.js';
import type { R64 } from '../../fixed.js';
import { randomR64, type Random } from '../../random.js';
import { malformed } from '../../transport/errors.js';
import type { Channel } from '../../transport/channel.js';
import type { ConvGeometry, RingLinear } from '../../ringlinear.js';
import type { LinearShape, PendingLinear, PreprocessContext, Preprocessor } from '../index.js';

const now = () => globalThis.performance.now();

/** Lets other sessions and I/O run between output groups (a macrotask, not a microtask). */
const yieldToLoop = () =>
  new Promise<void>((r) => {
    const si = (globalThis as { setImmediate?: (f: () => void) => void }).setImmediate;
    if (si) si(r);
    else setTimeout(r, 0);
  });

function geometryOf(shape: LinearShape): LinearGeometry {
  const g = shape.geom ? convGeometry(shape.geom) : fcGeometry(shape.inSize, shape.outSize);
  if (g.C * g.H * g.W !== shape.inSize || g.O * g.Ho * g.Wo !== shape.outSize) {
    throw new Error(
      `he: ${shape.name}: geometry ${g.C}x${g.H}x${g.W} -> ${g.O}x${g.Ho}x${g.Wo} does not match ${shape.inSize} -> ${shape.outSize} elements`,
    );
  }
  return g;
}

/** A received message parsed by `read`; a fault in it is MALFORMED (the peer is told the code, we keep the details). */
function parsed<T>(ch: Channel, read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw malformed(`${ch.name}: malformed message: ${(e as Error).message}`);
  }
}

/** The packing's noise budget holds and the noise region fits the flooding kernel (<= 128 bits). */
function budgetFits(
  p: HeParams,
  taps: number,
  maxWeight: number,
): { ok: boolean; floodBits: number; marginBits: number } {
  const b = noiseBudget(p, taps * maxWeight);
  return { ok: b.marginBits > 0 && b.floodBits <= 128, floodBits: b.floodBits, marginBits: b.marginBits };
}

export interface HeOptions {
  params?: HeParams;
  /**
   * The cost model for choosing packings. Both parties must use the same (the defaults): the server computes each
   * layer's packing itself and refuses an upload that declares another.
   */
  cost?: PackingCostModel;
  /** Each layer's packing instead of the cost model's (tests); both parties must set the same, as for `cost`. */
  packing?: (shape: LinearShape, g: LinearGeometry) => Packing;
  /** The server's worker threads for output groups (Node only: pi/workers); absent: this thread alone. */
  parallel?: HeParallel;
}

/** One secret layer's server work as data, for another thread: everything groupResponses needs. */
export interface HeLayerJob {
  name: string;
  g: LinearGeometry;
  pk: Packing;
  weights: Float64Array;
  /** The uploads: c0 (NTT domain) and the expanded a of each. */
  c0s: Uint32Array[];
  as: Uint32Array[];
  pub: PublicKeyData;
  /** The server's share s of the layer's outputs (the responses carry -s). */
  s: R64;
  floodBits: number;
  /** Keys the thread's coins (re-randomisation, errors, flooding) for this layer: 16 bytes of the server's randomness. */
  seed: Uint8Array;
  /** Names the layer's weights and packing across sessions for the thread's kernel cache (kernelCacheKey). */
  kernelKey?: string;
}

/**
 * The server's kernel polynomials (NTT domain) kept across sessions, per thread, up to a byte budget: they depend
 * only on the weights and the plan's packing, and transforming them is a fixed cost of every layer and session
 * (L NTTs and the encoding per polynomial). Entries are never evicted: the first layers that fit stay (a server
 * serves one model). `kernelCacheBytes` sets the budget (0 turns it off).
 */
const kernelCache = new Map<string, Uint32Array>();
let kernelCacheBudget = 128 * 2 ** 20,
  kernelCacheUsed = 0;

/** Sets this thread's kernel cache budget in bytes (0: none) and empties the cache; returns the old budget. */
export function kernelCacheBytes(bytes: number): number {
  const old = kernelCacheBudget;
  kernelCacheBudget = Math.max(0, bytes);
  kernelCache.clear();
  kernelCacheUsed = 0;
  return old;
}

/** Bytes held by this thread's kernel cache. */
export const kernelCacheHeld = (): number => kernelCacheUsed;

const weightIds = new WeakMap<Float64Array, string>();
let nextWeightId = 0;

/**
 * A key for a layer's kernels: one id per weights array of this thread (a ServerModel's layers keep theirs for the
 * model's life), with the geometry and packing. Worker threads receive it in the job (their weights are copies).
 */
export function kernelCacheKey(weights: Float64Array, g: LinearGeometry, pk: Packing): string {
  let id = weightIds.get(weights);
  if (!id) weightIds.set(weights, (id = `w${nextWeightId++}`));
  return `${id}|${JSON.stringify(g)}|${pk.th},${pk.tw},${pk.cw},${pk.on}`;
}

/** Computes some output groups of a layer elsewhere, with the parameters it was made for. */
export interface HeParallel {
  readonly threads: number;
  /** False when the threads are gone (the layer is then computed here alone). */
  readonly alive?: boolean;
  /** Each group's responses, in the order of `ogs`. */
  groups(job: HeLayerJob, ogs: readonly number[]): Promise<ResponseCts[]>[];
}

/** The uploads (c0 and the expanded a of each, NTT domain) copied into the engine's scratch memory. */
export function loadInputs(e: HeEngine, c0s: readonly Uint32Array[], as: readonly Uint32Array[]): InputCt[] {
  return c0s.map((c0, j) => {
    const a = e.poly(e.L, false),
      c = e.poly(e.L, false);
    e.words(c).set(c0);
    e.words(a).set(as[j]!);
    return { c0: c, a };
  });
}

/**
 * The responses of output group `og`: per tile, sum over input groups of upload x kernel (the kernels transformed
 * here), re-randomised, masked by -s, flooded and switched down (rlwe.ts respond).
 */
export function groupResponses(
  e: HeEngine,
  pk: ServerPublicKey,
  L: ConvLayout,
  weights: Float64Array,
  inputs: readonly InputCt[],
  og: number,
  s: R64,
  floodBits: number,
  rand: Random,
  cacheKey?: string,
): ResponseCts[] {
  const n = e.n,
    m = e.mark();
  try {
    const kernels: (Poly | null)[] = [];
    const scratch = e.alloc(4 * n);
    for (let ig = 0; ig < L.inGroups; ig++) {
      if (!L.live[ig]![og]) {
        kernels.push(null);
        continue;
      }
      const poly = e.poly(e.L, false),
        key = cacheKey && kernelCacheBudget > 0 ? `${cacheKey}|${ig}|${og}` : null,
        hit = key ? kernelCache.get(key) : undefined;
      if (hit && hit.length === e.L * n) {
        e.words(poly).set(hit);
      } else {
        const k = e.i32(scratch, n);
        k.fill(0);
        L.kernel(ig, og, weights, k);
        e.small(poly, scratch, false);
        e.forward(poly);
        if (key && kernelCacheUsed + 4 * e.L * n <= kernelCacheBudget) {
          kernelCache.set(key, e.words(poly).slice());
          kernelCacheUsed += 4 * e.L * n;
        }
      }
      kernels.push(poly);
    }
    const cts: ResponseCts[] = [];
    for (let tile = 0; tile < L.tiles; tile++) {
      const terms: [InputCt, Poly][] = [];
      kernels.forEach((k, ig) => {
        if (k) terms.push([inputs[tile * L.inGroups + ig]!, k]);
      });
      const { idx, src } = L.output(tile, og);
      const mLo = new Uint32Array(src.length),
        mHi = new Uint32Array(src.length);
      for (let j = 0; j < src.length; j++) {
        // -s mod 2^64
        const lo = s.lo[src[j]!]!,
          hi = s.hi[src[j]!]!;
        mLo[j] = -lo >>> 0;
        mHi[j] = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
      }
      cts.push(respond(e, pk, terms, idx, mLo, mHi, floodBits, rand));
    }
    return cts;
  } finally {
    e.release(m);
  }
}

/** choosePacking's answers by their inputs (HePreprocessor.chosen); bounded, since a client computes them for any plan. */
const chosenPackings = new Map<string, Packing>();

export class HePreprocessor implements Preprocessor {
  readonly name = 'he';
  readonly needsDealer = false;
  private engine: Promise<HeEngine> | null = null;
  private created: HeEngine | null = null;
  private sk: SecretKey | null = null;
  private pk: ServerPublicKey | null = null;
  private pub: PublicKeyData | null = null;
  private computeMs = 0;
  /** Coefficients decrypted (client) or sent for decryption (server) in this session: the flooding covers 2^sessionCoeffBits. */
  private decrypted = 0;
  private readonly params: HeParams;
  private readonly cost: PackingCostModel;

  constructor(private readonly o: HeOptions = {}) {
    this.params = o.params ?? HE_PARAMS;
    this.cost = o.cost ?? DEFAULT_COST;
  }

  lastComputeMs(): number {
    return this.computeMs;
  }

  /**
   * A layer's packing, a function of the plan (the option's, else the cost model's; cached: maxMessageBytes, client()
   * and server() ask). The server uses its own, never the one an upload declares.
   */
  private readonly packings = new Map<string, Packing>();
  private packingOf(shape: LinearShape, g: LinearGeometry): Packing {
    const key = `${shape.op}:${shape.name}`;
    let pk = this.packings.get(key);
    if (!pk) {
      pk = this.o.packing?.(shape, g) ?? this.chosen(shape, g);
      this.packings.set(key, pk);
    }
    return pk;
  }

  /** The cost model's packing, memoised per process: a pure function of public values, ~1-25 ms per layer. */
  private chosen(shape: LinearShape, g: LinearGeometry): Packing {
    const p = this.params,
      key = JSON.stringify([g, p, shape.maxWeight, this.cost]);
    let pk = chosenPackings.get(key);
    if (!pk) {
      pk = choosePacking(
        g,
        p.n,
        p.primes.length,
        p.c1Bits,
        p.c0Bits,
        (taps) => budgetFits(p, taps, shape.maxWeight).ok,
        this.cost,
        shape.name,
      ).pk;
      if (chosenPackings.size >= 4096) chosenPackings.clear();
      chosenPackings.set(key, pk);
    }
    return { ...pk };
  }

  /**
   * Frame limits, from the plan's packings (both parties compute the same): to the server, the public key and the
   * largest upload (a flight: the key and two uploads); to the client, the largest response message.
   */
  maxMessageBytes(shapes: readonly LinearShape[]): {
    toServer: number;
    toClient: number;
    flightToServer: number;
    flightToClient: number;
  } {
    if (!shapes.length) return { toServer: 0, toClient: 0, flightToServer: 0, flightToClient: 0 };
    const p = this.params;
    let toServer = publicKeyBytes(p),
      toClient = 0,
      flightToClient = 0,
      upload = 0;
    for (const shape of shapes) {
      const g = geometryOf(shape);
      const L = new ConvLayout(g, this.packingOf(shape, g), p.n, shape.name);
      upload = Math.max(upload, uploadBytes(p, L.uploads));
      toServer = Math.max(toServer, upload);
      // the server sends a layer's groups without waiting (faster still with worker threads): one flight
      let layer = 0;
      for (let og = 0; og < L.outGroups; og++) {
        const b = responsesBytes(
          p,
          Array.from({ length: L.tiles }, (_, t) => L.output(t, og).idx.length),
        );
        toClient = Math.max(toClient, b);
        layer += b;
      }
      flightToClient = Math.max(flightToClient, layer);
    }
    // the client runs one layer ahead (protocol.ts): the key and two layers' uploads may arrive before the server reads
    return { toServer, toClient, flightToServer: publicKeyBytes(p) + 2 * upload, flightToClient };
  }

  private count(shape: LinearShape): void {
    this.decrypted += shape.outSize;
    const max = 2 ** this.params.sessionCoeffBits;
    if (this.decrypted > max)
      throw new Error(
        `he: ${shape.name}: the session would decrypt ${this.decrypted} coefficients, more than the flooding covers (${max})`,
      );
  }

  private getEngine(): Promise<HeEngine> {
    return (this.engine ??= HeEngine.create(this.params).then((e) => (this.created = e)));
  }

  heldBytes(): number {
    return this.created?.memoryBytes ?? 0;
  }

  // ---------------------------------------------------------------------------------------------- client

  async client(ctx: PreprocessContext, shape: LinearShape, c: R64): Promise<R64> {
    const started = await this.clientStart(ctx, shape, c),
      ms = this.computeMs;
    const out = await started.finish();
    this.computeMs += ms;
    return out;
  }

  /** Encrypts the layer's input share and sends it; finish() reads and decrypts the responses. */
  async clientStart(ctx: PreprocessContext, shape: LinearShape, c: R64): Promise<PendingLinear> {
    const p = this.params,
      e = await this.getEngine();
    const t = now();
    if (!this.sk) {
      const { sk, pk } = await keyGen(e, ctx.random);
      this.sk = sk;
      ctx.peer.send(writePublicKey(p, pk.seed, pk.p0));
    }
    const g = geometryOf(shape);
    if (c.lo.length !== shape.inSize)
      throw new Error(`he: ${shape.name}: input share has ${c.lo.length} elements, expected ${shape.inSize}`);
    this.count(shape);
    const pk = this.packingOf(shape, g);
    const layout = new ConvLayout(g, pk, p.n, shape.name);
    const plains: SparsePlain[] = [];
    for (let tile = 0; tile < layout.tiles; tile++) {
      for (let ig = 0; ig < layout.inGroups; ig++) {
        const { idx, src } = layout.input(tile, ig);
        plains.push({ idx, lo: src.map((s) => c.lo[s]!), hi: src.map((s) => c.hi[s]!) });
      }
    }
    const seed = randomSeed(ctx.random);
    const c0s = await encryptUploads(e, this.sk, seed, plains, ctx.random);
    ctx.peer.send(writeUpload(p, shape.op, pk, seed, c0s));
    this.computeMs = now() - t;
    return { finish: () => this.clientFinish(ctx, shape, layout) };
  }

  private async clientFinish(ctx: PreprocessContext, shape: LinearShape, layout: ConvLayout): Promise<R64> {
    const p = this.params,
      e = await this.getEngine();
    let t = now(),
      ms = 0;
    const out: R64 = { lo: new Uint32Array(shape.outSize), hi: new Uint32Array(shape.outSize) };
    const kept = Array.from({ length: layout.responses }, (_, j) =>
      layout.output(j % layout.tiles, Math.floor(j / layout.tiles)),
    );
    const what = `he responses for ${shape.name}`;
    for (let got = 0; got < layout.responses; ) {
      const msg = await ctx.peer.recvBytes(what);
      t = now();
      const cts = parsed(ctx.peer, () =>
        readResponses(msg, p, shape.op, what, got, layout.responses - got, (j) => kept[j]!.idx.length),
      );
      cts.forEach((ct, k) => {
        const { idx, src } = kept[got + k]!;
        const v = decryptResponse(e, this.sk!, ct, idx);
        for (let j = 0; j < src.length; j++) {
          out.lo[src[j]!] = v.lo[j]!;
          out.hi[src[j]!] = v.hi[j]!;
        }
      });
      got += cts.length;
      ms += now() - t;
    }
    this.computeMs = ms;
    return out;
  }

  // ---------------------------------------------------------------------------------------------- server

  async server(ctx: PreprocessContext, shape: LinearShape, layer: RingLinear): Promise<R64> {
    const p = this.params,
      e = await this.getEngine(),
      n = p.n;
    let ms = 0;
    if (!this.pk) {
      const what = 'he public key';
      const m = await ctx.peer.recvBytes(what);
      const d = parsed(ctx.peer, () => readPublicKey(m, p, what));
      const t = now();
      this.pk = await loadPublicKey(e, d);
      this.pub = d;
      ms += now() - t;
    }
    const g = geometryOf(shape);
    const weights = weightsOf(layer, shape);
    this.count(shape);
    const what = `he upload for ${shape.name}`;
    // The packing is the plan's, computed here: the client's upload must declare exactly it (a packing of the client's
    // choice would decide which coefficients of c0 are sent and how many responses the server computes and sends).
    const packing = this.packingOf(shape, g),
      L = new ConvLayout(g, packing, n, what);
    const b = budgetFits(p, L.kernelTaps, shape.maxWeight);
    if (!b.ok)
      throw new Error(
        `${what}: the plan's packing ${JSON.stringify(packing)} breaks the noise budget (margin ${b.marginBits.toFixed(2)} bits)`,
      );
    if (2 * L.uploads * 4 * n * p.primes.length > this.cost.memory)
      throw new Error(
        `${what}: the plan's packing ${JSON.stringify(packing)} needs ${L.uploads} input ciphertexts, over the memory bound`,
      );
    onceEach(L, shape.outSize, what);
    const floodBits = b.floodBits;
    const msg = await ctx.peer.recvBytes(what);
    let t = now();
    const up = parsed(ctx.peer, () =>
      readUpload(msg, p, shape.op, what, (pk) => {
        if (pk.th !== packing.th || pk.tw !== packing.tw || pk.cw !== packing.cw || pk.on !== packing.on) {
          throw new Error(`${what}: packing ${JSON.stringify(pk)} is not the plan's ${JSON.stringify(packing)}`);
        }
        return L.uploads;
      }),
    );
    const xof = await Xof.create(up.seed);
    const as = await Promise.all(up.c0s.map((_, j) => xof.uniform(j, p.primes, n)));
    // s uniform in Z_2^64; the responses carry -s.
    const s = randomR64(ctx.random, shape.outSize);
    // Output groups are independent: with worker threads, each takes every (T+1)-th group and this thread the rest;
    // the responses still go out in group order (the client reads them so).
    const par = this.o.parallel && this.o.parallel.alive !== false && L.outGroups > 1 ? this.o.parallel : null,
      T = par ? par.threads + 1 : 1;
    const remote = new Map<number, Promise<ResponseCts[]>>();
    const kernelKey = kernelCacheKey(weights, g, packing);
    if (par) {
      const ogs = Array.from({ length: L.outGroups }, (_, og) => og).filter((og) => og % T !== 0);
      // own buffers only: structured cloning a view copies its whole buffer
      const own = <T extends Uint32Array | Float64Array>(x: T): T =>
        x.byteOffset === 0 && x.byteLength === x.buffer.byteLength ? x : (x.slice() as T);
      const job: HeLayerJob = {
        name: shape.name,
        g,
        pk: packing,
        weights: own(weights),
        c0s: up.c0s.map(own),
        as: as.map(own),
        pub: { seed: this.pub!.seed.slice(), p0: own(this.pub!.p0) },
        s: { lo: s.lo.slice(), hi: s.hi.slice() },
        floodBits,
        seed: ctx.random.bytes(16),
        kernelKey,
      };
      par.groups(job, ogs).forEach((pr, k) => {
        pr.catch(() => {});
        remote.set(ogs[k]!, pr);
      });
    }
    const base = e.mark();
    try {
      const inputs = loadInputs(e, up.c0s, as);
      ms += now() - t;
      for (let og = 0; og < L.outGroups; og++) {
        t = now();
        const cts =
          og % T === 0
            ? groupResponses(e, this.pk, L, weights, inputs, og, s, floodBits, ctx.random, kernelKey)
            : await remote.get(og)!;
        ctx.peer.send(writeResponses(p, shape.op, og * L.tiles, cts));
        ms += now() - t;
        await yieldToLoop();
      }
    } finally {
      e.release(base);
    }
    this.computeMs = ms;
    return s;
  }
}

/** Every output of the layer is kept by exactly one response coefficient: no value of s masks two coefficients. */
function onceEach(L: ConvLayout, outSize: number, what: string): void {
  const seen = new Uint8Array(outSize);
  for (let og = 0; og < L.outGroups; og++) {
    for (let tile = 0; tile < L.tiles; tile++) {
      for (const o of L.output(tile, og).src) {
        if (!(o < outSize) || seen[o]) throw new Error(`${what}: output ${o} is kept twice or lies outside the layer`);
        seen[o] = 1;
      }
    }
  }
  if (seen.indexOf(0) >= 0) throw new Error(`${what}: output ${seen.indexOf(0)} is not kept by any response`);
}

/** Layers whose weights were checked against a bound (the check scans every weight once). */
const checked = new WeakMap<RingLinear, number>();

/** The layer's integer weights, checked against the public bound the noise budget assumes. Ring layers are typed
 * by their fields (RingConv2d: weight and geometry g; RingFc: weight), not imported: this module stays free of the
 * tensor engine, for the browser client. */
function weightsOf(layer: RingLinear, shape: LinearShape): Float64Array {
  const l = layer as RingLinear & { weight?: unknown; g?: ConvGeometry };
  if (!(l.weight instanceof Float64Array))
    throw new Error(`he: ${shape.name}: the server's layer has no integer weights`);
  if (!!l.g !== !!shape.geom)
    throw new Error(`he: ${shape.name}: the plan's op and the server's layer differ (conv / fc)`);
  const w = l.weight;
  const g = shape.geom,
    want = g ? g.outShape[0] * (g.inShape[0] / g.groups) * g.kernel ** 2 : shape.inSize * shape.outSize;
  if (w.length !== want) {
    throw new Error(`he: ${shape.name}: ${w.length} weights do not match the plan's shape`);
  }
  if (checked.get(layer) !== shape.maxWeight) {
    for (let i = 0; i < w.length; i++) {
      if (!(Math.abs(w[i]!) <= shape.maxWeight))
        throw new Error(`he: ${shape.name}: weight ${i} = ${w[i]} exceeds the plan's bound ${shape.maxWeight}`);
    }
    checked.set(layer, shape.maxWeight);
  }
  return w;
}
