import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HE_PARAMS } from '../../../src/pi/he/params.js';
import {
  readPublicKey,
  readResponses,
  readUpload,
  writePublicKey,
  writeResponses,
  writeUpload,
} from '../../../src/pi/he/serialize.js';

const P = HE_PARAMS,
  n = P.n,
  L = P.primes.length;
const residues = (seed: number) =>
  Uint32Array.from({ length: L * n }, (_, j) => (j * 2654435761 + seed) % P.primes[Math.floor(j / n)]!);
const seed = Uint8Array.from({ length: 16 }, (_, i) => i * 17);
const pk = { th: 4, tw: 4, cw: 3, on: 5 };

test('public keys, uploads and responses round-trip', () => {
  const p0 = residues(1);
  assert.deepEqual(readPublicKey(writePublicKey(P, seed, p0), P, 'pk'), { seed, p0 });
  const c0s = [residues(2), residues(3)];
  assert.deepEqual(
    readUpload(writeUpload(P, 7, pk, seed, c0s), P, 7, 'up', () => 2),
    { pk, seed, c0s },
  );
  const wide = (k: number, bits: number, s: number) =>
    Uint32Array.from({ length: 3 * k }, (_, j) =>
      j % 3 === 2 ? ((j * 7 + s) >>> 0) % 2 ** (bits - 64) : (j * 2654435761 + s) >>> 0,
    );
  const cts = [
    { c1: wide(n, P.c1Bits, 1), c0: wide(10, P.c0Bits, 2) },
    { c1: wide(n, P.c1Bits, 3), c0: wide(3, P.c0Bits, 4) },
  ];
  const msg = writeResponses(P, 7, 4, cts);
  assert.equal(
    msg.length,
    16 + 4 + (2 * (n * P.c1Bits)) / 8 + Math.ceil((10 * P.c0Bits) / 8) + Math.ceil((3 * P.c0Bits) / 8),
  );
  assert.deepEqual(
    readResponses(msg, P, 7, 'resp', 4, 10, (j) => (j === 4 ? 10 : 3)),
    cts,
  );
});

test('malformed messages are refused naming the message and the fault', () => {
  const up = writeUpload(P, 7, pk, seed, [residues(2)]);
  const edit = (m: Uint8Array, f: (d: Uint8Array) => void) => {
    const d = m.slice();
    f(d);
    return d;
  };
  const cases: [() => unknown, RegExp][] = [
    [
      () => readUpload(up.subarray(0, 10), P, 7, 'he upload for l1', () => 1),
      /he upload for l1: 10 bytes, shorter than the 16-byte header/,
    ],
    [() => readUpload(up, P, 8, 'he upload for l1', () => 1), /he upload for l1: for plan op 7, expected 8/],
    [
      () =>
        readUpload(
          edit(up, (d) => {
            d[4] = 1;
          }),
          P,
          7,
          'he upload for l1',
          () => 1,
        ),
      /message kind 1, expected 2/,
    ],
    [() => readUpload(up, P, 7, 'he upload for l1', () => 2), /1 ciphertexts, the packing needs 2/],
    [
      () =>
        readUpload(up, P, 7, 'he upload for l1', () => {
          throw new Error('he upload for l1: packing {"th":4} exceeds the layer');
        }),
      /exceeds the layer/,
    ],
    [
      () =>
        readUpload(
          edit(up, (d) => {
            d[12] = 0;
          }),
          P,
          7,
          'he upload for l1',
          () => 1,
        ),
      /0 ciphertexts, expected 1\.\.\d+/,
    ],
    [
      () => readUpload(up.subarray(0, up.length - 1), P, 7, 'he upload for l1', () => 1),
      /\d+ bytes, expected \d+ for 1 ciphertext/,
    ],
    // the last residue of the last prime set to 2^30 - 1 (>= every prime)
    [
      () =>
        readUpload(
          edit(up, (d) => {
            d[d.length - 4] |= 0xfc;
            d[d.length - 3] = d[d.length - 2] = d[d.length - 1] = 0xff;
          }),
          P,
          7,
          'he upload for l1',
          () => 1,
        ),
      /he upload for l1: ciphertext 0: coefficient 8191 of prime 4 is 1073741823, not below the modulus 1073299457/,
    ],
    [
      () =>
        readPublicKey(
          edit(writePublicKey(P, seed, residues(1)), (d) => {
            d[2] = 0;
          }),
          P,
          'he public key',
        ),
      /he public key: parameter set 48000003, expected 48450003/,
    ],
  ];
  for (const [f, re] of cases) assert.throws(f, re);
  const resp = writeResponses(P, 7, 0, [{ c1: new Uint32Array(3 * n), c0: new Uint32Array(3 * 5) }]);
  // the last byte holds 5 * 67 = 335 bits: one padding bit that must be zero
  assert.throws(
    () =>
      readResponses(
        edit(resp, (d) => {
          d[d.length - 1] = 0x80;
        }),
        P,
        7,
        'he responses for l1',
        0,
        1,
        () => 5,
      ),
    /he responses for l1: non-zero padding bits/,
  );
  assert.throws(
    () => readResponses(resp, P, 7, 'he responses for l1', 1, 1, () => 5),
    /starts at ciphertext 0, expected 1/,
  );
});
