// The two-party protocol (Delphi, semi-honest). Invariant: for every value v of the plan the client holds a share
// c_v that it knows OFFLINE (a function of its own masks and the preprocessing), and the server holds v - c_v,
// computed ONLINE. Hence
//   input:   client draws c_0, sends x - c_0 online;
//   conv/fc: client c_out = M c_in - s (preprocessing), server M (v_in - c_in) + bias + s;
//   add/pool/flatten: both apply the op to their own shares; culled sites: local share truncation;
//   ReLU:    the ReLU protocol (relu/: ot, the default, or gc) leaves the server with ReLU(v) >> shift - r and the
//            client with r, its fresh mask drawn offline; the server sees only values masked by c, r or OT pads.
//            A partial site (plan op with `kept`) runs the protocol on its kept elements only; the others are
//            truncated locally as at a culled site (relu/partial.ts).
//   maxpool: a comparison tree per window, one ReLU-protocol batch per level on differences of shares (shift 0),
//            max(a, b) = b + ReLU(a − b): the client's share of each level is b's plus its mask r (relu/maxpool.ts).
//   output:  the server sends its share of the logits; the client adds its own.
// How a kept ReLU is computed is the ReLU protocol's business (relu/: ot, gc); how the linear layers' offline
// correlations are made is the preprocessor's (linear/: he, the default, and dealer).
// Messages, in order (C = client, S = server, D = dealer, a third party only with dealer preprocessing:
// linear/dealer/dealer.ts):
//   setup:   C hello (JSON, with a random session id), S plan (JSON, with the offline schedule); for dealer, C and S each open their own channel
//            to D and send it the session id; the ReLU protocol's set-up (128 base OTs, OT extensions)
//   offline: first per conv/fc the preprocessor's messages (he: C -> S its public key before the first layer, C -> S
//            the encrypted share c, S -> C Enc(M c - s) per output group, the client one layer ahead: it sends the
//            next layer's c before it reads this layer's responses where its share allows; dealer: D -> S s, C -> D c,
//            D -> C M c - s, nothing between C and S); then per ReLU op the protocol's offline messages (ot: OT
//            matrices both ways; gc: C OT matrix, S garbled tables)
//   online:  C input share; per ReLU op the protocol's online messages (ot: 6 flights; gc: S labels of a, C colour
//            bits); S output share; S its per-op report (JSON)
// A streamed schedule (schedule.ts: --offline layer or a budget) runs offline then online per segment of the plan.
// Every state has a frame limit (a small one before the hello / the plan, then per phase the largest message that
// phase or a later one implies, and exact sizes at each receive), every phase a deadline, and every wait an idle timeout; a party
// that fails tells the other only an error code (wire.ts). All coins come from the session's randomness (random.ts).
import type { Channel, ChannelMemory, ChannelStats } from './transport/channel.js';
import { diffStats } from './transport/channel.js';
import { dequantize, quantize, r64Add, r64FromBytes, r64Sub, r64ToBytes, type R64 } from './fixed.js';
import {
  addChannelBias,
  checkPlan,
  localOp,
  maxPoolCount,
  maxPoolSites,
  maxPoolTree,
  opInputs,
  reluCount,
  reluElements,
  remaskedLinears,
  DEFAULT_PLAN_BOUNDS,
  type PlanBounds,
  type PublicPlan,
  type ServerModel,
} from './plan.js';
import {
  DEFAULT_PREPROCESS,
  linearShape,
  linearShapes,
  makePreprocessor,
  type PendingLinear,
  type PreprocessContext,
  type Preprocessor,
} from './linear/index.js';
import type { HeParallel } from './linear/he/preprocess.js';
import type { KkPlanesHelper } from './ot/kkot.js';
import { checkSessionId, joinDealer, modelFingerprint, type DealerLink } from './linear/dealer/link.js';
import { DEFAULT_RELU, makeReluProtocol } from './relu/registry.js';
import type { ReluClient, ReluProtocol, ReluServer, ReluSite } from './relu/index.js';
import { clientOfflinePartial, clientPartialShare, serverOnlinePartial } from './relu/partial.js';
import {
  clientMaxPoolShares,
  clientOfflineMaxPool,
  clientOnlineMaxPool,
  serverOnlineMaxPool,
  type ClientMaxPool,
} from './relu/maxpool.js';
import { clientRandomness, serverRandomness, type ClientRandomness, type ServerRandomness } from './random.js';
import { toHex } from './crypto/backend.js';
import { ERROR_FRAME_MAX, guarded, malformed, PiError, recvChecked, recvJsonChecked } from './wire.js';
import { boundsOf, widest, type MessageBounds } from './messages.js';
import {
  checkOfflineWish,
  checkSchedule,
  lastUses,
  offlineMode,
  offlineWish,
  planDeadlines,
  planMaxBytes,
  planSchedule,
  releaseValues,
  segments,
  type OfflineMode,
  type OfflineWish,
} from './schedule.js';

export const PROTOCOL = 'deepreduce-pi/10'; // 10: HE over five primes (parameter set 0x48450003: other packings); 9: linear layers after a conv upload a fresh mask (re-masking differences offline); 8: a ReLU site's OT matrices two chunks in flight, silent COTs readied per two chunks; 7: the offline schedule (hello: offline; plan message: schedule); 6: base OTs over P-256

export type Phase = 'setup' | 'offline' | 'online';

