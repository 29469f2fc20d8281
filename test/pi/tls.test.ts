// TLS links: keys and certificates from keygen, a client that verifies the server by certificate (as a CA) or by a
// pinned fingerprint and refuses anything else, client certificates as a party's credential, and a TLS listener that
// drops connections failing the handshake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { connect } from 'node:net';
import { certFingerprint, checkPin } from '../../src/pi/node/transport/tls.js';
import {
  connectTcp,
  connectTls,
  listenTcp,
  type StreamChannel,
  type TlsServerConfig,
} from '../../src/pi/node/transport/tcp.js';
import type { PiError } from '../../src/pi/transport/errors.js';
import { identity } from './helpers/tls.js';

/** A TLS echo listener; the test gets each accepted channel. */
async function tlsServer(cfg: TlsServerConfig, refused: string[] = []) {
  const accepted: StreamChannel[] = [];
  const l = await listenTcp(
    { port: 0, tls: cfg, handshakeMs: 2000, onRefused: (why) => refused.push(why) },
    async (ch) => {
      accepted.push(ch);
      ch.send(await ch.recvBytes('ping'));
      await ch.recv().catch(() => {});
    },
  );
  return { l, accepted };
}

test('keygen: EC P-256, self-signed, for localhost, 127.0.0.1, ::1 and the names given; the fingerprint is the DER SHA-256', async () => {
  const { generateIdentity } = await import('../../src/pi/node/transport/tls.js');
  const id = await generateIdentity({ names: ['pi.example.org', '10.1.2.3'], days: 30 });
  const c = new X509Certificate(id.cert);
  assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(c.subject, c.issuer);
  assert.ok(c.verify(c.publicKey), 'self-signed');
  assert.equal(
    c.subjectAltName,
    'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:pi.example.org, IP Address:10.1.2.3',
  );
  const days = (Date.parse(c.validTo) - Date.parse(c.validFrom)) / 86_400_000;
  assert.ok(Math.abs(days - 30) < 0.01, `${days} days`);
  assert.equal(id.fingerprint, c.fingerprint256.replace(/:/g, '').toLowerCase());
  assert.equal(certFingerprint(c.raw), id.fingerprint);
  assert.match(id.key, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(checkPin(c.fingerprint256, 'pin'), id.fingerprint);
  assert.throws(() => checkPin('abc', '--pin'), /--pin: 'abc' is not a SHA-256 fingerprint/);
  await assert.rejects(
    generateIdentity({ names: ['bad name!'] }),
    /'bad name!' is neither an IP address nor a DNS name/,
  );
});

test('a client verifies the server by certificate or pin, and refuses a wrong one before sending anything', async () => {
  const [S, other] = await Promise.all([identity('server'), identity('other')]);
  const { l, accepted } = await tlsServer({ cert: S.cert, key: S.key });
  try {
    for (const cfg of [{ ca: S.cert }, { pin: S.fingerprint }, { ca: S.cert, pin: S.fingerprint }]) {
      const ch = await connectTls('127.0.0.1', l.port, cfg);
      ch.send(new Uint8Array([1, 2, 3]));
      assert.deepEqual(await ch.recvBytes('echo'), new Uint8Array([1, 2, 3]));
      assert.equal(ch.peer?.fingerprint, S.fingerprint);
      ch.close();
    }
    // The certificate is valid for localhost by name, too.
    (await connectTls('localhost', l.port, { ca: S.cert })).close();
    const before = accepted.length;
    await assert.rejects(
      connectTls('127.0.0.1', l.port, { pin: other.fingerprint }),
      (e: PiError) =>
        e.code === 'AUTH' &&
        new RegExp(`fingerprint ${S.fingerprint}, not the pinned ${other.fingerprint}`).test(e.message),
    );
    await assert.rejects(
      connectTls('127.0.0.1', l.port, { ca: other.cert }),
      (e: PiError) =>
        e.code === 'AUTH' &&
        /the server's certificate is not trusted: .*(self.signed|unable to verify)/i.test(e.message),
    );
    await assert.rejects(
      connectTls('127.0.0.1', l.port, {}),
      /refusing TLS without a way to verify the server: give its certificate \(--server-cert FILE\) or its fingerprint \(--pin SHA256\)/,
    );
    // A refused server got no message: the channels it accepted from the refusing clients saw nothing.
    await new Promise((r) => setTimeout(r, 50));
    for (const ch of accepted.slice(before)) assert.equal(ch.stats().bytesRecv, 0);
  } finally {
    await l.close();
  }
});

test('client certificates: a pinned or CA-verified one marks the peer verified; none or another does not', async () => {
  const [S, P, X] = await Promise.all([identity('server'), identity('party'), identity('intruder')]);
  for (const clientAuth of [{ pins: [P.fingerprint] }, { ca: P.cert }]) {
    const { l, accepted } = await tlsServer({ cert: S.cert, key: S.key, clientAuth });
    try {
      const got: [string | null, boolean][] = [];
      for (const own of [{ cert: P.cert, key: P.key }, {}, { cert: X.cert, key: X.key }]) {
        const ch = await connectTls('127.0.0.1', l.port, { pin: S.fingerprint, ...own });
        ch.send(new Uint8Array([9]));
        await ch.recvBytes('echo');
        const srv = accepted[accepted.length - 1]!;
        got.push([srv.peer!.fingerprint, srv.peer!.verified]);
        ch.close();
      }
      assert.deepEqual(
        got,
        [
          [P.fingerprint, true],
          [null, false],
          [X.fingerprint, false],
        ],
        JSON.stringify(clientAuth),
      );
    } finally {
      await l.close();
    }
  }
});

test('a TLS listener drops plain TCP and random bytes at the handshake; listeners default to 127.0.0.1', async () => {
  const S = await identity('server');
  const refused: string[] = [];
  const { l, accepted } = await tlsServer({ cert: S.cert, key: S.key }, refused);
  try {
    assert.equal((l.server.address() as { address: string }).address, '127.0.0.1');
    const plain = await connectTcp('127.0.0.1', l.port);
    plain.send(new Uint8Array(100));
    await assert.rejects(plain.recv(), /peer closed the connection/);
    const s = connect({ host: '127.0.0.1', port: l.port });
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 255)));
    await new Promise((r) => s.once('close', r));
    for (let i = 0; i < 50 && refused.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(refused.length, 2);
    for (const why of refused) assert.match(why, /TLS handshake failed/);
    assert.equal(accepted.length, 0);
  } finally {
    await l.close();
  }
});
