// deepreduce pi dealer | serve | query | bench: two-party private inference (Delphi-style) with a trusted dealer as a
// third party for the linear layers' preprocessing (see docs/pi.md).
import { InvalidArgumentError, type Command } from 'commander';
import { writeFileAtomic } from '../util/fs.js';
import { countSpec } from './count.js';
import { connectTcp } from '../pi/transport/tcp.js';
import { runClient, servePi } from '../pi/protocol.js';
import { Dealer, tcpDealerLink } from '../pi/linear/dealer/dealer.js';
import {
  calibrate, datasetImage, fileImage, formatComparison, formatPiReport, piReport, serverModelFromDir, serverModelRandom, type PiReport,
} from '../pi/bench.js';
import type { PublicPlan, ServerModel } from '../pi/plan.js';
import { PREPROCESSORS } from '../pi/linear/index.js';
import { RELU_PROTOCOLS, makeReluProtocol } from '../pi/relu/registry.js';
import { describeLink, parseLink, parseLinks, shapeChannel, type LinkProfile } from '../pi/transport/shaping.js';

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

const linkOption = (v: string): LinkProfile | null => {
  try {
    return parseLink(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};
const reluOption = (v: string): string => {
  try {
    return makeReluProtocol(v).name;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};
const listOf = <T>(one: (v: string) => T) => (v: string): T[] => v.split(',').map((x) => one(x.trim()));
const linkList = (v: string): (LinkProfile | null)[] => {
  try {
    return parseLinks(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

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
    .requiredOption('--dealer <host:port>', 'the trusted dealer (deepreduce pi dealer, run by a third party)', parseHostPort('--dealer'))
    .option('--host <h>', 'listen address', '0.0.0.0')
    .option('--preprocess <name>', `offline correlations: ${PREPROCESSORS.join(', ')} (dealer: trusted third party, see docs/pi.md)`, 'dealer')
    .option('--batch <n>', 'ReLUs per offline batch (garbled tables / OT extension)', posInt('--batch'))
    .option('--relu <name>', `accept only this ReLU protocol (${RELU_PROTOCOLS.join(', ')}; default: what the client asks)`, reluOption)
    .option('--link <profile>', 'shape the sends to clients as over lan, wan, none or BANDWIDTH,RTT (e.g. 3gbit,0.3ms)', linkOption, null)
    .option('--json', 'one JSON line per session')
    .action(async (o: ModelOpts & { port: number; dealer: { host: string; port: number }; host: string; preprocess: string; batch?: number; relu?: string; link: LinkProfile | null; json?: boolean }) => {
      const model = serverModel(o);
      for (const w of model.warnings) process.stderr.write(`[pi] warning: ${w}\n`);
      const l = await servePi(model, {
        port: o.port, host: o.host, preprocess: o.preprocess, batch: o.batch, dealer: tcpDealerLink(o.dealer.host, o.dealer.port), relu: o.relu, link: o.link,
        onSession: (r, ch) => {
          const t = r.phases;
          out(o.json ? `${JSON.stringify({ client: ch.name, ...t })}\n`
            : `[pi] ${ch.name}: offline ${t.offline.ms.toFixed(0)} ms, online ${t.online.ms.toFixed(0)} ms, sent ${((t.offline.bytesSent + t.online.bytesSent) / 1e6).toFixed(1)} MB\n`);
        },
        onError: (e, ch) => process.stderr.write(`[pi] ${ch.name}: session failed: ${e.message}\n`),
      });
      process.stderr.write(`[pi] serving ${model.plan.arch} (${model.plan.relus.toLocaleString('en-US')} ReLUs, plan ${model.plan.digest}) on ${o.host}:${l.port}; ReLU protocol ${o.relu ?? RELU_PROTOCOLS.join(' or ')}; link: ${describeLink(o.link)}\n`);
      const stop = () => { void l.close().then(() => { model.dispose(); process.exit(0); }); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  pi.command('query')
    .description('query a pi server privately with one image; prints the logits and the predicted class')
    .requiredOption('--connect <host:port>', 'server address', parseHostPort('--connect'))
    .requiredOption('--dealer <host:port>', 'the trusted dealer the server uses', parseHostPort('--dealer'))
    .option('--input <file>', 'image: .json array / raw float32 .bin of the preprocessed CHW values, or a .png')
    .option('--dataset <name>', 'take the image from this dataset\'s test split')
    .option('--index <i>', 'test image index', nonNegInt('--index'), 0)
    .option('--data <dir>', 'dataset folder')
    .option('--preprocess <name>', 'offline correlations (must match the server)', 'dealer')
    .option('--relu <name>', `ReLU protocol: ${RELU_PROTOCOLS.join(', ')}`, reluOption, 'gc')
    .option('--link <profile>', 'shape the sends to the server as over lan, wan, none or BANDWIDTH,RTT', linkOption, null)
    .option('--json', 'print JSON (logits, per-op costs)')
    .action(async (o: { connect: { host: string; port: number }; dealer: { host: string; port: number }; input?: string; dataset?: string; index: number; data?: string; preprocess: string; relu: string; link: LinkProfile | null; json?: boolean }) => {
      if (!o.input === !o.dataset) throw new Error('give exactly one of --input FILE and --dataset NAME');
      let label: number | undefined;
      const image = (plan: PublicPlan) => {
        if (o.input) return fileImage(plan, o.input);
        const d = datasetImage(plan, o.dataset!, o.index, o.data);
        label = d.label;
        return d.x;
      };
      const ch = shapeChannel(await connectTcp(o.connect.host, o.connect.port), o.link);
      const r = await runClient(ch, image, { preprocess: o.preprocess, relu: o.relu, dealer: tcpDealerLink(o.dealer.host, o.dealer.port) });
      ch.close();
      const rep = piReport(r, { relu: o.relu, link: o.link }), cls = argmax(r.logits), names = r.plan.input.classNames;
      if (o.json) out(`${JSON.stringify({ predicted: cls, ...(label !== undefined ? { label } : {}), ...rep }, null, 2)}\n`);
      else {
        out(formatPiReport(rep));
        out(`logits: ${Array.from(r.logits, (v) => v.toFixed(4)).join(' ')}\npredicted: ${cls}${names?.[cls] ? ` (${names[cls]})` : ''}${label !== undefined ? `, label ${label}` : ''}\n`);
      }
    });

  modelOptions(pi.command('bench').description('client and server on this machine over loopback TCP, the dealer in process: per-op and per-phase time, bytes, rounds, per ReLU protocol and link profile'))
    .option('--dataset <name>', 'query with a test image of this dataset (default: a random N(0,1) image)')
    .option('--index <i>', 'test image index', nonNegInt('--index'), 0)
    .option('--data <dir>', 'dataset folder')
    .option('--batch <n>', 'ReLUs per offline batch (garbled tables / OT extension)', posInt('--batch'))
    .option('--relu <list>', `ReLU protocols to run, side by side: ${RELU_PROTOCOLS.join(',')}`, listOf(reluOption), ['gc'])
    .option('--link <list>', 'link profiles to run under (both directions shaped): lan, wan, none, BANDWIDTH,RTT', linkList, [null])
    .option('--calibrate <file>', 'write the cost model measured here (per-MAC, per-layer, per-ReLU costs of each protocol; needs --link none) for deepreduce reduce')
    .option('--json', 'print JSON (one report per protocol and link)')
    .action(async (o: ModelOpts & { dataset?: string; index: number; data?: string; batch?: number; relu: string[]; link: (LinkProfile | null)[]; calibrate?: string; json?: boolean }) => {
      const model = serverModel(o);
      try {
        const reps: PiReport[] = [];
        for (const link of o.link) {
          for (const relu of o.relu) {
            const rep = await benchOnce(model, { ...o, relu, link });
            reps.push(rep);
            if (!o.json) out(formatPiReport(rep));
          }
        }
        if (o.calibrate) writeFileAtomic(o.calibrate, `${JSON.stringify(calibrate(reps), null, 2)}\n`);
        if (o.json) out(`${JSON.stringify(reps.length === 1 ? reps[0] : reps, null, 2)}\n`);
        else if (reps.length > 1) out(formatComparison(reps));
      } finally {
        model.dispose();
      }
    });
  return pi;
}

/**
 * One query against an in-process TCP server on 127.0.0.1 (both parties in this process, one thread), with an
 * in-process dealer (channel pairs to each party; its traffic is reported as preprocessing bytes).
 */
export async function benchOnce(model: ServerModel, o: { dataset?: string; index?: number; data?: string; batch?: number; seed?: number; relu?: string; link?: LinkProfile | null }): Promise<PiReport> {
  const errors: Error[] = [];
  const dealer = new Dealer(model, { onError: (e) => errors.push(e) });
  const relu = o.relu ?? 'gc', link = o.link ?? null;
  const l = await servePi(model, { port: 0, host: '127.0.0.1', batch: o.batch, dealer: dealer.link(), relu, link, onError: (e) => errors.push(e) });
  try {
    const image = (plan: PublicPlan) => {
      if (o.dataset) return datasetImage(plan, o.dataset, o.index ?? 0, o.data).x;
      let s = (o.seed ?? 0) + 1;
      const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) + 0.5) / 4294967296;
      return Float32Array.from({ length: plan.ops[0]!.size }, () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()));
    };
    const ch = shapeChannel(await connectTcp('127.0.0.1', l.port), link);
    const r = await runClient(ch, image, { dealer: dealer.link(), relu });
    ch.close();
    if (errors.length) throw errors[0]!;
    return piReport(r, { relu, link });
  } finally {
    await l.close();
  }
}
