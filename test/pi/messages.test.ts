// The back ends' one contract: bounds derived from a message schedule, and the registry both kinds are picked from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundsOf, widest } from '../../src/pi/messages.js';
import { Registry } from '../../src/pi/registry.js';
import { RELU_REGISTRY } from '../../src/pi/relu/registry.js';
import { PREPROCESS_REGISTRY } from '../../src/pi/linear/index.js';

test('boundsOf: the largest message each way; a flight sums its messages, a lone message is its own flight', () => {
  assert.deepEqual(boundsOf([]), { toServer: 0, toClient: 0, flightToServer: 0, flightToClient: 0 });
  const b = boundsOf([
    { to: 'server', bytes: 100, flight: 'a' },
    { to: 'server', bytes: 300, flight: 'a' },
    { to: 'client', bytes: 50, flight: 'a' },
    { to: 'server', bytes: 350 },
    { to: 'client', bytes: 70 },
  ]);
  assert.deepEqual(b, { toServer: 350, toClient: 70, flightToServer: 400, flightToClient: 70 });
  assert.deepEqual(widest({ toServer: 1, toClient: 9 }, { toServer: 5, toClient: 2, flightToServer: 8 }), {
    toServer: 5,
    toClient: 9,
    flightToServer: 8,
    flightToClient: 9,
  });
});

test('one registry for ReLU protocols and preprocessors: names, defaults, a fresh preprocessor per session, errors', () => {
  assert.deepEqual(RELU_REGISTRY.names, ['gc', 'ot', 'ot-online', 'silent']);
  assert.equal(RELU_REGISTRY.defaultName, 'ot');
  assert.equal(RELU_REGISTRY.make('gc').name, 'gc');
  assert.throws(
    () => RELU_REGISTRY.make('toString'),
    /unknown ReLU protocol 'toString'; valid: gc, ot, ot-online, silent/,
  );
  assert.deepEqual(PREPROCESS_REGISTRY.names, ['he', 'dealer']);
  assert.equal(PREPROCESS_REGISTRY.defaultName, 'he');
  assert.notEqual(PREPROCESS_REGISTRY.make('dealer', {}), PREPROCESS_REGISTRY.make('dealer', {}));
  assert.throws(() => PREPROCESS_REGISTRY.make('ideal', {}), /unknown preprocessor 'ideal'; valid: he, dealer/);
  assert.throws(() => new Registry('thing', { a: () => 1 }, 'b'), /default 'b' is not an entry/);
});
