// The report's measured private-inference section: latency and bytes from real two-party runs (measurepi.ts)
// beside the cost model's estimates, with the recommended model marked. Inline SVG, no scripts.
import type { PiMeasurement, PiRunOptions } from './measurepi.js';
import { esc, fmtInt } from './report-methods.js';
import type { Objective } from './latency.js';
import { scatterSvg } from './report.js';

/** How the pick was made, in words. */
function pickRule(m: MeasuredPi): string {
  const o = m.objective ?? 'relus';
  const tol = `within ${(100 * m.tolerance).toFixed(1)} points of the teacher's plaintext accuracy on ${fmtInt(m.testImages)} test images`;
  if (o === 'relus') return `the model with the fewest ReLUs ${tol}`;
  return `the model ${o === 'online' ? 'fastest online' : 'fastest in total (offline + online)'} as measured, ${tol}`;
}

export interface MeasuredModel {
  id: string;
  description: string;
  relus: number;
  /** Plaintext accuracy on the run's test set. */
  acc: number;
  /** The cost model's latency estimate (offline + online), seconds. */
  estimatedS: number;
  pi: PiMeasurement;
}

export interface MeasuredPi {
  options: PiRunOptions;
  link: string;
  dataset: string;
  from: number;
  images: number;
  /** Test images behind `acc` (the run's test set). */
  testImages: number;
  /** Accuracy tolerance of the recommendation (fraction, e.g. 0.01 = 1 point below the teacher). */
  tolerance: number;
  /** The pick within the tolerance, or null when none is: measured front: the fastest measured (total, or online
   * under the online objective; the fewest ReLUs under the ReLU objective); else the estimate's pick. */
  recommended: string | null;
  /** The estimate's pick (cheapest on the objective within the tolerance, over every candidate). */
  estimatedPick?: string | null;
  /** The run's objective (absent in measurements from before objectives: relus). */
  objective?: Objective;
  costModel: string;
  models: MeasuredModel[];
}

const mb = (b: number) => (b / 1e6).toFixed(b < 1e7 ? 2 : 1);

interface Segment {
  value: number;
  color: string;
  label: string;
}
interface BarRow {
  label: string;
  strong: boolean;
  segments: Segment[] /** A hollow reference bar (the estimate). */;
  ref?: number;
  note: string;
}

/** Horizontal bars, one group per row: stacked measured segments and, under them, a hollow reference bar. */
function hbarSvg(
  title: string,
  unit: string,
  rows: BarRow[],
  legend: { color: string; label: string; hollow?: boolean }[],
  w = 760,
): string {
  const m = { l: 190, r: 90, t: 46, b: 34 };
  const rowH = rows.some((r) => r.ref !== undefined) ? 34 : 22;
  const h = m.t + m.b + rows.length * rowH;
  const top = Math.max(
    1e-12,
    ...rows.map((r) =>
      Math.max(
        r.segments.reduce((a, s) => a + s.value, 0),
        r.ref ?? 0,
      ),
    ),
  );
  // round tick steps: 1, 2 or 5 times a power of ten, four or five of them
  const mag = 10 ** Math.floor(Math.log10(top / 4));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => top / s <= 5)!;
  const max = Math.ceil(top / step - 1e-9) * step;
  const X = (v: number) => m.l + (v / max) * (w - m.l - m.r);
  const p = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`,
    `<text x="${w / 2}" y="16" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  legend.forEach((g, i) => {
    const x = m.l + i * 150;
    p.push(
      `<rect x="${x}" y="26" width="10" height="10" fill="${g.hollow ? 'none' : g.color}" stroke="${g.color}"/><text x="${x + 14}" y="35">${esc(g.label)}</text>`,
    );
  });
  for (let k = 0; k * step <= max + 1e-9; k++) {
    const v = k * step,
      x = X(v).toFixed(1);
    p.push(
      `<line x1="${x}" y1="${m.t}" x2="${x}" y2="${h - m.b}" stroke="#eee"/><text x="${x}" y="${h - m.b + 14}" text-anchor="middle">${Number(v.toPrecision(3)).toLocaleString('en-US')}</text>`,
    );
  }
  p.push(`<text x="${(w + m.l - m.r) / 2}" y="${h - 4}" text-anchor="middle">${esc(unit)}</text>`);
  rows.forEach((r, i) => {
    const y = m.t + i * rowH + 3;
    p.push(
      `<text x="${m.l - 6}" y="${y + 11}" text-anchor="end"${r.strong ? ' font-weight="bold"' : ''}>${esc(r.label)}</text>`,
    );
    let x0 = 0;
    const g = [`<g class="measured"><title>${esc(r.note)}</title>`];
    for (const s of r.segments) {
      g.push(
        `<rect x="${X(x0).toFixed(1)}" y="${y}" width="${Math.max(0.5, X(x0 + s.value) - X(x0)).toFixed(1)}" height="14" fill="${s.color}"><title>${esc(s.label)}</title></rect>`,
      );
      x0 += s.value;
    }
    g.push(`<text x="${(X(x0) + 4).toFixed(1)}" y="${y + 11}">${x0.toPrecision(3)}</text></g>`);
    p.push(g.join(''));
    if (r.ref !== undefined)
      p.push(
        `<rect class="estimate" x="${m.l}" y="${y + 16}" width="${Math.max(0.5, X(r.ref) - m.l).toFixed(1)}" height="10" fill="none" stroke="#555" stroke-dasharray="3,2"><title>estimated ${r.ref.toPrecision(3)}</title></rect>` +
          `<text x="${(X(r.ref) + 4).toFixed(1)}" y="${y + 25}" fill="#555">${r.ref.toPrecision(3)} est.</text>`,
      );
  });
  p.push('</svg>');
  return p.join('\n');
}

