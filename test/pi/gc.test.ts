import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBuilder, evalPlain, type Circuit, type Wire } from '../../src/pi/gc/circuit.js';
import { reluCircuit, truncCircuit } from '../../src/pi/gc/relu.js';
import {
  Garbler,
  evaluate,
  evaluateRing,
  evaluateDecoded,
  decodeRing,
  decodeRingBig,
  parseMaterial,
  withDelta,
} from '../../src/pi/gc/garble.js';
import { joinRingBig } from '../../src/pi/gc/ring.js';
import { crHashBatch, DOMAIN_GC } from '../../src/pi/crypto/aes.js';
import { randomBytes } from 'node:crypto';
import { channelPair } from '../../src/pi/transport/channel.js';
import { rescaleRef, edgeCases, toF64, type Kind } from './helpers.js';

/** Garbles, encodes every group from `inputs` (the evaluator's too, standing in for OT) and evaluates. */
function runGarbled(
  c: Circuit,
  n: number,
  inputs: Record<string, Float64Array | BigUint64Array>,
  gChunk?: number,
  eChunk?: number,
) {
  const g = new Garbler({ chunk: gChunk });
  const batch = g.garble(c, n);
  const labels: Record<string, Uint8Array> = {};
  for (const grp of c.inputs) labels[grp.name] = g.encode(batch, grp.name, inputs[grp.name]);
  const out = evaluate(c, batch.material, labels, { chunk: eChunk });
  return { g, batch, labels, out };
}

for (const kind of ['relu', 'trunc'] as Kind[]) {
  for (const [k, f] of [
    [32, 12],
    [32, 0],
    [40, 16],
    [7, 2],
  ]) {
    test(`garbled ${kind} k=${k} f=${f} equals the plaintext reference (edge + random, odd chunking)`, () => {
      const c = kind === 'relu' ? reluCircuit({ k, f }) : truncCircuit({ k, f });
      const { a, b, r } = edgeCases(k, f, 1000);
      const n = a.length;
      const inputs = { a: toF64(a), b: toF64(b), r: toF64(r) };
      const { batch, labels, out } = runGarbled(c, n, inputs, 100, 37);
      const z = decodeRing(c, batch.material, out);
      assert.deepEqual(evaluateRing(c, batch.material, labels, { chunk: 53 }), z);
      const plain = evalPlain(c, n, inputs).z;
      for (let i = 0; i < n; i++) {
        assert.equal(z[i], plain[i]);
        assert.equal(BigInt(z[i]), rescaleRef(kind, k, f, a[i], b[i], r[i]), `a=${a[i]} b=${b[i]} r=${r[i]}`);
      }
    });
  }
}

test('garbled k = 64 ReLU decodes through BigInt', () => {
  const k = 64,
    f = 24,
    c = reluCircuit({ k, f });
  const { a, b, r } = edgeCases(k, f, 200);
  const { batch, labels, out } = runGarbled(c, a.length, {
    a: BigUint64Array.from(a),
    b: BigUint64Array.from(b),
    r: BigUint64Array.from(r),
  });
  const z = decodeRingBig(c, batch.material, out);
  const fused = evaluateDecoded(c, batch.material, labels);
  assert.deepEqual(joinRingBig(fused.lo, fused.hi), z);
  a.forEach((_, i) => assert.equal(z[i], rescaleRef('relu', k, f, a[i], b[i], r[i])));
});

