export * from './tensor.js';
export * as F from './functional.js';
export * from './nn.js';
export * from './optim.js';
export * from './safetensors.js';
