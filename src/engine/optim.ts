import { type Tensor, keep, noGrad, tidy, zeros } from './tensor.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  dampening?: number;
}

/** SGD as torch.optim.SGD: d = g + wd*p; b = m*b + (1-damp)*d; d = nesterov ? d + m*b : b; p -= lr*d. */
export class SGD {
  lr: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly dampening: number;
  readonly #buffers = new Map<Tensor, Tensor>();

  constructor(
    readonly params: Tensor[],
    o: SGDOptions,
  ) {
    this.lr = o.lr;
    this.momentum = o.momentum ?? 0;
    this.nesterov = o.nesterov ?? false;
    this.weightDecay = o.weightDecay ?? 0;
    this.dampening = o.dampening ?? 0;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0))
      throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
  }

  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const p of this.params) {
          const g = p.grad;
          if (!g) continue;
          let d = this.weightDecay ? g.add(p, this.weightDecay) : g;
          if (this.momentum) {
            let buf = this.#buffers.get(p);
            if (!buf) {
              buf = keep(d.clone());
              this.#buffers.set(p, buf);
            } else {
              buf.mul_(this.momentum).add_(d, 1 - this.dampening);
            }
            d = this.nesterov ? d.add(buf, this.momentum) : buf;
          }
          p.add_(d, -this.lr);
        }
      }),
    );
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  /** Momentum buffers by parameter index (for checkpoints). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.params.forEach((p, i) => {
      const b = this.#buffers.get(p);
      if (b) out.set(`momentum_buffer.${i}`, b);
    });
    return out;
  }
  loadStateDict(sd: Map<string, Tensor>): void {
    for (const b of this.#buffers.values()) b.dispose();
    this.#buffers.clear();
    noGrad(() => {
      this.params.forEach((p, i) => {
        const b = sd.get(`momentum_buffer.${i}`);
        if (!b) return;
        if (JSON.stringify(b.shape) !== JSON.stringify(p.shape))
          throw new Error(
            `optimizer state: momentum_buffer.${i} has shape ${JSON.stringify(b.shape)}, parameter has ${JSON.stringify(p.shape)}`,
          );
        const t = keep(zeros(p.shape, p.dtype, p.device));
        t.copy_(b);
        this.#buffers.set(p, t);
      });
    });
  }
  dispose(): void {
    for (const b of this.#buffers.values()) b.dispose();
    this.#buffers.clear();
  }
}

/** A learning-rate schedule: the rate at a (fractional) epoch. */
export type Schedule = (epoch: number) => number;

/** Cosine annealing from base to min over total epochs (per-step when given fractional epochs). */
export const cosineSchedule =
  (base: number, total: number, min = 0): Schedule =>
  (e) =>
    min + 0.5 * (base - min) * (1 + Math.cos((Math.PI * Math.min(e, total)) / total));

/** Multiply by gamma at each milestone epoch. */
export const stepSchedule =
  (base: number, milestones: number[], gamma = 0.1): Schedule =>
  (e) =>
    base * gamma ** milestones.filter((m) => e >= m).length;

/** Linear warm-up from 0 over `warmup` epochs, then the inner schedule (shifted). */
export const withWarmup =
  (inner: Schedule, warmup: number): Schedule =>
  (e) =>
    warmup > 0 && e < warmup ? (inner(0) * e) / warmup : inner(e - warmup);