test('random circuits with XOR/AND/NOT/OR and constant outputs: garbled equals plaintext', () => {
  let seed = 12345;
  const rnd = (m: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % m;
  for (let trial = 0; trial < 5; trial++) {
    const bld = new CircuitBuilder();
    const wires: Wire[] = [...bld.input('g', 'garbler', 5), ...bld.input('e', 'evaluator', 6)];
    for (let i = 0; i < 200; i++) {
      const x = wires[rnd(wires.length)],
        y = wires[rnd(wires.length)];
      const op = rnd(4);
      wires.push(op === 0 ? bld.xor(x, y) : op === 1 ? bld.and(x, y) : op === 2 ? bld.not(x) : bld.or(x, y));
    }
    const outs = Array.from({ length: 20 }, () => wires[wires.length - 1 - rnd(60)]);
    bld.output('o', [...outs, bld.xor(wires[0], wires[0]), bld.not(bld.xor(wires[1], wires[1]))]);
    const c = bld.build(`rand${trial}`);
    const n = 300;
    const inputs = {
      g: Float64Array.from({ length: n }, () => rnd(32)),
      e: Float64Array.from({ length: n }, () => rnd(64)),
    };
    const { batch, out } = runGarbled(c, n, inputs, 64, 64);
    assert.deepEqual(decodeRing(c, batch.material, out), evalPlain(c, n, inputs).o);
  }
});

test('material travels as one message; parse checks circuit and sizes', async () => {
  const c = reluCircuit({ k: 16, f: 4 });
  const g = new Garbler();
  const n = 50;
  const batch = g.garble(c, n);
  const [s, cl] = channelPair();
  s.send(batch.material.bytes);
  const m = parseMaterial(c, await cl.recv());
  assert.equal(m.n, n);
  assert.deepEqual(m.tables, batch.material.tables);
  assert.equal(cl.stats().bytesRecv, 32 + c.numAnd * n * 32 + Math.ceil((16 * n) / 8));
  assert.throws(() => parseMaterial(reluCircuit({ k: 16, f: 5 }), batch.material.bytes), /another circuit/);
  assert.throws(() => parseMaterial(c, batch.material.bytes.subarray(0, 100)), /expected/);
  assert.throws(() => parseMaterial(c, new Uint8Array(64)), /bad magic/);
  // Each batch gets fresh tweaks under the same Δ.
  assert.equal(g.garble(c, 10).material.tweakBase, n);
  const lab = { a: g.encode(batch, 'a', new Float64Array(n)), r: g.encode(batch, 'r', new Float64Array(n)) };
  assert.throws(() => evaluate(c, batch.material, lab), /missing labels for input group 'b'/);
  assert.throws(() => g.encode(batch, 'a', new Float64Array(3)), /3 values, expected n=50/);
  const av = Float64Array.from({ length: n }, (_, i) => i * 1013);
  assert.deepEqual(g.encodeLabels(batch.zero.a, 16, av), g.encode(batch, 'a', av));
  assert.throws(() => g.encodeLabels(batch.zero.a, 16, av.subarray(1)), /expected 16 wires x 49 values/);
  assert.throws(() => g.garble(c, n, { b: new Uint8Array(16) }), /zero labels for 'b' have 16 bytes/);
});

test('zero labels from outside (as from correlated OT) and chosen-OT label pairs', () => {
  const c = reluCircuit({ k: 12, f: 2 });
  const n = 64;
  const g = new Garbler();
  const zeroB = new Uint8Array(12 * n * 16).map((_, i) => (i * 7 + 3) & 255);
  const batch = g.garble(c, n, { b: zeroB });
  assert.equal(batch.zero.b, zeroB);
  const one = withDelta(zeroB, g.delta);
  const bv = Float64Array.from({ length: n }, (_, i) => (i * 97) % 4096);
  const fromPairs = new Uint8Array(zeroB.length);
  for (let j = 0; j < 12; j++) {
    for (let i = 0; i < n; i++) {
      const src = (bv[i] >>> j) & 1 ? one : zeroB,
        o = 16 * (j * n + i);
      fromPairs.set(src.subarray(o, o + 16), o);
    }
  }
  assert.deepEqual(fromPairs, g.encode(batch, 'b', bv));
});

test('half-gate tables use H(x, (2g + side, instance, 0, DOMAIN_GC)) exactly as specified', () => {
  const bld = new CircuitBuilder();
  const [x] = bld.input('x', 'garbler', 1);
  const [y] = bld.input('y', 'evaluator', 1);
  bld.output('o', [bld.and(x, y)]);
  const c = bld.build('and1');
  const n = 5;
  const delta = new Uint8Array(randomBytes(16));
  const zx = new Uint8Array(randomBytes(16 * n)),
    zy = new Uint8Array(randomBytes(16 * n));
  const g = new Garbler({ delta });
  const batch = g.garble(c, n, { x: zx, y: zy });
  const D = new Int32Array(g.delta.buffer.slice(0));
  const w = (b: Uint8Array, i: number) => new Int32Array(b.buffer.slice(16 * i, 16 * i + 16));
  const H = (v: Int32Array, side: number, i: number) => {
    const out = new Int32Array(4);
    crHashBatch(v, out, 1, side, i, 0, DOMAIN_GC);
    return out;
  };
  for (let i = 0; i < n; i++) {
    const A0 = w(zx, i),
      B0 = w(zy, i);
    const A1 = A0.map((v, q) => v ^ D[q]),
      B1 = B0.map((v, q) => v ^ D[q]);
    const pb = B0[0] & 1;
    const ha0 = H(A0, 0, i),
      ha1 = H(A1, 0, i),
      hb0 = H(B0, 1, i),
      hb1 = H(B1, 1, i);
    const TG = ha0.map((v, q) => v ^ ha1[q] ^ (pb ? D[q] : 0));
    const TE = hb0.map((v, q) => v ^ hb1[q] ^ A0[q]);
    assert.deepEqual(batch.material.tables.subarray(8 * i, 8 * i + 8), Int32Array.from([...TG, ...TE]));
  }
});

/** Fraction of set bits in the lsb of each 16-byte label. */
function lsbFraction(labels: Uint8Array): number {
  let ones = 0;
  for (let p = 0; p < labels.length; p += 16) ones += labels[p] & 1;
  return ones / (labels.length / 16);
}

function bitFraction(bytes: Uint8Array): number {
  let ones = 0;
  for (const b of bytes) for (let k = 0; k < 8; k++) ones += (b >>> k) & 1;
  return ones / (8 * bytes.length);
}

test('what the evaluator sees does not depend on the inputs: permute bits and tables are balanced', () => {
  const k = 32,
    f = 8,
    n = 4096;
  const c = reluCircuit({ k, f });
  const stats = [0, 2 ** 31 + 5].map((x) => {
    // Every instance has the same x (and shares a = x, b = 0): labels must still look uniform.
    const { batch, labels, out } = runGarbled(c, n, {
      a: new Float64Array(n).fill(x),
      b: new Float64Array(n),
      r: new Float64Array(n),
    });
    return {
      a: lsbFraction(labels.a),
      b: lsbFraction(labels.b),
      out: lsbFraction(out),
      decode: bitFraction(batch.material.decode),
      tables: bitFraction(
        new Uint8Array(
          batch.material.tables.buffer,
          batch.material.tables.byteOffset,
          batch.material.tables.byteLength,
        ),
      ),
    };
  });
  // 5 sigma bounds: labels n*k = 131072 samples (sigma 0.0014), tables ~21M bits.
  for (const s of stats) {
    for (const key of ['a', 'b', 'out', 'decode'] as const)
      assert.ok(Math.abs(s[key] - 0.5) < 0.007, `${key}: ${s[key]}`);
    assert.ok(Math.abs(s.tables - 0.5) < 0.001, `tables: ${s.tables}`);
  }
  for (const key of ['a', 'out'] as const) assert.ok(Math.abs(stats[0][key] - stats[1][key]) < 0.01);
});
