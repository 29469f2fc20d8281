// The trusted-dealer preprocessor (a third party; see dealer.ts for the dealer itself).
import type { Channel } from '../../transport/channel.js';
import { r64FromBytes, r64Sub, r64ToBytes, type R64 } from '../../fixed.js';
import { randomR64, type Random } from '../../random.js';
import type { RingLinear } from '../../ringlinear.js';
import type { MessageBounds } from '../../messages.js';
import { recvChecked } from '../../wire.js';
import type { LinearShape, PendingLinear, PreprocessContext, Preprocessor } from '../index.js';

function dealerOf(ctx: PreprocessContext, role: string): Channel {
  if (!ctx.dealer)
    throw new Error(`${role}: preprocessing 'dealer' needs a channel to the dealer, and this session has none`);
  return ctx.dealer;
}

/**
 * A TRUSTED DEALER, a third party that knows the weights M (it loads the model as the server does) and does not
 * collude with the server. Per layer, in plan order: the dealer draws s and sends it to the server; the client
 * sends its mask c to the dealer; the dealer returns M c - s to the client. The server-client channel carries
 * nothing of this. The dealer's half is `dealLayer` (run by `Dealer`, dealer.ts).
 */
export class DealerPreprocessor implements Preprocessor {
  readonly name = 'dealer';
  readonly needsDealer = true;
  maxMessageBytes(): MessageBounds {
    return { toServer: 0, toClient: 0 }; // nothing between server and client: everything goes through the dealer
  }
  async server(ctx: PreprocessContext, shape: LinearShape): Promise<R64> {
    const what = `dealer: s for ${shape.name}`;
    return r64FromBytes(await recvChecked(dealerOf(ctx, 'server'), what, 8 * shape.outSize), shape.outSize, what);
  }
  /** The whole exchange (the dealer's channel is not the peer's: nothing to overlap there). */
  async clientStart(ctx: PreprocessContext, shape: LinearShape, c: R64): Promise<PendingLinear> {
    const y = await this.client(ctx, shape, c);
    return { finish: async () => y };
  }
  async client(ctx: PreprocessContext, shape: LinearShape, c: R64): Promise<R64> {
    const d = dealerOf(ctx, 'client');
    if (c.lo.length !== shape.inSize)
      throw new Error(`dealer: ${shape.name}: mask has ${c.lo.length} elements, expected ${shape.inSize}`);
    d.send(r64ToBytes(c));
    const what = `dealer: M c - s for ${shape.name}`;
    return r64FromBytes(await recvChecked(d, what, 8 * shape.outSize), shape.outSize, what);
  }
}

/** The dealer's half of DealerPreprocessor for one layer (server and client are the dealer's channels to them). */
export async function dealLayer(
  server: Channel,
  client: Channel,
  shape: LinearShape,
  layer: RingLinear,
  random: Random,
): Promise<void> {
  if (layer.inSize !== shape.inSize || layer.outSize !== shape.outSize) {
    throw new Error(
      `dealer: ${shape.name}: layer is ${layer.inSize} -> ${layer.outSize}, the plan says ${shape.inSize} -> ${shape.outSize}`,
    );
  }
  const s = randomR64(random, shape.outSize);
  server.send(r64ToBytes(s));
  const what = `client mask for ${shape.name}`;
  const c = r64FromBytes(await recvChecked(client, what, 8 * shape.inSize), shape.inSize, what);
  client.send(r64ToBytes(r64Sub(layer.apply(c), s)));
}
