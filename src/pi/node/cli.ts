// deepreduce pi keygen | dealer | serve | query | bench: two-party private inference (Delphi-style). The linear
// layers' preprocessing is homomorphic encryption between client and server (--preprocess he, the default: two
// parties only) or a trusted dealer as a third party (--preprocess dealer); the ReLUs' protocol is OT (--relu ot, the
// default; ot-online) or garbled circuits (--relu gc). See docs/pi.md and docs/pi-he.md. --link shapes the transport
// to a link profile (benchmarks). Every link is TLS with a verified server; plain TCP between client and server only with --insecure, which both sides
// announce loudly.
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { writeFileAtomic } from '../../util/fs.js';
import { nonNegInt, numberArg, posInt } from '../../util/args.js';
import { ConnectRate, DEFAULT_CONNECT_RATE } from './transport/connectrate.js';
import { RefusalLog } from './refusals.js';
import { specFromOptions } from '../../models/options.js';
import { connectChannel, type ClientSecurity, type ServerSecurity, type TlsClientConfig } from './transport/tcp.js';
import { checkPin, generateIdentity, readPem, type TlsIdentity } from './transport/tls.js';
import { DEFAULT_DEADLINES, runClient, type Deadlines } from '../protocol.js';
import { defaultWorkerThreads, WorkerPool, type ServerWorkers } from './workers/pool.js';
import {
  DEFAULT_MAX_PENDING,
  DEFAULT_MAX_PER_ADDRESS,
  DEFAULT_MAX_SESSIONS,
  servePi,
  SessionPool,
  type SessionEnd,
} from './serve.js';
import { ServeMetrics, serveMetrics, type MetricsServer } from './metrics.js';
import { DEFAULT_RETRY, retryBusy } from '../retry.js';
import { appendFileSync } from 'node:fs';
import { datasetGallery, serveWeb, type WebServer } from './web/server.js';
import { WEB_RELU } from '../web/info.js';
import type { Channel } from '../transport/channel.js';
import { Dealer, tcpDealerLink, type DealerLink } from './dealer.js';
import { calibrate, formatComparison, formatPiReport, piReport, type PiReport } from './bench.js';
import { datasetImage, fileImage, serverModelFromDir, serverModelRandom, testSplit } from './load.js';
import type { PublicPlan, ServerModel } from '../plan.js';
import { DEFAULT_PREPROCESS, PREPROCESSORS } from '../linear/index.js';
import { DEFAULT_RELU, RELU_PROTOCOLS, makeReluProtocol } from '../relu/registry.js';
import { describeLink, parseLink, parseLinks, shapeChannel, type LinkProfile } from '../transport/shaping.js';
import { offlineWish, parseOffline, type OfflineMode } from '../schedule.js';
import { benchProcesses } from './benchproc.js';

const seconds = (name: string) => numberArg(name, (n) => n > 0, 'a positive number of seconds');

interface ModelOpts {
  model?: string;
  arch?: string;
  preset?: string;
  input?: number;
  classes?: number;
  alpha?: number;
  seed: number;
  f?: number;
  weightFrac?: number;
}

function serverModel(o: ModelOpts): ServerModel {
  const fixed = { f: o.f, weightFrac: o.weightFrac };
  if (o.model) {
    if (o.arch || o.preset) throw new Error('give either --model DIR or --arch/--preset (random weights), not both');
    return serverModelFromDir(o.model, fixed);
  }
  if (!o.arch && !o.preset) throw new Error('give --model DIR, or --arch NAME [--preset NAME] for random weights');
  return serverModelRandom(specFromOptions(o).spec, o.seed, fixed);
}

/** The model options again as arguments (for a party's own process). */
function modelArgs(o: ModelOpts): string[] {
  const a: string[] = [];
  const add = (flag: string, v: string | number | undefined) => v !== undefined && a.push(flag, String(v));
  add('--model', o.model);
  add('--arch', o.arch);
  add('--preset', o.preset);
  add('--input', o.input);
  add('--classes', o.classes);
  add('--alpha', o.alpha);
  add('--seed', o.seed);
  add('--f', o.f);
  add('--weight-frac', o.weightFrac);
  return a;
}

function modelOptions(c: Command): Command {
  return c
    .option('--model <dir>', 'trained model directory (deepreduce train --out)')
    .option('--arch <name>', 'architecture with random weights (latency benchmarks)')
    .option('--preset <name>', 'DeepReDuce preset (resnet18 mask/width) with random weights')
    .option('--input <n>', 'input size for --arch/--preset', posInt('--input'))
    .option('--classes <n>', 'classes for --arch/--preset', posInt('--classes'))
    .option('--alpha <a>', 'width multiplier for --arch', Number)
    .option('--seed <n>', 'seed of the random weights', nonNegInt('--seed'), 0)
    .option('--f <bits>', 'fractional bits of activations', nonNegInt('--f'))
    .option(
      '--weight-frac <bits>',
      "fractional bits of every layer's weights (one public scale; default 12)",
      nonNegInt('--weight-frac'),
    );
}

const parseHostPort =
  (name: string) =>
  (s: string): { host: string; port: number } => {
    const m = /^(.*):(\d+)$/.exec(s);
    if (!m) throw new InvalidArgumentError(`${name} must be HOST:PORT, got '${s}'`);
    return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
  };

const out = (s: string) => void process.stdout.write(s);

