// The two-party protocol (Delphi, semi-honest). Invariant: for every value v of the plan the client holds a share
// c_v that it knows OFFLINE (a function of its own masks and the preprocessing), and the server holds v - c_v,
// computed ONLINE. Hence
//   input:   client draws c_0, sends x - c_0 online;
//   conv/fc: client c_out = M c_in - s (preprocessing), server M (v_in - c_in) + bias + s;
//   add/pool/flatten: both apply the op to their own shares; culled sites: local share truncation;
//   ReLU:    the server garbles offline a circuit with inputs a (server share), b (client share) and r (client's
//            fresh mask); the client gets labels for b and r by correlated OT offline and the labels of a online,
//            evaluates, and returns the output colour bits; the server decodes z = (ReLU(v) >> shift) - r. The
//            client never holds decode bits, so it learns nothing; the server sees only values masked by c or r.
//   output:  the server sends its share of the logits; the client adds its own.
// Messages, in order (C = client, S = server, D = dealer, a third party: dealer.ts):
//   setup:   C hello (JSON, with a random session id), S plan (JSON); C and S each open their own channel to D and
//            send it the session id; 128 base OTs (OT extension setup)
//   offline: per conv/fc the preprocessor's messages (dealer: D -> S s, C -> D c, D -> C M c - s; nothing between
//            C and S); per ReLU batch C OT matrix, S garbled tables (no decode bits)
//   online:  C input share; per ReLU op S labels of a (one message, a part per batch), C colour bits;
//            S output share; S its per-op report (JSON)
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Channel, ChannelStats } from './transport.js';
import { diffStats, listenTcp, unpackParts, type TcpListener } from './transport.js';
import { Garbler, evaluateDecoded, type GarbledBatch, type GarbledMaterial } from './gc/garble.js';
import { bitsToRing } from './gc/ring.js';
import type { Circuit } from './gc/circuit.js';
import { OtExtReceiver, OtExtSender } from './ot/iknp.js';
import {
  dequantize, quantize, r64Add, r64FromBytes, r64Low, r64Random, r64Sub, r64ToBig, r64ToBytes, type R64,
} from './fixed.js';
import { addChannelBias, checkPlan, localOp, PublicOps, type PublicPlan, type ServerModel } from './plan.js';
import { delphiReluCircuit } from './relucircuit.js';
import { makePreprocessor, type LinearShape, type PreprocessContext, type Preprocessor } from './preprocess.js';
import { checkSessionId, joinDealer, modelFingerprint, type DealerLink } from './dealer.js';
import { guarded, recvChecked, recvJsonChecked } from './wire.js';

export const PROTOCOL = 'deepreduce-pi/2'; // 2: the hello carries the dealer session id

export type Phase = 'setup' | 'offline' | 'online';

export interface StatEntry {
  phase: Phase;
  /** Plan op index (-1 for session-level steps). */
  op: number;
  name: string;
  kind: string;
  ms: number;
  bytesSent: number;
  bytesRecv: number;
  rounds: number;
  relus: number;
  macs: number;
  /** Bytes on this party's channel to the dealer (third-party preprocessing), not included in bytesSent/bytesRecv. */
  prepSent: number;
  prepRecv: number;
}

export interface PartyReport {
  role: 'server' | 'client';
  entries: StatEntry[];
  /** Wall time per phase as this party saw it, its bytes / rounds with the other party, and its dealer bytes. */
  phases: Record<Phase, { ms: number; bytesSent: number; bytesRecv: number; rounds: number; prepSent: number; prepRecv: number }>;
}

const noStats: ChannelStats = { bytesSent: 0, bytesRecv: 0, msgsSent: 0, msgsRecv: 0, rounds: 0 };

