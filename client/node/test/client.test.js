// @strata/client (lib/, index.js) against a real strata-server over plaintext.
// TLS: tls.test.js; the packed package: pack.test.js.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { Client, WriteBatch, StrataError, status } = require('@strata/client');
const { main } = require('../examples/example.js');
const { nodeBlocks, runExample } = require('./doc.js');
const { StrataServer, skipReason } = require('./server.js');

const MIB = 1 << 20;

const isCode = (code) => (err) => err instanceof StrataError && err.code === code;

// A port nobody listens on (bound, read, released).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

describe('argument checks (no server needed)', () => {
  it('rejects bad keys, limits, options and write ops before sending', async () => {
    const db = new Client('127.0.0.1:1');
    try {
      await assert.rejects(db.get(42), TypeError);
      await assert.rejects(db.put('k', null), TypeError);
      await assert.rejects(db.write([['put', 'k']]), TypeError);
      await assert.rejects(db.health(7), TypeError);
      assert.throws(() => db.scan({ limit: -1 }), RangeError);
      assert.throws(() => db.scan({ limit: 1.5 }), RangeError);
      assert.throws(() => db.scan({ limit: 2 ** 32 }), RangeError);
      assert.throws(() => WriteBatch.fromOps([['upsert', 'k', 'v']]), TypeError);
      assert.throws(() => WriteBatch.fromOps([['delete', 'k', 'v']]), TypeError);
      assert.throws(() => WriteBatch.fromOps('put'), TypeError);
    } finally {
      db.close();
    }
    assert.throws(() => new Client('127.0.0.1:1', { timeout: 5 }), /unknown Client option "timeout"/);
    assert.throws(() => new Client('127.0.0.1:1', { timeoutMs: '5' }), TypeError);
    assert.throws(() => new Client(''), TypeError);
  });

  it('builds write batches in order', () => {
    const b = new WriteBatch().put('a', '1').delete(Buffer.from('b')).put(new Uint8Array([99]), '');
    assert.equal(b.length, 3);
    assert.deepEqual(b.toRequest().mutations.map((m) => Object.keys(m)[0]), ['put', 'delete', 'put']);
    assert.deepEqual(b.toRequest().mutations[2].put.key, Buffer.from('c'));
    b.clear();
    assert.equal(b.length, 0);
  });

  it('StrataError carries the code, its name and the details', () => {
    const e = new StrataError(status.PERMISSION_DENIED, 'nope');
    assert.ok(e instanceof Error);
    assert.equal(e.code, 7);
    assert.equal(e.codeName, 'PERMISSION_DENIED');
    assert.equal(e.message, 'PERMISSION_DENIED: nope');
  });
});

