// The server's view of a session, for simulation-style privacy tests: one in-process session (client, server and, for
// dealer preprocessing, a dealer) with injected randomness, recording everything the server receives, its online
// shares, and the client's offline shares. Reusable for any ReLU protocol / preprocessor (`relu`, `preprocess`; the
// session defaults: gc and he).
//
// Coupling (coupledClientRandomness): for images x and x', the client's masks for x' are those for x shifted by the
// plaintext differences: c0' = c0 + (x' - x) and r_i' = r_i + (y'_i - y_i) for every kept ReLU op i (y from
// referenceForward). The shift is a bijection that preserves the uniform distribution of the masks, so if the server's
// online view is byte-identical under it, that view has the same distribution for every image. It needs the secure
// computation to equal the reference bit for bit (all ReLUs kept, or culled sites without local truncation): the GC
// ReLU. The OT ReLU truncates shares locally (its output is 0 or +1 ULP from the reference, depending on the split),
// so its coupling (coupledOtClientRandomness) shifts r_i by the difference of the protocol's actual outputs instead.
import assert from 'node:assert/strict';
import { Dealer } from '../../../src/pi/node/dealer.js';
import { channelPair } from '../../../src/pi/transport/channel.js';
import { runClient, serveClient, type ClientResult, type PartyReport } from '../../../src/pi/protocol.js';
import { referenceForward } from '../../../src/pi/node/compile.js';
import { localOp, maxPoolSites, maxPoolTree, reluShiftClear, type ServerModel } from '../../../src/pi/plan.js';
import type { MaxPoolSchedule } from '../../../src/pi/linear/pool.js';
import {
  quantize,
  r64Add,
  r64FromBig,
  r64Gather,
  r64Shr,
  r64Sub,
  r64ToBig,
  truncClientShare,
  type R64,
} from '../../../src/pi/fixed.js';
import {
  seededClientRandomness,
  type ClientRandomness,
  type Random,
  type ServerRandomness,
} from '../../../src/pi/random.js';
import type { ReluClient, ReluServer } from '../../../src/pi/relu/index.js';
import { DEFAULT_PREPROCESS } from '../../../src/pi/linear/index.js';
import { HE_KIND } from '../../../src/pi/he/serialize.js';
import { HE_PARAMS } from '../../../src/pi/he/params.js';
import { Transcript, type Frame } from './transcript.js';

export interface SimOptions {
  model: ServerModel;
  image: Float32Array;
  /** Each party's randomness (default: fresh from the system CSPRNG). */
  client?: ClientRandomness;
  server?: ServerRandomness;
  dealer?: Random;
  relu?: string;
  preprocess?: string;
  batch?: number;
  /** Called with the client's offline share of each op, in plan order, once the client has them all. */
  onClientValue?: (op: number, v: R64) => void;
}

export interface SimResult {
  /** Every frame the server received (channels 'client' and 'dealer'), labelled with the server's phase. */
  server: Transcript;
  /** The server's online share of every op. */
  serverValues: Map<number, R64>;
  /** The client's offline share of every op. */
  clientValues: Map<number, R64>;
  client: ClientResult;
  serverReport: PartyReport;
  reluServer: ReluServer | null;
  reluClient: ReluClient | null;
}

export async function simulate(o: SimOptions): Promise<SimResult> {
  const preprocess = o.preprocess ?? DEFAULT_PREPROCESS;
  const dealer =
    preprocess === 'dealer'
      ? new Dealer(o.model, { ...(o.dealer ? { random: o.dealer } : {}), onError: () => {} })
      : null;
  const t = new Transcript();
  const serverValues = new Map<number, R64>(),
    clientValues = new Map<number, R64>();
  let reluServer: ReluServer | null = null,
    reluClient: ReluClient | null = null;
  const [s, c] = channelPair({ name: 'sim' });
  t.tap(s, 'client');
  const common = { preprocess, ...(o.relu ? { relu: o.relu } : {}), ...(o.batch ? { batch: o.batch } : {}) };
  const [serverReport, client] = await Promise.all([
    serveClient(s, o.model, {
      ...common,
      ...(o.server ? { random: o.server } : {}),
      ...(dealer ? { dealer: t.tapLink(dealer.link()) } : {}),
      hooks: t.hooks({
        onValue: (i, v) => serverValues.set(i, v),
        onRelu: (r) => {
          reluServer = r as ReluServer;
        },
      }),
    }),
    runClient(c, o.image, {
      ...common,
      ...(o.client ? { random: o.client } : {}),
      ...(dealer ? { dealer: dealer.link() } : {}),
      hooks: {
        onValue: (i, v) => {
          clientValues.set(i, v);
          o.onClientValue?.(i, v);
        },
        onRelu: (r) => {
          reluClient = r as ReluClient;
        },
      },
    }),
  ]);
  return { server: t, serverValues, clientValues, client, serverReport, reluServer, reluClient };
}

