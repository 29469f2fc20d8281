import { Module } from '../engine/index.js';
import { describeNetwork } from './graph.js';
import { applyMask } from './mask.js';
import type { Network } from './network.js';
import { ResNet } from './resnet.js';
import { FAMILIES, validateSpec, type NetSpec } from './spec.js';
import { WideResNet } from './wrn.js';

const builders = new Map<string, (spec: NetSpec) => Network>(
  [...FAMILIES].map((f) => [f, (s: NetSpec) => (f === 'wrn' ? new WideResNet(s) : new ResNet(s))]),
);

/**
 * Makes a new family buildable everywhere (count, train, reduce, export, PI): `build` constructs its Network, whose
 * forward (Block.run) is its one definition; site names, shapes and the graph are traced from it.
 */
export function registerFamily(family: string, build: (spec: NetSpec) => Network): void {
  builders.set(family, build);
  FAMILIES.add(family);
}

const construct = (spec: NetSpec): Network => builders.get(validateSpec(spec).family)!(spec);

/** Builds the network of spec (torchvision initialisation) and applies spec.mask if any. */
export function buildNetwork(spec: NetSpec): Network {
  const net = construct(spec);
  try {
    if (spec.mask) applyMask(net, spec.mask);
  } catch (e) {
    net.dispose();
    throw e;
  }
  return net;
}

/** Spec's network without weights (Module.withoutWeights) and without its mask: for tracing its graph and shapes only. */
export const shapeNetwork = (spec: NetSpec): Network => Module.withoutWeights(() => construct(spec));

/** Each site's per-image activation shape [C, H, W], in forward order, traced without weights (the mask ignored). */
export function siteShapes(spec: NetSpec): Map<string, number[]> {
  return new Map(
    describeNetwork(shapeNetwork(spec), null)
      .filter((n) => n.op === 'relu')
      .map((n) => [n.site!, n.outShape]),
  );
}

/** Site names a spec's network has, in forward order (the names Network.sites() carries). */
export const siteNames = (spec: NetSpec): string[] => [...siteShapes(spec).keys()];
