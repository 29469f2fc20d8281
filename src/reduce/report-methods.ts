// Report parts for runs with several methods: one marker and colour per method on the Pareto plot, the candidate
// table's cost columns, and the stage-subset search table.
import type { SubsetRow } from './subsets.js';

export type Marker = 'circle' | 'square' | 'triangle' | 'diamond';

/** Colour, marker and legend label of each method (unknown methods fall back to grey circles). */
export const METHOD_STYLE: Record<string, { color: string; marker: Marker; label: string }> = {
  deepreduce: { color: '#1f77b4', marker: 'circle', label: 'DeepReDuce' },
  balanced: { color: '#2ca02c', marker: 'square', label: 'CryptoNAS-balanced' },
  subsets: { color: '#9467bd', marker: 'diamond', label: 'subset search' },
  snl: { color: '#ff7f0e', marker: 'triangle', label: 'learned masks (SNL)' },
  reshape: { color: '#8c564b', marker: 'square', label: 'reshaped widths' },
};

export const styleOf = (method: string | undefined) =>
  METHOD_STYLE[method ?? 'deepreduce'] ?? { color: '#999', marker: 'circle' as Marker, label: method ?? 'candidates' };

/** An SVG marker centred at (x, y). */
export function markerSvg(
  m: Marker,
  x: number,
  y: number,
  r: number,
  fill: string,
  stroke: string,
  title: string,
): string {
  const t = `<title>${title}</title>`;
  const a = `fill="${fill}" stroke="${stroke}"`;
  switch (m) {
    case 'square':
      return `<rect x="${(x - r).toFixed(1)}" y="${(y - r).toFixed(1)}" width="${2 * r}" height="${2 * r}" ${a}>${t}</rect>`;
    case 'triangle':
      return `<polygon points="${x.toFixed(1)},${(y - r * 1.2).toFixed(1)} ${(x - r * 1.1).toFixed(1)},${(y + r * 0.8).toFixed(1)} ${(x + r * 1.1).toFixed(1)},${(y + r * 0.8).toFixed(1)}" ${a}>${t}</polygon>`;
    case 'diamond':
      return `<polygon points="${x.toFixed(1)},${(y - r * 1.3).toFixed(1)} ${(x + r * 1.1).toFixed(1)},${y.toFixed(1)} ${x.toFixed(1)},${(y + r * 1.3).toFixed(1)} ${(x - r * 1.1).toFixed(1)},${y.toFixed(1)}" ${a}>${t}</polygon>`;
    default:
      return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" ${a}>${t}</circle>`;
  }
}

export const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
export const fmtInt = (n: number) => n.toLocaleString('en-US');

/** The subset search: per budget every subset's largest configuration within it, its score and rank. */
export function subsetSection(rows: (SubsetRow & { trained?: { id: string; acc: number } })[]): string {
  if (!rows.length) return '';
  const body = rows
    .map((r) => {
      const t = r.trained;
      return (
        `<tr${r.chosen ? ' class="front"' : ''}><td>${fmtInt(r.budget)}</td><td>${r.kept.join(', ')}</td><td>${r.culled.join(', ') || '-'}</td><td>${r.thinned ? 'yes' : 'no'}</td>` +
        `<td>${r.alpha}</td><td>${r.rho}</td><td>${fmtInt(r.relus)}</td><td>${fmtInt(r.macs)}</td><td>${r.score.toFixed(3)}</td><td>${r.rank}</td>` +
        `<td>${t ? `${esc(t.id)}: ${(t.acc * 100).toFixed(2)}%` : r.chosen ? 'chosen' : ''}</td></tr>`
      );
    })
    .join('\n');
  return `<h2>Stage-subset search</h2>
<p>For each budget, every subset of stages that keeps ReLUs takes its largest configuration within the budget; subsets are ranked by the sum of their stages' criticality gains (accuracy recovered alone, from the criticality runs above), and the best are trained. Culling is not limited to the criticality order.</p>
<table><tr><th>budget</th><th>stages kept</th><th>culled</th><th>thinned</th><th>alpha x</th><th>rho</th><th>ReLUs</th><th>MACs</th><th>gain sum</th><th>rank</th><th>trained</th></tr>
${body}</table>`;
}