/** The seeded client randomness for image `x2`, coupled to seededClientRandomness(seed) for image `x` (see above). */
export function coupledClientRandomness(
  seed: string,
  model: ServerModel,
  x: Float32Array,
  x2: Float32Array,
): ClientRandomness {
  const f = model.plan.fixed.f;
  const a = referenceForward(model, quantize(x, f)),
    b = referenceForward(model, quantize(x2, f));
  const shift = new Map<number, R64>();
  model.plan.ops.forEach((o, i) => {
    if (o.op === 'relu') shift.set(i, r64Sub(b.values[i]!, a.values[i]!));
    // A max pool: each level's ReLU outputs ReLU(V[a] - V[b]), by its level's site key.
    if (o.op === 'maxpool') {
      const t = maxPoolTree(o),
        ya = maxPoolReluOutputs(t, a.values[o.input]!),
        yb = maxPoolReluOutputs(t, b.values[o.input]!);
      maxPoolSites(model.plan, i).forEach((s, k) => shift.set(s.op, r64Sub(yb[k]!, ya[k]!)));
    }
    if (o.op === 'cull' && o.shift)
      throw new Error(
        `coupling: culled site ${o.name} truncates shares locally, so the secure values are not the reference's`,
      );
  });
  const base = seededClientRandomness(seed);
  return {
    inputMask: (n) => r64Add(base.inputMask(n), r64Sub(b.values[0]!, a.values[0]!)),
    reluMask: (site) => r64Add(base.reluMask(site), shift.get(site.op)!),
    // a re-masked layer's fresh mask moves with its input share, so the difference the server receives is the same
    linearMask: (op, n) => {
      const k = (model.plan.ops[op] as { input: number }).input;
      return r64Add(base.linearMask(op, n), r64Sub(b.values[k]!, a.values[k]!));
    },
    bytes: base.bytes,
  };
}

/** The plaintext ReLU outputs of each level of a max pool's comparison tree over the values x. */
export function maxPoolReluOutputs(t: MaxPoolSchedule, x: R64): R64[] {
  let v = x;
  return t.levels.map((l) => {
    const bv = r64Gather(v, l.b),
      y = reluShiftClear(r64Sub(r64Gather(v, l.a), bv), 0),
      m = r64Add(bv, y),
      c = r64Gather(v, l.carry);
    v = { lo: Uint32Array.from([...m.lo, ...c.lo]), hi: Uint32Array.from([...m.hi, ...c.hi]) };
    return y;
  });
}

/** The bytes of a share, for byte-wise comparison. */
export const shareBytes = (v: R64): Uint8Array => {
  const out = new Uint8Array(8 * v.lo.length);
  out.set(new Uint8Array(v.lo.buffer, v.lo.byteOffset, v.lo.byteLength));
  out.set(new Uint8Array(v.hi.buffer, v.hi.byteOffset, v.hi.byteLength), v.lo.byteLength);
  return out;
};

/** The HE message kind of a frame ('publicKey', 'upload', 'responses'), or null for any other frame. */
export function heKind(f: Frame): keyof typeof HE_KIND | null {
  const b = f.bytes;
  if (b.length < 16) return null;
  const v = new DataView(b.buffer, b.byteOffset, 16);
  if (v.getUint32(0, true) !== HE_PARAMS.id) return null;
  const k = v.getUint32(4, true);
  return (Object.keys(HE_KIND) as (keyof typeof HE_KIND)[]).find((n) => HE_KIND[n] === k) ?? null;
}