/** `parse` as an option parser: its errors become commander's (the message alone, no stack). */
const optionParser =
  <T>(parse: (v: string) => T) =>
  (v: string): T => {
    try {
      return parse(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
const linkOption = optionParser(parseLink);
const reluOption = optionParser((v) => makeReluProtocol(v).name);
const listOf =
  <T>(one: (v: string) => T) =>
  (v: string): T[] =>
    v.split(',').map((x) => one(x.trim()));
const linkList = optionParser(parseLinks);
const offlineOption = optionParser(parseOffline);
const offlineText = (m: OfflineMode) => String(offlineWish(m));
const OFFLINE_HELP =
  'when the offline work runs: all (before the image), layer (layer by layer, interleaved with the online phase: about one layer of correlations held), or a byte budget (e.g. 512M: layers run ahead while their correlations fit)';
/** This process's peak resident set, bytes. */
const peakRss = () => process.resourceUsage().maxRSS * 1024;
/** An N(0,1) image of the plan's input size from a seeded generator (benchmarks). */
function randomImage(plan: PublicPlan, seed: number): Float32Array {
  let s = seed + 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) + 0.5) / 4294967296;
  return Float32Array.from(
    { length: plan.ops[0]!.size },
    () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()),
  );
}

function argmax(v: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[b]!) b = i;
  return b;
}

const INSECURE_WARNING =
  '!!! WARNING: --insecure: plain TCP without TLS. The link is neither encrypted nor authenticated: anyone on the\n' +
  '!!! network path reads every frame and can impersonate the other party (e.g. return a wrong class).\n' +
  '!!! Use it only on a machine you control, for benchmarks and debugging.\n';

const warnInsecure = (who: string) => process.stderr.write(`[pi ${who}]\n${INSECURE_WARNING}`);

interface WebFlags {
  web?: boolean;
  webPort: number;
  gallery: number;
  galleryDataset?: string;
  data?: string;
  origin?: string[];
}

interface ServeFlags {
  maxPerAddress?: number;
  maxConnectRate?: number;
  maxSessionsPerAddress?: number;
  setupIdleTimeout?: number;
  onlineIdleTimeout?: number;
  clientBudget?: number;
  clientRate?: number;
  reportTimings?: boolean;
  metricsPort?: number;
  metricsHost: string;
  drainTimeout: number;
  auditLog?: string;
}

interface TlsFlags {
  cert?: string;
  key?: string;
  insecure?: boolean;
}

function ownIdentity(o: TlsFlags, flagHint: string): { cert: string; key: string } | null {
  if (!o.cert && !o.key) return null;
  if (!o.cert || !o.key)
    throw new Error('give both --cert FILE and --key FILE (deepreduce pi keygen --out DIR makes them)');
  return { cert: readPem(o.cert, 'certificate', '--cert'), key: readPem(o.key, 'private key', `--key (${flagHint})`) };
}

/** How to verify a peer: its certificate file (as a CA) and/or its pinned SHA-256 fingerprint. */
function trust(
  certFile: string | undefined,
  pin: string | undefined,
  certFlag: string,
  pinFlag: string,
): { ca?: string; pin?: string } | null {
  if (!certFile && !pin) return null;
  return {
    ...(certFile ? { ca: readPem(certFile, 'certificate', certFlag) } : {}),
    ...(pin ? { pin: checkPin(pin, pinFlag) } : {}),
  };
}

interface DeadlineFlags {
  helloTimeout?: number;
  setupTimeout?: number;
  offlineTimeout?: number;
  onlineTimeout?: number;
  idleTimeout?: number;
}

function deadlineOptions(c: Command): Command {
  const d = DEFAULT_DEADLINES,
    s = (ms: number) => `${ms / 1e3}`;
  return c
    .option(
      '--hello-timeout <s>',
      `seconds for the connection to reach the hello (TLS handshake included) [${s(d.helloMs)}]`,
      seconds('--hello-timeout'),
    )
    .option(
      '--setup-timeout <s>',
      `seconds for the setup phase (plan, dealer, base OTs) [${s(d.setupMs)}]`,
      seconds('--setup-timeout'),
    )
    .option('--offline-timeout <s>', `seconds for the offline phase [${s(d.offlineMs)}]`, seconds('--offline-timeout'))
    .option('--online-timeout <s>', `seconds for the online phase [${s(d.onlineMs)}]`, seconds('--online-timeout'))
    .option(
      '--idle-timeout <s>',
      `seconds a party may stay silent while the other waits [${s(d.idleMs)}]`,
      seconds('--idle-timeout'),
    );
}

function deadlines(o: DeadlineFlags): Partial<Deadlines> {
  const ms = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 1e3));
  const d: Partial<Deadlines> = {
    helloMs: ms(o.helloTimeout),
    setupMs: ms(o.setupTimeout),
    offlineMs: ms(o.offlineTimeout),
    onlineMs: ms(o.onlineTimeout),
    idleMs: ms(o.idleTimeout),
  };
  return Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as Partial<Deadlines>;
}

interface DealerFlags {
  dealer?: { host: string; port: number };
  dealerCert?: string;
  dealerPin?: string;
}

/** `--worker-threads` of the commands that run a server (serve, bench). */
function workerOptions(c: Command): Command {
  return c.option(
    '--worker-threads <n>',
    `worker threads shared by the server's sessions for HE output groups and KK13 pads, besides each session's own (0: none) [${defaultWorkerThreads()}: cores - 1, at most 3]`,
    nonNegInt('--worker-threads'),
    defaultWorkerThreads(),
  );
}

