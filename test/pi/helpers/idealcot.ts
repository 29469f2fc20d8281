// An ideal correlated OT for tests: a functionality both parties of one process share, with no messages at all (the
// sender draws K0 and hands K0 ⊕ c·Δ to the receiver in memory). A second implementation of ot/ot.ts's CotExtension,
// to show that what sits on the interface (KK13, the millionaires' protocol, the OT session) runs on any COT.
import type { CotExtension, CotReceiver, CotSender } from '../../../src/pi/ot/ot.js';
import { systemRandom, type Random } from '../../../src/pi/random.js';

interface Request {
  choices: Uint8Array;
  m: number;
  resolve: (k: Uint8Array) => void;
}

/** One direction of one COT instance: the receiver's requests, in order, for the sender to serve. */
class Pipe {
  private readonly reqs: Request[] = [];
  private wake: (() => void) | null = null;
  push(r: Request): void {
    this.reqs.push(r);
    this.wake?.();
    this.wake = null;
  }
  async next(): Promise<Request> {
    while (!this.reqs.length) await new Promise<void>((res) => (this.wake = res));
    return this.reqs.shift()!;
  }
}

class IdealSender implements CotSender {
  constructor(
    private readonly pipe: Pipe,
    readonly delta: Uint8Array,
    private readonly random: Random,
  ) {}
  async sendCot(m: number): Promise<Uint8Array> {
    const r = await this.pipe.next();
    if (r.m !== m) throw new Error(`ideal COT: the sender asks for ${m} OTs, the receiver for ${r.m}`);
    const k0 = this.random.bytes(16 * m),
      k = k0.slice();
    for (let j = 0; j < m; j++) {
      if ((r.choices[j >>> 3]! >>> (j & 7)) & 1) for (let q = 0; q < 16; q++) k[16 * j + q]! ^= this.delta[q]!;
    }
    r.resolve(k);
    return k0;
  }
}

class IdealReceiver implements CotReceiver {
  constructor(private readonly pipe: Pipe) {}
  recvCot(choices: Uint8Array, m: number): Promise<Uint8Array> {
    return new Promise((resolve) => this.pipe.push({ choices: choices.slice(), m, resolve }));
  }
}

/**
 * The two parties' ends of an ideal COT: the n-th COT a party creates as sender pairs with the n-th its peer creates as
 * receiver (per direction). Base OTs are never run (`fromBase` ignores its keys).
 */
export function idealCot(random: Random = systemRandom): { server: CotExtension; client: CotExtension } {
  const pipes = new Map<string, Pipe>();
  const pipe = (key: string) => {
    if (!pipes.has(key)) pipes.set(key, new Pipe());
    return pipes.get(key)!;
  };
  const end = (me: 'server' | 'client', peer: 'server' | 'client'): CotExtension => {
    let sent = 0,
      received = 0;
    const sender = (delta?: Uint8Array) =>
      new IdealSender(pipe(`${me}>${peer}#${sent++}`), Uint8Array.from(delta ?? random.bytes(16)), random);
    const receiver = () => new IdealReceiver(pipe(`${peer}>${me}#${received++}`));
    return {
      name: 'ideal',
      sender: async (_ch, o) => sender(o.delta),
      receiver: async () => receiver(),
      senderFromBase: (_ch, delta) => sender(delta),
      receiverFromBase: () => receiver(),
    };
  };
  return { server: end('server', 'client'), client: end('client', 'server') };
}
