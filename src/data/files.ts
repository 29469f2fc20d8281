import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** Reads a whole file; a missing or unreadable one gets an error naming it and what it was for. */
export function readBytes(path: string, what = 'file'): Uint8Array {
  if (!existsSync(path)) throw new Error(`${path}: ${what} not found`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read ${what}: ${(e as Error).message}`);
  }
}

/** Reads a file, gunzipping it when its name ends in .gz. Node's zlib: native and ~2.5x faster than fflate on 26 MB. */
export function readMaybeGz(path: string, what = 'file'): Uint8Array {
  const raw = readBytes(path, what);
  if (!path.endsWith('.gz')) return raw;
  try {
    return gunzipSync(raw);
  } catch (e) {
    throw new Error(`${path}: corrupt or truncated gzip data (${(e as Error).message})`);
  }
}

export function isDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

export function requireDir(path: string, what: string): void {
  if (!isDir(path)) throw new Error(`${path}: ${what} folder not found`);
}

/** Non-empty trimmed lines of a text file. */
export function readLines(path: string, what: string): string[] {
  return Buffer.from(readBytes(path, what))
    .toString('utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}