/** The pool of `--worker-threads` (null for 0). */
const workerPool = (threads: number): WorkerPool | null => (threads > 0 ? new WorkerPool(threads) : null);

function dealerOptions(c: Command): Command {
  return c
    .option(
      '--dealer <host:port>',
      'the trusted dealer (deepreduce pi dealer, run by a third party), for --preprocess dealer',
      parseHostPort('--dealer'),
    )
    .option('--dealer-cert <file>', "the dealer's certificate (keygen's cert.pem) to verify it")
    .option('--dealer-pin <sha256>', "the SHA-256 fingerprint of the dealer's certificate, to verify it");
}

/**
 * The link to the dealer for `--preprocess dealer` (required there, refused otherwise): TLS; `own` is the server's
 * certificate and key, its credential for the server role.
 */
function dealerLink(
  o: DealerFlags,
  own: { cert: string; key: string } | null,
  role: 'server' | 'client',
  preprocess: string,
): DealerLink | undefined {
  if (preprocess !== 'dealer') {
    if (o.dealer || o.dealerCert || o.dealerPin)
      throw new InvalidArgumentError(
        `--dealer, --dealer-cert and --dealer-pin are only for --preprocess dealer (this ${role} uses '${preprocess}')`,
      );
    return undefined;
  }
  if (!o.dealer)
    throw new InvalidArgumentError(
      `--preprocess dealer needs the dealer's address: --dealer HOST:PORT (start one with 'deepreduce pi dealer')`,
    );
  const t = trust(o.dealerCert, o.dealerPin, '--dealer-cert', '--dealer-pin');
  if (!t) throw new Error('--dealer needs a way to verify the dealer: --dealer-cert FILE or --dealer-pin SHA256');
  if (role === 'server' && !own)
    throw new Error('the server authenticates to the dealer with its certificate: give --cert FILE --key FILE');
  const cfg: TlsClientConfig = { ...t, ...(own ? own : {}) };
  return tcpDealerLink(o.dealer.host, o.dealer.port, cfg);
}

