// `pi bench --processes`: each party in its own process (`pi serve` and `pi query` through pi/node/main.js, TLS with
// a fresh identity unless --insecure), so that each party's peak resident set is its own: the server's from its
// session line (--json), the client's from its report. One fresh pair of processes per run.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateIdentity } from './transport/tls.js';
import type { PiReport } from './bench.js';

const entry = () => fileURLToPath(new URL('./main.js', import.meta.url));

/** A `pi` child: stderr kept for errors and the port, stdout collected. */
class Child {
  readonly p: ChildProcess;
  err = '';
  out = '';
  constructor(
    readonly name: string,
    args: string[],
  ) {
    this.p = spawn(process.execPath, [entry(), 'pi', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.p.stdout!.on('data', (d: Buffer) => void (this.out += d));
    this.p.stderr!.on('data', (d: Buffer) => void (this.err = (this.err + d).slice(-8000)));
  }
  /** The port from the server's "... on HOST:PORT" line. */
  port(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        const m = / on [^\s]*:(\d+) over/.exec(this.err);
        if (m) {
          clearInterval(poll);
          resolve(Number(m[1]));
        } else if (this.p.exitCode !== null || Date.now() - t0 > timeoutMs) {
          clearInterval(poll);
          reject(new Error(`${this.name} did not start listening: ${this.err.trim()}`));
        }
      }, 100);
    });
  }
  done(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.p.once('close', (code, sig) =>
        code === 0 ? resolve(this.out) : reject(new Error(`${this.name} failed (${sig ?? code}): ${this.err.trim()}`)),
      );
    });
  }
  async stop(): Promise<void> {
    if (this.p.exitCode !== null || this.p.signalCode !== null) return;
    const gone = new Promise<void>((r) => this.p.once('exit', () => r()));
    this.p.kill('SIGTERM');
    const t = setTimeout(() => this.p.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }
}

export interface ProcessRun {
  /** Model options as `pi serve` takes them (--arch resnet50-imagenet --classes 1000 ...). */
  modelArgs: string[];
  preprocess: string;
  relu: string;
  /** --link value, or null. */
  link: string | null;
  /** --offline value (the client's wish and the server's choice). */
  offline: string;
  insecure?: boolean;
  batch?: number;
  workerThreads: number;
  seed: number;
  /** Milliseconds for the server to load the model and listen. */
  startMs?: number;
}

/** One query, server and client in their own processes; the client's report with both parties' peak RSS. */
export async function benchProcesses(o: ProcessRun): Promise<PiReport> {
  const dir = mkdtempSync(join(tmpdir(), 'pi-bench-'));
  let server: Child | null = null;
  try {
    const tls: string[] = [],
      trust: string[] = [];
    if (o.insecure) {
      tls.push('--insecure');
      trust.push('--insecure');
    } else {
      const id = await generateIdentity();
      writeFileSync(join(dir, 'cert.pem'), id.cert);
      writeFileSync(join(dir, 'key.pem'), id.key, { mode: 0o600 });
      tls.push('--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'));
      trust.push('--pin', id.fingerprint);
    }
    const link = o.link ? ['--link', o.link] : [];
    const common = ['--preprocess', o.preprocess, '--relu', o.relu, '--offline', o.offline, ...link];
    server = new Child('server', [
      'serve',
      '--port',
      '0',
      ...tls,
      ...o.modelArgs,
      ...common,
      ...(o.batch ? ['--batch', String(o.batch)] : []),
      '--worker-threads',
      String(o.workerThreads),
      '--report-timings',
      '--json',
    ]);
    const port = await server.port(o.startMs ?? 600_000);
    const client = new Child('client', [
      'query',
      '--connect',
      `127.0.0.1:${port}`,
      ...trust,
      '--random-input',
      String(o.seed),
      ...common,
      '--timings',
      '--json',
    ]);
    const rep = JSON.parse(await client.done()) as PiReport;
    // the server's session line (--json) carries its peak RSS; it is written when the session ends
    const t0 = Date.now();
    let line: { peakRssBytes?: number } | undefined;
    while (!line && Date.now() - t0 < 30_000) {
      line = server.out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { outcome?: string; peakRssBytes?: number })
        .find((l) => l.outcome === 'ok');
      if (!line) await new Promise((r) => setTimeout(r, 100));
    }
    if (line?.peakRssBytes !== undefined) rep.memory.rss.server = line.peakRssBytes;
    return rep;
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
