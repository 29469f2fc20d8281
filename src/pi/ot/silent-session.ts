// The OT session of the silent ReLU: both directions of COT are silent (ferret.ts), and the millionaire's leaves are
// 1-out-of-N OTs on them (nco.ts) instead of KK13. Set-up, from ONE batch of 128 Chou-Orlandi base OTs:
//   A (server sends): IKNP on the base OTs, its bootstrap COTs (C -> S), the bootstrap round (S -> C);
//   B (client sends): IKNP seeded by 128 random OTs of A (their choice corrections C -> S), its bootstrap COTs
//     (S -> C), the bootstrap round (C -> S).
// Rounds after that run in `reserve` (the ReLU's offline step, per site): A's from the server, then B's from the client.
import type { Channel } from '../transport/channel.js';
import type { Random } from '../random.js';
import { iknp, type OtExtReceiver, type OtExtSender } from './iknp.js';
import { RotReceiver, RotSender } from './ot.js';
import { ncoReceivePads, ncoSendPlanes } from './nco.js';
import { bootCount, FerretReceiver, FerretSender, roundsFor, SILENT_PARAMS, type SilentParams } from './ferret.js';
import { roundMessageBytes } from './lpn.js';
import { baseOtMessageBytes } from './baseot.js';
import type { OtRole, OtSession } from './session.js';

const split16 = (b: Uint8Array, n: number) => Array.from({ length: n }, (_, i) => b.slice(16 * i, 16 * i + 16));

/** Bytes of the set-up's largest message each way: IKNP's matrix of the bootstrap COTs, or a bootstrap round. */
export function silentSessionMaxBytes(p: SilentParams = SILENT_PARAMS): { toServer: number; toClient: number } {
  const m = 16 * Math.ceil(bootCount(p) / 128) * 128,
    r = roundMessageBytes(p.boot[0] ?? p.main);
  return { toServer: Math.max(m, r, baseOtMessageBytes(128)), toClient: Math.max(m, r, baseOtMessageBytes(128)) };
}

/** The round messages reserve(a, b) may send: rounds of A to the client, then of B to the server. */
export function silentReserveMessages(a: number, b: number, p: SilentParams = SILENT_PARAMS) {
  const bytes = roundMessageBytes(p.main);
  return { toClient: roundsFor(p, a), toServer: roundsFor(p, b), bytes };
}

/** This party's half of the silent session's set-up (both parties call it concurrently). */
export async function silentOtSession(
  ch: Channel,
  role: OtRole,
  random: Random,
  params: SilentParams = SILENT_PARAMS,
): Promise<OtSession> {
  if (role === 'server') {
    const fa = FerretSender.fromIknp(ch, (await iknp.sender(ch, { random })) as OtExtSender, random, params);
    await fa.start();
    const a = new RotSender(ch, fa);
    const { m0, m1 } = await a.sendRandom(128);
    const fb = FerretReceiver.fromIknp(
      ch,
      iknp.receiverFromBase(ch, split16(m0, 128), split16(m1, 128)) as OtExtReceiver,
      random,
      params,
    );
    await fb.start();
    const b = new RotReceiver(ch, fb);
    return {
      sender: a,
      receiver: b,
      kkSender: null,
      kkReceiver: null,
      random,
      leaves: {
        sendPlanes: (m, N, planes) => ncoSendPlanes(a, m, N, planes),
        receivePads: () => Promise.reject(new Error('silent OT session: the server does not receive leaf OTs')),
      },
      async reserve(na, nb) {
        await fa.reserve(na);
        await fb.reserve(nb);
      },
    };
  }
  const fa = FerretReceiver.fromIknp(ch, (await iknp.receiver(ch, { random })) as OtExtReceiver, random, params);
  await fa.start();
  const a = new RotReceiver(ch, fa);
  const deltaB = random.bytes(16);
  const keys = await a.receiveRandom(deltaB, 128);
  const fb = FerretSender.fromIknp(
    ch,
    iknp.senderFromBase(ch, deltaB, split16(keys, 128)) as OtExtSender,
    random,
    params,
  );
  await fb.start();
  const b = new RotSender(ch, fb);
  return {
    sender: b,
    receiver: a,
    kkSender: null,
    kkReceiver: null,
    random,
    leaves: {
      sendPlanes: () => Promise.reject(new Error('silent OT session: the client does not send leaf OTs')),
      receivePads: (choices, m, N, planes) => ncoReceivePads(a, choices, m, N, planes),
    },
    async reserve(na, nb) {
      await fa.reserve(na);
      await fb.reserve(nb);
    },
  };
}