/** Deadlines of a session, in milliseconds (each phase from its start; idle: any wait for the peer's next bytes). */
export interface Deadlines {
  /** Server: from the connection to the client's hello (TLS handshake: the listener's own deadline of the same length).
   *  Client: from connecting to the plan. */
  helloMs: number;
  /** Plan, dealer join, base OTs. */
  setupMs: number;
  /** The input-independent phase (preprocessing, garbling and OT for every ReLU). */
  offlineMs: number;
  /** From the end of the offline phase to the result (the server waits here for the client's input). */
  onlineMs: number;
  /** A wait for the peer with no byte arriving. */
  idleMs: number;
  /** Server: the idle timeout in the setup phase (a client that said hello and then nothing frees its slot). */
  setupIdleMs: number;
  /** Server: the idle timeout in the online phase (a client stalled after the offline phase frees its slot). */
  onlineIdleMs: number;
}

export const DEFAULT_DEADLINES: Deadlines = {
  helloMs: 5_000,
  setupMs: 60_000,
  offlineMs: 600_000,
  onlineMs: 120_000,
  idleMs: 60_000,
  setupIdleMs: 5_000,
  onlineIdleMs: 10_000,
};

/** Receive limits for a channel whose largest legitimate frame is `max`: at most two such frames buffered (or `buffered`). */
export const limitsFor = (max: number, state: string, buffered = 2 * max + 65536) => ({
  maxFrameBytes: max,
  maxBufferedBytes: buffered,
  state,
});

/** Frame limits before the protocol knows the plan: the client's hello, and the server's plan message. */
export const HELLO_MAX_BYTES = 4096;
export const PLAN_MAX_BYTES = planMaxBytes(DEFAULT_PLAN_BOUNDS);
/** Largest ReLU batch a client accepts from a server (it sizes the garbled-tables messages). */
export const MAX_BATCH = 1 << 20;

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
  /** This party's own compute inside the preprocessor (HE), when it measures it; part of `ms`. */
  computeMs?: number;
}

/** A party's memory for its session: peaks of what its channels buffered and of the protocol state it held. */
export interface SessionMemory {
  /** Bytes received and not yet read, at the peak (all of the session's channels). */
  peakBufferedIn: number;
  /** Bytes written and not yet sent, at the peak. */
  peakBufferedOut: number;
  /** Protocol state held (shares of every value, preprocessing, the ReLU protocol's kept material), at the peak. */
  peakHeldBytes: number;
  /** The phase in which the held state peaked. */
  peakHeldIn: Phase;
}

export interface PartyReport {
  role: 'server' | 'client';
  entries: StatEntry[];
  /** Wall time per phase as this party saw it, its bytes / rounds with the other party, and its dealer bytes. */
  phases: Record<
    Phase,
    { ms: number; bytesSent: number; bytesRecv: number; rounds: number; prepSent: number; prepRecv: number }
  >;
  memory: SessionMemory;
}

const noStats: ChannelStats = { bytesSent: 0, bytesRecv: 0, msgsSent: 0, msgsRecv: 0, rounds: 0 };

const r64Bytes = (vs: readonly (R64 | null | undefined)[]): number =>
  vs.reduce((a, v) => a + (v ? 8 * v.lo.length : 0), 0);

/** A session in progress, as its server sees it (servePi lists them; the log and the report take their peaks). */
export class SessionState {
  phase: Phase | 'hello' = 'hello';
  readonly startedAt = Date.now();
  /** Protocol state held now (bytes), set by the session as it goes. */
  heldBytes = 0;
  peakHeldBytes = 0;
  peakHeldIn: Phase = 'setup';
  readonly channels: Channel[] = [];
  constructor(readonly peer: string) {}
  /** Bytes buffered now on the session's channels (received unread, written unsent). */
  buffered(): { in: number; out: number } {
    return { in: this.sum('bufferedIn'), out: this.sum('bufferedOut') };
  }
  private sum(k: keyof ChannelMemory): number {
    return this.channels.reduce((a, c) => a + c.memory()[k], 0);
  }
  hold(bytes: number): void {
    this.heldBytes = bytes;
    if (bytes > this.peakHeldBytes && this.phase !== 'hello') {
      this.peakHeldBytes = bytes;
      this.peakHeldIn = this.phase;
    }
  }
  memory(): SessionMemory {
    const { peakHeldBytes, peakHeldIn } = this;
    return { peakBufferedIn: this.sum('peakIn'), peakBufferedOut: this.sum('peakOut'), peakHeldBytes, peakHeldIn };
  }
}

