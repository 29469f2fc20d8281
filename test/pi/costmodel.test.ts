import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultCostModel, estimateLatency, loadCostModel } from '../../src/pi/node/costmodel.js';
import { parseLink } from '../../src/pi/transport/shaping.js';

test('latency model: per-protocol compute, bytes over the bandwidth and flights x RTT/2 per ReLU op', () => {
  const m = {
    ...defaultCostModel,
    perMac_s: 1e-9,
    perLayer_s: 1e-4,
    relu: { ot: { compute_s: 1e-5, bytes: 500, flights: 6 }, gc: { compute_s: 3e-5, bytes: 7000, flights: 2 } },
  };
  const relus = 100_000,
    macs = 1e8,
    layers = 20,
    ops = 10;
  const none = estimateLatency(m, relus, macs, layers, { relu: 'ot', link: null }, ops);
  assert.ok(Math.abs(none - (1 + 0.1 + 0.002)) < 1e-9, `${none}`);
  const wan = estimateLatency(m, relus, macs, layers, { relu: 'ot', link: parseLink('wan') }, ops);
  // + 100,000 x 500 B x 8 / 400 Mbit/s = 1 s on the wire, + 10 ops x 6 flights x 20 ms = 1.2 s.
  assert.ok(Math.abs(wan - none - 2.2) < 1e-9, `${wan - none}`);
  const gcWan = estimateLatency(m, relus, macs, layers, { relu: 'gc', link: parseLink('wan') }, ops);
  assert.ok(gcWan > wan, 'GC sends 14x the bytes');
  assert.equal(estimateLatency(m, 0, macs, layers, { relu: 'ot', link: parseLink('wan') }, ops), 0.1 + 0.002);
  assert.throws(() => estimateLatency(m, 1, 0, 0, { relu: 'nope', link: null }), /no costs for ReLU protocol 'nope'/);
});

test('cost model files: per-protocol form, the earlier gc-only form, bad fields named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'costmodel-'));
  try {
    const f = join(dir, 'c.json');
    writeFileSync(
      f,
      JSON.stringify({ perMac_s: 1e-9, perLayer_s: 0, relu: { ot: { compute_s: 2e-6, bytes: 571, flights: 6 } } }),
    );
    const m = loadCostModel(f);
    assert.deepEqual(m.relu.ot, { compute_s: 2e-6, bytes: 571, flights: 6 });
    assert.deepEqual(m.relu.gc, defaultCostModel.relu.gc);
    writeFileSync(f, JSON.stringify({ perRelu_s: 4e-5, perMac_s: 1e-9, perLayer_s: 1e-5 }));
    assert.equal(loadCostModel(f).relu.gc!.compute_s, 4e-5);
    writeFileSync(
      f,
      JSON.stringify({ perMac_s: 1e-9, perLayer_s: 0, relu: { ot: { compute_s: -1, bytes: 1, flights: 1 } } }),
    );
    assert.throws(() => loadCostModel(f), /field 'relu\.ot\.compute_s' must be a non-negative number/);
    writeFileSync(
      f,
      JSON.stringify({
        perMac_s: 1e-9,
        perLayer_s: 0,
        online: { perMac_s: 2e-9, perLayer_s: 1e-4 },
        relu: { ot: { compute_s: 2e-6, bytes: 571, flights: 6, online: { perRelu_s: 1e-6 } } },
      }),
    );
    assert.deepEqual(loadCostModel(f).relu.ot!.online, { perRelu_s: 1e-6 });
    assert.deepEqual(loadCostModel(f).online, { perMac_s: 2e-9, perLayer_s: 1e-4 });
    writeFileSync(
      f,
      JSON.stringify({
        perMac_s: 1e-9,
        perLayer_s: 0,
        relu: { ot: { compute_s: 2e-6, bytes: 571, flights: 6, online: { perRelu_s: 'x' } } },
      }),
    );
    assert.throws(() => loadCostModel(f), /field 'relu\.ot\.online\.perRelu_s' must be a non-negative number/);
    assert.equal(loadCostModel(join(dir, 'missing.json')), defaultCostModel);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
