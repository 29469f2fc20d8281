import { applyMask } from './mask.js';
import type { Network } from './network.js';
import { ResNet } from './resnet.js';
import { validateSpec, type NetSpec } from './spec.js';
import { WideResNet } from './wrn.js';

/** Builds the network of spec (torchvision initialisation) and applies spec.mask if any. */
export function buildNetwork(spec: NetSpec): Network {
  validateSpec(spec);
  const net = spec.family === 'wrn' ? new WideResNet(spec) : new ResNet(spec);
  try {
    if (spec.mask) applyMask(net, spec.mask);
  } catch (e) {
    net.dispose();
    throw e;
  }
  return net;
}
