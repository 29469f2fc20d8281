// A party's side of the link to the dealer (dealer.ts): the session id, the hello, and the model fingerprint. No Node
// API: the protocol module imports this, and the browser client bundles the protocol module.
import type { Channel } from '../../transport/channel.js';
import { r64ToBytes } from '../../fixed.js';
import { Prg } from '../../crypto/prg.js';
import { cryptoBackend, toHex } from '../../crypto/backend.js';
import type { PublicPlan, ServerModel } from '../../plan.js';
import { linearShapes } from '../index.js';
import { ERROR_FRAME_MAX, malformed, PiError } from '../../wire.js';

export const DEALER_PROTOCOL = 'deepreduce-pi-dealer/2'; // 2: the server role is authenticated; coded errors

export type DealerRole = 'server' | 'client';

/** Opens this party's channel to the dealer (TCP: a new connection per session; in process: a channelPair). */
export type DealerLink = (role: DealerRole) => Promise<Channel>;

export interface DealerHello {
  protocol: string;
  role: DealerRole;
  session: string;
  plan: string;
  weights?: string;
}

export const SESSION_RE = /^[0-9a-f]{32}$/;

/** Checks a session id (32 lowercase hex digits = 16 bytes); returns it. */
export function checkSessionId(id: unknown, what: string): string {
  if (typeof id !== 'string' || !SESSION_RE.test(id)) {
    throw malformed(
      `${what}: malformed session id ${JSON.stringify(id)?.slice(0, 80)} (expected 32 lowercase hex digits)`,
    );
  }
  return id;
}

const fingerprints = new WeakMap<ServerModel, string>();

/**
 * A fingerprint of the secret linear maps: a hash of M_i u_i for fixed pseudo-random u_i (one application of every
 * layer, cached per model). The plan digest does not cover the weights, so this catches a dealer started on other
 * weights (e.g. another --seed), which would otherwise give wrong logits silently. It goes only to the dealer.
 */
export function modelFingerprint(model: ServerModel): string {
  let f = fingerprints.get(model);
  if (f) return f;
  const parts: (Uint8Array | string)[] = [model.plan.digest];
  for (const s of linearShapes(model.plan)) {
    const layer = model.secret[s.op];
    if (!layer) throw new Error(`model: plan op ${s.op} (${s.name}) has no secret layer`);
    const seed = cryptoBackend.sha256(`deepreduce-pi fingerprint ${s.op}`).slice(0, 16);
    const u = new Prg(seed).bytes(8 * s.inSize);
    const w = new Uint32Array(u.buffer, u.byteOffset, 2 * s.inSize),
      lo = new Uint32Array(s.inSize),
      hi = new Uint32Array(s.inSize);
    for (let i = 0; i < s.inSize; i++) {
      lo[i] = w[2 * i]!;
      hi[i] = w[2 * i + 1]!;
    }
    parts.push(r64ToBytes(layer.linear.apply({ lo, hi })));
  }
  f = toHex(cryptoBackend.sha256(...parts)).slice(0, 16);
  fingerprints.set(model, f);
  return f;
}

export const HELLO_MAX_BYTES = 4096;

/** Receive limits on a dealer link whose largest legitimate frame is `max`. */
export const limitsFor = (max: number, state: string) => ({
  maxFrameBytes: Math.max(max, ERROR_FRAME_MAX),
  maxBufferedBytes: 2 * Math.max(max, ERROR_FRAME_MAX) + 65536,
  state,
});

/**
 * Opens the dealer channel for one session and sends the hello (the dealer's first reply is data or an error). The
 * channel accepts frames up to the largest share the dealer sends for this plan (8 bytes per output element).
 */
export async function joinDealer(
  link: DealerLink,
  role: DealerRole,
  session: string,
  model: { plan: PublicPlan; weights?: string },
  idleMs = 0,
): Promise<Channel> {
  let ch: Channel;
  try {
    ch = await link(role);
  } catch (e) {
    const msg = `cannot reach the dealer: ${(e as Error).message}`;
    throw e instanceof PiError ? new PiError(e.code, msg, { cause: e }) : new Error(msg, { cause: e });
  }
  const maxOut = Math.max(0, ...linearShapes(model.plan).map((s) => 8 * s.outSize));
  ch.setLimits({ ...limitsFor(maxOut, 'from the dealer'), idleMs });
  ch.sendJson({
    protocol: DEALER_PROTOCOL,
    role,
    session,
    plan: model.plan.digest,
    ...(model.weights ? { weights: model.weights } : {}),
  } satisfies DealerHello);
  return ch;
}
