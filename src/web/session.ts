// One private query from the page: a WebSocket to the server's /pi endpoint, the client half of the protocol
// (protocol.ts runClient, the same code as the CLI client) on a WsChannel, progress from the protocol's own steps.
import { runClient, type ClientResult, type Phase, type StatEntry } from '../pi/protocol.js';
import { WsChannel, type WebSocketLike } from '../pi/transport/ws.js';
import { inputSpec, prepareImage, type RgbaImage } from '../pi/image.js';
import { seededClientRandomness, type ClientRandomness } from '../pi/random.js';
import type { PublicPlan } from '../pi/plan.js';
import { offlineMode } from '../pi/schedule.js';
import type { Channel } from '../pi/transport/channel.js';
import { DEFAULT_RETRY, retryBusy } from '../pi/retry.js';

export interface QueryProgress {
  phase: Phase | 'connecting' | 'done';
  /** Steps done and in all (known once the plan has arrived). */
  done: number;
  total: number;
  /** The last step (op name). */
  step: string;
}

/** The offline modes the page offers (a byte budget is the CLI's). */
export const PAGE_OFFLINE = ['all', 'layer'] as const;
export type PageOffline = (typeof PAGE_OFFLINE)[number];

export interface QueryOptions {
  /** wss://host:port/pi */
  url: string;
  preprocess: string;
  relu: string;
  /** The offline phase the page asks for in its hello (the server decides): all before the image, or layer by layer. */
  offline?: PageOffline;
  /** Test only: a seeded client randomness (fixed masks and coins). */
  seed?: string;
  /** Test only: act as a crafted client that sends an input share one element short. */
  shortInput?: boolean;
  onProgress(p: QueryProgress): void;
  /** The channel, once open (the page closes it when the user leaves). */
  onChannel?(ch: Channel): void;
  /** Tries in all while the server answers BUSY (default DEFAULT_RETRY.attempts); it waits the server's hint, with backoff. */
  attempts?: number;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      ws.onopen = ws.onerror = ws.onclose = null;
      resolve(ws);
    };
    ws.onerror = () => reject(new Error(`could not open a WebSocket to ${url}`));
    ws.onclose = (ev) =>
      reject(new Error(`the server closed the WebSocket before the session began (code ${ev.code})`));
  });
}

/** Steps the protocol reports (onStep) for a plan: the ReLU set-up, offline per conv/fc/ReLU/max pool, online per
 *  ReLU/max pool + input + output. */
export function stepCount(plan: PublicPlan): number {
  const lin = plan.ops.filter((o) => o.op === 'conv' || o.op === 'fc').length,
    relu = plan.ops.filter((o) => o.op === 'relu' || o.op === 'maxpool').length;
  return 1 + lin + relu + 1 + relu + 1;
}

/** One private query; a server at its session cap (BUSY) is asked again, a fresh session each time, up to `attempts`. */
export function queryPrivately(img: RgbaImage, o: QueryOptions): Promise<ClientResult> {
  const attempts = o.attempts ?? DEFAULT_RETRY.attempts;
  return retryBusy(() => queryOnce(img, o), {
    attempts,
    onRetry: (_e, k, wait) =>
      o.onProgress({
        phase: 'connecting',
        done: 0,
        total: 0,
        step: `the server is busy: trying again in ${Math.ceil(wait / 1e3)} s (${k} of ${attempts})`,
      }),
  });
}

async function queryOnce(img: RgbaImage, o: QueryOptions): Promise<ClientResult> {
  o.onProgress({ phase: 'connecting', done: 0, total: 0, step: 'opening the secure WebSocket' });
  const ws = await open(o.url);
  const ch = new WsChannel(ws as unknown as WebSocketLike, { name: 'server' });
  o.onChannel?.(ch);
  let total = 0,
    done = 0,
    phase: QueryProgress['phase'] = 'setup';
  // The crafted client: the first message of the online phase (the input share) goes out one element short.
  let cut = false;
  if (o.shortInput) {
    const send = ch.send.bind(ch);
    ch.send = (d: Uint8Array) => {
      if (cut) {
        cut = false;
        send(d.subarray(0, d.byteLength - 8));
      } else send(d);
    };
  }
  const random: ClientRandomness | undefined = o.seed !== undefined ? seededClientRandomness(o.seed) : undefined;
  try {
    return await runClient(
      ch,
      (plan) => {
        total = stepCount(plan);
        return prepareImage(inputSpec(plan), img);
      },
      {
        preprocess: o.preprocess,
        relu: o.relu,
        ...(o.offline ? { offline: offlineMode(o.offline) } : {}),
        ...(random ? { random } : {}),
        hooks: {
          onPhase: (p) => {
            if (p === 'online' && o.shortInput) cut = true;
            if (p !== 'hello') phase = p;
            o.onProgress({ phase, done, total, step: p === 'done' ? 'finished' : `${p} phase` });
          },
          onStep: (e: StatEntry) => {
            done++;
            o.onProgress({ phase, done, total, step: e.name });
          },
        },
      },
    );
  } finally {
    ch.close();
  }
}
