// The silent OT's LPN parameters (ot/lpn.ts): the sets it runs are published 128-bit sets (emp-ot's table, copied
// here from its constants file as the reference), they chain (each round seeds the next), and the Gaussian-elimination
// estimate of each is >= 128 bits while a set with too little noise fails it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  baseCount,
  checkParams,
  gaussSecurityBits,
  PUBLISHED_LPN,
  roundMessageBytes,
  SILENT_BOOT,
  SILENT_MAIN,
  type LpnParams,
} from '../../src/pi/ot/lpn.js';
import { bootCount, netPerRound, SILENT_PARAMS } from '../../src/pi/ot/ferret.js';

/** emp-toolkit/emp-ot, emp-ot/ferret/constants.h: (n, k, t, log2 block), regular noise, d = 10. */
const EMP_OT: [number, number, number, number][] = [
  [10_608_640, 589_824, 1_295, 13],
  [607_232, 69_454, 593, 10],
  [75_520, 8_911, 590, 7],
];

const isPublished = (p: LpnParams) =>
  EMP_OT.some(([n, k, t, h]) => p.n === n && p.k === k && p.t === t && p.h === h && p.d === 10);

test('the sets the silent OT runs are published 128-bit sets (emp-ot), and the table matches the reference', () => {
  for (const p of PUBLISHED_LPN) assert.ok(isPublished(p), `${p.name} as published`);
  for (const p of [...SILENT_PARAMS.boot, SILENT_PARAMS.main]) assert.ok(isPublished(p), `${p.name} is used`);
  assert.equal(SILENT_PARAMS.main, SILENT_MAIN);
  assert.deepEqual(SILENT_PARAMS.boot, [SILENT_BOOT]);
});

test('the chain: n = t·2^h, IKNP seeds the bootstrap, each round seeds the next, net COTs per round', () => {
  checkParams(SILENT_BOOT, SILENT_MAIN);
  checkParams(SILENT_MAIN);
  assert.equal(bootCount(SILENT_PARAMS), 590 * 7 + 8_911);
  assert.ok(SILENT_BOOT.n >= baseCount(SILENT_MAIN), 'the bootstrap round seeds the first main round');
  assert.equal(netPerRound(SILENT_PARAMS), 607_232 - (593 * 10 + 69_454));
  // bytes of a round per net COT: well below 1 bit of IKNP's 128
  assert.ok(roundMessageBytes(SILENT_MAIN) / netPerRound(SILENT_PARAMS) < 0.4);
  assert.throws(() => checkParams({ ...SILENT_MAIN, n: SILENT_MAIN.n - 1 }), /not usable/);
  assert.throws(() => checkParams({ ...SILENT_BOOT, n: 64 * 128 }, SILENT_MAIN), /not usable/);
});

test('Gaussian-elimination estimate: >= 128 bits for every published set; too little noise or too short a secret fails', () => {
  for (const p of PUBLISHED_LPN) {
    const bits = gaussSecurityBits(p);
    assert.ok(bits >= 128, `${p.name}: ${bits.toFixed(1)} bits`);
  }
  assert.ok(gaussSecurityBits({ ...SILENT_MAIN, t: 296 }) < 128, 'half the noise rate');
  assert.ok(gaussSecurityBits({ ...SILENT_MAIN, k: 30_000 }) < 128, 'a shorter secret');
});
