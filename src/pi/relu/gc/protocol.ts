// ReLU by garbled circuits in Delphi's orientation (circuit.ts): the server garbles and keeps the decode bits, the
// client evaluates and never sees one.
//   offline: per batch the client sends its IKNP OT matrix for the bits of b (its input share) and r (its fresh
//            output share); the server garbles with the OT's zero labels and sends the tables (no decode bits).
//   online:  the server sends the labels of a (its share), one message per site; the client evaluates and returns
//            the output colour bits; the server XORs its decode bits: z = (ReLU(x) >> shift) - r.
// The client keeps every site's tables from offline to online (Delphi's storage cost); the server keeps only the
// zero labels of a and the decode bits.
import { Garbler, evaluateDecoded, type GarbledBatch, type GarbledMaterial } from '../../gc/garble.js';
import { bitsToRing, packBits } from '../../gc/ring.js';
import type { Circuit } from '../../gc/circuit.js';
import { SESSION_COT as COT } from '../../ot/session.js';
import type { CotReceiver, CotSender } from '../../ot/ot.js';
import { r64FromBytes, r64Low, r64Slice, r64ToBig, r64ToBytes, type R64 } from '../../fixed.js';
import { unpackParts, type Channel } from '../../transport/channel.js';
import { malformed, recvChecked } from '../../wire.js';
import { delphiReluCircuit } from './circuit.js';
import {
  batches,
  type ReluClient,
  type ReluClientOptions,
  type ReluOptions,
  type ReluProtocol,
  type ReluServer,
  type ReluServerOptions,
  type ReluSite,
} from '../index.js';
import { boundsOf, type PhaseBounds, type ScheduledMessage } from '../../messages.js';

/** Garbler input values for encode(): exact doubles up to 53 bits, BigInt beyond. */
function encodeValues(x: R64, width: number): Float64Array | BigUint64Array {
  return width <= 53 ? r64Low(x, width) : BigUint64Array.from(r64ToBig(x), (v) => BigInt.asUintN(64, v));
}

const HEADER_BYTES = 32; // garble.ts material header: magic, n, tweakBase (2 words), numAnd, numOutputWires, digest[8]
const MAGIC = 0x314d4347;

/** A tables-only material message (header + tables, no decode bits) as a GarbledMaterial whose decode bits are 0. */
function parseTables(c: Circuit, msg: Uint8Array, n: number, what: string): GarbledMaterial {
  const expected = HEADER_BYTES + c.numAnd * n * 32;
  if (msg.byteLength !== expected)
    throw malformed(
      `malformed message: ${what}: expected ${expected} bytes (${n} circuits of ${c.numAnd} ANDs), got ${msg.byteLength}`,
    );
  const bytes = (msg.byteOffset & 3) === 0 ? msg : msg.slice();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  let digest = '';
  for (let i = 24; i < 32; i++) digest += bytes[i]!.toString(16).padStart(2, '0');
  if (
    dv.getUint32(0, true) !== MAGIC ||
    dv.getUint32(4, true) !== n ||
    dv.getUint32(16, true) !== c.numAnd ||
    digest !== c.digest.slice(0, 16)
  ) {
    throw malformed(`malformed message: ${what}: header is not for ${n} instances of circuit ${c.name}`);
  }
  return {
    n,
    tweakBase: dv.getUint32(8, true) + dv.getUint32(12, true) * 4294967296,
    bytes,
    tables: new Int32Array(bytes.buffer, bytes.byteOffset + HEADER_BYTES, c.numAnd * n * 8),
    // All-zero decode bits: evaluateDecoded then yields the output labels' colour bits, which go to the server.
    decode: new Uint8Array(Math.ceil((c.numOutputWires * n) / 8)),
  };
}

function xorWords(a: R64, b: { lo: Uint32Array; hi: Uint32Array }): R64 {
  const n = a.lo.length,
    lo = new Uint32Array(n),
    hi = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    lo[i] = a.lo[i]! ^ b.lo[i]!;
    hi[i] = a.hi[i]! ^ b.hi[i]!;
  }
  return { lo, hi };
}

interface ServerBatch {
  /** For encode(): circuit, n and the zero labels of 'a' only (tables and other labels are dropped). */
  enc: GarbledBatch;
  decode: Uint8Array;
}

