import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBuilder, ZERO, ONE, evalPlain, evalPlainBig, OP_AND } from '../../src/pi/gc/circuit.js';
import { reluCircuit, truncCircuit, addBits, subBits } from '../../src/pi/gc/relu.js';
import { ringToBits, bitsToRing, splitRing, joinRing } from '../../src/pi/gc/ring.js';
import { rescaleRef, edgeCases, toF64, type Kind } from './helpers.js';

test('builder folds constants and removes dead gates', () => {
  const b = new CircuitBuilder();
  const [x, y] = b.input('x', 'garbler', 2);
  assert.equal(b.xor(x, ZERO), x);
  assert.equal(b.and(x, ONE), x);
  assert.equal(b.and(x, ZERO), ZERO);
  assert.equal(b.xor(x, x), ZERO);
  assert.equal(b.not(b.not(x)), x);
  assert.equal(b.and(x, b.not(x)), ZERO);
  assert.equal(b.xor(x, b.not(x)), ONE);
  b.and(x, y); // dead
  b.output('o', [b.xor(x, y), ZERO, ONE, x]);
  const c = b.build('t');
  assert.equal(c.numAnd, 0);
  const out = evalPlain(c, 4, { x: new Float64Array([0, 1, 2, 3]) }).o;
  // bits (x0^x1, 0, 1, x0)
  assert.deepEqual(Array.from(out), [0b0100, 0b1101, 0b0101, 0b1100]);
  assert.throws(() => b.input('late', 'garbler', 1), /declared after gates/);
});

test('wire-slot reuse keeps the working set small and never aliases a gate input', () => {
  const c = reluCircuit({ k: 32, f: 12 });
  assert.ok(c.numSlots < 3 * 32 + 8, `numSlots ${c.numSlots}`);
  for (let g = 0; g < c.op.length; g++) {
    assert.notEqual(c.out[g], c.in0[g]);
    if (c.op[g] !== 2) assert.notEqual(c.out[g], c.in1[g]);
  }
});

test('adder and subtractor over all 6-bit pairs', () => {
  const b = new CircuitBuilder();
  const x = b.input('x', 'garbler', 6),
    y = b.input('y', 'evaluator', 6);
  b.output('s', addBits(b, x, y));
  b.output('d', subBits(b, x, y));
  const c = b.build('addsub');
  assert.equal(c.numAnd, 10);
  const xs: number[] = [],
    ys: number[] = [];
  for (let i = 0; i < 64; i++)
    for (let j = 0; j < 64; j++) {
      xs.push(i);
      ys.push(j);
    }
  const o = evalPlain(c, xs.length, { x: xs, y: ys });
  xs.forEach((xv, i) => {
    assert.equal(o.s[i], (xv + ys[i]) & 63);
    assert.equal(o.d[i], (xv - ys[i]) & 63);
  });
});

test('AND counts: about 3k per ReLU, 2k per truncation', () => {
  for (const [k, f] of [
    [32, 12],
    [32, 0],
    [40, 16],
    [64, 20],
  ]) {
    const r = reluCircuit({ k, f }),
      t = truncCircuit({ k, f });
    assert.equal(r.numAnd, k - 1 + (k - 1 - f) + (k - 1), `relu k=${k} f=${f}`);
    assert.equal(t.numAnd, 2 * (k - 1), `trunc k=${k} f=${f}`);
    assert.equal(r.op.filter((o) => o === OP_AND).length, r.numAnd);
  }
  assert.throws(() => reluCircuit({ k: 32, f: 32 }), /truncation f=32/);
  assert.throws(() => reluCircuit({ k: 65 }), /k=65/);
});

for (const kind of ['relu', 'trunc'] as Kind[]) {
  for (const [k, f] of [
    [32, 12],
    [32, 0],
    [40, 16],
    [8, 3],
    [53, 20],
  ]) {
    test(`${kind} circuit k=${k} f=${f} equals the plaintext reference on edge and random shares`, () => {
      const c = kind === 'relu' ? reluCircuit({ k, f }) : truncCircuit({ k, f });
      const { a, b, r } = edgeCases(k, f, 2000);
      const z = evalPlain(c, a.length, { a: toF64(a), b: toF64(b), r: toF64(r) }).z;
      for (let i = 0; i < a.length; i++) {
        assert.equal(BigInt(z[i]), rescaleRef(kind, k, f, a[i], b[i], r[i]), `a=${a[i]} b=${b[i]} r=${r[i]}`);
      }
    });
  }
}

test('k = 64 through BigInt arrays (signed and unsigned inputs)', () => {
  const k = 64,
    f = 16;
  const c = reluCircuit({ k, f });
  const { a, b, r } = edgeCases(k, f, 500);
  const z = evalPlainBig(c, a.length, {
    a: BigUint64Array.from(a),
    b: BigInt64Array.from(b, (v) => BigInt.asIntN(64, v)),
    r: BigUint64Array.from(r),
  }).z;
  for (let i = 0; i < a.length; i++) assert.equal(z[i], rescaleRef('relu', k, f, a[i], b[i], r[i]));
});

test('ring conversions: negative numbers wrap, bits round-trip, bad values are named', () => {
  const { lo, hi } = splitRing([-1, 5, -(2 ** 40)], 40);
  assert.deepEqual(Array.from(joinRing(lo, hi, 40)), [2 ** 40 - 1, 5, 0]);
  assert.deepEqual(
    Array.from(joinRing(...(Object.values(splitRing(new Int32Array([-2]), 36)) as [Uint32Array, Uint32Array]), 36)),
    [2 ** 36 - 2],
  );
  const v = [3, 2 ** 33 + 7, 0, 2 ** 35 - 1];
  const back = bitsToRing(ringToBits(v, 36), 36, 4);
  assert.deepEqual(Array.from(joinRing(back.lo, back.hi, 36)), v);
  assert.throws(() => splitRing([1.5], 32), /value\[0\] = 1.5/);
  // 32-bit halves and BigInt arrays agree, reduced mod 2^k.
  const big = BigUint64Array.from([0n, 1n, 2n ** 64n - 1n, 2n ** 40n + 3n]);
  const words = splitRing(big, 64);
  assert.deepEqual(splitRing(words, 41), splitRing(big, 41));
  assert.deepEqual(
    joinRing(...(Object.values(splitRing(words, 41)) as [Uint32Array, Uint32Array]), 41),
    Float64Array.from([0, 1, 2 ** 41 - 1, 2 ** 40 + 3]),
  );
  assert.throws(() => splitRing({ lo: new Uint32Array(2), hi: new Uint32Array(3) }, 40), /lo has 2 words, hi 3/);
  assert.throws(() => joinRing(lo, hi, 60), /k=60 > 53/);
});
