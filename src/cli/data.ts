import type { Command } from 'commander';
import type { Dataset } from '../data/dataset.js';
import { fetchDataset, FETCHABLE, isFetchable } from '../data/fetch.js';
import { checkDatasetName, DATASET_NAMES, datasetDir, loadDataset, type DatasetName } from '../data/registry.js';

export interface DataInfo {
  name: DatasetName;
  dir: string;
  shape: [number, number, number];
  numClasses: number;
  classNames?: string[];
  train: { n: number; source: string; mean: number[]; std: number[] };
  test: { n: number; source: string; mean: number[]; std: number[] } | null;
}

/** Sizes, classes, image shape and per-channel statistics of both splits. */
export function dataInfo(name: DatasetName, o: { dir?: string; labels?: 'fine' | 'coarse' } = {}): DataInfo {
  const train = loadDataset(name, 'train', o);
  let test: Dataset | null = null;
  // an image folder without train/ and test/ has only a train split
  if (!(name === 'folder' && o.dir && train.source === o.dir))
    test = loadDataset(name, 'test', { ...o, classNames: train.classNames });
  const split = (d: Dataset) => ({ n: d.n, source: d.source, mean: d.mean, std: d.std });
  return {
    name,
    dir: datasetDir(name, o.dir),
    shape: [train.c, train.h, train.w],
    numClasses: train.numClasses,
    classNames: train.classNames,
    train: split(train),
    test: test && split(test),
  };
}

function formatInfo(i: DataInfo): string {
  const f = (v: number[]) => v.map((x) => x.toFixed(4)).join(', ');
  const names = i.classNames ?? [];
  const shown =
    names.length > 20 ? `${names.slice(0, 20).join(', ')}, ... (${names.length - 20} more)` : names.join(', ');
  return [
    `${i.name}  (${i.dir})`,
    `  train: ${i.train.n} images${i.test ? `, test: ${i.test.n} images` : ' (no test split)'}`,
    `  image: ${i.shape.join('x')} (CxHxW, uint8)`,
    `  classes: ${i.numClasses}${shown ? `: ${shown}` : ''}`,
    `  mean (train, pixel/255): ${f(i.train.mean)}`,
    `  std  (train, pixel/255): ${f(i.train.std)}`,
    ...(i.test ? [`  mean/std (test): ${f(i.test.mean)} / ${f(i.test.std)}`] : []),
  ].join('\n');
}

/** Adds `data fetch` and `data info` to the CLI. */
export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('datasets: download and inspect');

  data
    .command('fetch')
    .description(`download, verify (md5) and extract a dataset: ${FETCHABLE.join(' | ')}`)
    .argument('<dataset>', FETCHABLE.join(' | '))
    .option(
      '--dir <DIR>',
      'dataset folder (default: $DEEPREDUCE_DATA or ~/.cache/deepreduce/datasets, then /<dataset>)',
    )
    .action(async (name: string, opts: { dir?: string }, cmd: Command) => {
      if (!isFetchable(name)) cmd.error(`error: cannot fetch '${name}' (fetchable: ${FETCHABLE.join(', ')})`);
      try {
        const r = await fetchDataset(name as (typeof FETCHABLE)[number], {
          dir: opts.dir,
          log: (l) => process.stderr.write(`${l}\n`),
        });
        process.stdout.write(`${name}: ready in ${r.dir}\n`);
      } catch (e) {
        cmd.error(`error: ${(e as Error).message}`);
      }
    });

  data
    .command('info')
    .description('sizes, classes, image shape and per-channel mean/std of a dataset')
    .argument('<dataset>', DATASET_NAMES.join(' | '))
    .option(
      '--data <DIR>',
      'dataset folder (default: /usr/share/datasets/fashion-mnist for fashion-mnist, else the fetch folder)',
    )
    .option('--labels <kind>', 'CIFAR-100 labels: fine | coarse', 'fine')
    .option('--json', 'print JSON')
    .action((name: string, opts: { data?: string; labels: string; json?: boolean }, cmd: Command) => {
      try {
        if (opts.labels !== 'fine' && opts.labels !== 'coarse')
          throw new Error(`--labels must be fine or coarse, got '${opts.labels}'`);
        const info = dataInfo(checkDatasetName(name), { dir: opts.data, labels: opts.labels });
        process.stdout.write(opts.json ? `${JSON.stringify(info, null, 2)}\n` : `${formatInfo(info)}\n`);
      } catch (e) {
        cmd.error(`error: ${(e as Error).message}`);
      }
    });
}