/**
 * The OT ReLU's output y for shares a (server) and b (client) of a site: ReLU of the locally truncated shares
 * a' = a >> shift (logical), b' = -((-b) >> shift), with the sign read from bit w - 1 of a' + b' (w = width - shift),
 * as relu/ot computes it.
 */
export function otReluOutput(a: R64, b: R64, width: number, shift: number): R64 {
  const x = r64ToBig(r64Add(r64Shr(a, shift), truncClientShare(b, shift))),
    w = BigInt(width - shift - 1);
  return r64FromBig(Array.from(x, (v) => ((BigInt.asUintN(64, v) >> w) & 1n ? 0n : v)));
}

/**
 * The coupling for the OT ReLU. For image `x2`, the client's masks are those of seededClientRandomness(seed) in the
 * run `first` (image `x`, the same seed, the server's randomness fixed) shifted so that every share the server holds
 * online is the same: c0' = c0 + (x2 - x), and at each kept ReLU op r' = r + (y' - y), with y, y' the protocol's
 * actual outputs (otReluOutput) from the server's input share a (the same in both runs, by induction over the ops)
 * and the client's b (run `first`) and b' = b + d. The client draws r' before it knows b' (its linear layers run
 * ahead), so d is derived here: the difference of the client's shares, through the ops from c0' - c0 and each
 * r' - r (a conv's share M c - s moves by M (c' - c): s is the server's, the same in both runs).
 * A bijection on (c0, r) for the given run, so it preserves their uniform distribution like the GC coupling.
 */
export function coupledOtClientRandomness(
  seed: string,
  model: ServerModel,
  first: SimResult,
  x: Float32Array,
  x2: Float32Array,
): ClientRandomness {
  const plan = model.plan;
  const delta: R64[] = [r64Sub(quantize(x2, plan.ops[0]!.scale), quantize(x, plan.ops[0]!.scale))];
  for (const o of plan.ops)
    if (o.op === 'cull' && o.shift) throw new Error(`coupling: culled site ${o.name} truncates shares locally`);
  const base = seededClientRandomness(seed);
  /** d for ops up to k: ReLU ops' from their masks (drawn in plan order), the others from their inputs. */
  const through = (k: number) => {
    for (let i = delta.length; i <= k; i++) {
      const o = plan.ops[i]!;
      if (o.op === 'relu') throw new Error(`coupling: ${o.name}'s mask was not drawn before op ${k}`);
      delta.push(
        o.op === 'conv' || o.op === 'fc'
          ? model.secret[i]!.linear.apply(delta[o.input]!)
          : localOp(plan, i, delta, 'clear'),
      );
    }
    return delta[k]!;
  };
  return {
    inputMask: (n) => r64Add(base.inputMask(n), delta[0]!),
    reluMask: (site) => {
      const op = plan.ops[site.op]!;
      if (op.op !== 'relu' || op.kept) throw new Error(`coupling: op ${site.op} is not a whole kept ReLU`);
      const a = first.serverValues.get(op.input)!,
        b = first.clientValues.get(op.input)!,
        b2 = r64Add(b, through(op.input));
      through(site.op - 1);
      const d = r64Sub(otReluOutput(a, b2, site.width, site.shift), otReluOutput(a, b, site.width, site.shift));
      delta.push(d);
      return r64Add(base.reluMask(site), d);
    },
    // as in coupledClientRandomness: the server's re-masking difference stays the same
    linearMask: (op, n) => r64Add(base.linearMask(op, n), through((plan.ops[op] as { input: number }).input)),
    bytes: base.bytes,
  };
}

/**
 * The OT ReLU's logits within the local truncation's error of the reference (0 or +1 ULP of 2^-f per kept ReLU,
 * amplified by the later layers).
 */
export function checkClose(model: ServerModel, r: SimResult, x: Float32Array): void {
  const ref = r64ToBig(referenceForward(model, quantize(x, model.plan.fixed.f)).out),
    out = r64ToBig(r.client.out);
  const d = Math.max(...Array.from(out, (v, i) => Number(v > ref[i]! ? v - ref[i]! : ref[i]! - v)));
  assert.ok(d < 2 ** (r.client.scale - 8), `max diff ${d} ULPs of the logits`);
}

/** A session shared by a file's tests: it runs once, when first needed. */
export const once = <T>(f: () => Promise<T>) => {
  let p: Promise<T> | null = null;
  return () => (p ??= f());
};
