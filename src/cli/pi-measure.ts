// The flags of measured private inference: the protocol (shared by `deepreduce demo` and `deepreduce reduce`) and
// `reduce --measure-pi`.
import { InvalidArgumentError, type Command } from 'commander';
import { numberArg } from '../util/args.js';
import { DEFAULT_PI_OPTIONS, type MeasurePiConfig, type PiRunOptions } from '../reduce/measurepi.js';

export interface PiFlags {
  piPreprocess?: string;
  piRelu?: string;
  piLink?: string;
  piCert?: string;
  piKey?: string;
  piInsecure?: boolean;
}

export function addPiProtocolOptions(c: Command): Command {
  return c
    .option(
      '--pi-preprocess <name>',
      'linear-layer preprocessing of the measured runs (pi serve/query --preprocess)',
      DEFAULT_PI_OPTIONS.preprocess,
    )
    .option(
      '--pi-relu <name>',
      `ReLU protocol of the measured runs (pi serve/query --relu) [reduce: its --relu; else ${DEFAULT_PI_OPTIONS.relu}]`,
    )
    .option(
      '--pi-link <profile>',
      `link profile of the measured runs (pi serve/query --link; none: unshaped) [reduce: its --link; else ${DEFAULT_PI_OPTIONS.link}]`,
    )
    .option('--pi-cert <file>', 'TLS certificate the measured server presents and the client verifies (with --pi-key)')
    .option('--pi-key <file>', "the certificate's private key")
    .option('--pi-insecure', 'measured runs on plain TCP (pi serve/query --insecure)');
}

/** The measured runs' options from the flags; unset ReLU protocol and link come from `follow` (reduce: its estimate's), then the defaults. */
export function piRunOptions(o: PiFlags, follow: { relu?: string; link?: string } = {}): PiRunOptions {
  if (!o.piCert !== !o.piKey) throw new InvalidArgumentError('--pi-cert and --pi-key go together');
  if (o.piCert && o.piInsecure)
    throw new InvalidArgumentError('give either --pi-cert/--pi-key or --pi-insecure, not both');
  const tls = o.piInsecure ? 'insecure' : o.piCert ? { cert: o.piCert, key: o.piKey! } : DEFAULT_PI_OPTIONS.tls;
  const relu = o.piRelu ?? follow.relu ?? DEFAULT_PI_OPTIONS.relu,
    link = o.piLink ?? follow.link ?? DEFAULT_PI_OPTIONS.link;
  return {
    preprocess: o.piPreprocess ?? DEFAULT_PI_OPTIONS.preprocess,
    ...(relu ? { relu } : {}),
    ...(link ? { link } : {}),
    ...(tls ? { tls } : {}),
  };
}

const num = (name: string) => numberArg(name, () => true, 'a number');

export function addMeasurePiOptions(c: Command): Command {
  return addPiProtocolOptions(
    c
      .option(
        '--measure-pi <images>',
        'then run private inference (separate server and client processes) on this many test images per model; on a finished run it only measures',
        num('--measure-pi'),
      )
      .option(
        '--measure-pi-models <which>',
        'front: the teacher and the Pareto front; recommended: the teacher and the smallest model within --tolerance',
        'front',
      )
      .option('--tolerance <points>', 'accuracy loss (points) the recommended model may have', num('--tolerance'), 1),
  );
}

/** The measurement `reduce` runs after the pipeline, or undefined without --measure-pi. */
export function measurePiConfig(
  o: PiFlags & { measurePi?: number; measurePiModels?: string; tolerance?: number },
  follow: { relu?: string; link?: string } = {},
): MeasurePiConfig | undefined {
  if (o.measurePi === undefined) return undefined;
  if (!Number.isInteger(o.measurePi) || o.measurePi < 1)
    throw new InvalidArgumentError(`--measure-pi must be a number of images >= 1, got ${o.measurePi}`);
  if (o.measurePiModels !== 'front' && o.measurePiModels !== 'recommended')
    throw new InvalidArgumentError(`--measure-pi-models must be front or recommended, got '${o.measurePiModels}'`);
  if (!(o.tolerance !== undefined && o.tolerance >= 0))
    throw new InvalidArgumentError(`--tolerance must be >= 0 points, got ${o.tolerance}`);
  return {
    images: o.measurePi,
    models: o.measurePiModels,
    tolerance: o.tolerance / 100,
    options: piRunOptions(o, follow),
  };
}
