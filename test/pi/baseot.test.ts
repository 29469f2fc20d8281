// Chou-Orlandi base OTs over P-256 (src/pi/ot/baseot.ts): the receiver gets exactly its chosen key, keys look
// uniform and never coincide, points from a deviating peer are refused by name, and the Node (OpenSSL ECDH) and
// browser (WebCrypto ECDH + noble, run here on Node's WebCrypto) back-ends give the same bytes for the same coins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { p256 } from '@noble/curves/nist';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { baseOtReceive, baseOtSend, decodePoint, POINT_BYTES } from '../../src/pi/ot/baseot.js';
import { platformP256 as nodeEc } from '../../src/pi/crypto/platform.js';
import { platformP256 as browserEc } from '../../src/pi/crypto/platform.browser.js';
import { p256Backend, toHex, type P256Backend } from '../../src/pi/crypto/backend.js';
import { seededRandom, systemRandom } from '../../src/pi/random.js';

const Point = p256.Point;
const ORDER = Point.Fn.ORDER;

/** Records every frame a channel sends. */
function recordSends(ch: Channel): Uint8Array[] {
  const sent: Uint8Array[] = [];
  const send = ch.send.bind(ch);
  ch.send = (m: Uint8Array) => {
    sent.push(Uint8Array.from(m));
    send(m);
  };
  return sent;
}

function bitFraction(keys: Uint8Array[]): number {
  let ones = 0;
  for (const k of keys) for (const b of k) for (let j = 0; j < 8; j++) ones += (b >>> j) & 1;
  return ones / (8 * 16 * keys.length);
}

async function run(count: number, seed: string, sendEc: P256Backend, recvEc: P256Backend) {
  const [a, b] = channelPair();
  const sentA = recordSends(a),
    sentB = recordSends(b);
  const choices = Array.from(seededRandom(`${seed}/choices`).bytes(count), (x) => x & 1);
  const [{ k0, k1 }, kc] = await Promise.all([
    baseOtSend(a, count, seededRandom(`${seed}/sender`), sendEc),
    baseOtReceive(b, choices, seededRandom(`${seed}/receiver`), recvEc),
  ]);
  return { choices, k0, k1, kc, transcript: [...sentA, ...sentB] };
}

test('Node loads the OpenSSL P-256 back-end', () => {
  assert.equal(p256Backend, nodeEc);
  assert.notEqual(nodeEc.name, browserEc.name);
});

test('base OT: the receiver gets exactly k_c; keys differ and look uniform', async () => {
  for (const count of [1, 2, 128]) {
    const { choices, k0, k1, kc } = await run(count, `ok${count}`, nodeEc, nodeEc);
    assert.equal(kc.length, count);
    choices.forEach((c, i) => {
      assert.equal(kc[i]!.length, 16);
      assert.deepEqual(kc[i], c ? k1[i] : k0[i]);
      assert.notDeepEqual(kc[i], c ? k0[i] : k1[i]);
    });
    // Every key distinct (2·count keys), balanced bits over 128 OTs (32768 bits: 0.5 ± 7 sigma).
    assert.equal(new Set([...k0, ...k1].map(toHex)).size, 2 * count);
    if (count === 128) {
      assert.ok(choices.includes(0) && choices.includes(1));
      assert.ok(Math.abs(bitFraction([...k0, ...k1]) - 0.5) < 0.02, `ones fraction ${bitFraction([...k0, ...k1])}`);
    }
  }
  // Fresh coins give fresh keys.
  const [a, b] = channelPair();
  const [x, y] = await Promise.all([baseOtSend(a, 4, systemRandom), baseOtReceive(b, [0, 1, 0, 1], systemRandom)]);
  const z = await run(4, 'ok4', nodeEc, nodeEc);
  assert.notDeepEqual(x.k0, z.k0);
  assert.deepEqual(y[1], x.k1[1]);
});

test('Node and browser back-ends: the same bytes for the same coins, and they interoperate', async () => {
  const node = await run(128, 'same', nodeEc, nodeEc);
  const web = await run(128, 'same', browserEc, browserEc);
  assert.deepEqual(web.transcript, node.transcript);
  assert.deepEqual(web.k0, node.k0);
  assert.deepEqual(web.k1, node.k1);
  assert.deepEqual(web.kc, node.kc);
  const mixed = await run(16, 'mixed', nodeEc, browserEc);
  mixed.choices.forEach((c, i) => assert.deepEqual(mixed.kc[i], c ? mixed.k1[i] : mixed.k0[i]));
  // The primitive itself: x(d·P) of both back-ends equals noble's.
  const d = new Uint8Array(32).fill(7),
    P = Point.BASE.multiply(12345n);
  const [kn] = await nodeEc.keys([d]);
  const [kb] = await browserEc.keys([d]);
  assert.deepEqual(kb, kn);
  const want = P.multiply(BigInt(`0x${toHex(d)}`))
    .toBytes(false)
    .slice(1, 33);
  assert.deepEqual(await nodeEc.sharedX([kn!], [P.toBytes(false)]), [want]);
  assert.deepEqual(await browserEc.sharedX([kb!], [P.toBytes(false)]), [want]);
  await assert.rejects(nodeEc.sharedX([kn!, kn!], [want, want, want]), /2 keys and 3 points do not pair up/);
});