export function registerPiCommands(program: Command): Command {
  const pi = program
    .command('pi')
    .description(
      'two-party private inference: ReLUs by OT (or garbled circuits), linear layers preprocessed by homomorphic encryption, over TLS (docs/pi.md)',
    );

  pi.command('keygen')
    .description(
      'make an EC P-256 key and a self-signed certificate for a server or dealer (key.pem, cert.pem, cert.sha256 in DIR)',
    )
    .requiredOption('--out <dir>', 'output directory')
    .option(
      '--host <name...>',
      'extra DNS names or IP addresses the certificate is valid for (localhost, 127.0.0.1 and ::1 always are)',
    )
    .option('--days <n>', 'validity in days', posInt('--days'), 365)
    .option('--force', 'overwrite an existing key')
    .action(async (o: { out: string; host?: string[]; days: number; force?: boolean }) => {
      const keyFile = join(o.out, 'key.pem'),
        certFile = join(o.out, 'cert.pem');
      const { existsSync } = await import('node:fs');
      if (existsSync(keyFile) && !o.force)
        throw new Error(`${keyFile} exists; give --force to replace it (its certificate's pins stop working)`);
      const id: TlsIdentity = await generateIdentity({ names: o.host ?? [], days: o.days });
      writeFileAtomic(keyFile, id.key, 0o600);
      writeFileAtomic(certFile, id.cert);
      writeFileAtomic(join(o.out, 'cert.sha256'), `${id.fingerprint}\n`);
      out(
        `key:         ${keyFile} (keep it private)\ncertificate: ${certFile} (give it to the clients: --server-cert, or to the dealer: --server-cert)\n` +
          `fingerprint: ${id.fingerprint} (or give this: --pin / --server-pin)\nvalid for:   localhost, 127.0.0.1, ::1${o.host?.length ? `, ${o.host.join(', ')}` : ''}; ${o.days} days\n`,
      );
    });

  modelOptions(
    pi
      .command('dealer')
      .description('run the trusted dealer (a third party, never the server) that preprocesses the linear layers'),
  )
    .requiredOption('--port <n>', 'TCP port (0: any free port, printed)', nonNegInt('--port'))
    .option(
      '--host <h>',
      'listen address (exposing the dealer beyond this machine takes an explicit address)',
      '127.0.0.1',
    )
    .requiredOption('--cert <file>', "the dealer's certificate (deepreduce pi keygen)")
    .requiredOption('--key <file>', "the dealer's private key")
    .option('--server-cert <file>', "the server's certificate: only a party presenting it may take the server role")
    .option(
      '--server-pin <sha256>',
      "the SHA-256 fingerprint of the server's certificate (instead of or with --server-cert)",
    )
    .option(
      '--pair-timeout <s>',
      'seconds a party waits for its counterpart of the same session',
      seconds('--pair-timeout'),
      30,
    )
    .option(
      '--hello-timeout <s>',
      'seconds for a connection to send its hello (TLS handshake included)',
      seconds('--hello-timeout'),
      10,
    )
    .option(
      '--idle-timeout <s>',
      'seconds a party may stay silent while the dealer waits',
      seconds('--idle-timeout'),
      60,
    )
    .option(
      '--session-timeout <s>',
      "seconds for a whole session (the client's offline phase)",
      seconds('--session-timeout'),
      600,
    )
    .option(
      '--max-sessions <n>',
      'sessions waiting or running at once; more are refused (BUSY)',
      posInt('--max-sessions'),
      16,
    )
    .option('--json', 'one JSON line per session')
    .action(
      async (
        o: ModelOpts &
          TlsFlags & {
            port: number;
            host: string;
            serverCert?: string;
            serverPin?: string;
            pairTimeout: number;
            helloTimeout: number;
            idleTimeout: number;
            sessionTimeout: number;
            maxSessions: number;
            json?: boolean;
          },
      ) => {
        const own = ownIdentity(o, 'the dealer')!;
        const server = trust(o.serverCert, o.serverPin, '--server-cert', '--server-pin');
        if (!server)
          throw new Error(
            'give --server-cert FILE or --server-pin SHA256: the dealer must know which party is the server',
          );
        const model = serverModel(o);
        const dealer = new Dealer(model, {
          pairTimeoutMs: o.pairTimeout * 1e3,
          helloMs: o.helloTimeout * 1e3,
          idleMs: o.idleTimeout * 1e3,
          sessionMs: o.sessionTimeout * 1e3,
          maxSessions: o.maxSessions,
          onSession: (i) =>
            out(
              o.json
                ? `${JSON.stringify(i)}\n`
                : `[pi dealer] session ${i.session}: ${i.layers} layers, ${i.ms.toFixed(0)} ms, ${((i.toServer + i.toClient + i.fromClient) / 1e6).toFixed(1)} MB, peak buffered ${(i.peakBufferedIn / 1e6).toFixed(1)} MB in / ${(i.peakBufferedOut / 1e6).toFixed(1)} MB out\n`,
            ),
          onError: (e, ch) => process.stderr.write(`[pi dealer] ${ch.name}: ${e.message}\n`),
        });
        const l = await dealer.listen({
          port: o.port,
          host: o.host,
          tls: {
            ...own,
            clientAuth: { ...(server.ca ? { ca: server.ca } : {}), ...(server.pin ? { pins: [server.pin] } : {}) },
          },
          onRefused: (why) => process.stderr.write(`[pi dealer] refused a connection: ${why}\n`),
        });
        process.stderr.write(
          `[pi dealer] dealing for ${model.plan.arch} (plan ${model.plan.digest}) on ${o.host}:${l.port} over TLS\n`,
        );
        const stop = () => {
          void l.close().then(() => {
            model.dispose();
            process.exit(0);
          });
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      },
    );

  workerOptions(
    dealerOptions(
      deadlineOptions(
        modelOptions(
          pi.command('serve').description('serve private inference for a model (clients concurrently, over TLS)'),
        ),
      ),
    ),
  )
    .requiredOption('--port <n>', 'TCP port (0: any free port, printed)', nonNegInt('--port'))
    .option(
      '--host <h>',
      'listen address (exposing the server beyond this machine takes an explicit address)',
      '127.0.0.1',
    )
    .option('--cert <file>', "the server's certificate (deepreduce pi keygen)")
    .option('--key <file>', "the server's private key")
    .option('--insecure', 'plain TCP to clients, no TLS (loud warning; benchmarks and debugging only)')
    .option(
      '--preprocess <name>',
      `offline correlations: ${PREPROCESSORS.join(', ')} (he: client and server only, docs/pi-he.md; dealer: trusted third party, docs/pi.md)`,
      DEFAULT_PREPROCESS,
    )
    .option(
      '--relu <name>',
      `accept only this ReLU protocol (${RELU_PROTOCOLS.join(', ')}; default: whichever the client asks for)`,
      reluOption,
    )
    .option(
      '--link <profile>',
      'shape what the server receives as over lan, wan, none or BANDWIDTH,RTT (e.g. 3gbit,0.3ms); the client shapes the other direction with its own --link',
      linkOption,
      null,
    )
    .option('--batch <n>', 'ReLUs per batch (one garbled-tables message / one chunk of OT matrices)', posInt('--batch'))
    .option('--offline <mode>', `${OFFLINE_HELP}; the server decides [the client's choice, else all]`, offlineOption)
    .option('--offline-budget <bytes>', 'the same as --offline BYTES', offlineOption)
    .option(
      '--max-sessions <n>',
      `sessions at once past the hello; more are refused (BUSY) [${DEFAULT_MAX_SESSIONS}]`,
      posInt('--max-sessions'),
    )
    .option(
      '--max-pending <n>',
      `connections still before their hello; more are closed at once [${DEFAULT_MAX_PENDING}]`,
      posInt('--max-pending'),
    )
    .option(
      '--max-per-address <n>',
      `connections (TCP/TLS, and WebSocket) from one address at once; more are closed at once [${DEFAULT_MAX_PER_ADDRESS}]`,
      posInt('--max-per-address'),
    )
    .option(
      '--max-connect-rate <n>',
      `new connections per second from one address (bursts of twice that), checked before the TLS handshake on both listeners; 0: no limit [${DEFAULT_CONNECT_RATE}]`,
      numberArg('--max-connect-rate', (n) => n >= 0 && Number.isFinite(n), 'a number >= 0'),
    )
    .option(
      '--max-sessions-per-address <n>',
      'sessions past the hello from one address at once; more are refused (BUSY); below --max-sessions on an open network, so that one address cannot hold every slot [--max-sessions]',
      posInt('--max-sessions-per-address'),
    )
    .option(
      '--setup-idle-timeout <s>',
      `seconds a client may stay silent in the setup phase (a hello-only client frees its slot) [${DEFAULT_DEADLINES.setupIdleMs / 1e3}]`,
      seconds('--setup-idle-timeout'),
    )
    .option(
      '--online-idle-timeout <s>',
      `seconds a client may stay silent in the online phase [${DEFAULT_DEADLINES.onlineIdleMs / 1e3}]`,
      seconds('--online-idle-timeout'),
    )
    .option(
      '--client-budget <n>',
      'sessions one client (its verified certificate, else its address) may start in all; more are refused (AUTH)',
      posInt('--client-budget'),
    )
    .option(
      '--client-rate <n>',
      'sessions one client may start per minute; more are refused (BUSY, with the wait)',
      posInt('--client-rate'),
    )
    .option(
      '--report-timings',
      "send a client that asks for them the server's per-op timings and memory peaks in its report (default: bytes and rounds only)",
    )
    .option(
      '--metrics-port <n>',
      'serve Prometheus metrics (/metrics) and a health check (/healthz) over plain HTTP on this port (0: any free port, printed)',
      nonNegInt('--metrics-port'),
    )
    .option('--metrics-host <h>', 'listen address of --metrics-port', '127.0.0.1')
    .option(
      '--drain-timeout <s>',
      'on SIGTERM/SIGINT: seconds to let live sessions finish (new ones are refused) before exiting',
      seconds('--drain-timeout'),
      30,
    )
    .option(
      '--audit-log <file>',
      'append one JSON line per session (client identity, address, outcome, phase reached, duration, bytes) to FILE',
    )
    .option(
      '--json',
      'one JSON line per session on stdout, every outcome (the audit line, with per-phase times and memory for finished sessions)',
    )
    .option(
      '--web',
      'also serve the browser client: the page, a gallery and a WSS endpoint over HTTPS with the server certificate (docs/pi-web.md)',
    )
    .option('--web-port <n>', 'HTTPS port of --web (0: any free port, printed)', nonNegInt('--web-port'), 0)
    .option(
      '--gallery <n>',
      "test images the page offers (from the model's dataset or --gallery-dataset)",
      nonNegInt('--gallery'),
      12,
    )
    .option('--gallery-dataset <name>', "dataset of the gallery images (default: the model's)")
    .option('--data <dir>', 'dataset folder for the gallery')
    .option(
      '--origin <url...>',
      "more origins allowed to open sessions from a page (default: the server's own https origins)",
    )
    .action(
      async (
        o: ModelOpts &
          TlsFlags &
          DealerFlags &
          DeadlineFlags &
          WebFlags &
          ServeFlags & {
            port: number;
            host: string;
            preprocess: string;
            relu?: string;
            link: LinkProfile | null;
            batch?: number;
            offline?: OfflineMode;
            offlineBudget?: OfflineMode;
            maxSessions?: number;
            maxPending?: number;
            json?: boolean;
            workerThreads: number;
          },
      ) => {
        const own = ownIdentity(o, 'the server');
        if (!own && !o.insecure)
          throw new Error(
            'give --cert FILE --key FILE (deepreduce pi keygen --out DIR makes them), or --insecure for plain TCP',
          );
        const security: ServerSecurity = o.insecure ? { insecure: true } : { tls: own! };
        const dealer = dealerLink(o, own, 'server', o.preprocess);
        if (o.insecure) warnInsecure('serve');
        const model = serverModel(o);
        for (const w of model.warnings) process.stderr.write(`[pi] warning: ${w}\n`);
        const mode = o.insecure ? 'INSECURE plain TCP' : 'TLS';
        if (o.web && !own)
          throw new Error(
            '--web needs --cert FILE --key FILE: browsers reach the page and its WebSocket over HTTPS only',
          );
        const workers = workerPool(o.workerThreads);
        const metrics = new ServeMetrics();
        const dls: Partial<Deadlines> = {
          ...deadlines(o),
          ...(o.setupIdleTimeout ? { setupIdleMs: Math.round(o.setupIdleTimeout * 1e3) } : {}),
          ...(o.onlineIdleTimeout ? { onlineIdleMs: Math.round(o.onlineIdleTimeout * 1e3) } : {}),
        };
        const onEnd = (e: SessionEnd) => {
          metrics.session(e);
          const line = JSON.stringify({ time: new Date().toISOString(), link: mode, ...e, peakRssBytes: peakRss() });
          if (o.auditLog) appendFileSync(o.auditLog, `${line}\n`);
          if (o.json) out(`${line}\n`);
        };
        const pool = new SessionPool(model, {
          ...(workers ? { workers } : {}),
          preprocess: o.preprocess,
          batch: o.batch,
          ...(o.offline || o.offlineBudget ? { offline: (o.offlineBudget ?? o.offline)! } : {}),
          ...(dealer ? { dealer } : {}),
          deadlines: dls,
          maxSessions: o.maxSessions,
          ...(o.maxSessionsPerAddress ? { maxSessionsPerAddress: o.maxSessionsPerAddress } : {}),
          ...(o.clientBudget || o.clientRate
            ? {
                budget: {
                  ...(o.clientBudget ? { queries: o.clientBudget } : {}),
                  ...(o.clientRate ? { perMinute: o.clientRate } : {}),
                },
              }
            : {}),
          reportTimings: !!o.reportTimings,
          ...(o.relu ? { relu: o.relu } : {}),
          link: o.link,
          onEnd,
          onSession: (r, ch) => {
            if (o.json) return; // the onEnd line carries it
            const t = r.phases,
              m = r.memory;
            out(
              `[pi] ${ch.name} (${mode}): offline ${t.offline.ms.toFixed(0)} ms, online ${t.online.ms.toFixed(0)} ms, sent ${((t.offline.bytesSent + t.online.bytesSent) / 1e6).toFixed(1)} MB; ` +
                `memory: ${(m.peakHeldBytes / 1e6).toFixed(1)} MB of protocol state at peak (${m.peakHeldIn}), buffered ${(m.peakBufferedIn / 1e6).toFixed(1)} MB in / ${(m.peakBufferedOut / 1e6).toFixed(1)} MB out at peak\n`,
            );
          },
        });
        const onError = (e: Error, ch: Channel) =>
          process.stderr.write(`[pi] ${ch.name}: session failed: ${e.message}\n`);
        const refusals = new RefusalLog((line) => process.stderr.write(`[pi] ${line}\n`));
        const onRefused = (why: string) => {
          metrics.refusedConnection(why);
          refusals.add(why);
        };
        // What the TLS/TCP listener and the --web one share: connection limits (one connect budget per address
        // across both) and reporting.
        const listener = {
          maxPending: o.maxPending,
          ...(o.maxPerAddress ? { maxPerAddress: o.maxPerAddress } : {}),
          connectRate: new ConnectRate(o.maxConnectRate ?? DEFAULT_CONNECT_RATE),
          onError,
          onRefused,
        };
        const l = await servePi(model, { port: o.port, host: o.host, security, pool, ...listener });
        process.stderr.write(
          `[pi] serving ${model.plan.arch} (${model.plan.relus.toLocaleString('en-US')} ReLUs, plan ${model.plan.digest}) on ${o.host}:${l.port} over ${mode}; ` +
            `preprocessing ${o.preprocess}; ReLU protocol ${o.relu ?? RELU_PROTOCOLS.join(' or ')}; link: ${describeLink(o.link)}; worker threads: ${o.workerThreads}\n`,
        );
        let web: WebServer | null = null;
        if (o.web) {
          const ds = o.galleryDataset ?? model.plan.input.dataset;
          if (o.gallery > 0 && !ds)
            process.stderr.write('[pi] no gallery: the model names no dataset (give --gallery-dataset NAME)\n');
          const gallery = o.gallery > 0 && ds ? datasetGallery(ds, o.gallery, o.data) : [];
          web = await serveWeb({
            port: o.webPort,
            host: o.host,
            tls: own!,
            pool,
            preprocess: o.preprocess,
            relu: o.relu ?? WEB_RELU,
            gallery,
            ...(o.origin ? { origins: o.origin } : {}),
            ...listener,
          });
          process.stderr.write(
            `[pi] browser client on ${web.url} (WSS ${web.url.replace(/^https/, 'wss')}pi; ${gallery.length} gallery images)\n`,
          );
          process.stderr.write(
            `[pi] page index.html ${web.integrity.index} (its scripts and styles carry SRI hashes; ${web.url}integrity.json lists them)\n`,
          );
        }
        let ms: MetricsServer | null = null;
        if (o.metricsPort !== undefined) {
          ms = await serveMetrics({
            port: o.metricsPort,
            host: o.metricsHost,
            metrics,
            pool,
            connections: () => l.connections + (web?.connections ?? 0),
          });
          process.stderr.write(`[pi] metrics on http://${o.metricsHost}:${ms.port}/metrics, health on /healthz\n`);
        }
        // Drain: no new connections, new sessions refused (BUSY), live sessions finish within --drain-timeout; then exit.
        let stopping = false;
        const stop = (sig: string) => {
          if (stopping) return;
          stopping = true;
          process.stderr.write(
            `[pi] ${sig}: draining ${pool.admitted} live session(s) (at most ${o.drainTimeout} s)\n`,
          );
          l.server.close();
          web?.server.close();
          void pool.drain(o.drainTimeout * 1e3).then(async (done) => {
            if (!done)
              process.stderr.write(
                `[pi] drain deadline passed with ${pool.admitted} session(s) still running; closing them\n`,
              );
            await Promise.race([
              Promise.all([web?.close(), workers?.close(), ms?.close()]),
              new Promise((r) => setTimeout(r, 2000)),
            ]);
            model.dispose();
            process.exit(0);
          });
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      },
    );

  dealerOptions(
    deadlineOptions(
      pi
        .command('query')
        .description('query a pi server privately with one image; prints the logits and the predicted class')
        .requiredOption('--connect <host:port>', 'server address', parseHostPort('--connect'))
        .option('--server-cert <file>', "the server's certificate (or a CA certificate) to verify it against")
        .option('--pin <sha256>', "the SHA-256 fingerprint of the server's certificate")
        .option('--insecure', 'plain TCP, no TLS (loud warning; the server must run --insecure too)')
        .option('--input <file>', 'image: .json array / raw float32 .bin of the preprocessed CHW values, or a .png')
        .option(
          '--random-input <seed>',
          'a random N(0,1) image of the model input size (benchmarks)',
          nonNegInt('--random-input'),
        )
        .option('--offline <mode>', `${OFFLINE_HELP}; the client asks, the server decides`, offlineOption)
        .option('--dataset <name>', "take the image from this dataset's test split")
        .option('--index <i>', 'test image index', nonNegInt('--index'), 0)
        .option('--data <dir>', 'dataset folder')
        .option(
          '--preprocess <name>',
          `offline correlations: ${PREPROCESSORS.join(', ')} (must match the server)`,
          DEFAULT_PREPROCESS,
        )
        .option('--relu <name>', `ReLU protocol: ${RELU_PROTOCOLS.join(', ')}`, reluOption, DEFAULT_RELU)
        .option(
          '--link <profile>',
          'shape what the client receives as over lan, wan, none or BANDWIDTH,RTT (the server shapes the other direction with its own --link)',
          linkOption,
          null,
        )
        .option(
          '--retries <n>',
          `tries in all while the server answers BUSY (it suggests when; exponential backoff with jitter, each wait at most 30 s) [${DEFAULT_RETRY.attempts}]`,
          posInt('--retries'),
          DEFAULT_RETRY.attempts,
        )
        .option(
          '--timings',
          "ask for the server's per-op timings in its report (a server gives them only with --report-timings)",
        )
        .option('--json', 'print JSON (logits, per-op costs)'),
    ),
  ).action(
    async (
      o: DealerFlags &
        DeadlineFlags & {
          connect: { host: string; port: number };
          serverCert?: string;
          pin?: string;
          insecure?: boolean;
          input?: string;
          randomInput?: number;
          offline?: OfflineMode;
          dataset?: string;
          index: number;
          data?: string;
          preprocess: string;
          relu: string;
          link: LinkProfile | null;
          retries: number;
          timings?: boolean;
          json?: boolean;
        },
    ) => {
      if ([o.input, o.dataset, o.randomInput].filter((v) => v !== undefined).length !== 1)
        throw new Error('give exactly one of --input FILE, --dataset NAME and --random-input SEED');
      const t = trust(o.serverCert, o.pin, '--server-cert', '--pin');
      if (t && o.insecure) throw new Error('--insecure with --server-cert/--pin: choose one');
      if (!t && !o.insecure)
        throw new Error(
          "refusing to connect without a way to verify the server: give --server-cert FILE or --pin SHA256 (the server's keygen prints both), or --insecure for plain TCP",
        );
      const security: ClientSecurity = t ? { tls: t } : { insecure: true };
      const dealer = dealerLink(o, null, 'client', o.preprocess);
      if (o.insecure) warnInsecure('query');
      let label: number | undefined;
      const ds = o.dataset ? testSplit(o.dataset, o.data) : undefined;
      if (ds && !(o.index < ds.n)) throw new Error(`--index ${o.index}: ${o.dataset}'s test split has ${ds.n} images`);
      const image = (plan: PublicPlan) => {
        if (o.randomInput !== undefined) return randomImage(plan, o.randomInput);
        if (o.input) return fileImage(plan, o.input);
        const d = datasetImage(plan, o.dataset!, o.index, o.data, ds);
        label = d.label;
        return d.x;
      };
      const dl = deadlines(o);
      const r = await retryBusy(
        async () => {
          const ch = shapeChannel(
            await connectChannel(o.connect.host, o.connect.port, security, {
              timeoutMs: dl.helloMs ?? DEFAULT_DEADLINES.helloMs,
            }),
            o.link,
          );
          try {
            return await runClient(ch, image, {
              preprocess: o.preprocess,
              relu: o.relu,
              ...(dealer ? { dealer } : {}),
              deadlines: dl,
              ...(o.timings ? { timings: true } : {}),
              ...(o.offline ? { offline: o.offline } : {}),
            });
          } finally {
            ch.close();
          }
        },
        {
          attempts: o.retries,
          onRetry: (_e, k, wait) =>
            process.stderr.write(
              `[pi query] the server is busy (try ${k} of ${o.retries}); trying again in ${(wait / 1e3).toFixed(1)} s\n`,
            ),
        },
      );
      const rep = piReport(r, {
          relu: o.relu,
          link: o.link,
          preprocess: o.preprocess,
          transport: o.insecure ? 'tcp' : 'tls',
          ...(o.offline ? { offline: offlineText(o.offline) } : {}),
        }),
        cls = argmax(r.logits);
      rep.memory.rss.client = peakRss();
      const names = r.plan.input.classNames;
      if (o.json)
        out(`${JSON.stringify({ predicted: cls, ...(label !== undefined ? { label } : {}), ...rep }, null, 2)}\n`);
      else {
        out(formatPiReport(rep));
        out(
          `logits: ${Array.from(r.logits, (v) => v.toFixed(4)).join(' ')}\npredicted: ${cls}${names?.[cls] ? ` (${names[cls]})` : ''}${label !== undefined ? `, label ${label}` : ''}\n`,
        );
      }
    },
  );

  workerOptions(
    modelOptions(
      pi
        .command('bench')
        .description(
          'client and server on this machine over loopback TLS (or --insecure TCP; a dealer in process for --preprocess dealer): per-op and per-phase time, bytes, rounds, per ReLU protocol and link profile',
        ),
    ),
  )
    .option('--preprocess <name>', `offline correlations: ${PREPROCESSORS.join(', ')}`, DEFAULT_PREPROCESS)
    .option('--dataset <name>', 'query with a test image of this dataset (default: a random N(0,1) image)')
    .option('--index <i>', 'test image index', nonNegInt('--index'), 0)
    .option('--data <dir>', 'dataset folder')
    .option('--batch <n>', 'ReLUs per batch (one garbled-tables message / one chunk of OT matrices)', posInt('--batch'))
    .option('--relu <list>', `ReLU protocols to run, side by side: ${RELU_PROTOCOLS.join(',')}`, listOf(reluOption), [
      DEFAULT_RELU,
    ])
    .option(
      '--link <list>',
      'link profiles to run under (both directions shaped): lan, wan, none, BANDWIDTH,RTT',
      linkList,
      [null],
    )
    .option('--insecure', 'plain TCP instead of TLS between client and server')
    .option('--offline <list>', `${OFFLINE_HELP}; a list runs each side by side`, listOf(offlineOption), [
      { mode: 'all' },
    ])
    .option(
      '--processes',
      "each party in its own process (pi serve / pi query), one fresh pair per run, so that each party's peak RSS is its own (default: both in this process, one RSS for both)",
    )
    .option(
      '--calibrate <file>',
      'write the cost model measured here (per-MAC, per-layer, per-ReLU costs of each protocol; needs --link none) for deepreduce reduce',
    )
    .option('--json', 'print JSON (one report per protocol and link)')
    .action(
      async (
        o: ModelOpts & {
          preprocess: string;
          dataset?: string;
          index: number;
          data?: string;
          batch?: number;
          relu: string[];
          link: (LinkProfile | null)[];
          insecure?: boolean;
          calibrate?: string;
          json?: boolean;
          workerThreads: number;
          offline: OfflineMode[];
          processes?: boolean;
        },
      ) => {
        if (o.processes && o.dataset) throw new Error('--processes queries a random image; drop --dataset');
        if (o.processes && o.preprocess === 'dealer')
          throw new Error('--processes runs two parties; not with --preprocess dealer');
        const model = o.processes ? null : serverModel(o);
        const workers = o.processes ? null : workerPool(o.workerThreads);
        try {
          const reps: PiReport[] = [];
          for (const link of o.link) {
            for (const relu of o.relu) {
              for (const offline of o.offline) {
                const rep = model
                  ? await benchOnce(model, { ...o, relu, link, offline, ...(workers ? { workers } : {}) })
                  : await benchProcesses({
                      modelArgs: modelArgs(o),
                      preprocess: o.preprocess,
                      relu,
                      link: link?.name ?? null,
                      offline: offlineText(offline),
                      insecure: !!o.insecure,
                      ...(o.batch ? { batch: o.batch } : {}),
                      workerThreads: o.workerThreads,
                      seed: o.seed,
                    });
                reps.push(rep);
                if (!o.json) out(formatPiReport(rep));
              }
            }
          }
          if (o.calibrate) writeFileAtomic(o.calibrate, `${JSON.stringify(calibrate(reps), null, 2)}\n`);
          if (o.json) out(`${JSON.stringify(reps.length === 1 ? reps[0] : reps, null, 2)}\n`);
          else if (reps.length > 1) out(formatComparison(reps));
        } finally {
          await workers?.close();
          model?.dispose();
        }
      },
    );
  return pi;
}

let benchIdentity: Promise<TlsIdentity> | null = null;

/**
 * One query against an in-process server on 127.0.0.1 over TLS (or plain TCP with `insecure`; both parties in this
 * process, one thread); for `--preprocess dealer` an in-process dealer (channel pairs to each party; its traffic is
 * reported as preprocessing bytes).
 */
export async function benchOnce(
  model: ServerModel,
  o: {
    preprocess?: string;
    dataset?: string;
    index?: number;
    data?: string;
    batch?: number;
    seed?: number;
    insecure?: boolean;
    relu?: string;
    link?: LinkProfile | null;
    workers?: ServerWorkers;
    offline?: OfflineMode;
  },
): Promise<PiReport> {
  const errors: Error[] = [];
  const preprocess = o.preprocess ?? DEFAULT_PREPROCESS,
    relu = o.relu ?? DEFAULT_RELU,
    link = o.link ?? null;
  const dealer = preprocess === 'dealer' ? new Dealer(model, { onError: (e) => errors.push(e) }) : null;
  let security: ServerSecurity = { insecure: true },
    client: ClientSecurity = { insecure: true };
  if (!o.insecure) {
    const id = await (benchIdentity ??= generateIdentity());
    security = { tls: { cert: id.cert, key: id.key } };
    client = { tls: { pin: id.fingerprint } };
  }
  // The benchmark measures the server too: its report carries its timings (reportTimings; the client asks).
  const l = await servePi(model, {
    port: 0,
    host: '127.0.0.1',
    security,
    batch: o.batch,
    preprocess,
    relu,
    link,
    reportTimings: true,
    ...(o.offline ? { offline: o.offline } : {}),
    ...(o.workers ? { workers: o.workers } : {}),
    ...(dealer ? { dealer: dealer.link() } : {}),
    onError: (e) => errors.push(e),
  });
  try {
    const image = (plan: PublicPlan) =>
      o.dataset ? datasetImage(plan, o.dataset, o.index ?? 0, o.data).x : randomImage(plan, o.seed ?? 0);
    const ch = shapeChannel(await connectChannel('127.0.0.1', l.port, client), link);
    const r = await runClient(ch, image, {
      preprocess,
      relu,
      timings: true,
      ...(dealer ? { dealer: dealer.link() } : {}),
      ...(o.offline ? { offline: o.offline } : {}),
    });
    ch.close();
    if (errors.length) throw errors[0]!;
    const rep = piReport(r, {
      relu,
      link,
      preprocess,
      transport: o.insecure ? 'tcp' : 'tls',
      ...(o.offline ? { offline: offlineText(o.offline) } : {}),
    });
    rep.memory.rss.both = peakRss();
    return rep;
  } finally {
    await l.close();
  }
}
