// The one contract of a back end's messages (a ReLU protocol, a linear-layer preprocessor): each declares the messages
// of a session as a schedule (who receives each, its bytes, the flight it goes out in), and the receivers' frame and
// buffer limits (protocol.ts sessionLimits) are derived from it here, in one place.

/**
 * The largest message each way in one phase of a session (the receivers' frame limits; each receive still checks the
 * exact size it expects). `flightTo*`: where a back end sends several messages before the receiver reads any (the OT
 * protocol's matrices of a site's chunks, HE's responses of a layer), the most bytes of one such flight; the
 * receiver's buffer limit covers two of them (absent: one message is a flight).
 */
export interface MessageBounds {
  toServer: number;
  toClient: number;
  flightToServer?: number;
  flightToClient?: number;
}

/** Message bounds per phase: `setup`, `offline` and `online`. */
export interface PhaseBounds {
  setup: MessageBounds;
  offline: MessageBounds;
  online: MessageBounds;
}

/** One message of a schedule. */
export interface ScheduledMessage {
  /** The party that receives it. */
  to: 'server' | 'client';
  bytes: number;
  /** Messages with the same flight go out before the receiver reads any of them; absent: a flight of its own. */
  flight?: string;
}

/** The bounds of a schedule: the largest message each way, and the largest flight (a lone message is a flight). */
export function boundsOf(schedule: Iterable<ScheduledMessage>): Required<MessageBounds> {
  const b = { toServer: 0, toClient: 0, flightToServer: 0, flightToClient: 0 };
  const flights = new Map<string, number>();
  for (const m of schedule) {
    const server = m.to === 'server';
    if (server) b.toServer = Math.max(b.toServer, m.bytes);
    else b.toClient = Math.max(b.toClient, m.bytes);
    const f = m.flight === undefined ? m.bytes : (flights.get(`${m.to}:${m.flight}`) ?? 0) + m.bytes;
    if (m.flight !== undefined) flights.set(`${m.to}:${m.flight}`, f);
    if (server) b.flightToServer = Math.max(b.flightToServer, f);
    else b.flightToClient = Math.max(b.flightToClient, f);
  }
  return b;
}

/** The widest of several bounds, field by field (a missing flight is its largest message). */
export function widest(...bounds: MessageBounds[]): Required<MessageBounds> {
  const b = { toServer: 0, toClient: 0, flightToServer: 0, flightToClient: 0 };
  for (const x of bounds) {
    b.toServer = Math.max(b.toServer, x.toServer);
    b.toClient = Math.max(b.toClient, x.toClient);
    b.flightToServer = Math.max(b.flightToServer, x.flightToServer ?? x.toServer);
    b.flightToClient = Math.max(b.flightToClient, x.flightToClient ?? x.toClient);
  }
  return b;
}
