// Mask documents (JSON) to and from masks: whole sites as `kept` or `removed` lists, partial sites as channel
// lists or bitmaps with their counts. Partial sites are checked against the network's activation shapes.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/fs.js';
import { siteShapes } from './build.js';
import type { MaskDocument, ReluMask } from './mask.js';
import { decodePartial, encodePartial, type PartialSite } from './partial.js';
import type { NetSpec } from './spec.js';

const strings = (v: unknown) => Array.isArray(v) && v.every((e) => typeof e === 'string');

/** Validates a parsed mask document against spec's sites (and, for partial sites, their shapes). */
export function maskFromDocument(doc: unknown, spec: NetSpec, source = 'mask'): ReluMask {
  const d = doc as Partial<MaskDocument> | null;
  if (!d || typeof d !== 'object') throw new Error(`${source}: expected an object { arch, kept | removed, partial? }`);
  if (typeof d.arch !== 'string') throw new Error(`${source}: field 'arch' must be a string`);
  if (d.arch !== spec.arch) throw new Error(`${source}: mask is for '${d.arch}', network is '${spec.arch}'`);
  if ((d.kept === undefined) === (d.removed === undefined))
    throw new Error(`${source}: give exactly one of 'kept' or 'removed'`);
  const list = d.kept !== undefined ? 'kept' : 'removed';
  const names = d[list];
  if (!strings(names)) throw new Error(`${source}: field '${list}' must be an array of site names`);
  if (d.partial !== undefined && (typeof d.partial !== 'object' || d.partial === null || Array.isArray(d.partial)))
    throw new Error(`${source}: field 'partial' must be an object { site: { shape, relus, channels | bitmap } }`);
  const shapes = siteShapes(spec);
  const sites = [...shapes.keys()];
  const partialNames = Object.keys(d.partial ?? {});
  const unknown = [...names!, ...partialNames].filter((s) => !sites.includes(s));
  if (unknown.length)
    throw new Error(
      `${source}: unknown ReLU site(s) ${[...new Set(unknown)].join(', ')} for ${spec.arch}; valid: ${sites.join(', ')}`,
    );
  const twice = partialNames.filter((s) => names!.includes(s));
  if (twice.length)
    throw new Error(
      `${source}: site(s) ${twice.join(', ')} are listed in '${list}' and in 'partial'; a partial site belongs in 'partial' only`,
    );
  const partial: Record<string, PartialSite> = {};
  for (const s of partialNames)
    partial[s] = decodePartial(d.partial![s], shapes.get(s)!, `${source}: partial site '${s}'`);
  const listed = new Set(names);
  const wholeKept = sites.filter((s) => (list === 'kept' ? listed.has(s) : !listed.has(s) && !partial[s]));
  // A "partial" site keeping every element is a whole site; one keeping none is removed.
  const kept = sites.filter(
    (s) =>
      wholeKept.includes(s) ||
      (partial[s] && partial[s].elements.length === partial[s].shape.reduce((a, b) => a * b, 1)),
  );
  const part = Object.entries(partial).filter(([s, p]) => p.elements.length > 0 && !kept.includes(s));
  return { arch: spec.arch, sites, kept, ...(part.length ? { partial: Object.fromEntries(part) } : {}) };
}

export const maskToDocument = (mask: ReluMask): MaskDocument => {
  const partial = Object.entries(mask.partial ?? {});
  return {
    arch: mask.arch,
    kept: [...mask.kept],
    ...(partial.length ? { partial: Object.fromEntries(partial.map(([s, p]) => [s, encodePartial(p)])) } : {}),
  };
};

export function loadMask(file: string, spec: NetSpec): ReluMask {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`mask ${file}: ${(e as Error).message}`);
  }
  return maskFromDocument(doc, spec, `mask ${file}`);
}

/** Writes the `kept` form (atomic), partial sites under `partial`. */
export function saveMask(file: string, mask: ReluMask): void {
  writeFileAtomic(file, `${JSON.stringify(maskToDocument(mask), null, 2)}\n`);
}
