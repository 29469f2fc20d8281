// Offline correlations for the secret linear layers. For layer M and the client's share c of its input (known
// offline, independent of the image), the server must end up with a random s and the client with M c - s.
// The server side sees only M (and draws s); the client side sees only c. An HE preprocessor (client encrypts c,
// server evaluates M c - s homomorphically) implements the same interface.
import type { Channel } from './transport.js';
import { r64FromBytes, r64Random, r64Sub, r64ToBytes, type R64 } from './fixed.js';
import type { RingLinear } from './linear.js';
import { recvChecked } from './wire.js';

/** What both sides know about one secret linear layer (public). */
export interface LinearShape {
  op: number;
  name: string;
  inSize: number;
  outSize: number;
}

export interface Preprocessor {
  /** The `--preprocess` name. */
  readonly name: string;
  /** Server side: returns s; the client obtains M c - s. */
  server(ch: Channel, shape: LinearShape, layer: RingLinear): Promise<R64>;
  /** Client side: returns M c - s for its input share c. */
  client(ch: Channel, shape: LinearShape, c: R64): Promise<R64>;
}

/**
 * A TRUSTED DEALER standing in for dealer-free preprocessing: it sees the weights and the client's masks. It runs
 * inside the server process, so the client's offline masks are sent to it in the clear: this mode is private only
 * if the dealer is trusted and does not collude with the server, which is not the case when both share a process.
 * It exists to measure and test everything else; traffic is counted as the HE preprocessor's would be.
 */
export class DealerPreprocessor implements Preprocessor {
  readonly name = 'dealer';
  async server(ch: Channel, shape: LinearShape, layer: RingLinear): Promise<R64> {
    const c = r64FromBytes(await recvChecked(ch, `dealer: client mask for ${shape.name}`, 8 * shape.inSize), shape.inSize, `dealer: client mask for ${shape.name}`);
    const s = r64Random(shape.outSize);
    ch.send(r64ToBytes(r64Sub(layer.apply(c), s)));
    return s;
  }
  async client(ch: Channel, shape: LinearShape, c: R64): Promise<R64> {
    if (c.lo.length !== shape.inSize) throw new Error(`dealer: ${shape.name}: mask has ${c.lo.length} elements, expected ${shape.inSize}`);
    ch.send(r64ToBytes(c));
    return r64FromBytes(await recvChecked(ch, `dealer: M c - s for ${shape.name}`, 8 * shape.outSize), shape.outSize, `dealer: M c - s for ${shape.name}`);
  }
}

export const PREPROCESSORS = ['dealer'] as const;

export function makePreprocessor(name: string): Preprocessor {
  if (name === 'dealer') return new DealerPreprocessor();
  throw new Error(`unknown preprocessor '${name}'; valid: ${PREPROCESSORS.join(', ')} (HE preprocessing comes with its own issue)`);
}
