// Where a queue lives: redis://[USER@]HOST[:PORT]/NAME (rediss:// for TLS). The password comes from the environment,
// never from the URL, because the URL is written into the run's reduce.json and results.json.
import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';

export interface QueueAddress {
  /** The URL as given (it holds no secret). */
  url: string;
  /** The BullMQ queue name. */
  name: string;
  connection: RedisOptions;
}

/** Every key of our queues starts with this (BullMQ's default is 'bull'). */
export const KEY_PREFIX = 'deepreduce';
export const PASSWORD_ENV = 'DEEPREDUCE_REDIS_PASSWORD';

export function parseQueueUrl(url: string): QueueAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue ${url}: not a URL; expected redis://HOST:PORT/NAME`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`--queue ${url}: the scheme must be redis:// or rediss://, not ${u.protocol}//`);
  if (u.password)
    throw new Error(
      `--queue ${url}: put the Redis password in ${PASSWORD_ENV}, not in the URL (the URL is written to the run's files)`,
    );
  if (!u.hostname) throw new Error(`--queue ${url}: no host; expected redis://HOST:PORT/NAME`);
  const name = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name))
    throw new Error(
      `--queue ${url}: the queue name (the path, e.g. redis://host:6379/reduce) must be 1-100 letters, digits, '.', '_' or '-'; got '${name}'`,
    );
  const password = process.env[PASSWORD_ENV];
  return {
    url,
    name,
    connection: {
      host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: u.port ? Number(u.port) : 6379,
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(password ? { password } : {}),
      ...(u.protocol === 'rediss:' ? { tls: { servername: u.hostname } } : {}),
      // BullMQ's workers block on Redis and must retry commands until the connection comes back.
      maxRetriesPerRequest: null,
    },
  };
}

/**
 * Connects and pings with a bounded wait (refused connections are retried until the deadline, for a server that is
 * starting), so a wrong URL or a stopped server fails at once with a message naming the URL.
 */
export async function checkRedis(a: QueueAddress, timeoutMs = 5_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const client = new Redis({
      ...a.connection,
      lazyConnect: true,
      connectTimeout: Math.max(100, timeoutMs - (Date.now() - t0)),
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    // The socket's error (ECONNREFUSED, ENOTFOUND) says more than the rejected connect ('Connection is closed').
    let cause: Error | null = null;
    client.on('error', (e: Error) => (cause = e));
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (e) {
      // A reply (wrong password, no permission) will not change by waiting.
      if ((e as Error).name === 'ReplyError' || Date.now() - t0 + 250 >= timeoutMs)
        throw new Error(
          `cannot reach Redis at ${a.url} (queue '${a.name}') within ${Math.ceil((Date.now() - t0) / 1000)} s: ${(cause ?? (e as Error)).message}`,
        );
      await sleep(250);
    } finally {
      client.disconnect();
    }
  }
}
