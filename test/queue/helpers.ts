// A real redis-server on a free loopback port and `deepreduce worker` processes, for the queue tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A port nothing listens on now (the kernel picks it for port 0; redis itself refuses --port 0). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** Polls until cond() is truthy; fails after timeoutMs naming what it waited for. */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  what: string,
  timeoutMs = 120_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const t0 = Date.now();
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

const children = new Set<ChildProcess>();
// Whatever happens to the test, its servers and workers do not outlive it.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface RedisServer {
  port: number;
  url: (queue: string) => string;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const p = spawn(
    '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  children.add(p);
  const exited = new Promise((res) => p.on('exit', res));
  await waitFor(
    async () => {
      if (p.exitCode !== null) throw new Error(`redis-server exited with ${p.exitCode}`);
      const r = new Redis({
        host: '127.0.0.1',
        port,
        lazyConnect: true,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
      });
      r.on('error', () => {});
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        r.disconnect();
      }
    },
    `redis-server on port ${port}`,
    20_000,
    100,
  );
  return {
    port,
    url: (queue) => `redis://127.0.0.1:${port}/${queue}`,
    async stop() {
      p.kill('SIGKILL');
      await exited;
      children.delete(p);
    },
  };
}

export interface WorkerProcess {
  proc: ChildProcess;
  /** everything it printed so far */
  output(): string;
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

/** `deepreduce worker` with short locks, so a killed worker's job is taken over within seconds. */
export function startWorker(queue: string, extra: string[] = []): WorkerProcess {
  const proc = spawn(
    process.execPath,
    [cli, 'worker', '--queue', queue, '--threads', '1', '--lock-duration', '4', '--stalled-interval', '2', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(proc);
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((res) => proc.on('exit', (c) => res(c)));
  return {
    proc,
    exited,
    output: () => out,
    async kill() {
      proc.kill('SIGKILL');
      await exited;
      children.delete(proc);
    },
  };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
