import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { fixedKeyAes, crHashBatch, FIXED_KEY, DOMAIN_OT } from '../../src/pi/crypto/aes.js';
import { Prg } from '../../src/pi/crypto/prg.js';
import { transpose128 } from '../../src/pi/ot/transpose.js';

const i32 = (b: Uint8Array) => new Int32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);

test('fixed-key AES batch equals per-block AES-128 under the public key', () => {
  const n = 5000;
  const x = randomBytes(16 * n);
  const e = new Uint8Array(fixedKeyAes(i32(new Uint8Array(x))).buffer);
  for (const j of [0, 1, 2047, 4999]) {
    const c = createCipheriv('aes-128-ecb', FIXED_KEY, null).setAutoPadding(false);
    assert.deepEqual(e.subarray(16 * j, 16 * j + 16), new Uint8Array(c.update(x.subarray(16 * j, 16 * j + 16))));
  }
});

test('CR hash is H(x, i) = π(σ(x) ⊕ i) ⊕ σ(x) ⊕ i, batched across the AES batch boundary', () => {
  const n = 20000; // > one AES batch
  const x = i32(new Uint8Array(randomBytes(16 * n)));
  const out = new Int32Array(4 * n);
  crHashBatch(x, out, n, 0xfffffff0, 7, 9, DOMAIN_OT);
  for (const j of [0, 15, 16, 16384, 19999]) {
    const w = x.subarray(4 * j, 4 * j + 4);
    const u = Int32Array.from([w[2] ^ ((0xfffffff0 + j) | 0), w[3] ^ 7, w[2] ^ w[0] ^ 9, w[3] ^ w[1] ^ DOMAIN_OT]);
    const c = createCipheriv('aes-128-ecb', FIXED_KEY, null).setAutoPadding(false);
    const e = i32(new Uint8Array(c.update(new Uint8Array(u.buffer))));
    assert.deepEqual(out.subarray(4 * j, 4 * j + 4), Int32Array.from([0, 1, 2, 3].map((q) => e[q] ^ u[q])));
  }
  // Different tweaks give unrelated outputs for the same x.
  const o2 = new Int32Array(4);
  crHashBatch(x.subarray(0, 4), o2, 1, 0xfffffff1, 7, 9, DOMAIN_OT);
  assert.notDeepEqual(o2, out.subarray(0, 4));
});

test('PRG: seeded streams are reproducible and continue across calls', () => {
  const seed = new Uint8Array(16).fill(3);
  const whole = new Prg(seed).bytes(100_000);
  const p = new Prg(seed);
  const parts = [p.bytes(1), p.bytes(65_535), p.bytes(34_464)];
  assert.deepEqual(Buffer.concat(parts), Buffer.from(whole));
  assert.notDeepEqual(new Prg().bytes(32), new Prg().bytes(32));
  // Balanced bits.
  let ones = 0;
  for (const b of whole) for (let k = 0; k < 8; k++) ones += (b >>> k) & 1;
  assert.ok(Math.abs(ones / (8 * whole.length) - 0.5) < 0.005);
  assert.throws(() => new Prg(new Uint8Array(15)), /seed must be 16 bytes/);
});

test('128 x m transpose matches the naive bit transpose', () => {
  const m = 384;
  const cols = i32(new Uint8Array(randomBytes(16 * m)));
  const rows = transpose128(cols, m);
  const bit = (a: Int32Array, idx: number) => (a[idx >>> 5] >>> (idx & 31)) & 1;
  for (let i = 0; i < 128; i++) {
    for (let j = 0; j < m; j++) assert.equal(bit(rows, 128 * j + i), bit(cols, m * i + j), `row ${j} col ${i}`);
  }
  assert.throws(() => transpose128(cols, 100), /multiple of 32/);
  // Several slices of the kernel (wpc = 8195 column words): spot-check rows near slice edges.
  const big = 32 * 8195;
  const bc = i32(new Uint8Array(randomBytes(16 * big)));
  const br = transpose128(bc, big);
  for (const j of [0, 31, 32 * 4096 - 1, 32 * 4096, 32 * 8192 + 5, big - 1]) {
    for (let i = 0; i < 128; i++) assert.equal(bit(br, 128 * j + i), bit(bc, big * i + j), `row ${j} col ${i}`);
  }
});
