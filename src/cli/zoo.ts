// `deepreduce zoo`: list the zoo, add a trained model directory to it (fp16 storage only where test accuracy holds),
// measure a zoo model under private inference; and the one place the CLI turns `zoo:NAME` options into directories.
import { type Command, Option } from 'commander';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, tidy } from '../engine/index.js';
import { buildNetwork, type Network } from '../models/index.js';
import { countRelus } from '../models/count.js';
import { type ModelInfo, openTestData, readModelInfo, specOf } from '../train/modeldir.js';
import { evaluate } from '../train/trainer.js';
import { linkName, measurePi } from '../reduce/measurepi.js';
import { numberArg, posInt } from '../util/args.js';
import { writeFileAtomic } from '../util/fs.js';
import { table } from '../util/table.js';
import { safetensorsToFp16, safetensorsToFp32 } from '../zoo/fp16.js';
import {
  checkZooName,
  fileSizes,
  fmtBytes,
  isZooRef,
  readZooIndex,
  resolveModelDir,
  type ZooEntry,
  type ZooIndex,
  zooEntry,
  zooRoot,
  zooTableRows,
} from '../zoo/zoo.js';
import { addPiProtocolOptions, piRunOptions, type PiFlags } from './pi-measure.js';

/** Options that name a model directory, in every command (eval, export, reduce, train, pi ...). */
const MODEL_OPTIONS = ['model', 'teacher', 'init'];

/** Replaces `zoo:NAME` in a command's model-directory options by the materialised directory (main.ts's preAction hook). */
export function resolveZooOptions(cmd: Command): void {
  for (const k of MODEL_OPTIONS) {
    const v = cmd.getOptionValue(k);
    if (typeof v === 'string' && isZooRef(v)) cmd.setOptionValue(k, resolveModelDir(v));
  }
}

const writeIndex = (root: string, z: ZooIndex) =>
  writeFileAtomic(join(root, 'index.json'), `${JSON.stringify(z, null, 2)}\n`);

/** Top-1 accuracy of `net` on the test set of the model's dataset. */
async function testAccuracy(
  net: Network,
  info: ModelInfo,
  o: { data?: string; limitTest?: number },
): Promise<{ acc: number; n: number }> {
  const data = openTestData(info, o);
  try {
    const ev = await evaluate(net, data);
    return { acc: ev.acc, n: data.testSize };
  } finally {
    await data.close();
  }
}

interface AddOptions {
  name: string;
  fp16?: boolean;
  tolerance: number;
  description?: string;
  role?: ZooEntry['role'];
  reproduce?: string;
  reproduceSeconds?: number;
  data?: string;
  limitTest?: number;
  force?: boolean;
}

/**
 * Adds model directory `dir` to the zoo at `root` as `o.name`. With fp16 the rounded weights are evaluated on the
 * test set and refused when their accuracy differs from fp32's by more than `o.tolerance` points; nothing is written
 * then.
 */