class Recorder {
  readonly entries: StatEntry[] = [];
  private phaseStart = new Map<Phase, { t: number; s: ChannelStats; d: ChannelStats }>();
  readonly phases = {} as PartyReport['phases'];
  /** This party's channel to the dealer, once open (its traffic is counted apart). */
  dealer: Channel | null = null;
  constructor(private readonly ch: Channel, readonly role: 'server' | 'client') {}
  private dstats(): ChannelStats {
    return this.dealer ? this.dealer.stats() : noStats;
  }
  begin(p: Phase): void {
    this.phaseStart.set(p, { t: performance.now(), s: this.ch.stats(), d: this.dstats() });
  }
  end(p: Phase): void {
    const b = this.phaseStart.get(p)!, d = diffStats(this.ch.stats(), b.s), dd = diffStats(this.dstats(), b.d);
    this.phases[p] = { ms: performance.now() - b.t, bytesSent: d.bytesSent, bytesRecv: d.bytesRecv, rounds: d.rounds, prepSent: dd.bytesSent, prepRecv: dd.bytesRecv };
  }
  async step<T>(phase: Phase, op: number, name: string, kind: string, cost: { relus?: number; macs?: number }, fn: () => Promise<T> | T): Promise<T> {
    const s0 = this.ch.stats(), d0 = this.dstats(), t0 = performance.now();
    const r = await fn();
    const d = diffStats(this.ch.stats(), s0), dd = diffStats(this.dstats(), d0);
    this.entries.push({
      phase, op, name, kind, ms: performance.now() - t0, bytesSent: d.bytesSent, bytesRecv: d.bytesRecv, rounds: d.rounds,
      relus: cost.relus ?? 0, macs: cost.macs ?? 0, prepSent: dd.bytesSent, prepRecv: dd.bytesRecv,
    });
    return r;
  }
  report(): PartyReport {
    return { role: this.role, entries: this.entries, phases: this.phases };
  }
}

export interface SessionOptions {
  /** Preprocessor name (both sides must agree), default 'dealer'. */
  preprocess?: string;
  /** ReLUs per garbled batch (one OT batch, one tables message); default 16384. */
  batch?: number;
  /** This party's link to the dealer (needed by `--preprocess dealer`). */
  dealer?: DealerLink;
}

const DEFAULT_BATCH = 16384;

function batches(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  return out;
}

const sliceR = (x: R64, a: number, b: number): R64 => ({ lo: x.lo.subarray(a, b), hi: x.hi.subarray(a, b) });

function macsOf(plan: PublicPlan, i: number): number {
  const o = plan.ops[i]!;
  if (o.op === 'conv') return o.size * (o.geom.inShape[0] / o.geom.groups) * o.geom.kernel ** 2;
  if (o.op === 'fc') return o.size * o.inSize;
  return 0;
}

function linearShape(plan: PublicPlan, i: number): LinearShape {
  const o = plan.ops[i]!;
  if (o.op !== 'conv' && o.op !== 'fc') throw new Error(`plan op ${i} is not a secret linear layer`);
  return { op: i, name: o.name, inSize: plan.ops[o.input]!.size, outSize: o.size };
}

/** Bits of x's low `width` bits, wire-major (bit j of element i at offset + j*n + i), into packed `out`. */
function packBits(x: R64, width: number, out: Uint8Array, offset: number): void {
  const n = x.lo.length;
  for (let j = 0; j < width; j++) {
    const src = j < 32 ? x.lo : x.hi, sh = j & 31;
    for (let i = 0; i < n; i++) {
      const idx = offset + j * n + i;
      out[idx >>> 3]! |= ((src[i]! >>> sh) & 1) << (idx & 7);
    }
  }
}

/** Garbler input values for encode(): exact doubles up to 53 bits, BigInt beyond. */
function encodeValues(x: R64, width: number): Float64Array | BigUint64Array {
  return width <= 53 ? r64Low(x, width) : BigUint64Array.from(r64ToBig(x), (v) => BigInt.asUintN(64, v));
}

const HEADER_BYTES = 32; // garble.ts material header: magic, n, tweakBase (2 words), numAnd, numOutputWires, digest[8]
const MAGIC = 0x314d4347;

/** A tables-only material message (header + tables, no decode bits) as a GarbledMaterial whose decode bits are 0. */
function parseTables(c: Circuit, msg: Uint8Array, n: number, what: string): GarbledMaterial {
  const expected = HEADER_BYTES + c.numAnd * n * 32;
  if (msg.byteLength !== expected) throw new Error(`malformed message: ${what}: expected ${expected} bytes (${n} circuits of ${c.numAnd} ANDs), got ${msg.byteLength}`);
  const bytes = (msg.byteOffset & 3) === 0 ? msg : msg.slice();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const digest = Buffer.from(bytes.subarray(24, 32)).toString('hex');
  if (dv.getUint32(0, true) !== MAGIC || dv.getUint32(4, true) !== n || dv.getUint32(16, true) !== c.numAnd || digest !== c.digest.slice(0, 16)) {
    throw new Error(`malformed message: ${what}: header is not for ${n} instances of circuit ${c.name}`);
  }
  return {
    n, tweakBase: dv.getUint32(8, true) + dv.getUint32(12, true) * 4294967296, bytes,
    tables: new Int32Array(bytes.buffer, bytes.byteOffset + HEADER_BYTES, c.numAnd * n * 8),
    // All-zero decode bits: evaluateDecoded then yields the output labels' colour bits, which go to the server.
    decode: new Uint8Array(Math.ceil((c.numOutputWires * n) / 8)),
  };
}

