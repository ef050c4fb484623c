// A promise-based client for one Strata server (services strata.v1 and
// grpc.health.v1). Same surface as the Python client (client/python).
'use strict';

const grpc = require('@grpc/grpc-js');
const { ALL_METHODS, HEALTH_CHECK } = require('./proto');
const { StrataError, fromGrpcError } = require('./errors');
const { tlsCredentials, tlsChannelOptions } = require('./tls');

const DEFAULT_TIMEOUT_MS = 10000;
const CLIENT_OPTION_KEYS = ['timeoutMs', 'tls', 'credentials', 'channelOptions'];
const MAX_LIMIT = 0xffffffff;

// Keys and values are bytes: Buffers. Strings are UTF-8 encoded; any
// Uint8Array is wrapped without copying.
function toBuffer(x, what) {
  if (Buffer.isBuffer(x)) return x;
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  throw new TypeError(`${what} must be a Buffer, Uint8Array or string, not ${x === null ? 'null' : typeof x}`);
}

// An ordered list of puts and deletes that Client.write applies atomically.
// Later mutations of the same key win. The server rejects batches over its
// mutation limit (10,000 by default) with INVALID_ARGUMENT, writing nothing.
class WriteBatch {
  constructor() {
    this._mutations = [];
  }

  // Appends a put of key=value; returns this so calls can be chained.
  put(key, value) {
    this._mutations.push({ put: { key: toBuffer(key, 'key'), value: toBuffer(value, 'value') } });
    return this;
  }

  // Appends a delete of key; returns this.
  delete(key) {
    this._mutations.push({ delete: { key: toBuffer(key, 'key') } });
    return this;
  }

  clear() {
    this._mutations = [];
  }

  get length() {
    return this._mutations.length;
  }

  // The WriteRequest message (proto field names) for this batch.
  toRequest() {
    return { mutations: [...this._mutations] };
  }

  // A batch from [['put', key, value], ['delete', key], ...]; TypeError for
  // any other shape.
  static fromOps(ops) {
    if (ops === null || typeof ops !== 'object' || typeof ops[Symbol.iterator] !== 'function') {
      throw new TypeError('write ops must be an iterable of [op, ...args] arrays');
    }
    const batch = new WriteBatch();
    for (const op of ops) {
      if (Array.isArray(op) && op[0] === 'put' && op.length === 3) batch.put(op[1], op[2]);
      else if (Array.isArray(op) && op[0] === 'delete' && op.length === 2) batch.delete(op[1]);
      else throw new TypeError(`bad write op ${JSON.stringify(op)}: want ['put', key, value] or ['delete', key]`);
    }
    return batch;
  }
}

// One gRPC channel to target. Share one Client: calls are multiplexed.
// Options: timeoutMs (default deadline of each call, for scan the whole
// stream; null = none), tls ({ca, cert, key, serverName}: TLS or mutual TLS),
// credentials (grpc-js ChannelCredentials, instead of tls), channelOptions.
// Every method rejects with a StrataError carrying the gRPC status code;
// bad arguments throw TypeError/RangeError before anything is sent.
class Client {
  constructor(target, options = {}) {
    if (typeof target !== 'string' || target === '') throw new TypeError('target must be a "host:port" string');
    for (const k of Object.keys(options)) {
      if (!CLIENT_OPTION_KEYS.includes(k)) {
        throw new TypeError(`unknown Client option "${k}" (known: ${CLIENT_OPTION_KEYS.join(', ')})`);
      }
    }
    const { timeoutMs = DEFAULT_TIMEOUT_MS, tls, credentials, channelOptions = {} } = options;
    if (tls !== undefined && credentials !== undefined) throw new TypeError('pass tls or credentials, not both');
    checkTimeout(timeoutMs);
    this.target = target;
    this.timeoutMs = timeoutMs;
    let creds = credentials || grpc.credentials.createInsecure();
    let extra = {};
    if (tls !== undefined) {
      creds = tlsCredentials(tls);
      extra = tlsChannelOptions(tls);
    }
    this._channel = new grpc.Client(target, creds, { ...channelOptions, ...extra });
  }

  _callOptions(timeoutMs) {
    const ms = timeoutMs === undefined ? this.timeoutMs : timeoutMs;
    checkTimeout(ms);
    return ms === null ? {} : { deadline: new Date(Date.now() + ms) };
  }