/** Plain-text lines (the demo's and `reduce --measure-pi`'s summary). */
export function measuredPiLines(m: MeasuredPi): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const t = (x: MeasuredModel) => x.pi.offlineS.mean + x.pi.onlineS.mean;
  const base = m.models[0]!;
  const rows = m.models.map((x) => {
    const p = x.pi;
    return [
      `${x.id}${x.id === m.recommended ? ' *' : ''}`,
      fmtInt(x.relus),
      pct(x.acc),
      `${p.agree}/${p.n}`,
      `${p.secureCorrect}/${p.n}`,
      p.offlineS.mean.toFixed(2),
      p.onlineS.mean.toFixed(2),
      t(x).toFixed(2),
      x.estimatedS.toFixed(2),
      mb(p.bytes.mean),
      mb(p.onlineBytes.mean),
      `${(t(base) / t(x)).toFixed(2)}x / ${(base.pi.onlineS.mean / p.onlineS.mean).toFixed(2)}x`,
    ];
  });
  const head = [
    'model',
    'ReLUs',
    'plaintext acc',
    'secure = plaintext',
    'secure correct',
    'offline s',
    'online s',
    'total s',
    'estimated s',
    'MB',
    'online MB',
    'speed-up total / online',
  ];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `  ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')}`;
  const out = [
    `measured private inference: ${m.images} ${m.dataset} test images (#${m.from}-${m.from + m.images - 1}) per model, ${describeProtocol(m)}; per image, client wall time, bytes client <-> server`,
    line(head),
    ...rows.map(line),
  ];
  const rec = m.models.find((x) => x.id === m.recommended);
  if (rec && rec !== base) {
    out.push(
      `* recommended: ${rec.id}, ${pickRule(m)}: ` +
        `${(base.relus / rec.relus).toFixed(2)}x fewer ReLUs; measured ${(t(base) / t(rec)).toFixed(2)}x faster in total, ${(base.pi.onlineS.mean / rec.pi.onlineS.mean).toFixed(2)}x online, ` +
        `${(base.pi.bytes.mean / rec.pi.bytes.mean).toFixed(2)}x fewer bytes`,
    );
  } else if (!rec)
    out.push(
      `no model is within ${(100 * m.tolerance).toFixed(1)} points of the teacher's plaintext accuracy: nothing recommended`,
    );
  return out;
}

function describeProtocol(m: MeasuredPi): string {
  const o = m.options;
  const parts = [
    `preprocessing ${o.preprocess}${o.preprocess === 'dealer' ? ' (a trusted third party: dealer, server and client processes)' : ''}`,
    `ReLU protocol ${o.relu ?? '(pi default)'}`,
    `link ${m.link}`,
    o.tls === 'insecure'
      ? 'plain TCP (--insecure)'
      : `TLS 1.3, the server's certificate verified (${o.tls ? 'given certificate' : 'fresh identities per measurement'})`,
  ];
  return parts.join('; ');
}

