#!/usr/bin/env node
// The entry of one PI party's process: `node dist/src/pi/node/main.js pi serve|query|dealer ...`, the same `pi`
// commands as the CLI's (cli.ts), for what starts parties as child processes (reduce/measurepi.ts) without going
// through the whole CLI.
import { Command } from 'commander';
import { applyV8Settings } from '../../util/v8.js';
import { packageVersion } from '../../util/version.js';
import { registerPiCommands } from './cli.js';

applyV8Settings();

const program = new Command().name('deepreduce').version(packageVersion()).showHelpAfterError();
registerPiCommands(program);
program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`deepreduce: ${e.message}\n`);
  process.exit(1);
});
