// example.js (proto-loader + grpc-js) against a real strata-server.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { StrataClient, main } = require('../example.js');
const { StrataServer, skipReason } = require('./server.js');

describe('example.js against strata-server', { skip: skipReason() }, () => {
  let server;
  let db;

  before(async () => {
    server = new StrataServer();
    await server.start();
    db = new StrataClient(server.address);
  });

  after(async () => {
    if (db) db.close();
    if (server) await server.cleanup();
  });

  const keys = async (opts) => {
    const out = [];
    for await (const { key } of db.scan(opts)) out.push(key.toString('latin1'));
    return out;
  };

  it('runs the demo flow', async () => {
    const lines = [];
    const r = await main(server.address, (l) => lines.push(l));
    assert.equal(r.value.toString(), 'world');
    assert.deepEqual(r.fruits, [['fruit/apple', 'red'], ['fruit/banana', 'yellow'], ['fruit/cherry', 'dark red']]);
    assert.equal(r.missing, null);
    assert.ok(lines.some((l) => l.startsWith("put '' -> INVALID_ARGUMENT")), lines.join('\n'));
  });

  it('puts, gets binary data and reports a missing key as null', async () => {
    const key = Buffer.from([0, 1, 2, 255]);
    const value = Buffer.alloc(100000, 7);
    await db.put(key, value);
    assert.deepEqual(await db.get(key), value);
    assert.equal(await db.get('ex/missing'), null);
    await db.put('ex/empty', '');
    assert.deepEqual(await db.get('ex/empty'), Buffer.alloc(0));
  });

  it('deletes, and deleting a missing key is OK', async () => {
    await db.put('ex/del', 'x');
    await db.delete('ex/del');
    assert.equal(await db.get('ex/del'), null);
    await db.delete('ex/del');
  });

  it('scans with bounds, limit and keys_only', async () => {
    await db.write(['a', 'b', 'c', 'd'].map((k) => ['put', `sc/${k}`, `v${k}`]));
    assert.deepEqual(await keys({ start: 'sc/', end: 'sc0' }), ['sc/a', 'sc/b', 'sc/c', 'sc/d']);
    assert.deepEqual(await keys({ start: 'sc/b', end: 'sc/d' }), ['sc/b', 'sc/c']);
    assert.deepEqual(await keys({ start: 'sc/', end: 'sc0', limit: 3 }), ['sc/a', 'sc/b', 'sc/c']);
    for await (const { key, value } of db.scan({ start: 'sc/', end: 'sc0', keysOnly: true })) {
      assert.ok(key.length > 0);
      assert.equal(value.length, 0);
    }
  });

  it('stops a large scan early without breaking the connection', async () => {
    const big = Buffer.alloc(4096, 1);
    for (let b = 0; b < 4; b++) {
      const ops = [];
      for (let i = 0; i < 1000; i++) ops.push(['put', `big/${String(b * 1000 + i).padStart(5, '0')}`, big]);
      await db.write(ops);
    }
    let n = 0;
    for await (const { key } of db.scan({ start: 'big/', end: 'big0' })) {
      if (n === 0) assert.equal(key.toString(), 'big/00000');
      if (++n === 10) break;
    }
    assert.equal(n, 10);
    const all = await keys({ start: 'big/', end: 'big0', keysOnly: true });
    assert.equal(all.length, 4000);
    assert.deepEqual(await db.get('big/03999'), big);
  });

  it('applies a write batch in order, all or nothing', async () => {
    await db.put('wr/old', '1');
    await db.write([['put', 'wr/a', '1'], ['delete', 'wr/old'], ['put', 'wr/a', '2']]);
    assert.equal((await db.get('wr/a')).toString(), '2');
    assert.equal(await db.get('wr/old'), null);
    await assert.rejects(db.write([['put', 'wr/b', '1'], ['put', '', 'bad']]),
      (err) => err.code === grpc.status.INVALID_ARGUMENT);
    assert.equal(await db.get('wr/b'), null);
  });

  it('answers the standard health check (with the health .proto, no reflection)', async () => {
    const protoLoader = require('@grpc/proto-loader');
    const path = require('node:path');
    const def = protoLoader.loadSync('grpc/health/v1/health.proto',
      { includeDirs: [path.join(__dirname, '..', '..', '..', 'proto')], enums: String, defaults: true });
    const { Health } = grpc.loadPackageDefinition(def).grpc.health.v1;
    const health = new Health(server.address, grpc.credentials.createInsecure());
    try {
      const check = (service) => new Promise((resolve, reject) => health.Check({ service },
        { deadline: Date.now() + 10000 }, (e, r) => (e ? reject(e) : resolve(r.status))));
      assert.equal(await check(''), 'SERVING');
      assert.equal(await check('strata.v1.KV'), 'SERVING');
      await assert.rejects(check('no.such.Service'), (err) => err.code === grpc.status.NOT_FOUND);
    } finally {
      health.close();
    }
  });

  it('maps limits and deadlines to gRPC status codes', async () => {
    await assert.rejects(db.put('', 'v'), (err) => err.code === grpc.status.INVALID_ARGUMENT && err.details.length > 0);
    await assert.rejects(db.put('k'.repeat(8193), 'v'), (err) => err.code === grpc.status.INVALID_ARGUMENT);
    await assert.rejects(db.get('k', { timeoutMs: -1 }), (err) => err.code === grpc.status.DEADLINE_EXCEEDED);
  });
});