function xorWords(a: R64, b: { lo: Uint32Array; hi: Uint32Array }): R64 {
  const n = a.lo.length, lo = new Uint32Array(n), hi = new Uint32Array(n);
  for (let i = 0; i < n; i++) { lo[i] = a.lo[i]! ^ b.lo[i]!; hi[i] = a.hi[i]! ^ b.hi[i]!; }
  return { lo, hi };
}

interface Hello { protocol: string; preprocess: string; session: string }

function needDealer(o: SessionOptions): DealerLink {
  if (!o.dealer) throw new Error(`preprocessing 'dealer' needs the dealer's address (--dealer HOST:PORT; start one with 'deepreduce pi dealer')`);
  return o.dealer;
}

// ------------------------------------------------------------------------------------------------ server

interface ServerReluBatch {
  /** For encode(): circuit, n and the zero labels of 'a' only (tables and other labels are dropped). */
  enc: GarbledBatch;
  decode: Uint8Array;
}

/** Serves one client session on `ch`; returns the server's report. Throws (after telling the peer) on any fault. */
export function serveClient(ch0: Channel, model: ServerModel, o: SessionOptions = {}): Promise<PartyReport> {
  return guarded(ch0, 'server', async (ch, adopt) => {
    const { plan, secret } = model;
    const rec = new Recorder(ch, 'server');
    const batch = o.batch ?? DEFAULT_BATCH;
    rec.begin('setup');
    const hello = await recvJsonChecked<Hello>(ch, 'hello');
    if (!hello || hello.protocol !== PROTOCOL) throw new Error(`client speaks protocol '${String(hello?.protocol)}', expected '${PROTOCOL}'`);
    const prep: Preprocessor = makePreprocessor(hello.preprocess);
    if (o.preprocess && o.preprocess !== prep.name) throw new Error(`client asks for preprocessing '${prep.name}', this server uses '${o.preprocess}'`);
    const session = checkSessionId(hello.session, 'client hello');
    ch.sendJson({ plan, batch });
    const ctx: PreprocessContext = { peer: ch, dealer: null };
    if (prep.needsDealer) {
      ctx.dealer = rec.dealer = adopt(await joinDealer(needDealer(o), 'server', session, { plan, weights: modelFingerprint(model) }));
    }
    const garbler = new Garbler();
    const ot = await rec.step('setup', -1, 'base OT', 'ot', {}, () => OtExtSender.setup(ch, { delta: garbler.delta }));
    rec.end('setup');

    rec.begin('offline');
    const prepS: (R64 | null)[] = plan.ops.map(() => null);
    const relu: (ServerReluBatch[] | null)[] = plan.ops.map(() => null);
    for (let i = 0; i < plan.ops.length; i++) {
      const op = plan.ops[i]!;
      if (op.op === 'conv' || op.op === 'fc') {
        prepS[i] = await rec.step('offline', i, op.name, op.op, { macs: macsOf(plan, i) }, () => prep.server(ctx, linearShape(plan, i), secret[i]!.linear));
      } else if (op.op === 'relu') {
        const c = delphiReluCircuit(op.width, op.shift), w = op.width;
        relu[i] = await rec.step('offline', i, op.name, 'relu', { relus: op.size }, async () => {
          const out: ServerReluBatch[] = [];
          for (const [s, e] of batches(op.size, batch)) {
            const nb = e - s;
            const zero = await ot.sendCorrelated(nb * (w + 64));
            const gb = garbler.garble(c, nb, { b: zero.subarray(0, w * nb * 16), r: zero.subarray(w * nb * 16) });
            ch.send(gb.material.bytes.subarray(0, HEADER_BYTES + c.numAnd * nb * 32));
            out.push({ enc: { circuit: c, n: nb, material: gb.material, zero: { a: gb.zero.a! } }, decode: gb.material.decode.slice() });
            // Drop the tables (the server needs only the labels of 'a' and the decode bits online).
            (out[out.length - 1]!.enc as { material: unknown }).material = null;
          }
          return out;
        });
      }
    }
    rec.end('offline');

    rec.begin('online');
    const pub = new PublicOps(plan);
    const vals: R64[] = [];
    try {
      for (let i = 0; i < plan.ops.length; i++) {
        const op = plan.ops[i]!;
        if (op.op === 'input') {
          vals.push(await rec.step('online', i, 'input', 'input', {}, async () =>
            r64FromBytes(await recvChecked(ch, 'online: input share', 8 * op.size), op.size, 'online: input share')));
        } else if (op.op === 'conv' || op.op === 'fc') {
          vals.push(await rec.step('online', i, op.name, op.op, { macs: macsOf(plan, i) }, () => {
            const s = secret[i]!;
            const y = s.linear.apply(vals[op.input]!);
            return r64Add(op.op === 'conv' ? addChannelBias(y, s.bias, op.shape) : r64Add(y, s.bias), prepS[i]!);
          }));
        } else if (op.op === 'relu') {
          vals.push(await rec.step('online', i, op.name, 'relu', { relus: op.size }, async () => {
            const x = vals[op.input]!, bs = relu[i]!;
            ch.sendParts(bs.map((b, k) => garbler.encode(b.enc, 'a', encodeValues(sliceR(x, k * batch, k * batch + b.enc.n), op.width))));
            const colour = r64FromBytes(await recvChecked(ch, `online: ${op.name}: output colour bits`, 8 * op.size), op.size, `online: ${op.name}: output colour bits`);
            const z: R64 = { lo: new Uint32Array(op.size), hi: new Uint32Array(op.size) };
            bs.forEach((b, k) => {
              const d = bitsToRing(b.decode, 64, b.enc.n), s = k * batch;
              const part = xorWords(sliceR(colour, s, s + b.enc.n), d);
              z.lo.set(part.lo, s);
              z.hi.set(part.hi, s);
            });
            relu[i] = null;
            return z;
          }));
        } else {
          vals.push(localOp(pub, i, vals, 'server'));
        }
      }
    } finally {
      pub.dispose();
    }
    await rec.step('online', -1, 'output', 'output', {}, () => ch.send(r64ToBytes(vals[vals.length - 1]!)));
    rec.end('online');
    const report = rec.report();
    ch.sendJson(report);
    await ch.flush();
    return report;
  });
}

