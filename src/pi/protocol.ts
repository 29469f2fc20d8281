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
// How a kept ReLU is computed is the ReLU protocol's business (relu/: gc, ...); how the linear layers' offline
// correlations are made is the preprocessor's (linear/: dealer, ...).
// Messages, in order (C = client, S = server, D = dealer, a third party: linear/dealer/dealer.ts):
//   setup:   C hello (JSON, with a random session id), S plan (JSON); C and S each open their own channel to D and
//            send it the session id; 128 base OTs (OT extension setup)
//   offline: per conv/fc the preprocessor's messages (dealer: D -> S s, C -> D c, D -> C M c - s; nothing between
//            C and S); per ReLU batch C OT matrix, S garbled tables (no decode bits)
//   online:  C input share; per ReLU op S labels of a (one message, a part per batch), C colour bits;
//            S output share; S its per-op report (JSON)
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Channel, ChannelStats } from './transport/channel.js';
import { diffStats } from './transport/channel.js';
import { listenTcp, type TcpListener } from './transport/tcp.js';
import { shapeChannel, type LinkProfile } from './transport/shaping.js';
import {
  dequantize, quantize, r64Add, r64FromBytes, r64Random, r64Sub, r64ToBytes, type R64,
} from './fixed.js';
import { addChannelBias, checkPlan, localOp, PublicOps, type PublicPlan, type ServerModel } from './plan.js';
import { makePreprocessor, type LinearShape, type PreprocessContext, type Preprocessor } from './linear/index.js';
import { checkSessionId, joinDealer, modelFingerprint, type DealerLink } from './linear/dealer/dealer.js';
import { makeReluProtocol } from './relu/registry.js';
import type { ReluSite } from './relu/index.js';
import { guarded, recvChecked, recvJsonChecked } from './wire.js';

export const PROTOCOL = 'deepreduce-pi/3'; // 3: the hello names the ReLU protocol

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
  /** ReLU protocol name (both sides must agree), default 'gc'. */
  relu?: string;
  /** ReLUs per batch (GC: one OT batch, one tables message); default 16384. */
  batch?: number;
  /** This party's link to the dealer (needed by `--preprocess dealer`). */
  dealer?: DealerLink;
}

const DEFAULT_BATCH = 16384;

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

interface Hello { protocol: string; preprocess: string; relu: string; session: string }

const reluSite = (plan: PublicPlan, i: number): ReluSite => {
  const o = plan.ops[i]!;
  if (o.op !== 'relu') throw new Error(`plan op ${i} is not a kept ReLU`);
  return { op: i, name: o.name, size: o.size, width: o.width, shift: o.shift };
};

function needDealer(o: SessionOptions): DealerLink {
  if (!o.dealer) throw new Error(`preprocessing 'dealer' needs the dealer's address (--dealer HOST:PORT; start one with 'deepreduce pi dealer')`);
  return o.dealer;
}

