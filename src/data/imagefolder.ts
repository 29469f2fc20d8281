import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { makeDataset, sharedBytes, sharedInt32, type Dataset } from './dataset.js';
import { decodeImageFile, isGray, rgbaToChw, type Rgba } from './decode.js';
import { requireDir } from './files.js';

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** Class folders of `dir`, sorted by name. */
export function classFolders(dir: string): string[] {
  requireDir(dir, 'image');
  const classes = readdirSync(dir)
    .filter((f) => !f.startsWith('.') && statSync(join(dir, f)).isDirectory())
    .sort();
  if (!classes.length)
    throw new Error(`${dir}: no class sub-folders (expected one folder of PNG/JPEG images per class)`);
  return classes;
}

/**
 * One sub-folder per class, PNG or JPEG images (alpha ignored). Class indices follow the sorted folder names, or
 * `classNames` when given (so a test split maps like its train split). All images must have the same size; the
 * result has 1 channel when every image is gray (R = G = B), else 3.
 */
export function readImageFolder(dir: string, o: { name?: string; classNames?: string[] } = {}): Dataset {
  const found = classFolders(dir);
  const classNames = o.classNames ?? found;
  if (o.classNames) {
    const extra = found.filter((f) => !classNames.includes(f));
    if (extra.length)
      throw new Error(`${join(dir, extra[0]!)}: class folder not among the ${classNames.length} training classes`);
  }
  const items: { path: string; label: number }[] = [];
  for (const cls of found) {
    const d = join(dir, cls);
    const files = readdirSync(d)
      .filter((f) => IMAGE_EXT.test(f))
      .sort();
    if (!files.length) throw new Error(`${d}: class folder has no PNG/JPEG images`);
    for (const f of files) items.push({ path: join(d, f), label: classNames.indexOf(cls) });
  }
  const decoded: Rgba[] = [];
  let gray = true;
  for (const it of items) {
    const img = decodeImageFile(it.path);
    const ref = decoded[0];
    if (ref && (img.width !== ref.width || img.height !== ref.height))
      throw new Error(
        `${it.path}: image is ${img.width}x${img.height}, expected ${ref.width}x${ref.height} like ${items[0]!.path} (all images must be the same size)`,
      );
    gray &&= isGray(img);
    decoded.push(img);
  }
  const { width: w, height: h } = decoded[0]!;
  const c = gray ? 1 : 3;
  const images = sharedBytes(items.length * c * h * w);
  const labels = sharedInt32(items.length);
  decoded.forEach((img, i) => {
    rgbaToChw(img, c, images, i * c * h * w);
    labels[i] = items[i]!.label;
  });
  return makeDataset({
    name: o.name ?? basename(dir),
    images,
    labels,
    n: items.length,
    c,
    h,
    w,
    numClasses: classNames.length,
    classNames,
    source: dir,
  });
}
