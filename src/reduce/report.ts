// A self-contained HTML report: inline SVG charts, no scripts or external files.
import { paretoFront } from './pareto.js';
import type { CriticalityResult } from './criticality.js';
import { measuredPiSection, type MeasuredPi } from './report-pi.js';
import { esc, fmtInt, markerSvg, styleOf, subsetSection, type Marker } from './report-methods.js';
import type { SubsetRow } from './subsets.js';
import type { Objective } from './latency.js';
import type { ReshapeRow } from './reshape.js';

export interface ReportCandidate {
  id: string;
  relus: number;
  acc: number;
  latency_s?: number;
  online_s?: number | null;
  kd: boolean;
  description: string;
  /** The method that made it (one marker per method); default deepreduce. */
  method?: string;
  macs?: number;
  flops?: number;
  /** Learned masks: accuracy before fine-tuning. */
  maskAcc?: number;
}

export interface ReportInput {
  title: string;
  config: Record<string, unknown>;
  baseline: { relus: number; acc: number; latency_s?: number; online_s?: number | null; macs?: number; flops?: number };
  criticality?: CriticalityResult;
  candidates: ReportCandidate[];
  summary: string[];
  /** Latency and bytes of real private-inference runs (reduce --measure-pi). */
  measuredPi?: MeasuredPi;
  /** With the candidate that trained each configuration, if one did. */
  subsetSearch?: (SubsetRow & { trained?: { id: string; acc: number } })[];
  /** What the latency estimates assume (ReLU protocol, link, cost model). */
  latencyModel?: string;
  /** The axis of the main plot and the front (default relus). */
  objective?: Objective;
  /** The reshape search's best configurations per budget. */
  reshapeSearch?: ReshapeRow[];
}

/** A candidate's (or the baseline's) value on an axis: ReLUs, or milliseconds. */
function axisValue(
  c: { relus: number; latency_s?: number; online_s?: number | null },
  o: Objective,
): number | undefined {
  if (o === 'relus') return c.relus;
  const v = o === 'latency' ? c.latency_s : c.online_s;
  return v === undefined || v === null ? undefined : v * 1000;
}

const AXIS: Record<Objective, { title: string; x: string }> = {
  relus: { title: 'Accuracy vs ReLU count', x: 'ReLUs per image (log scale)' },
  latency: {
    title: 'Accuracy vs estimated PI latency',
    x: 'estimated PI latency, offline + online (ms, log scale)',
  },
  online: { title: 'Accuracy vs estimated online PI latency', x: 'estimated online PI latency (ms, log scale)' },
};

interface Series {
  label: string;
  color: string;
  points: { x: number; y: number; label: string }[];
  line?: boolean;
  marker?: Marker;
}

