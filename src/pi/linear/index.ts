// Linear layers: offline correlations for the secret linear layers, behind one interface.
//   dealer/  a trusted third party (three parties)
// Offline correlations for the secret linear layers. For layer M and the client's share c of its input (known
// offline, independent of the image), the server must end up with a random s and the client with M c - s.
// The server side sees only M (and s); the client side sees only c (and M c - s). Each side gets a
// PreprocessContext with the channels it may use: `peer` (server <-> client: an HE preprocessor sends Enc(c) and
// returns Enc(M c - s) there) and `dealer` (this party's own channel to a third party, for the dealer).
import type { Channel } from '../transport/channel.js';
import type { R64 } from '../fixed.js';
import type { RingLinear } from './ring.js';
import type { Random } from '../random.js';
import { DealerPreprocessor } from './dealer/preprocess.js';

/** What both sides know about one secret linear layer (public). */
export interface LinearShape {
  op: number;
  name: string;
  inSize: number;
  outSize: number;
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
   * The largest message each way on the server-client channel over these layers (0: none), for the receivers'
   * frame limits; each receive still checks the exact size it expects.
   */
  maxMessageBytes(shapes: readonly LinearShape[]): { toServer: number; toClient: number };
}

export const PREPROCESSORS = ['dealer'] as const;

export function makePreprocessor(name: string): Preprocessor {
  if (name === 'dealer') return new DealerPreprocessor();
  throw new Error(`unknown preprocessor '${name}'; valid: ${PREPROCESSORS.join(', ')}`);
}