class GcServer implements ReluServer {
  private readonly sites = new Map<number, ServerBatch[]>();
  private held = 0;
  constructor(
    private readonly ch: Channel,
    readonly garbler: Garbler,
    private readonly ot: CotSender,
    private readonly batch: number,
  ) {}

  heldBytes(): number {
    return this.held;
  }

  async offline(site: ReluSite): Promise<void> {
    const c = delphiReluCircuit(site.width, site.shift),
      w = site.width;
    const out: ServerBatch[] = [];
    for (const [s, e] of batches(site.size, this.batch)) {
      const nb = e - s;
      const zero = await this.ot.sendCot(nb * (w + 64));
      const gb = this.garbler.garble(c, nb, { b: zero.subarray(0, w * nb * 16), r: zero.subarray(w * nb * 16) });
      this.ch.send(gb.material.bytes.subarray(0, HEADER_BYTES + c.numAnd * nb * 32));
      // Keep only the labels of 'a' and the decode bits: the server needs nothing else online.
      const kept: ServerBatch = {
        enc: { circuit: c, n: nb, material: null as unknown as GarbledMaterial, zero: { a: gb.zero.a! } },
        decode: gb.material.decode.slice(),
      };
      out.push(kept);
      this.held += kept.enc.zero.a!.byteLength + kept.decode.byteLength;
      // A client that does not read its tables holds them in our send buffer: wait until they are on their way.
      await this.ch.flush();
    }
    this.sites.set(site.op, out);
  }

  async online(site: ReluSite, x: R64): Promise<R64> {
    const bs = this.sites.get(site.op);
    if (!bs) throw new Error(`relu gc: ${site.name}: online before offline`);
    this.sites.delete(site.op);
    for (const b of bs) this.held -= b.enc.zero.a!.byteLength + b.decode.byteLength;
    const b0 = this.batch;
    this.ch.sendParts(
      bs.map((b, k) =>
        this.garbler.encode(b.enc, 'a', encodeValues(r64Slice(x, k * b0, k * b0 + b.enc.n), site.width)),
      ),
    );
    const what = `online: ${site.name}: output colour bits`;
    const colour = r64FromBytes(await recvChecked(this.ch, what, 8 * site.size), site.size, what);
    const z: R64 = { lo: new Uint32Array(site.size), hi: new Uint32Array(site.size) };
    bs.forEach((b, k) => {
      const d = bitsToRing(b.decode, 64, b.enc.n),
        s = k * b0;
      const part = xorWords(r64Slice(colour, s, s + b.enc.n), d);
      z.lo.set(part.lo, s);
      z.hi.set(part.hi, s);
    });
    return z;
  }
}

interface ClientSite {
  c: Circuit;
  mats: GarbledMaterial[];
  labels: { b: Uint8Array; r: Uint8Array }[];
}

const clientSiteBytes = (st: ClientSite): number =>
  st.mats.reduce((a, m) => a + m.bytes.byteLength + m.decode.byteLength, 0) +
  st.labels.reduce((a, l) => a + l.b.byteLength + l.r.byteLength, 0);

class GcClient implements ReluClient {
  private readonly sites = new Map<number, ClientSite>();
  private held = 0;
  constructor(
    private readonly ch: Channel,
    private readonly ot: CotReceiver,
    private readonly batch: number,
  ) {}

  heldBytes(): number {
    return this.held;
  }

  async offline(site: ReluSite, x: R64, r: R64): Promise<void> {
    const c = delphiReluCircuit(site.width, site.shift),
      w = site.width;
    if (r.lo.length !== site.size)
      throw new Error(`relu gc: ${site.name}: a mask of ${r.lo.length} elements, expected ${site.size}`);
    const st: ClientSite = { c, mats: [], labels: [] };
    for (const [s, e] of batches(site.size, this.batch)) {
      const nb = e - s,
        m = nb * (w + 64);
      const bits = new Uint8Array(Math.ceil(m / 8));
      packBits(r64Slice(x, s, e), w, bits, 0);
      packBits(r64Slice(r, s, e), 64, bits, w * nb);
      const lab = await this.ot.recvCot(bits, m);
      st.labels.push({ b: lab.subarray(0, w * nb * 16), r: lab.subarray(w * nb * 16) });
      const what = `offline: ${site.name}: garbled tables`;
      st.mats.push(parseTables(c, await recvChecked(this.ch, what), nb, what));
    }
    this.sites.set(site.op, st);
    this.held += clientSiteBytes(st);
  }

