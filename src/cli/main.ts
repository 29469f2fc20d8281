#!/usr/bin/env node
import { Command } from 'commander';
import { packageVersion } from '../util/version.js';
import { registerCountCommand } from './count.js';
import { registerDataCommands } from './data.js';
import { registerTrainCommands } from './train.js';
import { registerDemoCommand } from './demo.js';
import { registerReduceCommands } from './reduce.js';
import { registerExportCommand } from './export.js';
import { registerImportCommand } from './import.js';
import { registerPiCommands } from '../pi/node/cli.js';
import { registerQueueCommands } from './queue.js';
import { registerZooCommands, resolveZooOptions } from './zoo.js';
import { applyV8Settings } from '../util/v8.js';

applyV8Settings();

const program = new Command()
  .name('deepreduce')
  .description('ReLU reduction (DeepReDuce) and measured two-party private inference for CNNs')
  .version(packageVersion())
  .showHelpAfterError()
  // The one place the CLI resolves --model/--teacher/--init zoo:NAME, for every command (pi's included).
  .hook('preAction', (_root, action) => resolveZooOptions(action));

registerDemoCommand(program);
registerCountCommand(program);
registerDataCommands(program);
registerTrainCommands(program);
registerReduceCommands(program);
registerExportCommand(program);
registerImportCommand(program);
registerPiCommands(program);
registerQueueCommands(program);
registerZooCommands(program);

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`deepreduce: ${e.message}\n`);
  process.exit(1);
});
