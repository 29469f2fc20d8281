import { Option, type Command } from 'commander';
import { ONNX_OPSET, exportModelDirToOnnx } from '../export/onnx.js';

export interface ExportOptions {
  model: string;
  format: 'onnx';
  out: string;
  foldBn?: boolean;
}

const num = (n: number) => n.toLocaleString('en-US');

/** `deepreduce export`: a model directory to ONNX (opset 17, dynamic batch), its ReLU mask applied. */
export function registerExportCommand(program: Command, io: { out?: (s: string) => void } = {}): Command {
  const print = io.out ?? ((s: string) => void process.stdout.write(s));
  return program
    .command('export')
    .description(
      'export a model directory to ONNX: removed ReLU sites emit no Relu node, BN kept or folded, batch dimension N',
    )
    .requiredOption('--model <dir>', 'model directory (model.json + model.safetensors), or zoo:NAME')
    .addOption(new Option('--format <format>', 'output format').choices(['onnx']).default('onnx'))
    .requiredOption('--out <file>', 'output file, e.g. model.onnx')
    .option('--fold-bn', 'fold batch norms into the preceding convolutions')
    .action((o: ExportOptions) => {
      const e = exportModelDirToOnnx(o.model, o.out, { foldBn: o.foldBn ?? false });
      const s = e.summary;
      const bn = o.foldBn
        ? `${s.foldedBatchNorms} BN folded, ${s.batchNorms} kept`
        : `${s.batchNorms} BatchNormalization`;
      print(
        `wrote ${o.out}: ${e.arch}, ONNX opset ${ONNX_OPSET}, ${s.nodes} nodes, ${s.relus.length} Relu (${num(s.reluElements)} ReLUs/image), ` +
          `${bn}, ${num(s.parameters)} parameters, ${num(e.bytes.length)} bytes\n`,
      );
    });
}
