// Linear layers: offline correlations for the secret linear layers, behind one interface.
//   he/      homomorphic encryption between client and server (two parties; the default)
//   dealer/  a trusted third party (three parties)
// Offline correlations for the secret linear layers. For layer M and the client's share c of its input (known
// offline, independent of the image), the server must end up with a random s and the client with M c - s.
// The server side sees only M (and s); the client side sees only c (and M c - s). Each side gets a
// PreprocessContext with the channels it may use: `peer` (server <-> client: an HE preprocessor sends Enc(c) and
// returns Enc(M c - s) there) and `dealer` (this party's own channel to a third party, for the dealer).
import type { Channel } from '../transport/channel.js';
import type { R64 } from '../fixed.js';
import type { PublicPlan } from '../plan.js';
import type { ConvGeometry, RingLinear } from '../ringlinear.js';
import type { Random } from '../random.js';
import type { MessageBounds } from '../messages.js';
import { Registry } from '../registry.js';
import { DealerPreprocessor } from './dealer/preprocess.js';
import { HePreprocessor, type HeOptions } from './he/preprocess.js';

/** What both sides know about one secret linear layer (public). */
export interface LinearShape {
  op: number;
  name: string;
  inSize: number;
  outSize: number;
  /** The conv's geometry (absent for fc). */
  geom?: ConvGeometry;
  /** Bound on |weight| (the plan's weight bits: 2^(weightBits-1) - 1). */
  maxWeight: number;
}

/** The secret linear layer at plan op i, as both sides (and the dealer) see it. */
export function linearShape(plan: PublicPlan, i: number): LinearShape {
  const o = plan.ops[i]!;
  if (o.op !== 'conv' && o.op !== 'fc') throw new Error(`plan op ${i} is not a secret linear layer`);
  const maxWeight = 2 ** (plan.fixed.weightBits - 1) - 1;
  return {
    op: i,
    name: o.name,
    inSize: plan.ops[o.input]!.size,
    outSize: o.size,
    maxWeight,
    ...(o.op === 'conv' ? { geom: o.geom } : {}),
  };
}

/** The secret linear layers in plan order: the preprocessors' work list, the same on every side. */
export const linearShapes = (plan: PublicPlan): LinearShape[] =>
  plan.ops.flatMap((o, i) => (o.op === 'conv' || o.op === 'fc' ? [linearShape(plan, i)] : []));

/** A layer whose client half has sent its messages (clientStart) and not yet read the answer. */
export interface PendingLinear {
  /** Reads the answer: M c - s. */
  finish(): Promise<R64>;
}

export interface PreprocessContext {
  /** The server-client channel. */
  peer: Channel;
  /** This party's channel to the dealer (only for preprocessors with `needsDealer`). */
  dealer: Channel | null;
  /** This party's source of coins (the session's randomness: tests fix it). */
  random: Random;
}

export interface Preprocessor {
  /** The `--preprocess` name. */
  readonly name: string;
  /** Whether both parties need a channel to a dealer (a third party) for this preprocessor. */
  readonly needsDealer: boolean;
  /** Server side: returns s; the client obtains M c - s. */
  server(ctx: PreprocessContext, shape: LinearShape, layer: RingLinear): Promise<R64>;
  /** Client side: returns M c - s for its input share c. */
  client(ctx: PreprocessContext, shape: LinearShape, c: R64): Promise<R64>;
  /**
   * Client side in two steps: sends what the layer needs from the client; finish() reads M c - s. A session starts the
   * next layer before it finishes this one where its share allows (protocol.ts), so that the server computes while the
   * client encrypts and decrypts.
   */
  clientStart(ctx: PreprocessContext, shape: LinearShape, c: R64): Promise<PendingLinear>;
  /**
   * The largest message each way on the server-client channel over these layers (0: none), for the receivers'
   * frame limits, and the largest run of messages one party sends without waiting (a flight: HE's responses of a
   * layer, one per output group; the client's key and two layers' uploads), for their buffer limits; each receive still checks the exact size it expects.
   */
  maxMessageBytes(shapes: readonly LinearShape[]): MessageBounds;
  /** This party's own compute time (ms) in its last server() / client() call, for preprocessors that measure it. */
  lastComputeMs?(): number;
  /** Bytes of session state this party's preprocessor holds now (HE: its engine's memory, keys included). */
  heldBytes?(): number;
}

/** The preprocessors by their `--preprocess` name; two parties by default: the dealer is a third party, chosen explicitly. */
export const PREPROCESS_REGISTRY = new Registry<Preprocessor, HeOptions>(
  'preprocessor',
  { he: (he) => new HePreprocessor(he), dealer: () => new DealerPreprocessor() },
  'he',
);

export const PREPROCESSORS = PREPROCESS_REGISTRY.names;
export const DEFAULT_PREPROCESS = PREPROCESS_REGISTRY.defaultName;

/** A new preprocessor (one per session: it may keep session state, e.g. HE keys); `he` options for HE. */
export const makePreprocessor = (name: string, he: HeOptions = {}): Preprocessor => PREPROCESS_REGISTRY.make(name, he);
