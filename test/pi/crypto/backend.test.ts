// The browser crypto backend (noble) computes what the Node one (OpenSSL) computes: fixed-key AES on batches, the
// AES-CTR keystream across calls of any length, SHA-256 of parts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { platformBackend as nodeBackend } from '../../../src/pi/crypto/platform.js';
import { platformBackend as browserBackend } from '../../../src/pi/crypto/platform.browser.js';
import { cryptoBackend } from '../../../src/pi/crypto/backend.js';

test('Node loads the node:crypto backend', () => {
  assert.equal(cryptoBackend, nodeBackend);
  assert.notEqual(nodeBackend.name, browserBackend.name);
});

test('fixed-key AES: noble equals OpenSSL on 1 to 4096 blocks', () => {
  for (const n of [1, 3, 257, 4096]) {
    const x = new Uint8Array(randomBytes(16 * n));
    assert.deepEqual(browserBackend.fixedKeyAes(x), new Uint8Array(nodeBackend.fixedKeyAes(x)), `${n} blocks`);
  }
});

test('AES-CTR keystream: noble equals OpenSSL, continuing across calls of uneven lengths', () => {
  const key = new Uint8Array(randomBytes(16));
  const a = nodeBackend.aesCtr(key),
    b = browserBackend.aesCtr(key);
  const whole = nodeBackend.aesCtr(key).fill(new Uint8Array(70_000));
  let off = 0;
  for (const n of [1, 15, 16, 17, 0, 33, 1000, 68_918]) {
    const x = a.fill(new Uint8Array(n)),
      y = b.fill(new Uint8Array(n));
    assert.deepEqual(y, x, `call of ${n} bytes at ${off}`);
    assert.deepEqual(x, whole.subarray(off, off + n));
    off += n;
  }
  assert.equal(off, 70_000);
});

test('SHA-256 of parts (strings as UTF-8): noble equals OpenSSL', () => {
  const parts = ['deepreduce/pi/é', new Uint8Array(randomBytes(100)), '', new Uint8Array(0)];
  assert.deepEqual(browserBackend.sha256(...parts), nodeBackend.sha256(...parts));
  assert.equal(
    Buffer.from(browserBackend.sha256('abc')).toString('hex'),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
});
