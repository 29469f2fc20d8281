// The host API the browser-safe core of src/pi may use: what Node (>= 20) and browsers both provide as globals. Only
// src/pi/tsconfig.json reads this file (the core is type-checked with no Node and no DOM typings, so anything else,
// a Buffer, process, node:* or document, fails to compile there); the Node build has these from @types/node.
declare function setTimeout(f: (...args: any[]) => void, ms?: number): unknown;
declare function clearTimeout(id: unknown): void;
/** Node only; the core tests for it (`typeof setImmediate === 'function'`) and falls back to setTimeout. */
declare const setImmediate: ((f: () => void) => unknown) | undefined;
declare function atob(s: string): string;
declare function btoa(s: string): string;
declare var performance: { now(): number };
declare class TextEncoder {
  encode(s?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(b?: Uint8Array): string;
}
declare var crypto: { getRandomValues<T extends Uint8Array | Uint32Array>(a: T): T };