class Recorder {
  readonly entries: StatEntry[] = [];
  private phaseStart = new Map<Phase, { t: number; s: ChannelStats; d: ChannelStats }>();
  readonly phases = {} as PartyReport['phases'];
  /** This party's channel to the dealer, once open (its traffic is counted apart). */
  dealer: Channel | null = null;
  constructor(
    private readonly ch: Channel,
    readonly role: 'server' | 'client',
    private readonly state: SessionState,
    private readonly held: () => number,
    private readonly onStep?: (e: StatEntry) => void,
  ) {}
  private dstats(): ChannelStats {
    return this.dealer ? this.dealer.stats() : noStats;
  }
  begin(p: Phase): void {
    this.state.phase = p;
    this.phaseStart.set(p, { t: performance.now(), s: this.ch.stats(), d: this.dstats() });
  }
  end(p: Phase): void {
    this.state.hold(this.held());
    const b = this.phaseStart.get(p)!,
      d = diffStats(this.ch.stats(), b.s),
      dd = diffStats(this.dstats(), b.d);
    this.phases[p] = {
      ms: performance.now() - b.t,
      bytesSent: d.bytesSent,
      bytesRecv: d.bytesRecv,
      rounds: d.rounds,
      prepSent: dd.bytesSent,
      prepRecv: dd.bytesRecv,
    };
  }
  async step<T>(
    phase: Phase,
    op: number,
    name: string,
    kind: string,
    cost: { relus?: number; macs?: number },
    fn: () => Promise<T> | T,
    computeMs?: () => number | undefined,
  ): Promise<T> {
    const s0 = this.ch.stats(),
      d0 = this.dstats(),
      t0 = performance.now();
    const r = await fn();
    const d = diffStats(this.ch.stats(), s0),
      dd = diffStats(this.dstats(), d0),
      c = computeMs?.();
    const e: StatEntry = {
      phase,
      op,
      name,
      kind,
      ms: performance.now() - t0,
      bytesSent: d.bytesSent,
      bytesRecv: d.bytesRecv,
      rounds: d.rounds,
      relus: cost.relus ?? 0,
      macs: cost.macs ?? 0,
      prepSent: dd.bytesSent,
      prepRecv: dd.bytesRecv,
      ...(c !== undefined ? { computeMs: c } : {}),
    };
    this.entries.push(e);
    this.onStep?.(e);
    this.state.hold(this.held());
    return r;
  }
  report(): PartyReport {
    return { role: this.role, entries: this.entries, phases: this.phases, memory: this.state.memory() };
  }
}

