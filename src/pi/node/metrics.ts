// Operating `pi serve` (Node): Prometheus metrics in the text exposition format (written here: a few counters, a
// histogram and gauges do not need a client library) and a health endpoint, on their own plain-HTTP listener,
// 127.0.0.1 by default (`--metrics-port`). Nothing here reaches a client of the protocol.
import { createServer, type Server } from 'node:http';
import type { SessionEnd, SessionPool } from './serve.js';

const PHASES = ['setup', 'offline', 'online'] as const;
/** Phase duration buckets (seconds). */
const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Counters of a serving process, fed with every session's end and every refused connection. */
export class ServeMetrics {
  private readonly sessions = new Map<string, number>();
  private readonly errors = new Map<string, number>();
  private readonly refused = new Map<string, number>();
  private bytesSent = 0;
  private bytesRecv = 0;
  private readonly phase = new Map<string, { buckets: number[]; sum: number; count: number }>(
    PHASES.map((p) => [p, { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 }]),
  );

  session(e: SessionEnd): void {
    this.sessions.set(e.outcome, (this.sessions.get(e.outcome) ?? 0) + 1);
    if (e.outcome !== 'ok') this.errors.set(e.outcome, (this.errors.get(e.outcome) ?? 0) + 1);
    this.bytesSent += e.bytesSent;
    this.bytesRecv += e.bytesRecv;
    for (const p of PHASES) {
      const ms = e.phases?.[p]?.ms;
      if (ms === undefined) continue;
      const h = this.phase.get(p)!,
        s = ms / 1e3;
      BUCKETS.forEach((b, i) => {
        if (s <= b) h.buckets[i]!++;
      });
      h.sum += s;
      h.count++;
    }
  }

  /** A connection refused before it became a session; `why` is reduced to a short reason label. */
  refusedConnection(why: string): void {
    const reason = /TLS handshake/.test(why)
      ? 'tls_handshake'
      : /new connections per second/.test(why)
        ? 'connect_rate'
        : /from /.test(why) && /connections from/.test(why)
          ? 'per_address'
          : /connections/.test(why)
            ? 'max_connections'
            : /origin/.test(why)
              ? 'origin'
              : 'other';
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  /** The text exposition format (version 0.0.4). */
  render(pool: SessionPool, extra: { connections: number }): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, samples: [Record<string, string>, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) {
        const l = Object.entries(labels)
          .map(([k, x]) => `${k}="${esc(x)}"`)
          .join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(v) ? v : 0}`);
      }
    };
    family(
      'pi_sessions_total',
      'counter',
      'Sessions ended, by outcome (ok or the error code).',
      [...this.sessions].map(([o, n]) => [{ outcome: o }, n]),
    );
    family(
      'pi_session_errors_total',
      'counter',
      'Sessions that failed, by error code.',
      [...this.errors].map(([c, n]) => [{ code: c }, n]),
    );
    family(
      'pi_connections_refused_total',
      'counter',
      'Connections refused before they became a session, by reason.',
      [...this.refused].map(([r, n]) => [{ reason: r }, n]),
    );
    family('pi_bytes_sent_total', 'counter', 'Bytes the server sent in sessions (frame payloads).', [
      [{}, this.bytesSent],
    ]);
    family('pi_bytes_received_total', 'counter', 'Bytes the server received in sessions (frame payloads).', [
      [{}, this.bytesRecv],
    ]);
    out.push(
      '# HELP pi_phase_duration_seconds Wall time of each phase of successful sessions.',
      '# TYPE pi_phase_duration_seconds histogram',
    );
    for (const [p, h] of this.phase) {
      BUCKETS.forEach((b, i) => out.push(`pi_phase_duration_seconds_bucket{phase="${p}",le="${b}"} ${h.buckets[i]}`));
      out.push(
        `pi_phase_duration_seconds_bucket{phase="${p}",le="+Inf"} ${h.count}`,
        `pi_phase_duration_seconds_sum{phase="${p}"} ${h.sum}`,
        `pi_phase_duration_seconds_count{phase="${p}"} ${h.count}`,
      );
    }
    family('pi_sessions_running', 'gauge', 'Sessions admitted and running.', [[{}, pool.admitted]]);
    family('pi_sessions_max', 'gauge', 'The session cap (--max-sessions).', [[{}, pool.maxSessions]]);
    family('pi_connections_open', 'gauge', 'Open connections (TCP/TLS and WebSocket), before or after their hello.', [
      [{}, extra.connections],
    ]);
    family('pi_draining', 'gauge', '1 while the server drains (SIGTERM): new sessions are refused.', [
      [{}, pool.isDraining ? 1 : 0],
    ]);
    family('process_resident_memory_bytes', 'gauge', 'Resident set size of the server process.', [
      [{}, process.memoryUsage.rss()],
    ]);
    return `${out.join('\n')}\n`;
  }
}

export interface MetricsServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** GET /metrics (Prometheus text) and GET /healthz (200 "ok", 503 "draining") on plain HTTP. */
export function serveMetrics(o: {
  port: number;
  host?: string;
  metrics: ServeMetrics;
  pool: SessionPool;
  connections: () => number;
}): Promise<MetricsServer> {
  const host = o.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      const body = o.metrics.render(o.pool, { connections: o.connections() });
      res
        .writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' })
        .end(req.method === 'HEAD' ? undefined : body);
    } else if (path === '/healthz') {
      const draining = o.pool.isDraining;
      res
        .writeHead(draining ? 503 : 200, { 'Content-Type': 'application/json' })
        .end(
          req.method === 'HEAD'
            ? undefined
            : `${JSON.stringify({ status: draining ? 'draining' : 'ok', sessions: o.pool.admitted, maxSessions: o.pool.maxSessions })}\n`,
        );
    } else {
      res.writeHead(404).end();
    }
  });
  server.requestTimeout = 5000;
  server.headersTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`metrics listener on ${host}:${o.port}: ${e.message}`)));
    server.listen(o.port, host, () => {
      const a = server.address();
      resolve({
        port: typeof a === 'object' && a ? a.port : o.port,
        server,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