// ------------------------------------------------------------------------------------------------ server

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
    const reluProto = makeReluProtocol(hello.relu);
    if (o.relu && o.relu !== reluProto.name) throw new Error(`client asks for ReLU protocol '${reluProto.name}', this server uses '${o.relu}'`);
    const session = checkSessionId(hello.session, 'client hello');
    ch.sendJson({ plan, batch });
    const ctx: PreprocessContext = { peer: ch, dealer: null };
    if (prep.needsDealer) {
      ctx.dealer = rec.dealer = adopt(await joinDealer(needDealer(o), 'server', session, { plan, weights: modelFingerprint(model) }));
    }
    const relu = await rec.step('setup', -1, `${reluProto.name} set-up`, 'ot', {}, () => reluProto.server(ch, { batch }));
    rec.end('setup');

    rec.begin('offline');
    const prepS: (R64 | null)[] = plan.ops.map(() => null);
    for (let i = 0; i < plan.ops.length; i++) {
      const op = plan.ops[i]!;
      if (op.op === 'conv' || op.op === 'fc') {
        prepS[i] = await rec.step('offline', i, op.name, op.op, { macs: macsOf(plan, i) }, () => prep.server(ctx, linearShape(plan, i), secret[i]!.linear));
      } else if (op.op === 'relu') {
        await rec.step('offline', i, op.name, 'relu', { relus: op.size }, () => relu.offline(reluSite(plan, i)));
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
          vals.push(await rec.step('online', i, op.name, 'relu', { relus: op.size }, () => relu.online(reluSite(plan, i), vals[op.input]!)));
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
  /** Shapes the server's sends to each client as over this link (benchmarks; null or absent: no shaping). */
  link?: LinkProfile | null;
  onSession?: (r: PartyReport, ch: Channel) => void;
  onError?: (e: Error, ch: Channel) => void;
}

/** Serves clients concurrently over TCP; a failing session is reported and closed, the listener goes on. */
export function servePi(model: ServerModel, o: ServeOptions): Promise<TcpListener> {
  if (o.dealer) modelFingerprint(model); // once, before serving (it applies every layer)
  return listenTcp({ port: o.port, host: o.host, onError: o.onError }, async (ch) => {
    const r = await serveClient(shapeChannel(ch, o.link ?? null), model, o);
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

/**
 * Runs a query: `image` is the preprocessed (normalised, padded) CHW float image the plan's input expects, or a
 * function that makes it from the plan (whose `input` carries the model's normalisation).
 */
export function runClient(ch0: Channel, imageOrFn: ArrayLike<number> | ((plan: PublicPlan) => ArrayLike<number>), o: SessionOptions = {}): Promise<ClientResult> {
  return guarded(ch0, 'client', async (ch, adopt) => {
    const rec = new Recorder(ch, 'client');
    const prep = makePreprocessor(o.preprocess ?? 'dealer');
    const reluProto = makeReluProtocol(o.relu ?? 'gc');
    const link = prep.needsDealer ? needDealer(o) : null;
    rec.begin('setup');
    const session = randomBytes(16).toString('hex');
    ch.sendJson({ protocol: PROTOCOL, preprocess: prep.name, relu: reluProto.name, session } satisfies Hello);
    const got = await recvJsonChecked<{ plan: unknown; batch: unknown }>(ch, 'plan');
    const plan = checkPlan(got?.plan, `${ch.name}: plan`);
    const batch = got.batch;
    if (typeof batch !== 'number' || !Number.isInteger(batch) || batch < 1) throw new Error(`${ch.name}: malformed message: plan: batch size ${String(batch)}`);
    const in0 = plan.ops[0]!;
    const image = typeof imageOrFn === 'function' ? imageOrFn(plan) : imageOrFn;
    if (image.length !== in0.size) throw new Error(`client: image has ${image.length} values, the model expects ${in0.size} [${in0.shape}]`);
    const ctx: PreprocessContext = { peer: ch, dealer: null };
    if (link) ctx.dealer = rec.dealer = adopt(await joinDealer(link, 'client', session, { plan }));
    const relu = await rec.step('setup', -1, `${reluProto.name} set-up`, 'ot', {}, () => reluProto.client(ch, { batch }));
    rec.end('setup');

    rec.begin('offline');
    const pub = new PublicOps(plan);
    const cv: R64[] = [];
    try {
      for (let i = 0; i < plan.ops.length; i++) {
        const op = plan.ops[i]!;
        if (op.op === 'input') cv.push(r64Random(op.size));
        else if (op.op === 'conv' || op.op === 'fc') {
          cv.push(await rec.step('offline', i, op.name, op.op, { macs: macsOf(plan, i) }, () => prep.client(ctx, linearShape(plan, i), cv[op.input]!)));
        } else if (op.op === 'relu') {
          cv.push(await rec.step('offline', i, op.name, 'relu', { relus: op.size }, () => relu.offline(reluSite(plan, i), cv[op.input]!)));
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
      await rec.step('online', i, op.name, 'relu', { relus: op.size }, () => relu.online(reluSite(plan, i)));
    }
    const last = plan.ops[plan.ops.length - 1]!;
    const out = await rec.step('online', -1, 'output', 'output', {}, async () =>
      r64Add(r64FromBytes(await recvChecked(ch, 'online: output share', 8 * last.size), last.size, 'online: output share'), cv[cv.length - 1]!));
    rec.end('online');
    const server = await recvJsonChecked<PartyReport>(ch, 'server report');
    return { logits: dequantize(out, last.scale), out, scale: last.scale, plan, client: rec.report(), server };
  });
}
