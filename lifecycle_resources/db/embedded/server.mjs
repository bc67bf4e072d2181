// Embedded TimescaleDB: PGlite (PostgreSQL 17 in WASM) with the TimescaleDB extension,
// served on the PostgreSQL wire protocol by @electric-sql/pglite-socket.
//
//   node server.mjs --data DIR_OR_memory:// --port N --host 127.0.0.1 --password-file FILE
//
// Clients authenticate as user `postgres` with the password in FILE (SCRAM-SHA-256, see
// auth.mjs); an SSLRequest is answered 'N' (no TLS) as by a PostgreSQL built without SSL.
//
// Prints exactly one line "READY port=<port>" on stdout once it accepts connections.
// SIGTERM/SIGINT: stop listening, close the database (flushes a file data dir), exit 0.
// Exit 2 when the port is taken, 1 on any other start-up failure, 3 when the database engine
// crashed (WebAssembly trap) while serving.
//
// Clients are served one at a time (PGlite is a single backend). Patches to the stock
// pglite-socket 0.0.19 handler (PGLiteSocketHandler.prototype):
//  - handleClose/handleError reset the session on every disconnect, as a PostgreSQL backend
//    does when its client goes away (the stock handler left an open transaction, prepared
//    statements and session settings to the next client);
//  - handleError no longer rejects an unawaited promise (which killed the process on a
//    client's ECONNRESET) and lets queued clients in;
//  - handleData frames the byte stream so that PGlite only ever sees whole messages
//    (the stock handler crashed PGlite on any message split across TCP reads), and turns
//    COPY ... FROM STDIN, which crashes PGlite, into a clean SQL error.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { timescaledb } from '@electric-sql/pglite/timescaledb';
import { PGLiteSocketHandler, PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { MAX_AUTH_MESSAGE, ScramExchange, fatal, scramVerifier } from './auth.mjs';

const QUEUE_TIMEOUT_MS = 300_000;

function log(msg) {
  process.stderr.write(`[embedded-timescaledb] ${new Date().toISOString()} ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Wire messages (frontend -> backend) used to reset the session of a departed client.

function message(type, body) {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return new Uint8Array(out);
}
const cstring = (s) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
const syncMessage = () => message('S', Buffer.alloc(0));
const queryMessage = (sql) => message('Q', cstring(sql));

// Order matters:
//  1. Query ROLLBACK: aborts an implicit extended-protocol transaction whose Sync never came
//     (a Sync first would COMMIT it; a real backend rolls it back when the client dies).
//  2. Sync: leaves the "ignore until Sync" state after an extended-protocol error
//     (step 1 is ignored in that state).
//  3. Query ROLLBACK: aborts an explicit BEGIN block (a warning only when there is none).
//  4. Query DISCARD ALL: drops prepared statements (psycopg's _pg3_N names would collide for
//     the next client), portals, temp tables, advisory locks, LISTENs, and resets settings.
//  5. Query restoring the settings PGlite itself made at session level during start-up.
//     PGlite boots its backend with `-c search_path=pg_catalog` and then runs
//     `SET search_path TO public`, so RESET ALL alone would leave the next client with
//     search_path = pg_catalog.
function resetSequence(restoreSql) {
  const steps = [
    ['ROLLBACK', queryMessage('ROLLBACK')],
    ['Sync', syncMessage()],
    ['ROLLBACK', queryMessage('ROLLBACK')],
    ['DISCARD ALL', queryMessage('DISCARD ALL')],
  ];
  if (restoreSql) steps.push(['restore settings', queryMessage(restoreSql)]);
  return steps;
}
let RESET_SEQUENCE = resetSequence(null);
let shuttingDown = false; // db.close() may run between two reset steps

// Settings the first client sees that RESET ALL would not give back (source = 'session').
async function captureSessionSettings(db) {
  const res = await db.query(
    "SELECT name, setting FROM pg_settings WHERE source = 'session' ORDER BY name",
  );
  if (res.rows.length === 0) return null;
  const quote = (v) => `'${String(v).replaceAll("'", "''")}'`;
  const calls = res.rows.map((r) => `set_config(${quote(r.name)}, ${quote(r.setting)}, false)`);
  return { sql: `SELECT ${calls.join(', ')}`, names: res.rows.map((r) => `${r.name}=${r.setting}`) };
}

// TimescaleDB's versioned library defers loading its TSL module (compression, policies, jobs)
// out of its _PG_init until `ts_post_load_init`, which its loader library (timescaledb.so) calls.
// A PostgreSQL server preloads that loader (shared_preload_libraries); PGlite preloads nothing.
// The first boot got away with it because CREATE EXTENSION enables the module while it installs
// the extension. On a later boot, over an existing data directory, the versioned library is only
// pulled in by the first call of one of its functions: timescaledb.license is undefined until
// then, and afterwards reads "timescale" with the TSL module never loaded, so compression and
// policy calls fail with 'not supported under the current "timescale" license'. Loading the
// loader first, as the postmaster would, gives every boot what a PostgreSQL server start gives.
async function loadTimescaleDB(db) {
  await db.exec("LOAD 'timescaledb'");
  await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb');
  const res = await db.query(
    "SELECT _timescaledb_functions.tsl_loaded() AS tsl, current_setting('timescaledb.license', true) AS license",
  );
  const { tsl, license } = res.rows[0] ?? {};
  if (tsl !== true || license !== 'timescale') {
    throw new Error(`TimescaleDB loaded without its TSL module (tsl_loaded=${tsl}, license=${license})`);
  }
}

// A WebAssembly trap (RuntimeError: unreachable; seen on COPY ... FROM STDIN and on messages
// split across TCP reads, both now prevented below) leaves PGlite unusable: every later call
// traps too. Exit so that the owner sees the server gone instead of a listener that drops
// every connection.
function exitIfCrashed(err) {
  const crashed =
    err instanceof WebAssembly.RuntimeError ||
    err?.name === 'RuntimeError' ||
    err?.name === 'ExitStatus';
  if (!crashed) return;
  log(`fatal: the database engine crashed (${err?.message ?? err}); exiting`);
  process.exit(3);
}

// Runs while the handler still holds PGlite's exclusive lock, so it must talk to the backend
// with execProtocolRaw (db.exec/db.query would wait for the lock we hold: deadlock).
async function resetSession(db, handlerId) {
  for (const [name, bytes] of RESET_SEQUENCE) {
    if (shuttingDown || db.closed) return;
    try {
      await db.execProtocolRaw(bytes);
    } catch (err) {
      exitIfCrashed(err);
      log(`client #${handlerId}: session reset step ${name} failed: ${err?.message ?? err}`);
    }
  }
  if (process.env.LIFECYCLE_EMBEDDED_DEBUG) log(`client #${handlerId}: session reset`);
}

// Reset the session, let the server hand the backend to the next queued client, then release
// the lock (detach). Runs once per handler, whichever of error/close comes first.
function finishClient(handler, closeSocket, error) {
  if (handler._lifecycleFinishing) return handler._lifecycleFinishing;
  handler._lifecycleFinishing = (async () => {
    if (error !== undefined) {
      handler.dispatchEvent(new CustomEvent('error', { detail: error }));
    }
    if (handler.socket && handler._lifecycleSession) {
      // Still attached (we hold the exclusive lock) and the client reached PGlite.
      await resetSession(handler.db, handler.handlerId);
    }
    // The server listens for 'close' to attach the next queued connection. The stock
    // handleError never sends it, which left queued clients waiting for the queue timeout.
    handler.dispatchEvent(new CustomEvent('close'));
    // Resolve (never reject) the lock: the stock handleError rejected it, and nothing awaits
    // that promise, so the rejection was unhandled and killed the process.
    handler.rejectLock = undefined;
    handler.detach(closeSocket);
  })().catch((err) => {
    log(`client #${handler.handlerId}: error while finishing: ${err?.stack ?? err}`);
    try {
      handler.detach(true);
    } catch {
      /* already detached */
    }
  });
  return handler._lifecycleFinishing;
}

// The stock handler passes every TCP chunk to execProtocolRaw as it arrives. A message larger
// than one chunk (a query over ~64 KB) then reaches PGlite in pieces, and PGlite traps
// ("RuntimeError: unreachable") and is dead for good. Frame the stream: hand over complete
// messages only, keeping a partial tail for the next chunk.

// COPY ... FROM STDIN traps PGlite (RuntimeError: unreachable), which kills the database for
// every client. Such statements are swapped for one that fails cleanly with SQLSTATE 0A000, so
// the client gets an ordinary error (and the usual aborted-transaction state) instead.
const COPY_FROM_STDIN = /(?:^|;)\s*copy\s[^;]*?\bfrom\s+stdin\b/i;
const COPY_REFUSAL =
  'DO $lifecycle$ BEGIN RAISE EXCEPTION ' +
  "'COPY ... FROM STDIN is not supported by the embedded TimescaleDB (it crashes PGlite)' " +
  "USING ERRCODE = 'feature_not_supported', " +
  "HINT = 'Use INSERT (for example executemany), or a real TimescaleDB.'; END $lifecycle$";

function refusedCopy(type, buf, start, end) {
  if (type === 0x51 /* Q */) {
    const sql = buf.toString('utf8', start + 5, end - 1);
    return COPY_FROM_STDIN.test(sql) ? Buffer.from(queryMessage(COPY_REFUSAL)) : null;
  }
  if (type === 0x50 /* P: name\0 query\0 int16 nparams, int32[] */) {
    const nameEnd = buf.indexOf(0, start + 5);
    const queryEnd = nameEnd < 0 ? -1 : buf.indexOf(0, nameEnd + 1);
    if (queryEnd < 0 || queryEnd >= end) return null;
    if (!COPY_FROM_STDIN.test(buf.toString('utf8', nameEnd + 1, queryEnd))) return null;
    const body = Buffer.concat([
      buf.subarray(start + 5, nameEnd + 1),
      cstring(COPY_REFUSAL),
      Buffer.from([0, 0]),
    ]);
    return Buffer.from(message('P', body));
  }
  return null;
}

function takeCompleteMessages(handler, chunk) {
  const buf = handler._lifecyclePending?.length
    ? Buffer.concat([handler._lifecyclePending, chunk])
    : Buffer.from(chunk);
  let end = 0;
  const swaps = [];
  for (;;) {
    if (buf.length - end < 5) break;
    const length = buf.readInt32BE(end + 1);
    const size = 1 + length;
    if (length < 4 || buf.length - end < size) break;
    const swap = refusedCopy(buf[end], buf, end, end + size);
    if (swap) swaps.push([end, end + size, swap]);
    end += size;
  }
  handler._lifecyclePending = end < buf.length ? buf.subarray(end) : null;
  if (end === 0) return null;
  if (swaps.length === 0) return buf.subarray(0, end);
  const parts = [];
  let pos = 0;
  for (const [from, to, swap] of swaps) {
    parts.push(buf.subarray(pos, from), swap);
    pos = to;
  }
  parts.push(buf.subarray(pos, end));
  return Buffer.concat(parts);
}

// Set in main() from --password-file: the SCRAM verifier of user `postgres`.
let VERIFIER = null;

// PGlite answers a StartupMessage with an MD5 password request and then accepts any password:
// the real check happened in ScramExchange, so it gets a placeholder one.
const PLACEHOLDER_PASSWORD = message('p', cstring('md5' + '0'.repeat(32)));
const AUTH_OK = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);

async function openBackendSession(handler, startup) {
  let reply = Buffer.from(await handler.db.execProtocolRaw(new Uint8Array(startup)));
  if (reply[0] === 0x52 && reply.readInt32BE(5) !== 0) {
    reply = Buffer.from(await handler.db.execProtocolRaw(PLACEHOLDER_PASSWORD));
  }
  if (reply.subarray(0, AUTH_OK.length).equals(AUTH_OK)) return reply;
  throw new Error(`unexpected start-up reply from PGlite: ${reply.subarray(0, 16).toString('hex')}`);
}

// Refused: send the error, then close for good (the server attaches the next client on 'close',
// which a client that ignores our FIN would otherwise never let happen).
function refuse(handler, reply) {
  const socket = handler.socket;
  if (!socket) return;
  socket.end(reply, () => socket.destroy());
  setTimeout(() => socket.destroy(), 5_000).unref();
}

// PostgreSQL's authentication_timeout: a client holds the single backend while it logs in, so one
// that connects and says nothing must not keep every other client waiting.
const AUTH_TIMEOUT_MS = Number(process.env.LIFECYCLE_EMBEDDED_AUTH_TIMEOUT_MS) || 60_000;
const stockAttach = PGLiteSocketHandler.prototype.attach;
PGLiteSocketHandler.prototype.attach = async function attach(socket) {
  const attached = await stockAttach.call(this, socket);
  const timer = setTimeout(() => {
    if (this.socket !== socket || this._lifecycleSession) return;
    log(`client #${this.handlerId}: no login within ${AUTH_TIMEOUT_MS} ms; disconnected`);
    refuse(this, fatal('08006', 'canceling authentication due to timeout'));
  }, AUTH_TIMEOUT_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  return attached;
};

// Runs the start-up and SCRAM exchange of a new client on the untyped/auth messages of the
// stream; returns the bytes that follow a successful authentication (to be served as usual),
// or null while the exchange is going on or when the client was refused.
async function authenticate(handler, chunk) {
  const auth = (handler._lifecycleAuth ??= new ScramExchange(VERIFIER));
  if (auth.state === 'failed') return null; // refused: whatever else it sends is ignored
  const buf = handler._lifecyclePending?.length ? Buffer.concat([handler._lifecyclePending, chunk]) : Buffer.from(chunk);
  let pos = 0;
  while (auth.state !== 'done') {
    const header = auth.typed ? 5 : 4;
    if (buf.length - pos < header) break;
    const length = buf.readInt32BE(pos + header - 4);
    if (length < 4 || length > MAX_AUTH_MESSAGE) {
      refuse(handler, fatal('08P01', 'invalid length of startup packet'));
      return null;
    }
    const size = header - 4 + length;
    if (buf.length - pos < size) break;
    const step = auth.receive(buf.subarray(pos, pos + size));
    pos += size;
    if (step.close) {
      refuse(handler, step.reply);
      return null;
    }
    if (step.startup) {
      // Authenticated: from here on the client talks to PGlite.
      const opened = await openBackendSession(handler, step.startup);
      handler.socket?.write(Buffer.concat([step.reply, opened]));
      handler._lifecycleSession = true;
    } else {
      handler.socket?.write(step.reply);
    }
  }
  handler._lifecyclePending = null;
  if (auth.state !== 'done') {
    handler._lifecyclePending = pos < buf.length ? buf.subarray(pos) : null;
    return null;
  }
  return pos < buf.length ? buf.subarray(pos) : null;
}

const stockHandleData = PGLiteSocketHandler.prototype.handleData;
PGLiteSocketHandler.prototype.handleData = async function handleData(data) {
  let chunk = data;
  if (!this._lifecycleSession) {
    if (!this.socket) return 0;
    try {
      chunk = await authenticate(this, data);
    } catch (err) {
      exitIfCrashed(err);
      log(`client #${this.handlerId}: start-up failed: ${err?.message ?? err}`);
      refuse(this, fatal('XX000', 'the embedded TimescaleDB could not open a session'));
      return 0;
    }
    if (chunk === null) return 0;
  }
  const complete = takeCompleteMessages(this, chunk);
  if (complete === null) return Promise.resolve(0); // wait for the rest of the message
  return stockHandleData.call(this, complete);
};

PGLiteSocketHandler.prototype.handleClose = function handleClose() {
  return finishClient(this, false);
};

PGLiteSocketHandler.prototype.handleError = function handleError(error) {
  exitIfCrashed(error);
  log(`client #${this.handlerId}: ${error?.message ?? error}`);
  return finishClient(this, true, error);
};

// ---------------------------------------------------------------------------------------------

function parseCli() {
  const { values } = parseArgs({
    options: {
      data: { type: 'string', default: 'memory://' },
      port: { type: 'string', default: '5433' },
      host: { type: 'string', default: '127.0.0.1' },
      'password-file': { type: 'string' },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    log(`invalid --port ${values.port}`);
    process.exit(1);
  }
  const passwordFile = values['password-file'];
  let password = '';
  try {
    password = passwordFile ? readFileSync(passwordFile, 'utf8').trim() : '';
  } catch (err) {
    log(`cannot read --password-file ${passwordFile}: ${err?.message ?? err}`);
    process.exit(1);
  }
  if (!password) {
    log('--password-file is required and must hold the password of user postgres');
    process.exit(1);
  }
  return { data: values.data, port, host: values.host, password };
}

function portTaken(port, host) {
  process.stderr.write(`error: port ${port} on ${host} is already in use\n`);
}

// Fail fast (before the seconds PGlite needs to boot) when the port is taken.
function probePort(port, host) {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

// Set as start-up progresses; shutdown() closes whatever exists.
let db = null;
let server = null;
let booting = true;
let shutdownRequested = null;

async function shutdown(signal) {
  if (booting) {
    // Still booting (e.g. initdb of a new data dir): finish that, then stop cleanly.
    shutdownRequested = signal;
    return;
  }
  if (shuttingDown) return;
  shuttingDown = true;
  log(`${signal}: stopping`);
  const hardStop = setTimeout(() => {
    log('shutdown took too long, exiting');
    process.exit(1);
  }, 20_000);
  hardStop.unref();
  if (server) {
    try {
      await server.stop();
    } catch (err) {
      log(`server.stop failed: ${err?.message ?? err}`);
    }
  }
  if (db) {
    try {
      await db.close(); // flushes a file data dir
    } catch (err) {
      log(`db.close failed: ${err?.message ?? err}`);
      process.exit(1);
    }
  }
  log('stopped');
  process.exit(0);
}

async function main() {
  const { data, port, host, password } = parseCli();
  VERIFIER = scramVerifier(password);
  const t0 = Date.now();
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  try {
    await probePort(port, host);
  } catch (err) {
    if (err?.code === 'EADDRINUSE') {
      portTaken(port, host);
      process.exit(2);
    }
    throw err;
  }

  process.on('unhandledRejection', (reason) => {
    log(`unhandled rejection (ignored): ${reason?.stack ?? reason}`);
  });

  db = await PGlite.create(data, { extensions: { timescaledb } });
  await loadTimescaleDB(db);
  const restore = await captureSessionSettings(db);
  RESET_SEQUENCE = resetSequence(restore?.sql ?? null);
  if (restore) log(`session settings restored after each client: ${restore.names.join(', ')}`);
  const version = await db.query(
    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
  );
  log(`database ready (${data}), timescaledb ${version.rows[0]?.extversion}, ${Date.now() - t0} ms`);

  booting = false;
  if (shutdownRequested) return shutdown(shutdownRequested); // signalled while booting

  server = new PGLiteSocketServer({
    db,
    port,
    host,
    connectionQueueTimeout: QUEUE_TIMEOUT_MS,
  });
  server.addEventListener('error', (e) => {
    const err = e.detail;
    if (err?.code === 'ECONNRESET' || err?.code === 'EPIPE') return; // a client went away
    log(`server error: ${err?.message ?? err}`);
  });
  // One line per queued client: tells a reader of the log (and the tests) who waited.
  server.addEventListener('queuedConnection', (e) => {
    log(`client ${e.detail.clientAddress}:${e.detail.clientPort} queued (queue size ${e.detail.queueSize})`);
  });
  server.addEventListener('queueTimeout', (e) => {
    log(`queued client ${e.detail.clientAddress}:${e.detail.clientPort} gave up after ${QUEUE_TIMEOUT_MS} ms`);
  });

  try {
    await server.start();
  } catch (err) {
    if (err?.code === 'EADDRINUSE') {
      portTaken(port, host);
      await db.close().catch(() => {});
      process.exit(2);
    }
    throw err;
  }

  if (shuttingDown) return; // a signal arrived while the listener was starting
  log(`listening on ${host}:${server.port}, ${Date.now() - t0} ms after start`);
  process.stdout.write(`READY port=${server.port}\n`);
}

main().catch((err) => {
  log(`failed to start: ${err?.stack ?? err}`);
  process.exit(1);
});
