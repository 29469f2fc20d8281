// Option parsers for commander: the number an option's text reads as, else an InvalidArgumentError naming the option.
import { InvalidArgumentError } from 'commander';

/** A finite number that passes `ok`; otherwise "NAME must be WHAT, got 'V'". */
export const numberArg =
  (name: string, ok: (n: number) => boolean, what: string) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || !ok(n)) throw new InvalidArgumentError(`${name} must be ${what}, got '${v}'`);
    return n;
  };

export const posInt = (name: string) => numberArg(name, (n) => Number.isInteger(n) && n > 0, 'a positive integer');
export const nonNegInt = (name: string) => numberArg(name, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