/** A point with a small x (so x + p still fits 32 bytes): the start of a non-canonical encoding. */
function smallXPoint(): InstanceType<typeof Point> {
  const Fp = Point.Fp;
  for (let x = 1n; ; x++) {
    const rhs = Fp.add(Fp.add(Fp.pow(x, 3n), Fp.mul(Point.CURVE().a, x)), Point.CURVE().b);
    try {
      return Point.fromAffine({ x, y: Fp.sqrt(rhs) });
    } catch {}
  }
}

test('base OT: a deviating peer point is refused with a clear error', async () => {
  const G = Point.BASE.toBytes(false);
  const offCurve = Uint8Array.from(G);
  offCurve[64]! ^= 1;
  const identity = new Uint8Array(POINT_BYTES);
  identity[0] = 4;
  const compressed = Point.BASE.toBytes(true);
  const q = smallXPoint();
  const nonCanonical = q.toBytes(false);
  const xp = BigInt(`0x${toHex(nonCanonical.subarray(1, 33))}`) + Point.Fp.ORDER;
  nonCanonical.set(
    Uint8Array.from(xp.toString(16).padStart(64, '0').match(/../g)!, (h) => parseInt(h, 16)),
    1,
  );
  const bad: [Uint8Array, RegExp][] = [
    [offCurve, /is not a valid P-256 point/],
    [identity, /is the identity point/],
    [Uint8Array.of(0), /is not an uncompressed P-256 point/],
    [compressed, /is not an uncompressed P-256 point/],
    [nonCanonical, /is not (canonically encoded|a valid P-256 point)/],
  ];
  for (const [bytes, re] of bad) assert.throws(() => decodePoint(bytes, 'test point'), re, toHex(bytes));
  decodePoint(q.toBytes(false), 'test point'); // the canonical encoding of the same point passes

  // From the sender: A.
  for (const [bytes, re] of bad) {
    const [s, r] = channelPair();
    const p = baseOtReceive(r, [0, 1]);
    s.send(bytes);
    // Another length is refused by the channel, before any decoding.
    const want = bytes.length === POINT_BYTES ? re : new RegExp(`sender point: expected 65 bytes, got ${bytes.length}`);
    await assert.rejects(p, (e: Error) => want.test(e.message) && /sender point/.test(e.message));
  }
  // From the receiver: a bad B_i (named by index), the wrong length, or B_i = A.
  const receiver = async (make: (A: Uint8Array) => Uint8Array, count = 3) => {
    const [s, r] = channelPair();
    const p = baseOtSend(s, count);
    const A = await r.recvBytes('A', POINT_BYTES);
    r.send(make(A));
    return p;
  };
  const withAt = (i: number, pt: Uint8Array) => () => {
    const m = new Uint8Array(3 * POINT_BYTES);
    for (let j = 0; j < 3; j++) m.set(G, POINT_BYTES * j);
    m.set(pt, POINT_BYTES * i);
    return m;
  };
  await assert.rejects(receiver(withAt(2, offCurve)), /receiver point 2 is not a valid P-256 point/);
  await assert.rejects(receiver(withAt(1, identity)), /receiver point 1 is the identity point/);
  await assert.rejects(
    receiver(() => new Uint8Array(3 * 33)),
    /expected 195 bytes, got 99/,
  );
  await assert.rejects(
    receiver((A) => withAt(0, A)()),
    /receiver point 0 equals the sender point A/,
  );
});

test('base OT: a deviating receiver cannot make keys coincide (index and choice bit are hashed)', async () => {
  // Every B_i the same point: without the index hashed, every k0_i (and every k1_i) would be equal.
  const [s, r] = channelPair();
  const p = baseOtSend(s, 8);
  await r.recvBytes('A', POINT_BYTES);
  const same = new Uint8Array(8 * POINT_BYTES);
  for (let i = 0; i < 8; i++) same.set(Point.BASE.multiply(99n).toBytes(false), POINT_BYTES * i);
  r.send(same);
  const { k0, k1 } = await p;
  assert.equal(new Set([...k0, ...k1].map(toHex)).size, 16);

  // B = A/2: then a·(B - A) = -a·B, the same x-coordinate; without the choice bit hashed k0 = k1, and IKNP's
  // u = G(k0) ^ G(k1) ^ r would hand the receiver the extension's choices r.
  const [s2, r2] = channelPair();
  const p2 = baseOtSend(s2, 2);
  const A = Point.fromBytes(await r2.recvBytes('A', POINT_BYTES));
  const half = A.multiply((ORDER + 1n) / 2n).toBytes(false);
  const m = new Uint8Array(2 * POINT_BYTES);
  m.set(half, 0);
  m.set(half, POINT_BYTES);
  r2.send(m);
  const keys = await p2;
  for (let i = 0; i < 2; i++) assert.notDeepEqual(keys.k0[i], keys.k1[i], `OT ${i}: k0 = k1`);
});
