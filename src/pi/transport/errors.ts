// Errors that cross between parties carry only a code from this list; the text shown for a peer's error is the
// fixed generic text of its code, never the peer's words. Details (values, indices, sizes, digests) stay in the
// local error's message and the local log. No Node-only API: the browser client uses it too.

export const ERROR_CODES = {
  /** A message of the wrong size, type or content. */
  MALFORMED: 'malformed message',
  /** A frame above the size limit of the protocol state, or too many bytes buffered unread. */
  LIMIT: 'message exceeds the size limit',
  /** Another protocol version, an unknown preprocessor or ReLU protocol, or options the other side does not use. */
  PROTOCOL: 'unsupported protocol or options',
  /** A phase deadline or the idle timeout passed. */
  TIMEOUT: 'deadline exceeded',
  /** The server (or dealer) runs its maximum number of sessions. */
  BUSY: 'too many sessions, try again later',
  /** A party that must authenticate did not. */
  AUTH: 'not authorized',
  /** The server and the dealer do not serve the same model. */
  MISMATCH: 'the server and the dealer serve different models',
  /** A session id that no counterpart joined, or that is already in use. */
  SESSION: 'unknown or expired session',
  /** Another party of the session failed or left. */
  ABORTED: 'session aborted by another party',
  /** Anything else (a local fault of the sender). */
  INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const isErrorCode = (c: unknown): c is ErrorCode => typeof c === 'string' && Object.hasOwn(ERROR_CODES, c);

/** A local error with the code the peer is told; `message` holds the local details. */
export class PiError extends Error {
  /** BUSY: when to try again (ms), as the refusing party suggests; sent in the error frame. */
  readonly retryMs?: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryMs?: number },
  ) {
    super(message, options);
    this.name = 'PiError';
    if (options?.retryMs !== undefined) this.retryMs = options.retryMs;
  }
}

/** The code a local failure is reported to the peer with (INTERNAL for anything not raised as a PiError). */
export const codeOf = (e: unknown): ErrorCode => (e instanceof PiError ? e.code : 'INTERNAL');

export const malformed = (message: string): PiError => new PiError('MALFORMED', message);
