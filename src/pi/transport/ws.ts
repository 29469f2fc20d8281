// A channel over a WebSocket: the browser client's medium (the page's WebSocket) and the server's (the `ws` package's
// socket), one class for both, no Node API. The WebSocket carries the same byte stream as TCP/TLS: length-prefixed
// frames (channel.ts FrameReader), cut into binary WebSocket messages of at most WS_CHUNK bytes. So the frame limits,
// the unread-bytes cap, the idle timeout and the deadlines are those of every other medium, applied as the length
// prefix arrives (before the payload is buffered), and a WebSocket message never holds more than WS_CHUNK bytes:
// the server's `ws` maxPayload is WS_CHUNK, whatever the session's current frame limit.
import { ChannelBase, framePrefix, type ChannelOptions } from './channel.js';
import { PiError } from './errors.js';

/** Largest WebSocket message either side sends (and the server's `ws` accepts). */
export const WS_CHUNK = 1 << 20;

/** The part of a WebSocket both the browser's and the `ws` package's implement. */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

const OPEN = 1;
const DRAIN_POLL_MS = 5;

export class WsChannel extends ChannelBase {
  readonly name: string;

  constructor(
    readonly socket: WebSocketLike,
    opts: ChannelOptions & { name: string },
  ) {
    super(opts);
    this.name = opts.name;
    socket.binaryType = 'arraybuffer';
    socket.onmessage = (ev) => {
      const d = ev.data;
      if (d instanceof ArrayBuffer) this.receiveBytes(new Uint8Array(d));
      else if (ArrayBuffer.isView(d)) this.receiveBytes(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      else
        this.fail(
          new PiError('MALFORMED', `${this.name}: a text WebSocket message (the protocol sends binary frames only)`),
        );
    };
    socket.onclose = (ev) => {
      const t = this.reader.truncation();
      this.fail(
        t
          ? new PiError('MALFORMED', `${this.name}: ${t}`)
          : new PiError(
              'ABORTED',
              `${this.name}: peer closed the connection${ev.code !== 1000 && ev.code !== 1005 ? ` (WebSocket close code ${ev.code})` : ''}`,
            ),
        true,
      );
    };
    socket.onerror = () => this.fail(new PiError('ABORTED', `${this.name}: WebSocket error`), true);
  }

  protected write(data: Uint8Array): void {
    if (this.socket.readyState !== OPEN) return; // the close event fails the channel
    const total = 4 + data.byteLength;
    const first = new Uint8Array(Math.min(WS_CHUNK, total));
    first.set(framePrefix(data.byteLength));
    first.set(data.subarray(0, first.length - 4), 4);
    this.socket.send(first);
    for (let off = first.length - 4; off < data.byteLength; off += WS_CHUNK) {
      // A copy: the caller may reuse its buffer once send() returns, and a subarray would pin the whole of it.
      this.socket.send(data.slice(off, Math.min(data.byteLength, off + WS_CHUNK)));
    }
  }

  protected override onFatalInput(): void {
    // Nothing more is read; the error frame (if any) goes out, then close() ends the socket.
    this.socket.onmessage = null;
  }

  protected shutdown(): void {
    // close() sends after the queued messages (a last error frame); a peer that never reads is cut by the TCP layer.
    if (this.socket.readyState <= OPEN) this.socket.close(1000);
  }

  protected drained(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.socket.bufferedAmount === 0 || this.socket.readyState !== OPEN) resolve();
        else setTimeout(check, DRAIN_POLL_MS);
      };
      check();
    });
  }

  protected outstanding(): number {
    return this.socket.bufferedAmount;
  }
}
