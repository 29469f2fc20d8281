import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { checkRedis, parseQueueUrl, PASSWORD_ENV } from '../../src/queue/connection.js';
import { cli, freePort } from './helpers.js';

test('a queue URL names host, port and queue; a password in it, other schemes and bad names are refused', () => {
  const a = parseQueueUrl('redis://10.0.0.5:6380/reduce-c100');
  assert.deepEqual(
    [a.name, a.connection.host, a.connection.port, a.connection.tls],
    ['reduce-c100', '10.0.0.5', 6380, undefined],
  );
  assert.equal(parseQueueUrl('redis://cache/q').connection.port, 6379);
  assert.deepEqual(parseQueueUrl('rediss://user@cache.lan:6390/q').connection.tls, { servername: 'cache.lan' });
  assert.equal(parseQueueUrl('rediss://user@cache.lan:6390/q').connection.username, 'user');
  assert.equal(parseQueueUrl('redis://[::1]:7000/q').connection.host, '::1');
  assert.throws(() => parseQueueUrl('redis://u:secret@h:1/q'), new RegExp(`put the Redis password in ${PASSWORD_ENV}`));
  assert.throws(() => parseQueueUrl('http://h:1/q'), /scheme must be redis:\/\/ or rediss:\/\//);
  assert.throws(() => parseQueueUrl('redis://h:1/'), /queue name .* got ''/);
  assert.throws(() => parseQueueUrl('redis://h:1/a:b'), /queue name .* got 'a:b'/);
  assert.throws(() => parseQueueUrl('localhost:6379'), /scheme must be/);
  assert.throws(() => parseQueueUrl('not a url'), /not a URL/);
  process.env[PASSWORD_ENV] = 'from-env';
  try {
    assert.equal(parseQueueUrl('redis://h/q').connection.password, 'from-env');
  } finally {
    delete process.env[PASSWORD_ENV];
  }
});

test('no Redis at the URL: a clear error naming it, after a bounded wait', async () => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}/q`;
  const t0 = Date.now();
  await assert.rejects(
    checkRedis(parseQueueUrl(url), 1000),
    new RegExp(
      `cannot reach Redis at redis://127\\.0\\.0\\.1:${port}/q \\(queue 'q'\\) within 1 s: connect ECONNREFUSED`,
    ),
  );
  assert.ok(Date.now() - t0 < 5000);
  // The commands wait 5 s at most.
  const t1 = Date.now();
  const p = spawnSync(process.execPath, [cli, 'queue', 'status', '--queue', url], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(p.status, 1);
  assert.match(
    p.stderr,
    new RegExp(
      `deepreduce: cannot reach Redis at ${url.replaceAll('.', '\\.')} \\(queue 'q'\\) within 5 s: connect ECONNREFUSED`,
    ),
  );
  assert.ok(Date.now() - t1 < 30_000);
});
