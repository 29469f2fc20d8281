// Channels over TCP (Node): length-prefixed frames (4-byte big-endian length, then the payload).
import { createServer, connect, type Socket, type Server } from 'node:net';
import { ChannelBase, type Channel, type ChannelOptions } from './channel.js';

const HEADER = 4;

export class TcpChannel extends ChannelBase {
  readonly name: string;
  private hdr = new Uint8Array(HEADER);
  private hdrFill = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;

  constructor(readonly socket: Socket, opts: ChannelOptions = {}) {
    super(opts);
    this.name = opts.name ?? `tcp ${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd());
    socket.on('error', (e) => this.fail(new Error(`${this.name}: socket error: ${e.message}`)));
  }

  private onData(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.body === null) {
        const n = Math.min(HEADER - this.hdrFill, chunk.length - p);
        this.hdr.set(chunk.subarray(p, p + n), this.hdrFill);
        this.hdrFill += n;
        p += n;
        if (this.hdrFill < HEADER) return;
        const len = ((this.hdr[0] << 24) | (this.hdr[1] << 16) | (this.hdr[2] << 8) | this.hdr[3]) >>> 0;
        this.hdrFill = 0;
        if (len > this.maxFrameBytes) {
          this.fail(new Error(`${this.name}: malformed frame: length prefix ${len} exceeds maxFrameBytes ${this.maxFrameBytes}`));
          this.socket.destroy();
          return;
        }
        this.body = new Uint8Array(len);
        this.bodyFill = 0;
      }
      const n = Math.min(this.body.length - this.bodyFill, chunk.length - p);
      this.body.set(chunk.subarray(p, p + n), this.bodyFill);
      this.bodyFill += n;
      p += n;
      if (this.bodyFill === this.body.length) {
        const m = this.body;
        this.body = null;
        this.deliver(m);
      }
    }
  }

  private onEnd(): void {
    if (this.body !== null) {
      this.fail(new Error(`${this.name}: truncated frame: connection closed after ${this.bodyFill} of ${this.body.length} payload bytes`));
    } else if (this.hdrFill > 0) {
      this.fail(new Error(`${this.name}: truncated frame: connection closed after ${this.hdrFill} of ${HEADER} length-prefix bytes`));
    } else {
      this.fail(new Error(`${this.name}: peer closed the connection`));
    }
  }

  protected write(data: Uint8Array): void {
    const h = new Uint8Array(HEADER);
    const len = data.byteLength;
    h[0] = len >>> 24; h[1] = (len >>> 16) & 255; h[2] = (len >>> 8) & 255; h[3] = len & 255;
    this.socket.cork();
    this.socket.write(h);
    if (len > 0) this.socket.write(data);
    this.socket.uncork();
  }

  protected shutdown(): void {
    this.socket.end();
  }

  flush(): Promise<void> {
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        this.socket.off('drain', ok);
        this.socket.off('close', closed);
        if (err) reject(err); else resolve();
      };
      const ok = () => done();
      const closed = () => done(new Error(`${this.name}: connection closed before queued data was sent`));
      this.socket.on('drain', ok);
      this.socket.on('close', closed);
    });
  }
}

/** Connects to a listening party; rejects with an error naming host:port. */
export function connectTcp(host: string, port: number, opts: ChannelOptions = {}): Promise<TcpChannel> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const onErr = (e: Error) => reject(new Error(`connect ${host}:${port}: ${e.message}`));
    s.once('error', onErr);
    s.once('connect', () => {
      s.off('error', onErr);
      resolve(new TcpChannel(s, { ...opts, name: opts.name ?? `tcp ${host}:${port}` }));
    });
  });
}

export interface TcpListener {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * Accepts connections and runs `handler` for each, concurrently. A handler that throws (e.g. the client
 * disconnected mid-protocol) is reported to `onError` (default: stderr) and its channel is closed; the
 * listener keeps serving. `port` 0 picks an ephemeral port.
 */
export function listenTcp(
  opts: ChannelOptions & { port: number; host?: string; onError?: (err: Error, ch: Channel) => void },
  handler: (ch: Channel) => Promise<void> | void,
): Promise<TcpListener> {
  const onError = opts.onError ?? ((err, ch) => process.stderr.write(`[pi] ${ch.name}: ${err.message}\n`));
  const server = createServer((socket) => {
    const ch = new TcpChannel(socket, { maxFrameBytes: opts.maxFrameBytes });
    Promise.resolve()
      .then(() => handler(ch))
      .catch((e) => onError(e instanceof Error ? e : new Error(String(e)), ch))
      .finally(() => ch.close());
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`listen on ${opts.host ?? '0.0.0.0'}:${opts.port}: ${e.message}`)));
    server.listen(opts.port, opts.host, () => {
      server.on('error', (e) => process.stderr.write(`[pi] listener on port ${opts.port}: ${e.message}\n`));
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : opts.port;
      resolve({
        port,
        server,
        close: () => new Promise<void>((res) => server.close(() => res())),
      });
    });
  });
}
