import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calibrate, formatComparison, type PiReport } from '../../src/pi/node/bench.js';
import { opRow as op } from './helpers/oprow.js';
import { defaultFixedPoint } from '../../src/pi/plan.js';
import { defaultCostModel, estimateOnline } from '../../src/pi/node/costmodel.js';

function report(relu: string, link: string, reluMs: number, bytes: number, flights: number): PiReport {
  const phase = (ms: number) => ({ ms, cToS: 0, sToC: 0, rounds: 0, prep: 0 });
  return {
    plan: { arch: 'resnet18', relus: 1000, culledSites: 0, macs: 1e6, fixed: defaultFixedPoint, digest: 'x' },
    relu,
    link,
    preprocess: 'he',
    transport: 'tls',
    offline: 'all',
    memory: { heldClient: 0, heldServer: 0, rss: {} },
    linear: { clientMs: 0, serverMs: 0, cToS: 0, sToC: 0, wallMs: 10 },
    phases: { setup: phase(0), offline: phase(reluMs / 2 + 10), online: phase(reluMs / 2 + 5) },
    preprocessing: { clientToDealer: 0, dealerToClient: 0, serverToDealer: 0, dealerToServer: 0 },
    ops: [
      op('conv1', 'conv', { macs: 1e6, offline: { ms: 10, cToS: 0, sToC: 0, rounds: 0 }, serverOnlineMs: 5 }),
      op('relu1', 'relu', {
        relus: 1000,
        offline: { ms: reluMs / 2, cToS: bytes / 2, sToC: 0, rounds: 2 },
        online: { ms: reluMs / 2 + 5, cToS: 0, sToC: bytes / 2, rounds: flights },
      }),
    ],
    logits: [],
  };
}

test('calibration: per ReLU protocol compute, bytes and flights from the runs without shaping', () => {
  const m = calibrate([
    report('gc', 'no shaping', 40, 6_920_000, 2),
    report('ot', 'no shaping', 10, 571_000, 6),
    report('ot', 'lan: 3 Gbit/s, 0.3 ms RTT', 99, 571_000, 6),
  ]);
  assert.deepEqual(Object.keys(m.relu).sort(), ['gc', 'ot']);
  // The ReLU op's time less the server's linear work the client waited for inside it.
  assert.ok(Math.abs(m.relu.ot!.compute_s - 10e-6) < 1e-12, `${m.relu.ot!.compute_s}`);
  assert.ok(Math.abs(m.relu.gc!.compute_s - 40e-6) < 1e-12);
  assert.equal(m.relu.ot!.bytes, 571);
  assert.equal(m.relu.ot!.flights, 6);
  assert.ok(Math.abs(m.perMac_s - 15e-9) < 1e-15, `${m.perMac_s}`);
  assert.throws(
    () => calibrate([report('ot', 'wan: 400 Mbit/s, 40 ms RTT', 1, 1, 1)]),
    /needs a session without link shaping/,
  );
  const t = formatComparison([
    report('gc', 'no shaping', 40, 1, 2),
    report('ot', 'lan: 3 Gbit/s, 0.3 ms RTT', 10, 1, 6),
  ]);
  assert.match(t, /gc\s+no shaping\s+he\s+tls/);
  assert.match(t, /ot\s+lan: 3 Gbit\/s, 0\.3 ms RTT\s+he\s+tls/);
});

test('calibration: online terms per ReLU, per MAC and per layer; the online estimate counts kept ReLUs', () => {
  const r = report('ot', 'no shaping', 10, 571_000, 6);
  // Two ReLU ops of 1,000 and 3,000 ReLUs whose server steps took 3 and 7 ms: 2.5 us per ReLU.
  r.ops = [
    op('conv1', 'conv', { macs: 1e6, serverOnlineMs: 5 }),
    op('relu1', 'relu', { relus: 1000, serverOnlineMs: 3 }),
    op('relu2', 'relu', { relus: 3000, serverOnlineMs: 7 }),
  ];
  r.phases.online.ms = 20;
  const m = calibrate([r]);
  assert.ok(Math.abs(m.relu.ot!.online!.perRelu_s - 2.5e-6) < 1e-12, JSON.stringify(m.relu.ot!.online));
  assert.ok(Math.abs(m.online!.perMac_s - 5e-9) < 1e-15);
  assert.ok(Math.abs(m.online!.perLayer_s - 5e-3) < 1e-12, `${m.online!.perLayer_s}`);
  // In sample the estimate is the measured online time; a partial model with 2,000 kept ReLUs: 5 + 5 + 5 ms.
  assert.ok(Math.abs(estimateOnline(m, 4000, 1e6, 1, 'ot') - 0.02) < 1e-12);
  assert.ok(Math.abs(estimateOnline(m, 2000, 1e6, 1, 'ot') - 0.015) < 1e-12);
  assert.throws(() => estimateOnline(defaultCostModel, 1, 1, 1, 'ot'), /no online costs for ReLU protocol 'ot'/);
});

test('pi bench --processes --offline all,layer: each party in its own process, its peak RSS; layer mode holds less', async () => {
  const { benchProcesses } = await import('../../src/pi/node/benchproc.js');
  const run = (offline: string) =>
    benchProcesses({
      modelArgs: ['--arch', 'resnet18', '--alpha', '0.125', '--input', '32', '--classes', '10'],
      preprocess: 'he',
      relu: 'ot',
      link: null,
      offline,
      insecure: true,
      workerThreads: 0,
      seed: 1,
    });
  const all = await run('all'),
    layer = await run('layer');
  for (const r of [all, layer]) {
    // each process's own peak RSS: a Node process with libtorch loaded is tens of MB at least
    assert.ok((r.memory.rss.client ?? 0) > 20e6 && (r.memory.rss.server ?? 0) > 20e6, JSON.stringify(r.memory));
    assert.equal(r.memory.rss.both, undefined);
  }
  assert.deepEqual([all.offline, layer.offline], ['all', 'layer']);
  // the same image: the same logits up to the truncation error (a few hundred ULPs of 2^-scale)
  layer.logits.forEach((v, i) =>
    assert.ok(Math.abs(v - all.logits[i]!) < 1e-3, `logit ${i}: ${v} vs ${all.logits[i]}`),
  );
  assert.ok(layer.memory.heldServer < all.memory.heldServer && layer.memory.heldClient < all.memory.heldClient);
});
