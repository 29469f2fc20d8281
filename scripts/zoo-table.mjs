// The README's zoo table, made from zoo/index.json ($DEEPREDUCE_ZOO: another zoo folder): per model its ReLUs,
// accuracy, measured PI latency (with the ratios against the teacher), storage and size, and the command that
// retrains it; then the total size and how the latencies were measured.
// Usage: node scripts/zoo-table.mjs [--write README.md]   (--write: replace the table between the file's
//        <!-- zoo-table --> and <!-- /zoo-table --> markers; default: print it)
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.env.DEEPREDUCE_ZOO || join(dirname(fileURLToPath(import.meta.url)), '..', 'zoo'));
const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log('Usage: node scripts/zoo-table.mjs [--write README.md]');
  process.exit(0);
}
const file = join(root, 'index.json');
const z = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { models: [] };
if (!Array.isArray(z.models)) throw new Error(`${file}: no 'models' list`);

const int = (n) => n.toLocaleString('en-US');
const mb = (b) => `${(b / 1e6).toFixed(2)} MB`;
const x = (a, b) => `${(a / b).toFixed(2)}x`;
const lines = [];
if (!z.models.length) {
  lines.push('_The zoo is empty: `deepreduce zoo add DIR --name NAME [--fp16]` adds a trained model directory._');
} else {
  const t = z.models.find((m) => m.role === 'teacher');
  lines.push(
    '| model | role | ReLUs | fewer ReLUs | accuracy (test images) | PI total s | PI online s | speed-up total / online | storage | size | retrain with (time on the machine named) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |',
  );
  for (const m of z.models) {
    const pi = m.pi;
    const ratio = t?.pi && pi ? `${x(t.pi.totalS, pi.totalS)} / ${x(t.pi.onlineS, pi.onlineS)}` : '-';
    const rep = m.reproduce
      ? `\`${m.reproduce.command}\`${m.reproduce.seconds !== undefined ? ` (${int(Math.round(m.reproduce.seconds / 60))} min, ${m.reproduce.machine ?? ''})` : ''}`
      : '-';
    lines.push(
      `| \`zoo:${m.name}\` | ${m.role} | ${int(m.relus)} | ${t ? x(t.relus, m.relus) : '-'} | ${(100 * m.accuracy.test).toFixed(2)}% (${int(m.accuracy.images)}) | ` +
        `${pi ? pi.totalS.toFixed(2) : '-'}${pi?.noisy ? ' (noisy)' : ''} | ${pi ? pi.onlineS.toFixed(2) : '-'} | ${ratio} | ${m.storage} | ${mb(m.bytes)} | ${rep} |`,
    );
  }
  const total = z.models.reduce((a, m) => a + m.bytes, 0);
  lines.push('', `Total size of the zoo: ${mb(total)} (${z.models.length} models).`);
  const measured = [
    ...new Set(
      z.models
        .filter((m) => m.pi)
        .map((m) => `\`${m.pi.command}\` (${m.pi.protocol}, ${m.pi.images} images, ${m.pi.machine}, ${m.pi.measured})`),
    ),
  ];
  if (measured.length) lines.push('', `PI latency per image (client wall time), measured by: ${measured.join('; ')}.`);
  for (const m of z.models) lines.push('', `- \`zoo:${m.name}\`: ${m.description}`);
}
const text = lines.join('\n');

const w = argv.indexOf('--write');
if (w < 0) {
  console.log(text);
} else {
  const target = argv[w + 1];
  if (!target) throw new Error('--write needs a file');
  const doc = readFileSync(target, 'utf8');
  const a = '<!-- zoo-table -->',
    b = '<!-- /zoo-table -->';
  const i = doc.indexOf(a),
    j = doc.indexOf(b);
  if (i < 0 || j < i) throw new Error(`${target}: no ${a} ... ${b} markers`);
  const out = `${doc.slice(0, i + a.length)}\n${text}\n${doc.slice(j)}`;
  writeFileSync(`${target}.tmp`, out);
  renameSync(`${target}.tmp`, target);
  console.log(`${target}: zoo table written (${z.models.length} models from ${file})`);
}
