// deepreduce pi dealer | serve | query | bench: two-party private inference (Delphi-style); the linear layers'
// preprocessing by homomorphic encryption between client and server (--preprocess he, the default) or by a trusted
// dealer as a third party (--preprocess dealer). See docs/pi.md and docs/pi-he.md.
import { InvalidArgumentError, type Command } from 'commander';
import { writeFileAtomic } from '../util/fs.js';
import { countSpec } from './count.js';
import { connectTcp } from '../pi/transport/tcp.js';
import { runClient, servePi } from '../pi/protocol.js';
import { Dealer, tcpDealerLink, type DealerLink } from '../pi/linear/dealer/dealer.js';
import {
  calibrate, datasetImage, fileImage, formatPiReport, piReport, serverModelFromDir, serverModelRandom, type PiReport,
} from '../pi/bench.js';
import type { PublicPlan, ServerModel } from '../pi/plan.js';
import { PREPROCESSORS } from '../pi/linear/index.js';

const posInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'`);
  return n;
};
const nonNegInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be an integer >= 0, got '${v}'`);
  return n;
};

interface ModelOpts {
  model?: string;
  arch?: string;
  preset?: string;
  input?: number;
  classes?: number;
  alpha?: number;
  seed: number;
  f?: number;
  weightFrac?: number;
}

function serverModel(o: ModelOpts): ServerModel {
  const fixed = { f: o.f, weightFrac: o.weightFrac };
  if (o.model) {
    if (o.arch || o.preset) throw new Error('give either --model DIR or --arch/--preset (random weights), not both');
    return serverModelFromDir(o.model, fixed);
  }
  if (!o.arch && !o.preset) throw new Error('give --model DIR, or --arch NAME [--preset NAME] for random weights');
  const { spec } = countSpec({ arch: o.arch, preset: o.preset, input: o.input, classes: o.classes, alpha: o.alpha });
  return serverModelRandom(spec, o.seed, fixed);
}

function modelOptions(c: Command): Command {
  return c
    .option('--model <dir>', 'trained model directory (deepreduce train --out)')
    .option('--arch <name>', 'architecture with random weights (latency benchmarks)')
    .option('--preset <name>', 'DeepReDuce preset (resnet18 mask/width) with random weights')
    .option('--input <n>', 'input size for --arch/--preset', posInt('--input'))
    .option('--classes <n>', 'classes for --arch/--preset', posInt('--classes'))
    .option('--alpha <a>', 'width multiplier for --arch', Number)
    .option('--seed <n>', 'seed of the random weights', nonNegInt('--seed'), 0)
    .option('--f <bits>', 'fractional bits of activations', nonNegInt('--f'))
    .option('--weight-frac <bits>', 'most fractional bits of weights', nonNegInt('--weight-frac'));
}

const parseHostPort = (name: string) => (s: string): { host: string; port: number } => {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) throw new InvalidArgumentError(`${name} must be HOST:PORT, got '${s}'`);
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
};

const out = (s: string) => void process.stdout.write(s);

function argmax(v: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[b]!) b = i;
  return b;
}

export function registerPiCommands(program: Command): Command {
  const pi = program.command('pi').description('two-party private inference: garbled-circuit ReLUs, secret-shared linear layers (docs/pi.md)');

  modelOptions(pi.command('dealer').description('run the trusted dealer (a third party, never the server) that preprocesses the linear layers'))
    .requiredOption('--port <n>', 'TCP port (0: any free port, printed)', nonNegInt('--port'))
    .option('--host <h>', 'listen address', '0.0.0.0')
    .option('--pair-timeout <s>', 'seconds a party waits for its counterpart of the same session', Number, 30)
    .option('--json', 'one JSON line per session')
    .action(async (o: ModelOpts & { port: number; host: string; pairTimeout: number; json?: boolean }) => {
      if (!(o.pairTimeout > 0)) throw new InvalidArgumentError(`--pair-timeout must be > 0, got ${o.pairTimeout}`);
      const model = serverModel(o);
      const dealer = new Dealer(model, {
        pairTimeoutMs: o.pairTimeout * 1e3,
        onSession: (i) => out(o.json ? `${JSON.stringify(i)}\n`
          : `[pi dealer] session ${i.session}: ${i.layers} layers, ${i.ms.toFixed(0)} ms, ${((i.toServer + i.toClient + i.fromClient) / 1e6).toFixed(1)} MB\n`),
        onError: (e, ch) => process.stderr.write(`[pi dealer] ${ch.name}: ${e.message}\n`),
      });
      const l = await dealer.listen({ port: o.port, host: o.host });
      process.stderr.write(`[pi dealer] dealing for ${model.plan.arch} (plan ${model.plan.digest}) on ${o.host}:${l.port}\n`);
      const stop = () => { void l.close().then(() => { model.dispose(); process.exit(0); }); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  modelOptions(pi.command('serve').description('serve private inference for a model (clients concurrently)'))
    .requiredOption('--port <n>', 'TCP port (0: any free port, printed)', nonNegInt('--port'))
    .option('--dealer <host:port>', 'the trusted dealer (deepreduce pi dealer, run by a third party; --preprocess dealer only)', parseHostPort('--dealer'))
    .option('--host <h>', 'listen address', '0.0.0.0')
    .option('--preprocess <name>', `offline correlations: ${PREPROCESSORS.join(', ')} (he: client and server only, docs/pi-he.md; dealer: trusted third party)`, 'he')
    .option('--batch <n>', 'ReLUs per garbled batch', posInt('--batch'))
    .option('--json', 'one JSON line per session')
    .action(async (o: ModelOpts & { port: number; dealer?: { host: string; port: number }; host: string; preprocess: string; batch?: number; json?: boolean }) => {
      const dealer = dealerLink(o.preprocess, o.dealer);
      const model = serverModel(o);
      for (const w of model.warnings) process.stderr.write(`[pi] warning: ${w}\n`);
      const l = await servePi(model, {
        port: o.port, host: o.host, preprocess: o.preprocess, batch: o.batch, ...(dealer ? { dealer } : {}),
        onSession: (r, ch) => {
          const t = r.phases;
          out(o.json ? `${JSON.stringify({ client: ch.name, ...t })}\n`
            : `[pi] ${ch.name}: offline ${t.offline.ms.toFixed(0)} ms, online ${t.online.ms.toFixed(0)} ms, sent ${((t.offline.bytesSent + t.online.bytesSent) / 1e6).toFixed(1)} MB\n`);
        },
        onError: (e, ch) => process.stderr.write(`[pi] ${ch.name}: session failed: ${e.message}\n`),
      });
      process.stderr.write(`[pi] serving ${model.plan.arch} (${model.plan.relus.toLocaleString('en-US')} ReLUs, plan ${model.plan.digest}) on ${o.host}:${l.port}\n`);
      const stop = () => { void l.close().then(() => { model.dispose(); process.exit(0); }); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  pi.command('query')
    .description('query a pi server privately with one image; prints the logits and the predicted class')
    .requiredOption('--connect <host:port>', 'server address', parseHostPort('--connect'))
    .option('--dealer <host:port>', 'the trusted dealer the server uses (--preprocess dealer only)', parseHostPort('--dealer'))
    .option('--input <file>', 'image: .json array / raw float32 .bin of the preprocessed CHW values, or a .png')
    .option('--dataset <name>', 'take the image from this dataset\'s test split')
    .option('--index <i>', 'test image index', nonNegInt('--index'), 0)
    .option('--data <dir>', 'dataset folder')
    .option('--preprocess <name>', `offline correlations: ${PREPROCESSORS.join(', ')} (must match the server)`, 'he')
    .option('--json', 'print JSON (logits, per-op costs)')
    .action(async (o: { connect: { host: string; port: number }; dealer?: { host: string; port: number }; input?: string; dataset?: string; index: number; data?: string; preprocess: string; json?: boolean }) => {
      if (!o.input === !o.dataset) throw new Error('give exactly one of --input FILE and --dataset NAME');
      const dealer = dealerLink(o.preprocess, o.dealer);
      let label: number | undefined;
      const image = (plan: PublicPlan) => {
        if (o.input) return fileImage(plan, o.input);
        const d = datasetImage(plan, o.dataset!, o.index, o.data);
        label = d.label;
        return d.x;
      };
      const ch = await connectTcp(o.connect.host, o.connect.port);
      const r = await runClient(ch, image, { preprocess: o.preprocess, ...(dealer ? { dealer } : {}) });
      ch.close();
      const rep = piReport(r), cls = argmax(r.logits), names = r.plan.input.classNames;
      if (o.json) out(`${JSON.stringify({ predicted: cls, ...(label !== undefined ? { label } : {}), ...rep }, null, 2)}\n`);
      else {
        out(formatPiReport(rep));
        out(`logits: ${Array.from(r.logits, (v) => v.toFixed(4)).join(' ')}\npredicted: ${cls}${names?.[cls] ? ` (${names[cls]})` : ''}${label !== undefined ? `, label ${label}` : ''}\n`);
      }
    });

  modelOptions(pi.command('bench').description('client and server on this machine over loopback TCP (a dealer in process for --preprocess dealer): per-op and per-phase time, bytes, rounds'))
    .option('--preprocess <name>', `offline correlations: ${PREPROCESSORS.join(', ')}`, 'he')
    .option('--dataset <name>', 'query with a test image of this dataset (default: a random N(0,1) image)')
    .option('--index <i>', 'test image index', nonNegInt('--index'), 0)
    .option('--data <dir>', 'dataset folder')
    .option('--batch <n>', 'ReLUs per garbled batch', posInt('--batch'))
    .option('--calibrate <file>', 'write { perRelu_s, perMac_s, perLayer_s } measured here (read by the reduce cost model)')
    .option('--json', 'print JSON')
    .action(async (o: ModelOpts & { preprocess: string; dataset?: string; index: number; data?: string; batch?: number; calibrate?: string; json?: boolean }) => {
      const model = serverModel(o);
      try {
        const rep = await benchOnce(model, o);
        if (o.calibrate) writeFileAtomic(o.calibrate, `${JSON.stringify(calibrate([rep]), null, 2)}\n`);
        out(o.json ? `${JSON.stringify(rep, null, 2)}\n` : formatPiReport(rep));
      } finally {
        model.dispose();
      }
    });
  return pi;
}

/** The dealer link for `--preprocess dealer` (required there, refused otherwise). */
function dealerLink(preprocess: string, at: { host: string; port: number } | undefined): DealerLink | null {
  if (preprocess === 'dealer') {
    if (!at) throw new InvalidArgumentError(`--preprocess dealer needs --dealer HOST:PORT (start one with 'deepreduce pi dealer')`);
    return tcpDealerLink(at.host, at.port);
  }
  if (at) throw new InvalidArgumentError(`--dealer is only for --preprocess dealer (this session uses '${preprocess}')`);
  return null;
}

/**
 * One query against an in-process TCP server on 127.0.0.1 (both parties in this process, one thread); for
 * `--preprocess dealer` an in-process dealer (channel pairs to each party; its traffic is reported as preprocessing
 * bytes).
 */
export async function benchOnce(model: ServerModel, o: { preprocess?: string; dataset?: string; index?: number; data?: string; batch?: number; seed?: number }): Promise<PiReport> {
  const errors: Error[] = [];
  const preprocess = o.preprocess ?? 'he';
  const dealer = preprocess === 'dealer' ? new Dealer(model, { onError: (e) => errors.push(e) }) : null;
  const l = await servePi(model, { port: 0, host: '127.0.0.1', batch: o.batch, preprocess, ...(dealer ? { dealer: dealer.link() } : {}), onError: (e) => errors.push(e) });
  try {
    const image = (plan: PublicPlan) => {
      if (o.dataset) return datasetImage(plan, o.dataset, o.index ?? 0, o.data).x;
      let s = (o.seed ?? 0) + 1;
      const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) + 0.5) / 4294967296;
      return Float32Array.from({ length: plan.ops[0]!.size }, () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()));
    };
    const ch = await connectTcp('127.0.0.1', l.port);
    const r = await runClient(ch, image, { preprocess, ...(dealer ? { dealer: dealer.link() } : {}) });
    ch.close();
    if (errors.length) throw errors[0]!;
    return piReport(r);
  } finally {
    await l.close();
  }
}
