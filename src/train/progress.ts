import cliProgress from 'cli-progress';

/** Progress for one pass over a dataset: a bar with rate and ETA on a terminal, plain lines otherwise. */
export class Progress {
  readonly #bar: cliProgress.SingleBar | null;
  readonly #t0 = Date.now();
  #lastLine = 0;
  #done = 0;

  constructor(
    readonly label: string,
    readonly total: number,
    readonly stream: NodeJS.WriteStream = process.stderr,
    readonly quiet = false,
  ) {
    this.#bar =
      !quiet && stream.isTTY
        ? new cliProgress.SingleBar(
            {
              format: `${label} [{bar}] {percentage}% {value}/{total} img | {rate} img/s | ETA {eta_formatted} | {info}`,
              stream,
              hideCursor: true,
            },
            cliProgress.Presets.shades_classic,
          )
        : null;
    this.#bar?.start(total, 0, { rate: '0', info: '' });
  }

  update(done: number, info = ''): void {
    this.#done = done;
    const secs = (Date.now() - this.#t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    if (this.#bar) this.#bar.update(done, { rate: rate.toFixed(0), info });
    else if (!this.quiet && Date.now() - this.#lastLine > 10_000) {
      this.#lastLine = Date.now();
      const eta = rate > 0 ? (this.total - done) / rate : 0;
      this.stream.write(
        `${this.label} ${done}/${this.total} img, ${rate.toFixed(0)} img/s, ETA ${eta.toFixed(0)} s ${info}\n`,
      );
    }
  }

  stop(): number {
    this.#bar?.stop();
    const secs = (Date.now() - this.#t0) / 1000;
    return secs > 0 ? this.#done / secs : 0;
  }
}