  async online(site: ReluSite): Promise<void> {
    const st = this.sites.get(site.op);
    if (!st) throw new Error(`relu gc: ${site.name}: online before offline`);
    this.sites.delete(site.op);
    this.held -= clientSiteBytes(st);
    const what = `online: ${site.name}: labels of the server's share`;
    const parts = unpackParts(await recvChecked(this.ch, what), `${this.ch.name}: malformed message: ${what}`);
    if (parts.length !== st.mats.length)
      throw malformed(`${this.ch.name}: malformed message: ${what}: ${parts.length} parts, expected ${st.mats.length}`);
    const colour: R64 = { lo: new Uint32Array(site.size), hi: new Uint32Array(site.size) };
    let s = 0;
    st.mats.forEach((m, k) => {
      const want = site.width * m.n * 16;
      if (parts[k]!.byteLength !== want)
        throw malformed(
          `${this.ch.name}: malformed message: ${what}: part ${k} has ${parts[k]!.byteLength} bytes, expected ${want}`,
        );
      const d = evaluateDecoded(st.c, m, { a: parts[k]!, b: st.labels[k]!.b, r: st.labels[k]!.r });
      colour.lo.set(d.lo, s);
      colour.hi.set(d.hi, s);
      s += m.n;
    });
    this.ch.send(r64ToBytes(colour));
  }
}

const pad8 = (n: number) => (n + 7) & ~7;
const BASE_OT_BYTES = 32 * 128; // the receiver's points of the 128 base OTs

/** Batch sizes of a site: full batches and a last partial one. */
const batchSizes = (size: number, batch: number): number[] => batches(size, batch).map(([s, e]) => e - s);

export const gcRelu: ReluProtocol = {
  name: 'gc',
  async server(ch: Channel, o: ReluServerOptions): Promise<ReluServer> {
    const rand = o.random.bytes;
    const garbler = new Garbler({ delta: rand.bytes(16), seed: rand.bytes(16) }); // a fresh Δ per session
    const ot = await COT.sender(ch, { delta: garbler.delta, random: rand });
    return new GcServer(ch, garbler, ot, o.batch);
  },
  async client(ch: Channel, o: ReluClientOptions): Promise<ReluClient> {
    return new GcClient(ch, await COT.receiver(ch, { random: o.random.bytes }), o.batch);
  },
  maxMessageBytes(sites: readonly ReluSite[], o: ReluOptions): PhaseBounds {
    const offline: ScheduledMessage[] = [],
      online: ScheduledMessage[] = [];
    for (const site of sites) {
      const c = delphiReluCircuit(site.width, site.shift),
        sizes = batchSizes(site.size, o.batch);
      // Offline, per batch: the OT matrix (128 rows of the padded OT count), then the tables.
      for (const nb of sizes)
        offline.push(
          { to: 'server', bytes: 16 * Math.ceil((nb * (site.width + 64)) / 128) * 128 },
          { to: 'client', bytes: HEADER_BYTES + c.numAnd * nb * 32 },
        );
      // Online: the labels of the server's share per site (one part per batch); the colour bits per site.
      online.push(
        { to: 'client', bytes: pad8(4 + 4 * sizes.length) + sizes.reduce((a, n) => a + pad8(site.width * n * 16), 0) },
        { to: 'server', bytes: 8 * site.size },
      );
    }
    // Set-up: the 128 base OTs (the receiver's points; the sender's one point).
    const setup: ScheduledMessage[] = [
      { to: 'client', bytes: 32 },
      { to: 'server', bytes: BASE_OT_BYTES },
    ];
    return { setup: boundsOf(setup), offline: boundsOf(offline), online: boundsOf(online) };
  },
};

/** The session's garbler offset Δ (tests check that it is fresh per session); null for another protocol's server. */
export function gcServerDelta(r: ReluServer): Uint8Array | null {
  return r instanceof GcServer ? r.garbler.delta.slice() : null;
}
