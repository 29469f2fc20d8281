import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'parse5';
import { paretoFront, cheapestAtLeast, bestWithin } from '../../src/reduce/pareto.js';
import { criticality } from '../../src/reduce/criticality.js';
import { renderReport } from '../../src/reduce/report.js';

test('Pareto front on a hand-made set of points', () => {
  const pts = [
    { id: 'a', cost: 10, acc: 50 },
    { id: 'b', cost: 20, acc: 60 },
    { id: 'c', cost: 20, acc: 55 }, // dominated by b (same cost, lower acc)
    { id: 'd', cost: 30, acc: 58 }, // dominated by b
    { id: 'e', cost: 40, acc: 70 },
    { id: 'f', cost: 5, acc: 40 },
    { id: 'g', cost: 50, acc: 70 }, // dominated by e (same acc, more cost)
  ];
  assert.deepEqual(
    paretoFront(pts).map((p) => p.id),
    ['f', 'a', 'b', 'e'],
  );
  assert.equal(cheapestAtLeast(pts, 59)!.id, 'b');
  assert.equal(cheapestAtLeast(pts, 71), null);
  assert.equal(bestWithin(pts, 35)!.id, 'b');
  assert.equal(bestWithin(pts, 4), null);
});

test('criticality ranks stages by gain per doubling of ReLU cost', () => {
  const r = criticality(
    [
      { stage: 1, relus: 262144, acc: 0.8 },
      { stage: 2, relus: 131072, acc: 0.84 },
      { stage: 3, relus: 65536, acc: 0.85 },
      { stage: 4, relus: 32768, acc: 0.7 },
    ],
    0.6,
    0.9,
  );
  // gains: 2/3, 0.8, 0.833, 1/3; divisors log2(1+8)=3.17, log2(5)=2.32, log2(3)=1.58, 1
  assert.deepEqual(r.order, [1, 4, 2, 3]); // scores 0.210, 0.345, 0.526, 0.333
  assert.ok(Math.abs(r.stages[3]!.score - 1 / 3) < 1e-12);
  assert.throws(() => criticality([], 0, 1), /no stage profiles/);
});

test('the report is valid HTML with the Pareto plot, the criticality chart and the configuration', () => {
  const html = renderReport({
    title: 'test <run>',
    config: { arch: 'resnet18', alpha: 0.25 },
    baseline: { relus: 557056, acc: 0.9 },
    criticality: criticality(
      [
        { stage: 1, relus: 100, acc: 0.7 },
        { stage: 2, relus: 50, acc: 0.8 },
      ],
      0.5,
      0.9,
    ),
    candidates: [
      { id: 'c1', relus: 1000, acc: 0.8, kd: true, description: 'cull 1', latency_s: 0.1 },
      { id: 'c2', relus: 2000, acc: 0.85, kd: true, description: 'cull 1 thin', latency_s: 0.2 },
      { id: 'c3', relus: 3000, acc: 0.82, kd: false, description: 'dominated', latency_s: 0.3 },
    ],
    summary: ['one line'],
  });
  const errors: string[] = [];
  parse(html, { onParseError: (e) => errors.push(`${e.code} at ${e.startLine}:${e.startCol}`) });
  assert.deepEqual(errors, []);
  assert.match(html, /<svg[^>]*>[\s\S]*Accuracy vs ReLU count[\s\S]*<polyline class="front"/);
  assert.match(html, /Stage criticality/);
  assert.match(html, /&quot;arch&quot;: &quot;resnet18&quot;/);
  assert.match(html, /test &lt;run&gt;/);
  assert.ok(!/<script/i.test(html), 'self-contained, no scripts');
  // c3 is dominated: its table row is not marked as on the front.
  assert.match(html, /<tr><td>c3<\/td>/);
  assert.match(html, /<tr class="front"><td>c2<\/td>/);
});
