// --help for the benchmarks: imported first, so that it answers before the bench's other imports load (libtorch, the
// dataset) and before any work. It prints the bench's header comment, which holds its "Usage:" line, and exits 0.
import { readFileSync } from 'node:fs';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  const header: string[] = [];
  for (const line of readFileSync(process.argv[1]!, 'utf8').split('\n')) {
    if (line.startsWith('#!')) continue;
    if (!line.startsWith('//')) break;
    header.push(line.replace(/^\/\/ ?/, ''));
  }
  // The Usage line first, then the whole header (its continuation lines and the description).
  const u = header.find((l) => l.includes('Usage:'));
  process.stdout.write(`${[...(u ? [u.slice(u.indexOf('Usage:')), ''] : []), ...header].join('\n')}\n`);
  process.exit(0);
}
