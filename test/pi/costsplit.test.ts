// The cost model's split of fixed costs: the session's set-up once per session, the linear layers as a line in MACs
// (per-layer intercept, per-MAC slope), so that the per-layer term is what a layer costs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrate, linearFit, type PiReport } from '../../src/pi/node/bench.js';
import { opRow as row } from './helpers/oprow.js';
import { defaultFixedPoint } from '../../src/pi/plan.js';
import { estimateLatency, loadCostModel } from '../../src/pi/node/costmodel.js';

/**
 * A session whose linear layers take `a` ms + `b` ms per MMAC, with `setup` ms of set-up and `rest` ms unattributed.
 * With `he`, each layer's HE compute is 60% of that, and the rows' wall times carry waits moved from the other
 * layers to the largest ones (in sum 0; mmacs of 0.5..4.5, equally often), as a client one layer ahead records them.
 */
function session(a: number, b: number, setup: number, rest: number, mmacs: number[], he = false, wait = 0): PiReport {
  const ops = mmacs.map((m, i) =>
    row(`conv${i}`, 'conv', {
      macs: m * 1e6,
      offline: { ms: a + b * m + (m === 4.5 ? 4 * wait : -wait), cToS: 0, sToC: 0, rounds: 2 },
      heMs: he ? { client: 0.2 * (a + b * m), server: 0.4 * (a + b * m) } : { client: 0, server: 0 },
    }),
  );
  ops.push(row('relu', 'relu', { relus: 100, offline: { ms: 3, cToS: 50, sToC: 50, rounds: 2 } }));
  const offline = ops.reduce((s, o) => s + o.offline.ms, 0) + rest;
  const phase = (ms: number) => ({ ms, cToS: 0, sToC: 0, rounds: 0, prep: 0 });
  return {
    plan: { arch: 'resnet18', relus: 100, culledSites: 0, macs: 0, fixed: defaultFixedPoint, digest: 'x' },
    relu: 'ot',
    link: 'no shaping',
    preprocess: 'he',
    transport: 'tls',
    offline: 'all',
    memory: { heldClient: 0, heldServer: 0, rss: {} },
    linear: { clientMs: 0, serverMs: 0, cToS: 0, sToC: 0, wallMs: 0 },
    phases: { setup: phase(setup), offline: phase(offline), online: phase(0) },
    preprocessing: { clientToDealer: 0, dealerToClient: 0, serverToDealer: 0, dealerToServer: 0 },
    ops,
    logits: [],
  };
}

test('calibration: set-up per session, linear layers as per-layer + per-MAC, the rest per layer', () => {
  // 40 ms per layer + 2 ms per MMAC; 700 and 500 ms of set-up; 42 ms unattributed over 21 layers.
  const mmacs = Array.from({ length: 21 }, (_, i) => (i % 5) + 0.5);
  const m = calibrate([session(40, 2, 700, 42, mmacs), session(40, 2, 500, 42, mmacs)]);
  assert.ok(Math.abs(m.perSession_s - 0.6) < 1e-9, `${m.perSession_s}`);
  assert.ok(Math.abs(m.perMac_s - 2e-9) < 1e-15, `${m.perMac_s}`);
  assert.ok(Math.abs(m.perLayer_s - (0.04 + 0.002)) < 1e-9, `${m.perLayer_s}`);
  // In sample, the estimate is the session's measured total (setup 600 on average).
  const macs = mmacs.reduce((s, v) => s + v, 0) * 1e6;
  const est = estimateLatency(m, 100, macs, 21, { relu: 'ot', link: null });
  const measured = (600 + 42 + 3 + mmacs.reduce((s, v) => s + 40 + 2 * v, 0)) / 1e3;
  assert.ok(Math.abs(est - measured) < 1e-9, `${est} vs ${measured}`);
});

test("calibration: the line follows each layer's HE compute, not the waits in its row", () => {
  const mmacs = Array.from({ length: 20 }, (_, i) => (i % 5) + 0.5);
  const m = calibrate([session(40, 2, 600, 0, mmacs, true, 5)]);
  assert.ok(Math.abs(m.perMac_s - 2e-9) < 1e-15, `${m.perMac_s}`);
  assert.ok(Math.abs(m.perLayer_s - 0.04) < 1e-9, `${m.perLayer_s}`);
  // from the rows' wall times alone the waits would bend it
  const w = calibrate([session(40, 2, 600, 0, mmacs, false, 5)]);
  assert.ok(Math.abs(w.perLayer_s - 0.04) > 1e-3, `${w.perLayer_s}`);
});

test('linearFit: exact line, non-negative terms, degenerate inputs keep the sum', () => {
  const x = [1, 2, 3, 4],
    t = x.map((v) => 5 + 3 * v);
  const f = linearFit(x, t, 0);
  assert.ok(Math.abs(f.intercept - 5) < 1e-9 && Math.abs(f.slope - 3) < 1e-9, JSON.stringify(f));
  // Decreasing times: no negative slope; the intercept is the mean.
  assert.deepEqual(linearFit([1, 2], [4, 2], 9), { intercept: 3, slope: 0 });
  // A negative intercept: the ratio instead (the sum of the times is kept).
  assert.deepEqual(linearFit([1, 2], [1, 5], 2), { intercept: 0, slope: 2 });
  assert.deepEqual(linearFit([3], [6], 2), { intercept: 0, slope: 2 });
  assert.deepEqual(linearFit([3, 3], [6, 8], 7 / 3), { intercept: 0, slope: 7 / 3 });
});

test('cost model files: perSession_s is read, older files without it load with 0', () => {
  const dir = mkdtempSync(join(tmpdir(), 'costsplit-'));
  const old = join(dir, 'old.json'),
    now = join(dir, 'new.json');
  writeFileSync(old, JSON.stringify({ perMac_s: 1e-9, perLayer_s: 0.036, relu: {} }));
  writeFileSync(now, JSON.stringify({ perMac_s: 1e-9, perLayer_s: 0.005, perSession_s: 0.6, relu: {} }));
  assert.equal(loadCostModel(old).perSession_s, 0);
  const m = loadCostModel(now);
  assert.equal(m.perSession_s, 0.6);
  assert.ok(Math.abs(estimateLatency(m, 0, 0, 10, { relu: 'ot', link: null }) - 0.65) < 1e-12);
  writeFileSync(now, JSON.stringify({ perMac_s: 1e-9, perLayer_s: 0.005, perSession_s: -1, relu: {} }));
  assert.throws(() => loadCostModel(now), /perSession_s/);
});
