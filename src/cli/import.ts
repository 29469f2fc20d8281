import { Option, type Command } from 'commander';
import { importModel, type ImportFormat } from '../export/import.js';

interface ImportCliOptions {
  out: string;
  format?: ImportFormat;
  arch?: string;
  classes?: string;
  input?: string;
  channels?: string;
  mean?: string;
  std?: string;
  dataset?: string;
  classNames?: string;
}

const num = (n: number) => n.toLocaleString('en-US');
const int = (v: string | undefined, flag: string) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a positive integer, got '${v}'`);
  return n;
};
const floats = (v: string | undefined, flag: string) => {
  if (v === undefined) return undefined;
  const a = v.split(',').map(Number);
  if (!a.length || a.some((x) => !Number.isFinite(x)))
    throw new Error(`${flag} must be comma-separated numbers, got '${v}'`);
  return a;
};

/** `deepreduce import`: PyTorch weights (safetensors, .pt/.pth) or a torch.onnx.export ResNet to a model directory. */
export function registerImportCommand(program: Command, io: { out?: (s: string) => void } = {}): Command {
  const print = io.out ?? ((s: string) => void process.stdout.write(s));
  return program
    .command('import')
    .description(
      'make a model directory from a torchvision-named ResNet: state dict (.safetensors, .pt/.pth) or ONNX (torch.onnx.export)',
    )
    .argument('<file>', 'model.safetensors, model.pth / .pt (torch.save of a state dict) or model.onnx')
    .requiredOption('--out <dir>', 'the model directory to create (must not exist or be empty)')
    .addOption(
      new Option('--format <format>', 'input format (default: from the extension)').choices([
        'safetensors',
        'pytorch',
        'onnx',
      ]),
    )
    .option('--arch <arch>', 'architecture name (default: inferred from the keys and shapes)')
    .option('--classes <n>', 'number of classes (checked against fc)')
    .option('--input <size>', 'input size, square (default: the ONNX input, else the arch default)')
    .option('--channels <n>', 'input channels (checked against conv1)')
    .option('--mean <m>', 'per-channel mean, pixel/255 units, e.g. 0.485,0.456,0.406 (default 0)')
    .option('--std <s>', 'per-channel std, e.g. 0.229,0.224,0.225 (default 1)')
    .option('--dataset <name>', "dataset name recorded in model.json (eval's default dataset)")
    .option('--class-names <names>', 'comma-separated class names')
    .action((file: string, o: ImportCliOptions) => {
      const r = importModel(file, o.out, {
        format: o.format,
        arch: o.arch,
        classes: int(o.classes, '--classes'),
        input: int(o.input, '--input'),
        channels: int(o.channels, '--channels'),
        mean: floats(o.mean, '--mean'),
        std: floats(o.std, '--std'),
        dataset: o.dataset,
        classNames: o.classNames?.split(','),
      });
      const s = r.spec;
      const widths = s.alpha === 1 ? `widths ${s.widths}` : `alpha ${s.alpha}`;
      print(
        `wrote ${r.out}: ${s.arch} (${s.family}, ${s.blockType} blocks [${s.blocks}], ${widths}), ${s.numClasses} classes, ` +
          `${s.inChannels}x${s.inputSize}x${s.inputSize} input, ${num(r.parameters)} parameters, from ${r.format}\n`,
      );
      for (const n of r.notes) print(`note: ${n}\n`);
    });
}
