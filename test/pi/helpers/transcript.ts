// A recorder of what one party of a session receives (and, on request, sends), frame by frame, labelled with the
// channel and the party's protocol phase when it read the frame (or a label the test sets, for protocol pieces run
// without a session). Protocol-agnostic: it wraps Channel.recv/send, so it records the GC and OT ReLU protocols, HE
// or dealer preprocessing, and a browser client's channel alike. Also: the search for secret words in frames.
import type { Channel } from '../../../src/pi/transport/channel.js';
import type { R64 } from '../../../src/pi/fixed.js';
import type { DealerLink } from '../../../src/pi/node/dealer.js';
import type { SessionHooks } from '../../../src/pi/protocol.js';

export interface Frame {
  /** The label given to tap() (e.g. 'client', 'dealer'). */
  channel: string;
  dir: 'recv' | 'send';
  /** The recording party's phase when the frame was read or sent ('hello', 'setup', 'offline', 'online', 'done'). */
  phase: string;
  bytes: Uint8Array;
}

export class Transcript {
  readonly frames: Frame[] = [];
  private phase = 'hello';

  /** Labels the frames recorded from now on (instead of session hooks, e.g. 'offline' around one ReLU op). */
  label(phase: string): void {
    this.phase = phase;
  }

  /** Session hooks for the recording party (they label frames with its phase); `more` are kept. */
  hooks(more: SessionHooks = {}): SessionHooks {
    return {
      ...more,
      onPhase: (p) => {
        this.phase = p;
        more.onPhase?.(p);
      },
    };
  }

  /** Records every frame the party reads from `ch`, in its reading order (and every frame it sends if `sends`). */
  tap(ch: Channel, label: string, sends = false): Channel {
    const recv = ch.recv.bind(ch);
    ch.recv = async () => {
      const m = await recv();
      this.frames.push({ channel: label, dir: 'recv', phase: this.phase, bytes: m.slice() });
      return m;
    };
    if (sends) {
      const send = ch.send.bind(ch);
      ch.send = (d: Uint8Array) => {
        this.frames.push({ channel: label, dir: 'send', phase: this.phase, bytes: d.slice() });
        send(d);
      };
    }
    return ch;
  }

  /** A dealer link whose channels are tapped under `label`. */
  tapLink(link: DealerLink, label = 'dealer'): DealerLink {
    return async (role) => this.tap(await link(role), label);
  }

  /** Received frames, of the given phases (all when omitted) and channel (all when omitted). */
  received(phases?: readonly string[], channel?: string): Frame[] {
    return this.frames.filter(
      (f) => f.dir === 'recv' && (!phases || phases.includes(f.phase)) && (!channel || f.channel === channel),
    );
  }
}

const bytesEqual = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
};

/** Null when the two frame lists are byte-identical (same channels and phases too), else where they first differ. */
export function transcriptDifference(a: readonly Frame[], b: readonly Frame[]): string | null {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const fa = a[i],
      fb = b[i];
    if (!fa || !fb) return `frame ${i}: only one transcript has it (${a.length} vs ${b.length} frames)`;
    if (fa.channel !== fb.channel || fa.phase !== fb.phase || fa.dir !== fb.dir)
      return `frame ${i}: ${fa.dir} ${fa.channel}/${fa.phase} vs ${fb.dir} ${fb.channel}/${fb.phase}`;
    const at = bytesEqual(fa.bytes, fb.bytes);
    if (at >= 0)
      return `frame ${i} (${fa.channel}, ${fa.phase}, ${fa.bytes.length} vs ${fb.bytes.length} bytes): first difference at byte ${at}`;
  }
  return null;
}

export const totalBytes = (fs: readonly Frame[]): number => fs.reduce((s, f) => s + f.bytes.length, 0);

const key = (lo: number, hi: number) => `${hi >>> 0}:${lo >>> 0}`;

/** Secret 64-bit words (ring elements) to look for; values with little entropy (|v| < 2^16) are left out. */
export function secretWords(...vs: R64[]): Set<string> {
  const s = new Set<string>();
  for (const v of vs) {
    for (let i = 0; i < v.lo.length; i++) {
      const hi = v.hi[i]! | 0,
        lo = v.lo[i]!;
      if ((hi === 0 && lo < 65536) || (hi === -1 && lo > 0xffff0000)) continue;
      s.add(key(lo, hi));
    }
  }
  return s;
}

/** Occurrences of any secret word at ANY byte offset of the frames (little-endian, as r64ToBytes writes). */
export function leakedWords(frames: readonly Uint8Array[], secrets: Set<string>): { frame: number; offset: number }[] {
  const hits: { frame: number; offset: number }[] = [];
  frames.forEach((f, k) => {
    const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
    for (let o = 0; o + 8 <= f.byteLength; o++)
      if (secrets.has(key(dv.getUint32(o, true), dv.getUint32(o + 4, true)))) hits.push({ frame: k, offset: o });
  });
  return hits;
}

/** Records every message `ch` hands out (what that endpoint receives), in order. */
export function tapReceived(ch: Channel): Uint8Array[] {
  const seen: Uint8Array[] = [];
  const recv = ch.recv.bind(ch);
  ch.recv = async () => {
    const m = await recv();
    seen.push(m);
    return m;
  };
  return seen;
}
