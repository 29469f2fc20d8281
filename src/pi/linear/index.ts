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
import type { ConvGeometry, RingLinear } from './ring.js';
import { DealerPreprocessor } from './dealer/preprocess.js';
import { HePreprocessor } from './he/preprocess.js';

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

export interface PreprocessContext {
  /** The server-client channel. */
  peer: Channel;
  /** This party's channel to the dealer (only for preprocessors with `needsDealer`). */
  dealer: Channel | null;
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
  /** This party's own compute time (ms) in its last server() / client() call, for preprocessors that measure it. */
  lastComputeMs?(): number;
}

export const PREPROCESSORS = ['he', 'dealer'] as const;

/** A new preprocessor (one per session: it may keep session state, e.g. HE keys). */
export function makePreprocessor(name: string): Preprocessor {
  if (name === 'he') return new HePreprocessor();
  if (name === 'dealer') return new DealerPreprocessor();
  throw new Error(`unknown preprocessor '${name}'; valid: ${PREPROCESSORS.join(', ')}`);
}
