// Progress of a stage's trainings on the queue, as the submitting `reduce` sees it: on a terminal a bar for the stage
// and one per running training (epoch, ETA, worker); otherwise a line every 30 s.
import cliProgress from 'cli-progress';
import { fmtDuration, progressText, type JobProgress } from './spec.js';

export interface StageView {
  total: number;
  done: number;
  failed: number;
  waiting: number;
  /** failed attempts waiting for their retry */
  retrying: number;
  running: { id: string; progress: JobProgress | null }[];
}

const LINE_EVERY_MS = 30_000;

export class QueueDisplay {
  #bars: cliProgress.MultiBar | null = null;
  #stage: cliProgress.SingleBar | null = null;
  readonly #jobs = new Map<string, cliProgress.SingleBar>();
  #lastLine = 0;
  readonly #t0 = Date.now();

  constructor(
    readonly stream: NodeJS.WriteStream = process.stderr,
    readonly quiet = false,
  ) {}

  render(v: StageView): void {
    if (this.quiet) return;
    if (this.stream.isTTY) this.#renderBars(v);
    else if (Date.now() - this.#lastLine >= LINE_EVERY_MS) {
      this.#lastLine = Date.now();
      this.stream.write(
        `${summary(v)}${v.running.length ? `; running: ${v.running.map((r) => `${r.id} ${progressText(r.progress)}${r.progress ? ` (${r.progress.worker})` : ''}`).join(', ')}` : ''}\n`,
      );
    }
  }

  /** Clears the bars while fn prints (the next render draws them again). */
  pause(fn: () => void): void {
    this.stop();
    fn();
  }

  stop(): void {
    this.#bars?.stop();
    this.#bars = null;
    this.#stage = null;
    this.#jobs.clear();
  }

  #renderBars(v: StageView): void {
    if (!this.#bars) {
      this.#bars = new cliProgress.MultiBar(
        {
          stream: this.stream,
          clearOnComplete: true,
          hideCursor: true,
          format: '{label} [{bar}] {info}',
          barsize: 24,
          fps: 2,
        },
        cliProgress.Presets.shades_classic,
      );
      this.#stage = this.#bars.create(v.total, v.done + v.failed, { label: 'trainings'.padEnd(28), info: '' });
    }
    this.#stage!.setTotal(v.total);
    this.#stage!.update(v.done + v.failed, {
      info: `${summary(v)} | ${fmtDuration((Date.now() - this.#t0) / 1000)} elapsed`,
    });
    const ids = new Set(v.running.map((r) => r.id));
    for (const [id, bar] of this.#jobs)
      if (!ids.has(id)) {
        this.#bars.remove(bar);
        this.#jobs.delete(id);
      }
    for (const r of v.running) {
      let bar = this.#jobs.get(r.id);
      if (!bar)
        this.#jobs.set(
          r.id,
          (bar = this.#bars.create(100, 0, { label: `  ${r.id}`.slice(0, 28).padEnd(28), info: '' })),
        );
      bar.update(Math.round(100 * (r.progress?.fraction ?? 0)), {
        info: `${progressText(r.progress)}${r.progress ? ` | ${r.progress.worker}, attempt ${r.progress.attempt}` : ''}`,
      });
    }
  }
}

function summary(v: StageView): string {
  return `queue: ${v.done}/${v.total} done${v.failed ? `, ${v.failed} failed` : ''}, ${v.running.length} running, ${v.waiting} waiting${v.retrying ? `, ${v.retrying} to retry` : ''}`;
}