describe('Client against strata-server', { skip: skipReason() }, () => {
  let server;
  let db;

  before(async () => {
    server = new StrataServer();
    await server.start();
    db = new Client(server.address);
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

  it('examples/example.js runs its demo flow', async () => {
    const lines = [];
    const r = await main(server.address, (l) => lines.push(l));
    assert.equal(r.value.toString(), 'world');
    assert.deepEqual(r.fruits, [['fruit/apple', 'red'], ['fruit/banana', 'yellow'], ['fruit/cherry', 'dark red']]);
    assert.equal(r.missing, null);
    assert.equal(r.serving, true);
    assert.ok(lines.some((l) => l.startsWith("put '' -> INVALID_ARGUMENT")), lines.join('\n'));
  });

  it('the plaintext example of docs/clients.md runs as written', async () => {
    const blocks = nodeBlocks().filter((b) => !b.includes('tls:') && !b.includes('.watch('));
    assert.equal(blocks.length, 1, 'docs/clients.md: one basic plaintext Node.js example');
    const out = await runExample(blocks[0], { address: server.address });
    assert.match(out, /fruit\/apple red/);
    assert.match(out, /INVALID_ARGUMENT/);
    assert.equal(await db.get('hello'), null); // deleted by the example's batch
  });

  it('puts, gets binary data and reports a missing key as null', async () => {
    const key = Buffer.from([0, 1, 2, 255]);
    const value = Buffer.alloc(100000, 7);
    await db.put(key, value);
    assert.deepEqual(await db.get(key), value);
    assert.equal(await db.get('ex/missing'), null);
    await db.put('ex/empty', '');
    assert.deepEqual(await db.get('ex/empty'), Buffer.alloc(0));
    await db.put(new Uint8Array([1, 2]), 'u8');
    assert.equal((await db.get(Buffer.from([1, 2]))).toString(), 'u8');
  });

  it('round-trips a value of the maximum size', async () => {
    const value = Buffer.alloc(2 * MIB, 9);
    await db.put('ex/big', value);
    assert.deepEqual(await db.get('ex/big'), value);
  });

  it('deletes, and deleting a missing key is OK', async () => {
    await db.put('ex/del', 'x');
    await db.delete('ex/del');
    assert.equal(await db.get('ex/del'), null);
    await db.delete('ex/del');
  });

  it('scans with bounds, limit and keysOnly', async () => {
    await db.write(['a', 'b', 'c', 'd'].map((k) => ['put', `sc/${k}`, `v${k}`]));
    assert.deepEqual(await keys({ start: 'sc/', end: 'sc0' }), ['sc/a', 'sc/b', 'sc/c', 'sc/d']);
    assert.deepEqual(await keys({ start: 'sc/b', end: 'sc/d' }), ['sc/b', 'sc/c']);
    assert.deepEqual(await keys({ start: 'sc/', end: 'sc0', limit: 3 }), ['sc/a', 'sc/b', 'sc/c']);
    assert.deepEqual(await keys({ start: 'sc/c', end: 'sc/c' }), []);
    for await (const { key, value } of db.scan({ start: 'sc/', end: 'sc0', keysOnly: true })) {
      assert.ok(key.length > 0);
      assert.equal(value.length, 0);
    }
  });

  it('stops a large scan early without breaking the connection', async () => {
    const big = Buffer.alloc(4096, 1);
    for (let b = 0; b < 4; b++) {
      const batch = new WriteBatch();
      for (let i = 0; i < 1000; i++) batch.put(`big/${String(b * 1000 + i).padStart(5, '0')}`, big);
      await db.write(batch);
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
    await db.write(new WriteBatch().put('wr/a', '1').delete('wr/old').put('wr/a', '2'));
    assert.equal((await db.get('wr/a')).toString(), '2');
    assert.equal(await db.get('wr/old'), null);
    await assert.rejects(db.write([['put', 'wr/b', '1'], ['put', '', 'bad']]), isCode(status.INVALID_ARGUMENT));
    assert.equal(await db.get('wr/b'), null);
    await db.write([]); // empty is fine
  });

  it('answers the standard health check', async () => {
    assert.equal(await db.health(), true);
    assert.equal(await db.health('strata.v1.KV'), true);
    await assert.rejects(db.health('no.such.Service'), isCode(status.NOT_FOUND));
  });

  it('maps limits and deadlines to StrataErrors with the gRPC code', async () => {
    const err = await db.put('', 'v').then(() => null, (e) => e);
    assert.ok(err instanceof StrataError, String(err));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.codeName, 'INVALID_ARGUMENT');
    assert.ok(err.details.length > 0, 'the server should say which limit');
    assert.ok(err.cause && err.cause.code === status.INVALID_ARGUMENT, 'the grpc-js error is the cause');
    await assert.rejects(db.put('k'.repeat(8193), 'v'), isCode(status.INVALID_ARGUMENT));
    await assert.rejects(db.put('k', Buffer.alloc(2 * MIB + 1)), isCode(status.INVALID_ARGUMENT));
    await assert.rejects(db.get('k', { timeoutMs: -1 }), isCode(status.DEADLINE_EXCEEDED));
    await assert.rejects(keys({ timeoutMs: -1 }), isCode(status.DEADLINE_EXCEEDED));
    const expired = new Client(server.address, { timeoutMs: -1 }); // the client default applies too
    try {
      await assert.rejects(expired.put('k', 'v'), isCode(status.DEADLINE_EXCEEDED));
    } finally {
      expired.close();
    }
  });

  it('an unreachable server is UNAVAILABLE', async () => {
    const c = new Client(`127.0.0.1:${await freePort()}`, { timeoutMs: 5000 });
    try {
      await assert.rejects(c.get('k'), isCode(status.UNAVAILABLE));
    } finally {
      c.close();
    }
  });
});
