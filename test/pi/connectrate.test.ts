// The per-address connect rate: a token bucket checked on the raw accept, so that a refused connection never costs the
// server a TLS handshake; one budget per address across the listeners that share it; a flood logs a summary, not a
// line per connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createServer as createHttps } from 'node:https';
import { ConnectRate } from '../../src/pi/node/transport/connectrate.js';
import { RefusalLog } from '../../src/pi/node/refusals.js';
import { listenTcp, refuseFast } from '../../src/pi/node/transport/tcp.js';
import { identity } from './helpers/tls.js';

test('ConnectRate: a burst, then refusals until the bucket refills; each address has its own; 0 is no limit', () => {
  let t = 0;
  const r = new ConnectRate(4, 8, () => t);
  for (let i = 0; i < 8; i++) assert.ok(r.take('a'), `burst ${i}`);
  assert.equal(r.take('a'), false);
  assert.ok(r.take('b'), 'another address has its own bucket');
  t += 250; // one token at 4/s
  assert.ok(r.take('a'));
  assert.equal(r.take('a'), false);
  t += 10_000; // refills to the burst, never past it
  for (let i = 0; i < 8; i++) assert.ok(r.take('a'));
  assert.equal(r.take('a'), false);
  const off = new ConnectRate(0);
  for (let i = 0; i < 1000; i++) assert.ok(off.take('a'));
  assert.throws(() => new ConnectRate(-1), /connect rate must be >= 0/);
});

test('ConnectRate: the addresses it tracks are bounded; idle buckets go first', () => {
  let t = 0;
  const r = new ConnectRate(1, 1, () => t);
  for (let i = 0; i < 70_000; i++) r.take(`10.0.${i >> 8}.${i & 255}`);
  assert.ok(r.tracked <= 65_536, `${r.tracked} tracked`);
  // Later: the idle (refilled) buckets are evicted first; an address still short of tokens keeps its empty bucket.
  t += 5000;
  r.take('hot');
  assert.equal(r.take('hot'), false);
  let i = 0;
  for (let before = r.tracked; i < 70_000 && r.tracked >= before; i++) {
    before = r.tracked;
    r.take(`10.1.${i >> 8}.${i & 255}`);
  }
  assert.ok(r.tracked <= i + 1, `the idle buckets went (${r.tracked} left after ${i} new addresses)`);
  assert.equal(r.take('hot'), false, 'the busy address was not reset by the eviction');
});

test('RefusalLog: the first refusal is printed, a flood is summed up by reason', () => {
  let t = 0;
  const lines: string[] = [];
  const log = new RefusalLog(
    (l) => lines.push(l),
    10_000,
    () => t,
  );
  log.add('more than 8 new connections per second from 127.0.0.2');
  for (let i = 0; i < 500; i++) log.add(`more than 8 new connections per second from 127.0.0.${2 + (i % 3)}`);
  log.add('TLS handshake failed: bad');
  assert.equal(lines.length, 1);
  t += 10_000;
  log.flush();
  assert.equal(lines.length, 2);
  assert.match(lines[1]!, /500 x more than # new connections per second from #; 1 x TLS handshake failed: bad/);
  log.flush();
  assert.equal(lines.length, 2, 'nothing new, no line');
});

const raw = (port: number, localAddress = '127.0.0.1') =>
  new Promise<Socket>((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, localAddress }, () => res(s));
    s.once('error', rej);
  });
/** Resolves with whether a TLS handshake over a fresh connection completed. */
const handshake = (port: number, localAddress = '127.0.0.1') =>
  raw(port, localAddress).then(
    (socket) =>
      new Promise<boolean>((res) => {
        // The server closes it (its handler closes at once); closing here first could fail the server's side.
        const s = tlsConnect({ socket, rejectUnauthorized: false }, () => res(true));
        setTimeout(() => s.destroy(), 2000).unref();
        s.on('error', () => res(false));
        s.once('close', () => res(false));
      }),
  );

test('listenTcp over TLS: past the connect rate a connection is closed before any handshake, per address', async () => {
  const S = await identity('server');
  const refused: string[] = [];
  let handshakes = 0;
  const rate = new ConnectRate(0.01, 3); // three, then (practically) none
  const l = await listenTcp(
    { port: 0, tls: { cert: S.cert, key: S.key }, connectRate: rate, onRefused: (w) => refused.push(w) },
    async (ch) => {
      handshakes++;
      ch.close();
    },
  );
  l.server.on('secureConnection', () => {});
  try {
    const got: boolean[] = [];
    for (let i = 0; i < 6; i++) got.push(await handshake(l.port));
    assert.deepEqual(got, [true, true, true, false, false, false]);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(handshakes, 3, 'no handler and no TLS for the refused');
    assert.equal(refused.length, 3, refused.join(' / '));
    for (const w of refused) assert.match(w, /more than 0.01 new connections per second from 127.0.0.1/);
    assert.ok(!refused.some((w) => /TLS handshake/.test(w)), 'a refused socket never reached the TLS layer');
    assert.equal(await handshake(l.port, '127.0.0.2'), true, 'another address has its own budget');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(l.connections, 0, 'refused connections are not counted as open');
  } finally {
    await l.close();
  }
});

test('listenTcp over plain TCP: a refused connection never reaches the handler', async () => {
  let handled = 0;
  const l = await listenTcp({ port: 0, connectRate: new ConnectRate(0.01, 2) }, async (ch) => {
    handled++;
    ch.close();
  });
  try {
    const closes = await Promise.all(
      Array.from({ length: 5 }, () =>
        raw(l.port).then((s) => new Promise<void>((r) => (s.on('error', () => {}), s.once('close', () => r())))),
      ),
    );
    assert.equal(closes.length, 5);
    assert.equal(handled, 2);
  } finally {
    await l.close();
  }
});

test('one budget across listeners: the HTTPS (web) server and the TLS listener share it', async () => {
  const S = await identity('server');
  const rate = new ConnectRate(0.01, 4);
  const l = await listenTcp({ port: 0, tls: { cert: S.cert, key: S.key }, connectRate: rate }, (ch) => ch.close());
  const web = createHttps({ cert: S.cert, key: S.key }, (_q, res) => res.end('ok'));
  const refused: string[] = [];
  refuseFast(web, rate, (w) => refused.push(w));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  const webPort = (web.address() as { port: number }).port;
  try {
    const got = [
      await handshake(l.port),
      await handshake(webPort),
      await handshake(l.port),
      await handshake(webPort),
      await handshake(webPort),
      await handshake(l.port),
    ];
    assert.deepEqual(got, [true, true, true, true, false, false]);
    assert.equal(refused.length, 1);
  } finally {
    await l.close();
    await new Promise<void>((r) => web.close(() => r()));
  }
});