/** Arms one deadline at a time; when it passes, every channel of the session fails with TIMEOUT. */
class PhaseClock {
  private timer: ReturnType<typeof setTimeout> | null = null;
  constructor(
    private readonly role: string,
    private readonly state: SessionState,
  ) {}
  enter(what: string, ms: number): void {
    this.stop();
    this.timer = setTimeout(() => {
      const err = new PiError(
        'TIMEOUT',
        `${this.role}: ${what} took longer than its deadline of ${(ms / 1e3).toFixed(1)} s`,
      );
      for (const c of this.state.channels) c.abort(err);
    }, ms);
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Test and monitoring hooks of a session (none changes what is sent). */
export interface SessionHooks {
  /** Each phase as it starts ('hello' first), and 'done'. */
  onPhase?(phase: Phase | 'hello' | 'done'): void;
  /** The ReLU protocol's half of this session, once set up. */
  onRelu?(half: ReluServer | ReluClient): void;
  /** Each op's share in plan order: the server's online shares, the client's offline shares. */
  onValue?(op: number, value: R64): void;
  /** The session's live state (servePi lists these). */
  onStart?(state: SessionState): void;
  /** Each measured step as it ends (a linear layer's preprocessing, a ReLU op's offline or online part, ...). */
  onStep?(e: StatEntry): void;
}

export interface SessionOptions {
  /** Preprocessor name (both sides must agree), default DEFAULT_PREPROCESS ('he'). */
  preprocess?: string;
  /** ReLU protocol name (the client asks for it, a server given one accepts only it), default DEFAULT_RELU ('ot'). */
  relu?: string;
  /** ReLUs per batch (GC: one OT batch, one tables message); default 16384. */
  batch?: number;
  /** This party's link to the dealer (needed by `--preprocess dealer`). */
  dealer?: DealerLink;
  deadlines?: Partial<Deadlines>;
  hooks?: SessionHooks;
  /** When to run the offline work (schedule.ts): the client asks for it, the server decides (default: the client's
   *  wish, else all before the image). */
  offline?: OfflineMode;
}

export interface ServerSessionOptions extends SessionOptions {
  /** The server's coins (default: the system CSPRNG). */
  random?: ServerRandomness;
  /** Admission past the hello: returns a release function, or null when the server is full (BUSY). */
  admit?: () => (() => void) | null;
  /** The retry hint a BUSY refusal carries (ms). */
  retryHintMs?: () => number;
  /** Send the client its per-op and per-phase timings and memory peaks in the report when it asks (default: never). */
  reportTimings?: boolean;
  /** The server's worker threads, shared by its sessions (Node: pi/workers WorkerPool): HE output groups, KK13 pads. */
  workers?: HeParallel & KkPlanesHelper;
}

export interface ClientSessionOptions extends SessionOptions {
  /** The client's masks and coins (default: the system CSPRNG). */
  random?: ClientRandomness;
  /** Bounds on the plan a server may send (default DEFAULT_PLAN_BOUNDS). */
  planBounds?: PlanBounds;
  /** Ask the server for its timings in the report (a server gives them only with reportTimings; zeros otherwise). */
  timings?: boolean;
}

const DEFAULT_BATCH = 16384;

function macsOf(plan: PublicPlan, i: number): number {
  const o = plan.ops[i]!;
  if (o.op === 'conv') return o.size * (o.geom.inShape[0] / o.geom.groups) * o.geom.kernel ** 2;
  if (o.op === 'fc') return o.size * o.inSize;
  return 0;
}

interface Hello {
  protocol: string;
  preprocess: string;
  relu: string;
  session: string;
  timings?: boolean;
  offline?: OfflineWish;
}

const reluSite = (plan: PublicPlan, i: number): ReluSite => {
  const o = plan.ops[i]!;
  if (o.op !== 'relu') throw new Error(`plan op ${i} is not a kept ReLU`);
  // A partial site: the protocol sees only its kept elements (relu/partial.ts).
  return { op: i, name: o.name, size: reluCount(o), width: o.width, shift: o.shift };
};

/** Every ReLU site of a session: the kept ReLU ops, and each max-pool op's levels. */
export const reluSites = (plan: PublicPlan): ReluSite[] =>
  plan.ops.flatMap((o, i) => (o.op === 'relu' ? [reluSite(plan, i)] : o.op === 'maxpool' ? maxPoolSites(plan, i) : []));

/** Upper bound on the server's report (JSON): a few entries per op, names of at most 256 characters. */
const reportMaxBytes = (plan: PublicPlan): number => 2048 * (2 * plan.ops.length + 8);

/** A receiver's limits in one phase: the largest frame each way and the most bytes each may hold unread. */
export interface PhaseLimits {
  toServer: number;
  toClient: number;
  bufferToServer: number;
  bufferToClient: number;
}

const PHASES: readonly Phase[] = ['setup', 'offline', 'online'];

/**
 * The frame limits of each phase of a session with this plan and options: the largest message each way that phase
 * or a later one can bring (the peer may run a phase ahead: e.g. the client's input share can arrive while the server
 * finishes its offline phase, so a phase's limit covers every later phase's messages; the online limit is the online
 * messages exactly), and the most bytes a receiver may legitimately hold unread (its buffer limit: two messages, or
 * two of the ReLU protocol's flights of several messages). `prep` is this party's preprocessor of the session (its
 * client half knows the packings it will ask for); its messages are all offline. An error frame always fits.
 */
export function sessionLimits(
  plan: PublicPlan,
  batch: number,
  relu: ReluProtocol,
  prep: Preprocessor,
  streamed = false,
): Record<Phase, PhaseLimits> {
  const rl = relu.maxMessageBytes(reluSites(plan), { batch });
  const pl = prep.maxMessageBytes(linearShapes(plan));
  // The client's re-masking differences: one message per such layer, sent back to back after the segment's answers.
  const remasked = remaskedLinears(plan);
  const rm = boundsOf(
    plan.ops.flatMap((o, i) =>
      remasked[i]
        ? [{ to: 'server' as const, bytes: 8 * plan.ops[(o as { input: number }).input]!.size, flight: 'remask' }]
        : [],
    ),
  );
  const last = plan.ops[plan.ops.length - 1]!;
  // What each phase alone brings each way (frames, flights).
  const own: Record<Phase, Required<MessageBounds>> = {
    setup: widest(rl.setup),
    offline: widest(rl.offline, pl, rm),
    // the session's own online messages: the client's input share, the server's output share and report
    online: widest(
      rl.online,
      boundsOf([
        { to: 'server', bytes: 8 * plan.ops[0]!.size },
        { to: 'client', bytes: 8 * last.size },
        { to: 'client', bytes: reportMaxBytes(plan) },
      ]),
    ),
  };
  // A streamed session's online phase carries the later layers' offline messages.
  if (streamed) own.online = widest(own.online, own.offline);
  const out = {} as Record<Phase, PhaseLimits>;
  PHASES.forEach((p, k) => {
    const later = PHASES.slice(k).map((q) => own[q]);
    const max = (f: (b: typeof own.setup) => number) => Math.max(...later.map(f));
    const toServer = Math.max(
        ERROR_FRAME_MAX,
        max((b) => b.toServer),
      ),
      toClient = Math.max(
        ERROR_FRAME_MAX,
        max((b) => b.toClient),
      );
    out[p] = {
      toServer,
      toClient,
      bufferToServer:
        2 *
          Math.max(
            toServer,
            max((b) => b.flightToServer),
          ) +
        65536,
      bufferToClient:
        2 *
          Math.max(
            toClient,
            max((b) => b.flightToClient),
          ) +
        65536,
    };
  });
  return out;
}

/**
 * The receive limits of a phase for this party (the server receives what goes to the server). The server's unsent
 * bytes are bounded by the plan too: twice what the client may hold unread (past it the client is not reading).
 */
const phaseLimits = (lim: Record<Phase, PhaseLimits>, p: Phase, role: 'server' | 'client') =>
  role === 'server'
    ? {
        ...limitsFor(lim[p].toServer, `in the ${p} phase`, lim[p].bufferToServer),
        maxBufferedOut: 2 * lim[p].bufferToClient,
      }
    : limitsFor(lim[p].toClient, `in the ${p} phase`, lim[p].bufferToClient);

/**
 * Enters a phase, the same for both roles: its deadline on the clock, this party's receive limits, the recorder
 * (`begin: false` where the recorder already runs, the client's set-up from its hello on) and the hook.
 */
function enterPhase(
  p: Phase,
  s: {
    ch: Channel;
    role: 'server' | 'client';
    lim: Record<Phase, PhaseLimits>;
    clock: PhaseClock;
    dl: Deadlines;
    rec: Recorder;
    hooks?: SessionHooks | undefined;
  },
  begin = true,
): void {
  s.clock.enter(`the ${p} phase`, s.dl[`${p}Ms`]);
  // The server's idle deadline is short where a stalled client holds a slot for nothing (setup, online).
  const idle = { setup: s.dl.setupIdleMs, offline: s.dl.idleMs, online: s.dl.onlineIdleMs }[p];
  s.ch.setLimits(
    s.role === 'server' ? { ...phaseLimits(s.lim, p, s.role), idleMs: idle } : phaseLimits(s.lim, p, s.role),
  );
  if (begin) s.rec.begin(p);
  s.hooks?.onPhase?.(p);
}

function needDealer(o: SessionOptions): DealerLink {
  if (!o.dealer)
    throw new Error(
      `preprocessing 'dealer' needs the dealer's address (--dealer HOST:PORT; start one with 'deepreduce pi dealer')`,
    );
  return o.dealer;
}

function checkHello(h: unknown): Hello {
  if (!h || typeof h !== 'object' || Array.isArray(h)) throw malformed('client hello: not a JSON object');
  const o = h as Record<string, unknown>;
  if (o.protocol !== PROTOCOL)
    throw new PiError(
      'PROTOCOL',
      `client speaks protocol '${String(o.protocol).slice(0, 40)}', expected '${PROTOCOL}'`,
    );
  for (const k of Object.keys(o))
    if (!['protocol', 'preprocess', 'relu', 'session', 'timings', 'offline'].includes(k))
      throw malformed(`client hello: unexpected field '${k.slice(0, 40)}'`);
  if (typeof o.preprocess !== 'string' || typeof o.relu !== 'string')
    throw malformed('client hello: preprocess and relu must be names');
  if (o.timings !== undefined && typeof o.timings !== 'boolean')
    throw malformed('client hello: timings must be a boolean');
  return {
    protocol: PROTOCOL,
    preprocess: o.preprocess,
    relu: o.relu,
    session: checkSessionId(o.session, 'client hello'),
    timings: o.timings === true,
    ...(o.offline !== undefined ? { offline: checkOfflineWish(o.offline, 'client hello') } : {}),
  };
}

/**
 * The server's report as the client gets it unless both agree on timings: bytes and rounds (the client sees them
 * anyway), no durations, no compute times, no memory peaks (they tell the client about the server's load and other
 * sessions).
 */
function withoutTimings(r: PartyReport): PartyReport {
  const phases = {} as PartyReport['phases'];
  for (const [p, v] of Object.entries(r.phases)) phases[p as Phase] = { ...v, ms: 0 };
  return {
    role: r.role,
    phases,
    entries: r.entries.map(({ computeMs: _c, ...e }) => ({ ...e, ms: 0 })),
    memory: { peakBufferedIn: 0, peakBufferedOut: 0, peakHeldBytes: 0, peakHeldIn: 'setup' },
  };
}

function named<T>(what: string, make: () => T): T {
  try {
    return make();
  } catch (e) {
    throw new PiError('PROTOCOL', `${what}: ${(e as Error).message}`);
  }
}

/**
 * A session's start, the same for both roles: deadlines, live state, the clock armed for the first message (at most
 * `firstMax` bytes), and the 'hello' phase announced.
 */
function openSession(
  ch0: Channel,
  role: 'server' | 'client',
  o: SessionOptions,
  firstMax: number,
  before: string,
  waiting: string,
) {
  const dl = { ...DEFAULT_DEADLINES, ...o.deadlines };
  const state = new SessionState(ch0.name);
  state.channels.push(ch0);
  o.hooks?.onStart?.(state);
  const clock = new PhaseClock(role, state);
  ch0.setLimits({ ...limitsFor(firstMax, before), idleMs: dl.idleMs });
  clock.enter(waiting, dl.helloMs);
  o.hooks?.onPhase?.('hello');
  return { dl, state, clock };
}

// ------------------------------------------------------------------------------------------------ server

/** Serves one client session on `ch`; returns the server's report. Throws (after telling the peer) on any fault. */
export function serveClient(ch0: Channel, model: ServerModel, o: ServerSessionOptions = {}): Promise<PartyReport> {
  const { dl, state, clock } = openSession(ch0, 'server', o, HELLO_MAX_BYTES, 'before the hello', 'the hello');
  let release: (() => void) | null = null;
  return guarded(ch0, 'server', async (ch, adopt) => {
    const { plan, secret } = model;
    const batch = o.batch ?? DEFAULT_BATCH;
    const prepS: (R64 | null)[] = plan.ops.map(() => null);
    const vals: R64[] = [];
    let relu: ReluServer | null = null,
      held: Preprocessor | null = null;
    const rec = new Recorder(
      ch,
      'server',
      state,
      () => (relu?.heldBytes() ?? 0) + (held?.heldBytes?.() ?? 0) + r64Bytes(prepS) + r64Bytes(vals),
      o.hooks?.onStep,
    );
    const hello = checkHello(await recvJsonChecked<unknown>(ch, 'hello'));
    const prep: Preprocessor = (held = named('client hello', () =>
      makePreprocessor(hello.preprocess, o.workers ? { parallel: o.workers } : {}),
    ));
    if (o.preprocess && o.preprocess !== prep.name)
      throw new PiError('PROTOCOL', `client asks for preprocessing '${prep.name}', this server uses '${o.preprocess}'`);
    const reluProto = named('client hello', () => makeReluProtocol(hello.relu));
    if (o.relu && o.relu !== reluProto.name)
      throw new PiError('PROTOCOL', `client asks for ReLU protocol '${reluProto.name}', this server uses '${o.relu}'`);
    if (o.admit) {
      release = o.admit();
      if (!release) {
        const retryMs = o.retryHintMs?.();
        throw new PiError(
          'BUSY',
          'server: refused a session: the maximum number of sessions is running',
          retryMs !== undefined ? { retryMs } : {},
        );
      }
    }
    // The offline schedule: the server's choice, else the client's wish (schedule.ts).
    const hw = hello.offline,
      schedule = planSchedule(
        plan,
        o.offline ?? (hw !== undefined ? offlineMode(hw) : { mode: 'all' }),
        reluProto.name,
      ),
      streamed = schedule.length > 1;
    Object.assign(dl, planDeadlines(plan, dl, o.deadlines, streamed));
    const lim = sessionLimits(plan, batch, reluProto, prep, streamed);
    const remasked = remaskedLinears(plan);
    const remaskS: (R64 | null)[] = plan.ops.map(() => null);
    const phase = { ch, role: 'server', lim, clock, dl, rec, hooks: o.hooks } as const;
    enterPhase('setup', phase);
    ch.sendJson({ plan, batch, schedule });
    const random = o.random ?? serverRandomness();
    const ctx: PreprocessContext = { peer: ch, dealer: null, random: random.bytes };
    if (prep.needsDealer) {
      const d = await joinDealer(
        needDealer(o),
        'server',
        hello.session,
        { plan, weights: modelFingerprint(model) },
        dl.idleMs,
      );
      state.channels.push(d);
      ctx.dealer = rec.dealer = adopt(d);
    }
    relu = await rec.step('setup', -1, `${reluProto.name} set-up`, 'ot', {}, () =>
      reluProto.server(ch, { batch, random, workers: o.workers ?? null }),
    );
    o.hooks?.onRelu?.(relu);
    rec.end('setup');

    enterPhase('offline', phase);
    const lastUse = lastUses(plan);
    // Per segment of the schedule (one unless streamed): its offline part, then its online part.
    for (const [seg, [lo, hi]] of segments(schedule, plan.ops.length).entries()) {
      // The linear layers first, then the ReLU ops (the client's order: runClient).
      for (let i = lo; i < hi; i++) {
        const op = plan.ops[i]!;
        if (op.op !== 'conv' && op.op !== 'fc') continue;
        prepS[i] = await rec.step(
          'offline',
          i,
          op.name,
          op.op,
          { macs: macsOf(plan, i) },
          () => prep.server(ctx, linearShape(plan, i), secret[i]!.linear),
          () => prep.lastComputeMs?.(),
        );
      }
      // The client's re-masking differences, in op order (clientShares).
      for (let i = lo; i < hi; i++) {
        if (!remasked[i]) continue;
        const op = plan.ops[i] as { name: string; input: number };
        const n = plan.ops[op.input]!.size;
        remaskS[i] = await rec.step('offline', i, `${op.name} re-mask`, 'remask', {}, async () =>
          r64FromBytes(await recvChecked(ch, `offline: ${op.name} re-mask`, 8 * n), n, `offline: ${op.name} re-mask`),
        );
      }
      for (let i = lo; i < hi; i++) {
        const op = plan.ops[i]!;
        if (op.op === 'relu')
          await rec.step('offline', i, op.name, 'relu', { relus: reluCount(op) }, () =>
            relu!.offline(reluSite(plan, i)),
          );
        else if (op.op === 'maxpool')
          await rec.step('offline', i, op.name, 'maxpool', { relus: maxPoolCount(op) }, async () => {
            for (const s of maxPoolSites(plan, i)) await relu!.offline(s);
          });
      }
      if (seg === 0) {
        rec.end('offline');
        enterPhase('online', phase);
      }
      for (let i = lo; i < hi; i++) {
        const op = plan.ops[i]!;
        if (op.op === 'input') {
          vals.push(
            await rec.step('online', i, 'input', 'input', {}, async () =>
              r64FromBytes(await recvChecked(ch, 'online: input share', 8 * op.size), op.size, 'online: input share'),
            ),
          );
        } else if (op.op === 'conv' || op.op === 'fc') {
          vals.push(
            await rec.step('online', i, op.name, op.op, { macs: macsOf(plan, i) }, () => {
              const s = secret[i]!;
              const d = remaskS[i];
              const y = s.linear.apply(d ? r64Add(vals[op.input]!, d) : vals[op.input]!);
              remaskS[i] = null;
              const v = r64Add(op.op === 'conv' ? addChannelBias(y, s.bias, op.shape) : r64Add(y, s.bias), prepS[i]!);
              prepS[i] = null;
              return v;
            }),
          );
        } else if (op.op === 'relu') {
          vals.push(
            await rec.step('online', i, op.name, 'relu', { relus: reluCount(op) }, () =>
              serverOnlinePartial(relu!, reluSite(plan, i), reluElements(op), vals[op.input]!),
            ),
          );
        } else if (op.op === 'maxpool') {
          vals.push(
            await rec.step('online', i, op.name, 'maxpool', { relus: maxPoolCount(op) }, () =>
              serverOnlineMaxPool(relu!, maxPoolSites(plan, i), maxPoolTree(op), vals[op.input]!),
            ),
          );
        } else {
          vals.push(localOp(plan, i, vals, 'server'));
        }
        o.hooks?.onValue?.(i, vals[i]!);
      }
      // A streamed session holds only the values a later op reads.
      if (streamed) releaseValues(vals, lastUse, hi);
    }
    await rec.step('online', -1, 'output', 'output', {}, () => ch.send(r64ToBytes(vals[vals.length - 1]!)));
    rec.end('online');
    o.hooks?.onPhase?.('done');
    const report = rec.report();
    ch.sendJson(o.reportTimings && hello.timings ? report : withoutTimings(report));
    await ch.flush();
    return report;
  }).finally(() => {
    clock.stop();
    release?.();
  });
}

// ------------------------------------------------------------------------------------------------ client

export interface ClientResult {
  logits: Float64Array;
  /** Output as ring values and its scale (fractional bits). */
  out: R64;
  scale: number;
  plan: PublicPlan;
  /** The offline schedule the server chose: its segments' first ops (one segment: all before the image). */
  schedule: number[];
  client: PartyReport;
  server: PartyReport;
}

function checkReport(r: unknown, what: string): PartyReport {
  const o = r as PartyReport;
  const ok =
    !!o &&
    typeof o === 'object' &&
    Array.isArray(o.entries) &&
    !!o.phases &&
    typeof o.phases === 'object' &&
    (['setup', 'offline', 'online'] as Phase[]).every((p) => o.phases[p] && typeof o.phases[p].ms === 'number');
  if (!ok) throw malformed(`${what}: not a session report`);
  return o;
}

/**
 * The client's offline share of every value of the plan, into cv. Linear layers go one ahead: a layer's upload
 * leaves as soon as its input share is known, before the previous layer's answer is read (at most two layers
 * unread), so the server computes one layer while the client encrypts the next and decrypts the last. A layer whose
 * input share waits for answers (plan.remaskedLinears: after a conv with no whole ReLU site between) uploads a fresh
 * mask instead; the difference from its true input share goes to the server once known (`remasks`). A kept ReLU
 * site's output share is its mask r, drawn here in plan order (the order random.reluMask always saw); share-local
 * ops, partial sites and max pools are computed when first needed. A max pool's levels draw their masks in order, in
 * its place. Returns the masks by op index, the max pools' offline shares and the re-masking differences by op index,
 * for the ReLU protocol's offline part.
 */
async function clientShares(
  plan: PublicPlan,
  cv: R64[],
  rec: Recorder,
  prep: Preprocessor,
  ctx: PreprocessContext,
  random: ClientRandomness,
  remasked: readonly boolean[],
  lo = 0,
  hi = plan.ops.length,
): Promise<{ masks: (R64 | null)[]; pools: Map<number, ClientMaxPool>; remasks: Map<number, R64> }> {
  const masks: (R64 | null)[] = plan.ops.map(() => null);
  const poolMasks = new Map<number, R64[]>();
  const pools = new Map<number, ClientMaxPool>();
  const fresh = new Map<number, R64>();
  const pending: { i: number; answer: PendingLinear }[] = [];
  const finishOldest = async () => {
    const p = pending.shift();
    if (!p) throw new Error("client: a linear layer's answer was needed before its upload");
    const op = plan.ops[p.i]!;
    cv[p.i] = await rec.step(
      'offline',
      p.i,
      op.name,
      op.op,
      { macs: macsOf(plan, p.i) },
      () => p.answer.finish(),
      () => prep.lastComputeMs?.(),
    );
  };
  const value = async (k: number): Promise<R64> => {
    while (!cv[k]) {
      const op = plan.ops[k]!;
      if (op.op === 'conv' || op.op === 'fc') {
        await finishOldest();
      } else if (op.op === 'relu') {
        // a partial site (a whole site's share is its mask, set in plan order)
        cv[k] = clientPartialShare(reluSite(plan, k), reluElements(op)!, await value(op.input), masks[k]!);
      } else if (op.op === 'maxpool') {
        const p = clientMaxPoolShares(maxPoolTree(op), await value(op.input), poolMasks.get(k)!);
        pools.set(k, p);
        cv[k] = p.out;
      } else {
        for (const j of opInputs(op)) await value(j);
        cv[k] = localOp(plan, k, cv, 'client');
      }
    }
    return cv[k]!;
  };
  for (let i = lo; i < hi; i++) {
    const op = plan.ops[i]!;
    if (op.op === 'input') {
      const c0 = random.inputMask(op.size);
      if (c0.lo.length !== op.size)
        throw new Error(`client: the randomness gave ${c0.lo.length} input mask elements, expected ${op.size}`);
      cv[i] = c0;
    } else if (op.op === 'conv' || op.op === 'fc') {
      let c: R64;
      if (remasked[i]) {
        c = random.linearMask(i, plan.ops[op.input]!.size);
        fresh.set(i, c);
      } else c = await value(op.input);
      while (pending.length >= 2) await finishOldest();
      const answer = await rec.step(
        'offline',
        i,
        op.name,
        op.op,
        { macs: macsOf(plan, i) },
        () => prep.clientStart(ctx, linearShape(plan, i), c),
        () => prep.lastComputeMs?.(),
      );
      pending.push({ i, answer });
    } else if (op.op === 'relu') {
      const r = random.reluMask(reluSite(plan, i));
      masks[i] = r;
      if (!op.kept) cv[i] = r;
    } else if (op.op === 'maxpool') {
      poolMasks.set(
        i,
        maxPoolSites(plan, i).map((s) => random.reluMask(s)),
      );
    }
  }
  while (pending.length) await finishOldest();
  for (let i = lo; i < hi; i++) await value(i);
  const remasks = new Map<number, R64>();
  for (const [i, r] of fresh) remasks.set(i, r64Sub(cv[(plan.ops[i] as { input: number }).input]!, r));
  return { masks, pools, remasks };
}

/**
 * Runs a query: `image` is the preprocessed (normalised, padded) CHW float image the plan's input expects, or a
 * function that makes it from the plan (whose `input` carries the model's normalisation).
 */
export function runClient(
  ch0: Channel,
  imageOrFn: ArrayLike<number> | ((plan: PublicPlan) => ArrayLike<number>),
  o: ClientSessionOptions = {},
): Promise<ClientResult> {
  const { dl, state, clock } = openSession(ch0, 'client', o, PLAN_MAX_BYTES, 'before the plan', 'waiting for the plan');
  return guarded(ch0, 'client', async (ch, adopt) => {
    const cv: R64[] = [];
    let relu: ReluClient | null = null;
    const prep = makePreprocessor(o.preprocess ?? DEFAULT_PREPROCESS);
    const rec = new Recorder(
      ch,
      'client',
      state,
      () => (relu?.heldBytes() ?? 0) + (prep.heldBytes?.() ?? 0) + r64Bytes(cv),
      o.hooks?.onStep,
    );
    const reluProto = makeReluProtocol(o.relu ?? DEFAULT_RELU);
    const link = prep.needsDealer ? needDealer(o) : null;
    const random = o.random ?? clientRandomness();
    rec.begin('setup');
    const session = toHex(random.bytes.bytes(16));
    ch.sendJson({
      protocol: PROTOCOL,
      preprocess: prep.name,
      relu: reluProto.name,
      session,
      ...(o.timings ? { timings: true } : {}),
      ...(o.offline ? { offline: offlineWish(o.offline) } : {}),
    } satisfies Hello);
    const got = await recvJsonChecked<{ plan: unknown; batch: unknown; schedule: unknown }>(ch, 'plan');
    if (!got || typeof got !== 'object') throw malformed(`${ch.name}: plan message is not an object`);
    const plan = checkPlan(got.plan, `${ch.name}: plan`, o.planBounds);
    const batch = got.batch;
    if (typeof batch !== 'number' || !Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH)
      throw malformed(`${ch.name}: malformed message: plan: batch size ${String(batch).slice(0, 40)}`);
    const schedule = checkSchedule(got.schedule, plan, `${ch.name}: plan`),
      streamed = schedule.length > 1;
    Object.assign(dl, planDeadlines(plan, dl, o.deadlines, streamed));
    const lim = sessionLimits(plan, batch, reluProto, prep, streamed);
    const remasked = remaskedLinears(plan);
    const phase = { ch, role: 'client', lim, clock, dl, rec, hooks: o.hooks } as const;
    enterPhase('setup', phase, false);
    const in0 = plan.ops[0]!;
    const image = typeof imageOrFn === 'function' ? imageOrFn(plan) : imageOrFn;
    if (image.length !== in0.size)
      throw new Error(`client: image has ${image.length} values, the model expects ${in0.size} [${in0.shape}]`);
    const ctx: PreprocessContext = { peer: ch, dealer: null, random: random.bytes };
    if (link) {
      const d = await joinDealer(link, 'client', session, { plan }, dl.idleMs);
      state.channels.push(d);
      ctx.dealer = rec.dealer = adopt(d);
    }
    relu = await rec.step('setup', -1, `${reluProto.name} set-up`, 'ot', {}, () =>
      reluProto.client(ch, { batch, random }),
    );
    o.hooks?.onRelu?.(relu);
    rec.end('setup');

    enterPhase('offline', phase);
    const lastUse = lastUses(plan);
    // Per segment of the schedule (one unless streamed): its offline part, then its online part.
    for (const [seg, [lo, hi]] of segments(schedule, plan.ops.length).entries()) {
      const { masks, pools, remasks } = await clientShares(plan, cv, rec, prep, ctx, random, remasked, lo, hi);
      for (const [i, d] of remasks)
        await rec.step('offline', i, `${plan.ops[i]!.name} re-mask`, 'remask', {}, () => ch.send(r64ToBytes(d)));
      for (let i = lo; i < hi; i++) o.hooks?.onValue?.(i, cv[i]!);
      for (let i = lo; i < hi; i++) {
        const op = plan.ops[i]!;
        if (op.op === 'maxpool')
          await rec.step('offline', i, op.name, 'maxpool', { relus: maxPoolCount(op) }, () =>
            clientOfflineMaxPool(relu!, maxPoolSites(plan, i), pools.get(i)!),
          );
        if (op.op !== 'relu') continue;
        await rec.step('offline', i, op.name, 'relu', { relus: reluCount(op) }, () =>
          clientOfflinePartial(relu!, reluSite(plan, i), reluElements(op), cv[op.input]!, masks[i]!),
        );
      }
      if (seg === 0) {
        rec.end('offline');
        enterPhase('online', phase);
        await rec.step('online', 0, 'input', 'input', {}, () =>
          ch.send(r64ToBytes(r64Sub(quantize(image, in0.scale, 'client: input'), cv[0]!))),
        );
      }
      for (let i = lo; i < hi; i++) {
        const op = plan.ops[i]!;
        if (op.op === 'maxpool')
          await rec.step('online', i, op.name, 'maxpool', { relus: maxPoolCount(op) }, () =>
            clientOnlineMaxPool(relu!, maxPoolSites(plan, i)),
          );
        if (op.op !== 'relu') continue;
        await rec.step('online', i, op.name, 'relu', { relus: reluCount(op) }, () => relu!.online(reluSite(plan, i)));
      }
      // A streamed session holds only the shares a later op reads.
      if (streamed) releaseValues(cv, lastUse, hi);
    }
    const last = plan.ops[plan.ops.length - 1]!;
    const out = await rec.step('online', -1, 'output', 'output', {}, async () =>
      r64Add(
        r64FromBytes(await recvChecked(ch, 'online: output share', 8 * last.size), last.size, 'online: output share'),
        cv[cv.length - 1]!,
      ),
    );
    rec.end('online');
    const server = checkReport(await recvJsonChecked<unknown>(ch, 'server report'), `${ch.name}: server report`);
    o.hooks?.onPhase?.('done');
    return {
      logits: dequantize(out, last.scale),
      out,
      scale: last.scale,
      plan,
      schedule,
      client: rec.report(),
      server,
    };
  }).finally(() => clock.stop());
}