export interface ServeOptions extends SessionOptions {
  port: number;
  host?: string;
  onSession?: (r: PartyReport, ch: Channel) => void;
  onError?: (e: Error, ch: Channel) => void;
}

/** Serves clients concurrently over TCP; a failing session is reported and closed, the listener goes on. */
export function servePi(model: ServerModel, o: ServeOptions): Promise<TcpListener> {
  if (o.dealer) modelFingerprint(model); // once, before serving (it applies every layer)
  return listenTcp({ port: o.port, host: o.host, onError: o.onError }, async (ch) => {
    const r = await serveClient(ch, model, o);
    o.onSession?.(r, ch);
    ch.close();
  });
}

// ------------------------------------------------------------------------------------------------ client

export interface ClientResult {
  logits: Float64Array;
  /** Output as ring values and its scale (fractional bits). */
  out: R64;
  scale: number;
  plan: PublicPlan;
  client: PartyReport;
  server: PartyReport;
}

interface ClientRelu {
  c: Circuit;
  mats: GarbledMaterial[];
  labels: { b: Uint8Array; r: Uint8Array }[];
}

/**
 * Runs a query: `image` is the preprocessed (normalised, padded) CHW float image the plan's input expects, or a
 * function that makes it from the plan (whose `input` carries the model's normalisation).
 */