/** The HTML section. */
export function measuredPiSection(m: MeasuredPi): string {
  const rec = (id: string) => id === m.recommended;
  const name = (x: MeasuredModel) => `${rec(x.id) ? '★ ' : ''}${x.id} (${fmtInt(x.relus)})`;
  const lat = hbarSvg(
    'Private inference latency per image: measured vs estimated',
    'seconds per image (client wall time)',
    m.models.map((x) => ({
      label: name(x),
      strong: rec(x.id),
      ref: x.estimatedS,
      note: `${x.id}: offline ${x.pi.offlineS.mean.toFixed(3)} s (${x.pi.offlineS.min.toFixed(2)}-${x.pi.offlineS.max.toFixed(2)}), online ${x.pi.onlineS.mean.toFixed(3)} s (${x.pi.onlineS.min.toFixed(2)}-${x.pi.onlineS.max.toFixed(2)})`,
      segments: [
        { value: x.pi.offlineS.mean, color: '#4a78b5', label: `offline ${x.pi.offlineS.mean.toFixed(3)} s` },
        { value: x.pi.onlineS.mean, color: '#e8853d', label: `online ${x.pi.onlineS.mean.toFixed(3)} s` },
      ],
    })),
    [
      { color: '#4a78b5', label: 'measured offline' },
      { color: '#e8853d', label: 'measured online' },
      { color: '#555', label: 'estimated (cost model)', hollow: true },
    ],
  );
  const bytes = hbarSvg(
    'Bytes per image between client and server (measured)',
    'MB per image',
    m.models.map((x) => ({
      label: name(x),
      strong: rec(x.id),
      note: `${x.id}: ${mb(x.pi.bytes.mean)} MB client <-> server, ${mb(x.pi.onlineBytes.mean)} MB of it online; dealer ${mb(x.pi.dealerBytes.mean)} MB`,
      segments: [
        {
          value: (x.pi.bytes.mean - x.pi.onlineBytes.mean) / 1e6,
          color: '#4a78b5',
          label: `set-up + offline ${mb(x.pi.bytes.mean - x.pi.onlineBytes.mean)} MB`,
        },
        { value: x.pi.onlineBytes.mean / 1e6, color: '#e8853d', label: `online ${mb(x.pi.onlineBytes.mean)} MB` },
      ],
    })),
    [
      { color: '#4a78b5', label: 'set-up + offline' },
      { color: '#e8853d', label: 'online' },
    ],
  );
  const t = (x: MeasuredModel) => x.pi.offlineS.mean + x.pi.onlineS.mean;
  const base = m.models[0]!;
  const rows = m.models
    .map((x) => {
      const p = x.pi;
      const range = (s: { mean: number; min: number; max: number }) =>
        `${s.mean.toFixed(3)} <small>(${s.min.toFixed(2)}-${s.max.toFixed(2)})</small>`;
      return (
        `<tr${rec(x.id) ? ' class="recommended"' : ''}><td title="${esc(x.description)}" style="text-align:left;white-space:nowrap">${rec(x.id) ? '★ ' : ''}${esc(x.id)}</td><td>${fmtInt(x.relus)}</td><td>${(100 * x.acc).toFixed(2)}</td>` +
        `<td>${p.agree}/${p.n}</td><td>${p.secureCorrect}/${p.n}</td><td>${p.setupS.mean.toFixed(2)}</td><td>${range(p.offlineS)}</td><td>${range(p.onlineS)}</td><td>${x.estimatedS.toFixed(3)}</td>` +
        `<td>${mb(p.bytes.mean)} <small>(${mb(p.onlineBytes.mean)})</small></td><td>${mb(p.dealerBytes.mean)}</td><td>${(t(base) / t(x)).toFixed(2)}x / ${(base.pi.onlineS.mean / p.onlineS.mean).toFixed(2)}x</td></tr>`
      );
    })
    .join('\n');
  const recText = m.recommended
    ? `★ marks the recommended model: ${pickRule(m)}.`
    : `No model is within ${(100 * m.tolerance).toFixed(1)} points of the teacher's plaintext accuracy, so none is recommended.`;
  return `<h2 id="measured-pi">Measured private inference</h2>
<p>Each model ran under two-party private inference on ${m.images} ${esc(m.dataset)} test images (#${m.from}-${m.from + m.images - 1}): <code>deepreduce pi serve</code>
and one <code>deepreduce pi query</code> process per image${m.options.preprocess === 'dealer' ? ', and a <code>deepreduce pi dealer</code> process' : ''}, on one machine, each with one libtorch thread
(${esc(base.pi.machine.cpu)}, ${base.pi.machine.cpus} cores). Protocol: ${esc(describeProtocol(m))}. Latency is the client's wall time per phase
(mean, with min-max over the images); estimates come from the cost model (${esc(m.costModel)}). ${recText}</p>
${measuredScatter(m)}
${lat}
${bytes}
<table style="font-size:12px"><tr><th>model</th><th>ReLUs</th><th>plaintext acc (%)</th><th>secure = plaintext</th><th>secure correct</th><th>set-up s</th><th>offline s</th><th>online s</th><th>estimated s</th><th>MB client&#8596;server (online)</th><th>dealer MB</th><th>speed-up total / online</th></tr>
${rows}</table>`;
}

/** Accuracy against measured latency (total, or online under the online objective), one point per measured model. */
function measuredScatter(m: MeasuredPi): string {
  const online = m.objective === 'online';
  const x = (v: MeasuredModel) => 1000 * (online ? v.pi.onlineS.mean : v.pi.offlineS.mean + v.pi.onlineS.mean);
  const pt = (v: MeasuredModel) => ({
    x: x(v),
    y: 100 * v.acc,
    label: `${v.id}: ${x(v).toFixed(0)} ms measured, ${(100 * v.acc).toFixed(2)}%`,
  });
  const [teacher, ...rest] = m.models;
  return scatterSvg(
    `Accuracy vs measured PI latency${online ? ' (online)' : ''}`,
    `measured ${online ? 'online' : 'offline + online'} latency per image (ms, log scale)`,
    'test accuracy (%)',
    [
      { label: 'measured models', color: '#1f77b4', points: rest.filter((v) => v.id !== m.recommended).map(pt) },
      ...(m.recommended
        ? [
            {
              label: `★ ${m.recommended}`,
              color: '#d62728',
              marker: 'diamond' as const,
              points: rest.filter((v) => v.id === m.recommended).map(pt),
            },
          ]
        : []),
      { label: 'teacher', color: '#000000', points: teacher ? [pt(teacher)] : [] },
    ],
  );
}
