// A client that waits its turn (no Node API: the page uses it too). A server at its session cap answers BUSY with a
// retry hint (wire.ts error frames: retry_ms, from the server's recent session durations); the client tries again
// after the larger of the hint and an exponential backoff, with jitter so that refused clients do not return in step,
// up to a bound on attempts and on each wait. Only BUSY is retried: any other failure is the answer.
import { PiError } from './transport/errors.js';

export interface RetryOptions {
  /** Tries in all, the first included (default 8). */
  attempts?: number;
  /** The first backoff (default 500 ms); it doubles per refusal. */
  baseMs?: number;
  /** The longest single wait (default 30 s). */
  maxWaitMs?: number;
  /** Each refusal, before its wait. */
  onRetry?: (e: PiError, attempt: number, waitMs: number) => void;
}

export const DEFAULT_RETRY = { attempts: 8, baseMs: 500, maxWaitMs: 30_000 } as const;

/** The wait before try `attempt + 1` after a BUSY refusal (with its hint, if any). */
export function retryWaitMs(
  attempt: number,
  hintMs: number | undefined,
  o: RetryOptions = {},
  random = Math.random,
): number {
  const base = o.baseMs ?? DEFAULT_RETRY.baseMs,
    max = o.maxWaitMs ?? DEFAULT_RETRY.maxWaitMs;
  const backoff = base * 2 ** Math.min(attempt - 1, 20);
  return Math.round(Math.min(max, Math.max(hintMs ?? 0, backoff) * (0.75 + 0.5 * random())));
}

/** Runs `attempt` (a whole session: connect and query) until it does not fail with BUSY, or the tries run out. */
export async function retryBusy<T>(attempt: () => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const n = o.attempts ?? DEFAULT_RETRY.attempts;
  for (let k = 1; ; k++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof PiError) || e.code !== 'BUSY' || k >= n) throw e;
      const wait = retryWaitMs(k, e.retryMs, o);
      o.onRetry?.(e, k, wait);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