export function runClient(ch0: Channel, imageOrFn: ArrayLike<number> | ((plan: PublicPlan) => ArrayLike<number>), o: SessionOptions = {}): Promise<ClientResult> {
  return guarded(ch0, 'client', async (ch, adopt) => {
    const rec = new Recorder(ch, 'client');
    const prep = makePreprocessor(o.preprocess ?? 'dealer');
    const link = prep.needsDealer ? needDealer(o) : null;
    rec.begin('setup');
    const session = randomBytes(16).toString('hex');
    ch.sendJson({ protocol: PROTOCOL, preprocess: prep.name, session } satisfies Hello);
    const got = await recvJsonChecked<{ plan: unknown; batch: unknown }>(ch, 'plan');
    const plan = checkPlan(got?.plan, `${ch.name}: plan`);
    const batch = got.batch;
    if (typeof batch !== 'number' || !Number.isInteger(batch) || batch < 1) throw new Error(`${ch.name}: malformed message: plan: batch size ${String(batch)}`);
    const in0 = plan.ops[0]!;
    const image = typeof imageOrFn === 'function' ? imageOrFn(plan) : imageOrFn;
    if (image.length !== in0.size) throw new Error(`client: image has ${image.length} values, the model expects ${in0.size} [${in0.shape}]`);
    const ctx: PreprocessContext = { peer: ch, dealer: null };
    if (link) ctx.dealer = rec.dealer = adopt(await joinDealer(link, 'client', session, { plan }));
    const ot = await rec.step('setup', -1, 'base OT', 'ot', {}, () => OtExtReceiver.setup(ch));
    rec.end('setup');

    rec.begin('offline');
    const pub = new PublicOps(plan);
    const cv: R64[] = [];
    const relu: (ClientRelu | null)[] = plan.ops.map(() => null);
    try {
      for (let i = 0; i < plan.ops.length; i++) {
        const op = plan.ops[i]!;
        if (op.op === 'input') cv.push(r64Random(op.size));
        else if (op.op === 'conv' || op.op === 'fc') {
          cv.push(await rec.step('offline', i, op.name, op.op, { macs: macsOf(plan, i) }, () => prep.client(ctx, linearShape(plan, i), cv[op.input]!)));
        } else if (op.op === 'relu') {
          const c = delphiReluCircuit(op.width, op.shift), w = op.width;
          const r = r64Random(op.size), x = cv[op.input]!;
          relu[i] = await rec.step('offline', i, op.name, 'relu', { relus: op.size }, async () => {
            const st: ClientRelu = { c, mats: [], labels: [] };
            for (const [s, e] of batches(op.size, batch)) {
              const nb = e - s, m = nb * (w + 64);
              const bits = new Uint8Array(Math.ceil(m / 8));
              packBits(sliceR(x, s, e), w, bits, 0);
              packBits(sliceR(r, s, e), 64, bits, w * nb);
              const lab = await ot.receiveCorrelated(bits, m);
              st.labels.push({ b: lab.subarray(0, w * nb * 16), r: lab.subarray(w * nb * 16) });
              st.mats.push(parseTables(c, await recvChecked(ch, `offline: ${op.name}: garbled tables`), nb, `offline: ${op.name}: garbled tables`));
            }
            return st;
          });
          cv.push(r);
        } else cv.push(localOp(pub, i, cv, 'client'));
      }
    } finally {
      pub.dispose();
    }
    rec.end('offline');

    rec.begin('online');
    await rec.step('online', 0, 'input', 'input', {}, () => ch.send(r64ToBytes(r64Sub(quantize(image, in0.scale, 'client: input'), cv[0]!))));
    for (let i = 0; i < plan.ops.length; i++) {
      const op = plan.ops[i]!;
      if (op.op !== 'relu') continue;
      await rec.step('online', i, op.name, 'relu', { relus: op.size }, async () => {
        const st = relu[i]!;
        const what = `online: ${op.name}: labels of the server's share`;
        const parts = unpackParts(await recvChecked(ch, what), `${ch.name}: malformed message: ${what}`);
        if (parts.length !== st.mats.length) throw new Error(`${ch.name}: malformed message: online: ${op.name}: ${parts.length} label parts, expected ${st.mats.length}`);
        const colour: R64 = { lo: new Uint32Array(op.size), hi: new Uint32Array(op.size) };
        let s = 0;
        st.mats.forEach((m, k) => {
          const want = op.width * m.n * 16;
          if (parts[k]!.byteLength !== want) throw new Error(`${ch.name}: malformed message: online: ${op.name}: label part ${k} has ${parts[k]!.byteLength} bytes, expected ${want}`);
          const d = evaluateDecoded(st.c, m, { a: parts[k]!, b: st.labels[k]!.b, r: st.labels[k]!.r });
          colour.lo.set(d.lo, s);
          colour.hi.set(d.hi, s);
          s += m.n;
        });
        relu[i] = null;
        ch.send(r64ToBytes(colour));
      });
    }
    const last = plan.ops[plan.ops.length - 1]!;
    const out = await rec.step('online', -1, 'output', 'output', {}, async () =>
      r64Add(r64FromBytes(await recvChecked(ch, 'online: output share', 8 * last.size), last.size, 'online: output share'), cv[cv.length - 1]!));
    rec.end('online');
    const server = await recvJsonChecked<PartyReport>(ch, 'server report');
    return { logits: dequantize(out, last.scale), out, scale: last.scale, plan, client: rec.report(), server };
  });
}