export async function zooAdd(
  dir: string,
  o: AddOptions,
  root = zooRoot(),
  log: (s: string) => void = () => {},
): Promise<ZooEntry> {
  checkZooName(o.name);
  const info = readModelInfo(dir);
  const target = join(root, o.name);
  const z = readZooIndex(root);
  if (!o.force && (existsSync(target) || z.models.some((m) => m.name === o.name)))
    throw new Error(`zoo: '${o.name}' exists in ${root} (give --force to replace it)`);
  const wfile = join(dir, 'model.safetensors');
  const raw = readFileSync(wfile);
  const spec = specOf(info, join(dir, 'model.json'));
  const net = buildNetwork(spec);
  let stored: Uint8Array = raw;
  let acc32: { acc: number; n: number };
  let acc: { acc: number; n: number };
  try {
    const load = (bytes: Uint8Array) =>
      tidy(() => net.loadStateDict(decodeSafetensors(bytes, wfile).tensors, { source: wfile }));
    load(raw);
    net.eval();
    acc32 = await testAccuracy(net, info, o);
    log(`fp32: ${(100 * acc32.acc).toFixed(2)}% on ${acc32.n} test images`);
    acc = acc32;
    if (o.fp16) {
      stored = safetensorsToFp16(raw, wfile);
      load(safetensorsToFp32(stored, wfile));
      acc = await testAccuracy(net, info, o);
      const d = 100 * Math.abs(acc.acc - acc32.acc);
      log(`fp16: ${(100 * acc.acc).toFixed(2)}% (${d.toFixed(2)} points from fp32, tolerance ${o.tolerance})`);
      if (d > o.tolerance)
        throw new Error(
          `zoo add --fp16: accuracy ${(100 * acc.acc).toFixed(2)}% with fp16 weights against ${(100 * acc32.acc).toFixed(2)}% ` +
            `in fp32 differs by ${d.toFixed(2)} points, more than --tolerance ${o.tolerance}; nothing added (store it in fp32: omit --fp16)`,
        );
    }
  } finally {
    net.dispose();
  }
  const tmp = join(root, `.${o.name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileSync(join(tmp, 'model.safetensors'), stored);
    writeFileSync(join(tmp, 'model.json'), readFileSync(join(dir, 'model.json')));
    if (existsSync(join(dir, 'mask.json'))) writeFileSync(join(tmp, 'mask.json'), readFileSync(join(dir, 'mask.json')));
    rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const { mask, ...brief } = info.spec;
  const relus = countRelus(spec).total;
  const result = existsSync(join(dir, 'result.json'))
    ? (JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as { seconds?: number })
    : {};
  const seconds = o.reproduceSeconds ?? result.seconds;
  const entry: ZooEntry = {
    name: o.name,
    description: o.description ?? `${info.spec.arch}, ${relus.toLocaleString('en-US')} ReLUs`,
    role: o.role ?? (mask ? 'front' : 'teacher'),
    dir: o.name,
    dataset: info.input.dataset,
    arch: info.spec.arch,
    spec: { ...brief, ...(mask ? { keptSites: mask.kept?.length, removedSites: mask.removed?.length } : {}) },
    accuracy: { test: acc.acc, images: acc.n, ...(o.fp16 ? { fp32: acc32.acc } : {}) },
    relus,
    storage: o.fp16 ? 'fp16' : 'fp32',
    ...fileSizes(target),
    ...(o.reproduce
      ? {
          reproduce: {
            command: o.reproduce,
            ...(seconds !== undefined ? { seconds: Math.round(seconds) } : {}),
            machine: machine(),
          },
        }
      : {}),
    added: new Date().toISOString().slice(0, 10),
  };
  const models = z.models.filter((m) => m.name !== o.name);
  models.push(entry);
  const rank = { teacher: 0, front: 1, other: 2 };
  models.sort((a, b) => rank[a.role] - rank[b.role] || b.relus - a.relus);
  writeIndex(root, { ...z, models });
  return entry;
}

const machine = () => `${availableParallelism()} x ${cpus()[0]?.model?.trim() ?? 'unknown CPU'}`;

const num = (name: string) => numberArg(name, (n) => n >= 0, 'a number >= 0');

export function registerZooCommands(program: Command): void {
  const zoo = program
    .command('zoo')
    .description(
      `trained models kept with the package (zoo/index.json; $DEEPREDUCE_ZOO overrides the folder); give --model zoo:NAME wherever a model directory is accepted`,
    );

  zoo
    .command('list')
    .description('the zoo: accuracy, ReLUs, measured PI latency, storage and size per model')
    .option('--json', 'the index as JSON')
    .action((o: { json?: boolean }) => {
      const root = zooRoot();
      const z = readZooIndex(root);
      if (o.json) {
        console.log(JSON.stringify({ root, ...z }, null, 2));
        return;
      }
      if (!z.models.length) {
        console.log(`the zoo (${root}) is empty: deepreduce zoo add DIR --name NAME adds a trained model directory`);
        return;
      }
      const t = zooTableRows(z);
      console.log(`zoo ${root}: ${z.models.length} models (use as --model zoo:NAME)`);
      console.log(table(t.head, t.rows, t.right));
      const total = z.models.reduce((a, m) => a + m.bytes, 0);
      console.log(`total size ${fmtBytes(total)}`);
      for (const m of z.models) {
        console.log(`${m.name}: ${m.description}`);
        if (m.pi)
          console.log(
            `  PI: ${m.pi.images} images, ${m.pi.protocol}${m.pi.noisy ? ' (noisy)' : ''}, measured by: ${m.pi.command}`,
          );
        if (m.reproduce)
          console.log(
            `  reproduce: ${m.reproduce.command}${m.reproduce.seconds !== undefined ? ` (${m.reproduce.seconds} s on ${m.reproduce.machine})` : ''}`,
          );
      }
    });

  zoo
    .command('add')
    .description(
      'copy a trained model directory into the zoo (with --fp16: half-size weights, refused unless test accuracy holds)',
    )
    .argument('<dir>', 'model directory (model.json + model.safetensors)')
    .requiredOption('--name <name>', 'zoo name (then --model zoo:NAME)')
    .option('--fp16', 'store the weights as fp16 (loading converts them back to fp32)')
    .option('--tolerance <points>', 'largest accuracy change fp16 may cause, in points', num('--tolerance'), 0.1)
    .option('--description <text>', 'one line on what the model is')
    .addOption(
      new Option('--role <role>', 'teacher or front (default: by its mask)').choices(['teacher', 'front', 'other']),
    )
    .option('--reproduce <command>', 'the one command that retrains it')
    .option(
      '--reproduce-seconds <s>',
      "that command's time on this machine (default: the run's result.json)",
      num('--reproduce-seconds'),
    )
    .option('--data <dir>', 'dataset folder')
    .option('--limit-test <n>', 'evaluate on the first N test images only (default: all)', posInt('--limit-test'))
    .option('--force', 'replace an entry of the same name')
    .action(async (dir: string, o: AddOptions) => {
      const root = zooRoot();
      const e = await zooAdd(dir, o, root, (s) => console.log(s));
      console.log(
        `added zoo:${e.name} to ${root}: ${e.arch}, ${e.relus.toLocaleString('en-US')} ReLUs, ${(100 * e.accuracy.test).toFixed(2)}% ` +
          `on ${e.accuracy.images.toLocaleString('en-US')} test images, ${e.storage}, ${fmtBytes(e.bytes)}`,
      );
    });

  addPiProtocolOptions(
    zoo
      .command('measure')
      .description(
        "classify test images under two-party private inference (server and one client per image, each its own process) and record the latency in the zoo's index",
      )
      .argument('<name>', 'zoo name')
      .option('--images <n>', 'test images', posInt('--images'), 20)
      .option('--noisy', 'mark the seconds as disturbed (other work ran on this machine)'),
  ).action(async (name: string, o: PiFlags & { images: number; noisy?: boolean }) => {
    const root = zooRoot();
    const e = zooEntry(name, root);
    const options = piRunOptions(o);
    const m = await measurePi(resolveModelDir(`zoo:${name}`, { root }), o.images, options, {
      dataset: e.dataset,
      label: name,
      log: (s) => console.log(s),
    });
    const flags = process.argv.slice(process.argv.indexOf('measure') + 1).join(' ');
    const pi = {
      images: m.n,
      totalS: m.offlineS.mean + m.onlineS.mean,
      onlineS: m.onlineS.mean,
      offlineS: m.offlineS.mean,
      agree: m.agree,
      protocol: `${options.preprocess} preprocessing, ${options.relu ?? 'default'} ReLUs, ${linkName(options)}, ${options.tls === 'insecure' ? 'plain TCP' : 'TLS'}`,
      command: `deepreduce zoo measure ${flags}`.trim(),
      machine: machine(),
      measured: new Date().toISOString().slice(0, 10),
      ...(o.noisy ? { noisy: true } : {}),
    };
    const z = readZooIndex(root);
    writeIndex(root, { ...z, models: z.models.map((x) => (x.name === name ? { ...x, pi } : x)) });
    console.log(
      `zoo:${name}: ${pi.totalS.toFixed(2)} s per image (online ${pi.onlineS.toFixed(2)} s), secure = plaintext on ${m.agree}/${m.n}; recorded in ${join(root, 'index.json')}`,
    );
  });
}