  // Calls a unary RPC by full name; resolves to its response message.
  _unary(rpc, request, timeoutMs) {
    const m = ALL_METHODS[rpc];
    const options = this._callOptions(timeoutMs);
    return new Promise((resolve, reject) => {
      this._channel.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request,
        options, (err, resp) => (err ? reject(fromGrpcError(err)) : resolve(resp)));
    });
  }

  // Starts a server-streaming RPC by full name; returns the grpc-js call.
  _serverStream(rpc, request, timeoutMs) {
    const m = ALL_METHODS[rpc];
    return this._channel.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize,
      request, this._callOptions(timeoutMs));
  }

  // Resolves to the value (a Buffer) or null when the key does not exist. An
  // existing key with an empty value resolves to an empty Buffer.
  async get(key, { timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/Get', { key: toBuffer(key, 'key') }, timeoutMs);
    return resp.found ? resp.value : null;
  }

  // Sets key to value; durable when it resolves. Idempotent.
  async put(key, value, { timeoutMs } = {}) {
    await this._unary('strata.v1.KV/Put', { key: toBuffer(key, 'key'), value: toBuffer(value, 'value') }, timeoutMs);
  }

  // Removes key (a missing key is fine); durable when it resolves.
  async delete(key, { timeoutMs } = {}) {
    await this._unary('strata.v1.KV/Delete', { key: toBuffer(key, 'key') }, timeoutMs);
  }

  // Applies every mutation atomically, in order. batch is a WriteBatch or an
  // iterable of ['put', key, value] / ['delete', key].
  async write(batch, { timeoutMs } = {}) {
    const b = batch instanceof WriteBatch ? batch : WriteBatch.fromOps(batch);
    await this._unary('strata.v1.KV/Write', b.toRequest(), timeoutMs);
  }

  // An async iterable of {key, value} (Buffers) with start <= key < end in key
  // order, all from one snapshot. end '' = no upper bound, limit 0 = no limit,
  // keysOnly leaves values empty. The call starts when iteration starts;
  // leaving the loop early (break/return/throw) cancels it.
  scan({ start = '', end = '', limit = 0, keysOnly = false, timeoutMs } = {}) {
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT) {
      throw new RangeError(`limit must be an integer in [0, ${MAX_LIMIT}]`);
    }
    const request = { start_key: toBuffer(start, 'start'), end_key: toBuffer(end, 'end'), limit, keys_only: Boolean(keysOnly) };
    if (timeoutMs !== undefined) checkTimeout(timeoutMs);
    return this._scan(request, timeoutMs);
  }

  async *_scan(request, timeoutMs) {
    const call = this._serverStream('strata.v1.KV/Scan', request, timeoutMs);
    const responses = call[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        let step;
        try {
          step = await responses.next();
        } catch (err) {
          finished = true; // the call ended with this status
          throw fromGrpcError(err);
        }
        if (step.done) {
          finished = true;
          return;
        }
        for (const pair of step.value.pairs) yield { key: pair.key, value: pair.value };
      }
    } finally {
      if (!finished) {
        call.on('error', () => {}); // the CANCELLED status we cause is expected
        call.cancel();
      }
    }
  }

  // Asks the standard health service (grpc.health.v1.Health/Check): resolves
  // to true when service ('' = the whole server, 'strata.v1.KV') is SERVING,
  // false otherwise (NOT_SERVING once shutdown has begun). An unknown service
  // rejects with NOT_FOUND.
  async health(service = '', { timeoutMs } = {}) {
    if (typeof service !== 'string') throw new TypeError('service must be a string');
    const resp = await this._unary(HEALTH_CHECK, { service }, timeoutMs);
    return resp.status === 'SERVING';
  }

  // Closes the channel; in-flight calls are cancelled. Idempotent.
  close() {
    this._channel.close();
  }
}

// Every RPC of proto/strata/v1 and the Client method that calls it. The
// parity test (client/python/tests/test_parity.py) checks this table, and the
// Python client's, against the proto in both directions: a new RPC is a
// method above plus its line here (and the same in client/python), plus its
// declaration in index.d.ts.
Client.RPC_METHODS = Object.freeze({
  'strata.v1.KV/Get': 'get',
  'strata.v1.KV/Put': 'put',
  'strata.v1.KV/Delete': 'delete',
  'strata.v1.KV/Scan': 'scan',
  'strata.v1.KV/Write': 'write',
});

function checkTimeout(ms) {
  if (ms !== null && (typeof ms !== 'number' || Number.isNaN(ms))) {
    throw new TypeError('timeoutMs must be a number of milliseconds or null');
  }
}

module.exports = { Client, WriteBatch, StrataError, DEFAULT_TIMEOUT_MS };
