// Password authentication for the embedded TimescaleDB: SCRAM-SHA-256 as PostgreSQL does it
// (RFC 5802 / RFC 7677, no channel binding), answered by this process before a client's
// StartupMessage reaches PGlite. PGlite itself accepts any user and any password.
//
// One user, `postgres`, with the password of the data directory. Anything else gets what
// PostgreSQL sends: FATAL 28P01 `password authentication failed for user "..."`, then the
// connection is closed. Unknown users go through the whole exchange with a mock salt, as
// PostgreSQL does, so that a client cannot tell a wrong user from a wrong password.

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const USER = 'postgres';
const MECHANISM = 'SCRAM-SHA-256';
const ITERATIONS = 4096; // PostgreSQL's scram_iterations default
const PROTOCOL_3 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
export const MAX_AUTH_MESSAGE = 16_384; // a StartupMessage or SASL message; PostgreSQL allows 10000

const hmac = (key, text) => createHmac('sha256', key).update(text).digest();
const sha256 = (bytes) => createHash('sha256').update(bytes).digest();

// The verifier PostgreSQL would store in pg_authid: computed once per server start.
export function scramVerifier(password) {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, ITERATIONS, 32, 'sha256');
  return {
    salt,
    iterations: ITERATIONS,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

// --- backend messages ------------------------------------------------------------------------

function backendMessage(type, body) {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
const int32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const authRequest = (code, data = Buffer.alloc(0)) =>
  backendMessage('R', Buffer.concat([int32(code), data]));

export function fatal(code, text) {
  const field = (tag, value) => Buffer.concat([Buffer.from(tag), Buffer.from(value, 'utf8'), Buffer.from([0])]);
  return backendMessage(
    'E',
    Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', code), field('M', text), Buffer.from([0])]),
  );
}

// --- startup parsing -------------------------------------------------------------------------

function startupParams(msg) {
  const params = {};
  const parts = msg.toString('utf8', 8, msg.length).split('\0');
  for (let i = 0; i + 1 < parts.length && parts[i] !== ''; i += 2) params[parts[i]] = parts[i + 1];
  return params;
}

// SCRAM attributes "a=value,b=value" (values may contain '=' but not ',').
function attributes(text) {
  const out = new Map();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0], part.slice(2));
  }
  return out;
}

// --- the exchange ----------------------------------------------------------------------------

/**
 * One client's authentication. Feed it whole messages with `receive(msg)`: untyped ones
 * (SSLRequest, StartupMessage) until `typed` is true, then typed ones. Each call returns
 *   { reply?: Buffer, close?: true, startup?: Buffer }
 * where `startup` (the client's StartupMessage) means: authenticated, hand it to PGlite.
 */
export class ScramExchange {
  constructor(verifier) {
    this.verifier = verifier;
    this.typed = false;
    this.state = 'startup';
    this.user = null;
    this.startup = null;
  }

  receive(msg) {
    try {
      return this.step(msg);
    } catch {
      return this.refuse('08P01', 'malformed SASL message');
    }
  }

  refuse(code, text) {
    this.state = 'failed';
    return { reply: fatal(code, text), close: true };
  }

  passwordFailed() {
    return this.refuse('28P01', `password authentication failed for user "${this.user}"`);
  }

  step(msg) {
    if (this.state === 'startup') return this.onStartup(msg);
    if (msg[0] !== 0x70 /* p */) {
      // A client that gives up (Terminate) or speaks out of turn.
      return msg[0] === 0x58 /* X */ ? { close: true } : this.refuse('08P01', 'expected a SASL response');
    }
    if (this.state === 'sasl-initial') return this.onInitial(msg);
    if (this.state === 'sasl-final') return this.onFinal(msg);
    return this.refuse('08P01', 'unexpected message during authentication');
  }

  onStartup(msg) {
    const code = msg.readInt32BE(4);
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) return { reply: Buffer.from('N') };
    if (code === CANCEL_REQUEST) return { close: true }; // statements cannot be cancelled here
    if (code >>> 16 !== 3) return this.refuse('0A000', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}`);
    if (code !== PROTOCOL_3) return this.refuse('0A000', `unsupported frontend protocol 3.${code & 0xffff}: the server supports 3.0`);
    const params = startupParams(msg);
    if (!params.user) return this.refuse('28000', 'no PostgreSQL user name specified in startup packet');
    this.user = params.user;
    this.startup = msg;
    this.typed = true;
    this.state = 'sasl-initial';
    return { reply: authRequest(10, Buffer.from(`${MECHANISM}\0\0`)) };
  }

  onInitial(msg) {
    const mechEnd = msg.indexOf(0, 5);
    const mechanism = msg.toString('utf8', 5, mechEnd);
    if (mechanism !== MECHANISM) return this.refuse('28000', `SASL authentication mechanism ${mechanism} is not supported`);
    const length = msg.readInt32BE(mechEnd + 1);
    const clientFirst = msg.toString('utf8', mechEnd + 5, mechEnd + 5 + Math.max(0, length));
    // gs2 header: "n,," or "y,," (no channel binding); "p=..." asks for the -PLUS variant we never offered.
    const match = /^([ny]),(a=[^,]*)?,(.*)$/s.exec(clientFirst);
    if (!match) return this.refuse('08P01', 'malformed SCRAM message (channel binding not supported)');
    this.gs2Header = clientFirst.slice(0, clientFirst.length - match[3].length);
    this.clientFirstBare = match[3];
    const clientNonce = attributes(this.clientFirstBare).get('r');
    if (!clientNonce) return this.refuse('08P01', 'malformed SCRAM message (no nonce)');
    this.nonce = clientNonce + randomBytes(18).toString('base64');
    // An unknown user still gets a salt, so that the answer does not reveal who exists.
    const salt = this.user === USER ? this.verifier.salt : sha256(Buffer.from(`mock:${this.user}`)).subarray(0, 16);
    this.serverFirst = `r=${this.nonce},s=${salt.toString('base64')},i=${this.verifier.iterations}`;
    this.state = 'sasl-final';
    return { reply: authRequest(11, Buffer.from(this.serverFirst)) };
  }

  onFinal(msg) {
    const clientFinal = msg.toString('utf8', 5, msg.length);
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) return this.refuse('08P01', 'malformed SCRAM message (no proof)');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64')) {
      return this.refuse('08P01', 'SCRAM channel binding check failed');
    }
    if (attrs.get('r') !== this.nonce) return this.refuse('08P01', 'SCRAM nonce does not match');
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const { storedKey, serverKey } = this.verifier;
    const signature = hmac(storedKey, authMessage);
    if (this.user !== USER || proof.length !== signature.length) return this.passwordFailed();
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i] ^ signature[i];
    if (!timingSafeEqual(sha256(clientKey), storedKey)) return this.passwordFailed();
    this.state = 'done';
    const serverFinal = `v=${hmac(serverKey, authMessage).toString('base64')}`;
    return { reply: authRequest(12, Buffer.from(serverFinal)), startup: this.startup };
  }
}