/** A scatter/line chart with a log-scale x axis, as an SVG string. */
export function scatterSvg(title: string, xLabel: string, yLabel: string, series: Series[], w = 640, h = 400): string {
  const all = series.flatMap((s) => s.points);
  if (!all.length)
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="60"><text x="10" y="30">${esc(title)}: no data</text></svg>`;
  const m = { l: 60, r: 20, t: 30, b: 50 };
  const xs = all.map((p) => Math.log10(Math.max(p.x, 1)));
  const ys = all.map((p) => p.y);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x1 - x0 < 1e-9) [x0, x1] = [x0 - 0.5, x1 + 0.5];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 1, y1 + 1];
  const padY = (y1 - y0) * 0.08;
  [y0, y1] = [y0 - padY, y1 + padY];
  const padX = (x1 - x0) * 0.05;
  [x0, x1] = [x0 - padX, x1 + padX];
  const X = (v: number) => m.l + ((Math.log10(Math.max(v, 1)) - x0) / (x1 - x0)) * (w - m.l - m.r);
  const Y = (v: number) => h - m.b - ((v - y0) / (y1 - y0)) * (h - m.t - m.b);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`,
  );
  parts.push(`<text x="${w / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  parts.push(
    `<line x1="${m.l}" y1="${h - m.b}" x2="${w - m.r}" y2="${h - m.b}" stroke="#333"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${h - m.b}" stroke="#333"/>`,
  );
  for (let d = Math.ceil(x0); d <= Math.floor(x1); d++) {
    for (const k of [1, 2, 5]) {
      const v = k * 10 ** d;
      const lv = Math.log10(v);
      if (lv < x0 || lv > x1) continue;
      const px = X(v);
      parts.push(
        `<line x1="${px}" y1="${h - m.b}" x2="${px}" y2="${h - m.b + 4}" stroke="#333"/><text x="${px}" y="${h - m.b + 16}" text-anchor="middle">${v >= 1000 ? `${v / 1000}K` : v}</text>`,
      );
    }
  }
  for (let i = 0; i <= 5; i++) {
    const v = y0 + ((y1 - y0) * i) / 5;
    parts.push(
      `<line x1="${m.l - 4}" y1="${Y(v)}" x2="${m.l}" y2="${Y(v)}" stroke="#333"/><text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`,
    );
    parts.push(`<line x1="${m.l}" y1="${Y(v)}" x2="${w - m.r}" y2="${Y(v)}" stroke="#eee"/>`);
  }
  parts.push(`<text x="${(w + m.l) / 2}" y="${h - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(
    `<text transform="translate(14 ${(h - m.b + m.t) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  series.forEach((s, si) => {
    if (s.line && s.points.length > 1) {
      const pts = [...s.points]
        .sort((a, b) => a.x - b.x)
        .map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`)
        .join(' ');
      parts.push(`<polyline class="front" points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    }
    for (const p of s.points)
      parts.push(
        markerSvg(
          s.marker ?? 'circle',
          X(p.x),
          Y(p.y),
          s.line ? 5 : 4,
          s.line ? 'none' : s.color,
          s.color,
          esc(p.label),
        ),
      );
    parts.push(markerSvg(s.marker ?? 'circle', w - m.r - 165, m.t + 9 + si * 16, 5, s.color, s.color, esc(s.label)));
    parts.push(`<text x="${w - m.r - 155}" y="${m.t + 13 + si * 16}">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function barSvg(title: string, bars: { label: string; value: number; note: string }[], w = 640, h = 260): string {
  const m = { l: 60, r: 20, t: 30, b: 40 };
  const max = Math.max(...bars.map((b) => Math.abs(b.value)), 1e-9);
  const bw = (w - m.l - m.r) / Math.max(bars.length, 1);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="11">`,
    `<text x="${w / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<line x1="${m.l}" y1="${h - m.b}" x2="${w - m.r}" y2="${h - m.b}" stroke="#333"/>`,
  ];
  bars.forEach((b, i) => {
    const bh = (Math.max(b.value, 0) / max) * (h - m.t - m.b);
    const x = m.l + i * bw + bw * 0.15;
    parts.push(
      `<rect x="${x}" y="${h - m.b - bh}" width="${bw * 0.7}" height="${bh}" fill="#4a78b5"><title>${esc(b.note)}</title></rect>`,
    );
    parts.push(`<text x="${x + bw * 0.35}" y="${h - m.b + 14}" text-anchor="middle">${esc(b.label)}</text>`);
    parts.push(`<text x="${x + bw * 0.35}" y="${h - m.b - bh - 4}" text-anchor="middle">${b.value.toFixed(3)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Renders the whole report as one HTML document. */
export function renderReport(r: ReportInput): string {
  const objective = r.objective ?? 'relus';
  const methods = [...new Set(r.candidates.map((c) => c.method ?? 'deepreduce'))];
  const label = (c: ReportCandidate) =>
    `${c.id}: ${fmtInt(c.relus)} ReLUs${c.latency_s !== undefined ? `, ${(c.latency_s * 1000).toFixed(0)} ms est.` : ''}${c.online_s != null ? ` (${(c.online_s * 1000).toFixed(0)} ms online)` : ''}, ${(c.acc * 100).toFixed(2)}%${c.kd ? ' (KD)' : ''}`;
  const frontOf = (o: Objective) =>
    new Set(
      paretoFront(
        r.candidates.flatMap((c) => {
          const v = axisValue(c, o);
          return v === undefined ? [] : [{ id: c.id, cost: v, acc: c.acc }];
        }),
      ).map((p) => p.id),
    );
  const chart = (o: Objective, main: boolean): string => {
    const on = r.candidates.filter((c) => axisValue(c, o) !== undefined);
    if (!on.length) return '';
    const f = frontOf(o);
    const dot = (c: ReportCandidate) => ({ x: axisValue(c, o)!, y: c.acc * 100, label: label(c) });
    const bx = axisValue(r.baseline, o);
    return scatterSvg(`${AXIS[o].title}${main ? ' (the objective)' : ''}`, AXIS[o].x, 'test accuracy (%)', [
      ...methods.map((m) => ({
        ...styleOf(m),
        points: on.filter((c) => (c.method ?? 'deepreduce') === m).map(dot),
      })),
      { label: 'Pareto front', color: '#d62728', line: true, points: on.filter((c) => f.has(c.id)).map(dot) },
      ...(bx !== undefined
        ? [
            {
              label: 'baseline (all ReLUs)',
              color: '#000000',
              points: [{ x: bx, y: r.baseline.acc * 100, label: 'baseline' }],
            },
          ]
        : []),
    ]);
  };
  const front = frontOf(objective);
  const others = (['relus', 'latency', 'online'] as Objective[]).filter((o) => o !== objective);
  const mainChart = chart(objective, true);
  const latChart =
    others.map((o) => chart(o, false)).join('\n') +
    (r.latencyModel ? `<p>Latency estimated for ${esc(r.latencyModel)}.</p>` : '');
  const reluChart = mainChart;
  const crit = r.criticality
    ? barSvg(
        'Stage criticality (higher = keep)',
        r.criticality.stages.map((s) => ({
          label: `stage ${s.stage}`,
          value: s.score,
          note: `acc ${(s.acc * 100).toFixed(2)}%, ${fmtInt(s.relus)} ReLUs, gain ${s.gain.toFixed(3)}`,
        })),
      )
    : '';
  const num = (v: number | undefined) => (v !== undefined ? fmtInt(v) : '');
  const rows = [...r.candidates]
    .sort((a, b) => (axisValue(a, objective) ?? Infinity) - (axisValue(b, objective) ?? Infinity) || a.relus - b.relus)
    .map(
      (c) =>
        `<tr${front.has(c.id) ? ' class="front"' : ''}><td>${esc(c.id)}</td><td>${esc(c.description)}</td><td>${esc(styleOf(c.method).label)}</td><td>${fmtInt(c.relus)}</td><td>${num(c.macs)}</td><td>${num(c.flops)}</td>` +
        `<td>${(c.acc * 100).toFixed(2)}${c.maskAcc !== undefined ? ` (${(c.maskAcc * 100).toFixed(2)} before fine-tuning)` : ''}</td><td>${c.latency_s !== undefined ? c.latency_s.toFixed(3) : ''}</td><td>${c.online_s != null ? c.online_s.toFixed(3) : ''}</td><td>${c.kd ? 'yes' : 'no'}</td><td>${front.has(c.id) ? '★' : ''}</td></tr>`,
    )
    .join('\n');
  const critRows = r.criticality
    ? r.criticality.stages
        .map(
          (s) =>
            `<tr><td>stage ${s.stage}</td><td>${fmtInt(s.relus)}</td><td>${(s.acc * 100).toFixed(2)}</td><td>${s.gain.toFixed(3)}</td><td>${s.score.toFixed(4)}</td></tr>`,
        )
        .join('\n')
    : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(2){text-align:left}tr.front{background:#fdecea}tr.recommended{background:#fff4d6;font-weight:bold}pre{background:#f5f5f5;padding:1em;overflow:auto}</style>
</head><body>
<h1>${esc(r.title)}</h1>
<ul>${r.summary.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<h2>Pareto fronts</h2>
<p>Objective: ${esc(objective)} (the front, the main plot and the recommended model minimise it).</p>
${reluChart}
${latChart}
${r.measuredPi ? measuredPiSection(r.measuredPi) : ''}
<h2>Criticality</h2>
${r.criticality ? `<p>Culling order (least critical first): ${r.criticality.order.map((s) => `stage ${s}`).join(', ')}. All-linear floor ${(r.criticality.floorAcc * 100).toFixed(2)}%, all-ReLU baseline ${(r.criticality.fullAcc * 100).toFixed(2)}%.</p>` : '<p>not profiled</p>'}
${crit}
<table><tr><th>stage</th><th>ReLUs</th><th>acc (%) with ReLUs only here</th><th>gain</th><th>score</th></tr>${critRows}</table>
${subsetSection(r.subsetSearch ?? [])}
${reshapeSection(r.reshapeSearch ?? [])}
<h2>Candidates</h2>
<table><tr><th>id</th><th>configuration</th><th>method</th><th>ReLUs</th><th>MACs</th><th>FLOPs</th><th>acc (%)</th><th>est. latency (s)</th><th>est. online (s)</th><th>KD</th><th>front</th></tr>
<tr><td>baseline</td><td>all ReLUs (teacher)</td><td></td><td>${fmtInt(r.baseline.relus)}</td><td>${num(r.baseline.macs)}</td><td>${num(r.baseline.flops)}</td><td>${(r.baseline.acc * 100).toFixed(2)}</td><td>${r.baseline.latency_s?.toFixed(3) ?? ''}</td><td>${r.baseline.online_s?.toFixed(3) ?? ''}</td><td></td><td></td></tr>
${rows}</table>
<h2>Configuration</h2>
<pre>${esc(JSON.stringify(r.config, null, 2))}</pre>
</body></html>
`;
}

/** The reshape search's table: per budget, its best configurations, the chosen ones trained. */
function reshapeSection(rows: ReshapeRow[]): string {
  if (!rows.length) return '';
  const body = rows
    .map(
      (x) =>
        `<tr><td>${esc(x.budget)}</td><td>${x.rank}</td><td>${x.culled.join(',') || '-'}</td><td>${x.thinned ? 'yes' : 'no'}</td><td>${x.channels.join(', ')}</td><td>${fmtInt(x.relus)}</td><td>${fmtInt(x.macs)}</td><td>${x.latency_s.toFixed(3)}</td><td>${x.online_s?.toFixed(3) ?? ''}</td><td>${x.score.toFixed(3)}</td></tr>`,
    )
    .join('\n');
  return `<h2>Reshape search</h2>
<p>Per budget, the configurations within it ranked by the criticality gains of the stages that keep ReLUs, each weighted by its width factor (then more ReLUs, more MACs, lower cost); the first <code>--reshape-top</code> of each budget are trained (channel-sliced from the teacher, KD).</p>
<table><tr><th>budget</th><th>rank</th><th>culled</th><th>thinned</th><th>channels per stage</th><th>ReLUs</th><th>MACs</th><th>est. s</th><th>est. online s</th><th>score</th></tr>
${body}</table>`;
}
