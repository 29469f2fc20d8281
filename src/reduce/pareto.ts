/** A point to rank: lower cost is better, higher accuracy is better. */
export interface ParetoPoint {
  id: string;
  cost: number;
  acc: number;
}

/**
 * The Pareto front: points that no other point dominates (cost <= and acc >= with one strict).
 * Returned in increasing cost. Exact duplicates keep their first occurrence.
 */
export function paretoFront<P extends ParetoPoint>(points: P[]): P[] {
  const sorted = [...points].sort((a, b) => a.cost - b.cost || b.acc - a.acc);
  const front: P[] = [];
  let best = -Infinity;
  for (const p of sorted) {
    if (p.acc > best) {
      front.push(p);
      best = p.acc;
    }
  }
  return front;
}

/** Smallest cost on the front reaching at least `minAcc`, or null. */
export function cheapestAtLeast<P extends ParetoPoint>(points: P[], minAcc: number): P | null {
  return paretoFront(points).find((p) => p.acc >= minAcc) ?? null;
}

/** Best accuracy with cost at most `budget`, or null. */
export function bestWithin<P extends ParetoPoint>(points: P[], budget: number): P | null {
  const ok = points.filter((p) => p.cost <= budget);
  return ok.length ? ok.reduce((a, b) => (b.acc > a.acc || (b.acc === a.acc && b.cost < a.cost) ? b : a)) : null;
}
