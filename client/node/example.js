#!/usr/bin/env node
// Strata from Node.js with the .proto file: @grpc/proto-loader + @grpc/grpc-js.
//
//   node example.js [host:port]      (default 127.0.0.1:50051)
//
// Runs put / get / scan / write / delete against a running strata-server and
// prints what it sees. StrataClient below is a small promise-based wrapper you
// can copy; errors are grpc-js ServiceErrors with .code (a grpc.status number,
// e.g. grpc.status.INVALID_ARGUMENT === 3) and .details (the server's message).
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const PROTO_FILE = 'strata/v1/kv.proto';

// Keys and values are bytes: Buffers in requests and responses. keepCase keeps
// the proto field names (start_key, keys_only); oneofs adds Mutation.op.
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

// Returns the grpc-js constructor of the strata.v1.KV service client.
function loadKV() {
  const definition = protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition).strata.v1.KV;
}

function toBuffer(x) {
  if (Buffer.isBuffer(x)) return x;
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  throw new TypeError(`expected a Buffer or string, got ${typeof x}`);
}

// A promise-based client for one Strata server. Thread model: Node's; share one
// instance. timeoutMs is the deadline of each call (for scan: the whole stream).
class StrataClient {
  constructor(address, { credentials = grpc.credentials.createInsecure(), timeoutMs = 10000 } = {}) {
    const KV = loadKV();
    this.stub = new KV(address, credentials);
    this.timeoutMs = timeoutMs;
  }

  _options(timeoutMs) {
    const ms = timeoutMs === undefined ? this.timeoutMs : timeoutMs;
    return ms === null ? {} : { deadline: new Date(Date.now() + ms) };
  }

  _unary(method, request, timeoutMs) {
    return new Promise((resolve, reject) => {
      this.stub[method](request, this._options(timeoutMs), (err, resp) => (err ? reject(err) : resolve(resp)));
    });
  }

  // Resolves to the value (a Buffer) or null when the key does not exist.
  async get(key, { timeoutMs } = {}) {
    const resp = await this._unary('Get', { key: toBuffer(key) }, timeoutMs);
    return resp.found ? resp.value : null;
  }

  async put(key, value, { timeoutMs } = {}) {
    await this._unary('Put', { key: toBuffer(key), value: toBuffer(value) }, timeoutMs);
  }

  async delete(key, { timeoutMs } = {}) {
    await this._unary('Delete', { key: toBuffer(key) }, timeoutMs);
  }

  // ops: [['put', key, value], ['delete', key], ...], applied atomically in order.
  async write(ops, { timeoutMs } = {}) {
    const mutations = ops.map((op) => {
      if (op[0] === 'put') return { put: { key: toBuffer(op[1]), value: toBuffer(op[2]) } };
      if (op[0] === 'delete') return { delete: { key: toBuffer(op[1]) } };
      throw new TypeError(`bad write op ${JSON.stringify(op)}`);
    });
    await this._unary('Write', { mutations }, timeoutMs);
  }

  // Async iterator of {key, value} in [start, end) (end '' = unbounded).
  // Leaving the loop early (break/return/throw) cancels the call.
  async *scan({ start = '', end = '', limit = 0, keysOnly = false, timeoutMs } = {}) {
    const call = this.stub.Scan(
      { start_key: toBuffer(start), end_key: toBuffer(end), limit, keys_only: keysOnly },
      this._options(timeoutMs));
    let finished = false;
    try {
      for await (const resp of call) {
        for (const pair of resp.pairs) yield { key: pair.key, value: pair.value };
      }
      finished = true;
    } finally {
      if (!finished) {
        call.on('error', () => {}); // the CANCELLED status we cause is expected
        call.cancel();
      }
    }
  }

  close() {
    this.stub.close();
  }
}

// The demo flow; returns what it read so tests can check it.
async function main(address = '127.0.0.1:50051', log = console.log) {
  const db = new StrataClient(address);
  try {
    await db.put('hello', 'world');
    const value = await db.get('hello');
    log(`get hello -> ${value}`);

    await db.write([['put', 'fruit/apple', 'red'], ['put', 'fruit/banana', 'yellow'], ['put', 'fruit/cherry', 'dark red']]);
    const fruits = [];
    for await (const { key, value: v } of db.scan({ start: 'fruit/', end: 'fruit0' })) {
      fruits.push([key.toString(), v.toString()]);
      log(`scan ${key} = ${v}`);
    }

    await db.delete('hello');
    const missing = await db.get('hello');
    log(`get hello after delete -> ${missing}`);

    try {
      await db.put('', 'empty keys are invalid');
    } catch (err) {
      log(`put '' -> ${grpc.status[err.code]}: ${err.details}`);
    }
    return { value, fruits, missing };
  } finally {
    db.close();
  }
}

module.exports = { StrataClient, loadKV, main, PROTO_ROOT, PROTO_FILE };

if (require.main === module) {
  main(process.argv[2]).catch((err) => {
    console.error(`error: ${err.code !== undefined ? grpc.status[err.code] : ''} ${err.details || err.message}`);
    process.exit(1);
  });
}
