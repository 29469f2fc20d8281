import { Option, type Command } from 'commander';
import { numberArg, posInt } from '../util/args.js';
import { table } from '../util/table.js';
import { countRelus, type ReluCount } from '../models/count.js';
import { presetNames } from '../models/presets.js';
import { ARCH_NAMES, type NetSpec } from '../models/spec.js';
import { specFromOptions, type SpecOptions } from '../models/options.js';

export interface CountOptions extends SpecOptions {
  json?: boolean;
}

const num = (n: number) => n.toLocaleString('en-US');
const dims = (s: number[]) => s.join('x');

/** The human-readable report: per site (partial sites with their kept count), per stage, total, MACs per layer, FLOPs. */
export function formatCount(c: ReluCount, spec: NetSpec, maskSource: string): string {
  const head =
    `${spec.arch} (${spec.family}, ${spec.blockType} blocks ${spec.blocks.join(',')}, alpha ${spec.alpha}, rho ${spec.rho}), ` +
    `input ${spec.inChannels}x${spec.inputSize}x${spec.inputSize}, ${spec.numClasses} classes; ${maskSource}`;
  const sites = table(
    ['site', 'shape', 'elements', 'kept', 'ReLUs'],
    c.sites.map((s) => [
      s.site,
      dims(s.shape),
      num(s.elements),
      s.partial ? 'partial' : s.enabled ? 'yes' : 'no',
      num(s.enabled ? s.relus : 0),
    ]),
    [false, false, true, false, true],
  );
  const stages = table(
    ['stage', 'kept', 'ReLUs'],
    [
      ...c.stages.map((s) => [s.stage, `${s.kept}/${s.sites}`, num(s.relus)]),
      ['total', `${c.sites.filter((s) => s.enabled).length}/${c.sites.length}`, num(c.total)],
    ],
    [false, true, true],
  );
  const layers = table(
    ['layer', 'op', 'in', 'out', 'MACs'],
    [
      ...c.layers.map((l) => [l.name, l.op, dims(l.inShape), dims(l.outShape), num(l.macs)]),
      ['total', '', '', '', num(c.macs)],
    ],
    [false, false, false, false, true],
  );
  const partial = c.sites.filter((s) => s.partial).length;
  return (
    `${head}\n\nReLU sites\n${sites}\n\nReLUs per stage\n${stages}\n\nMACs per layer\n${layers}\n\n` +
    `ReLUs: ${num(c.total)} (all sites: ${num(c.totalAllSites)}${partial ? `; ${partial} partial site${partial > 1 ? 's' : ''}` : ''})  MACs: ${num(c.macs)}  FLOPs: ${num(c.flops)}\n` +
    (c.maxPoolComparisons
      ? `Max-pool comparisons: ${num(c.maxPoolComparisons)} (non-linear ops beside the ReLUs, each one ReLU under PI; ${c.maxPoolLevels} level${c.maxPoolLevels > 1 ? 's' : ''})\n`
      : '')
  );
}

const posNum = (name: string) => numberArg(name, (n) => n > 0, 'a positive number');
const intList = (v: string) => v.split(',').map((s) => posInt('--blocks entry')(s.trim()));

/** `deepreduce count`: ReLU and MAC accounting by shape inference, as a table or JSON. */
export function registerCountCommand(program: Command, io: { out?: (s: string) => void } = {}): Command {
  const out = io.out ?? ((s: string) => void process.stdout.write(s));
  return program
    .command('count')
    .description(
      'count ReLUs (per site, per stage, total) and MACs per layer of a network, a preset or a masked network',
    )
    .option('--arch <name>', `architecture: ${ARCH_NAMES.join(', ')}`)
    .option('--input <n>', 'input height = width', posInt('--input'))
    .addOption(new Option('--preset <name>', `DeepReDuce configuration: ${presetNames().join(', ')}`).conflicts('mask'))
    .option('--mask <file>', 'JSON mask { "arch", "kept" | "removed", "partial"? } (docs/models.md)')
    .option('--alpha <a>', 'width multiplier', posNum('--alpha'))
    .option('--rho <r>', 'stem stride = 1/rho', posNum('--rho'))
    .option('--classes <n>', 'number of classes', posInt('--classes'))
    .option('--blocks <list>', 'blocks per stage, e.g. 2,1,1,1', intList)
    .option('--json', 'print JSON instead of tables')
    .action((o: CountOptions) => {
      const { spec, maskSource } = specFromOptions(o);
      const c = countRelus(spec);
      if (o.json) {
        const { mask, ...rest } = spec;
        const partial = mask?.partial
          ? Object.fromEntries(Object.entries(mask.partial).map(([site, p]) => [site, p.elements.length]))
          : null;
        out(`${JSON.stringify({ spec: rest, mask: maskSource, kept: mask?.kept ?? null, partial, ...c }, null, 2)}\n`);
      } else out(formatCount(c, spec, maskSource));
    });
}
