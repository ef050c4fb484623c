// Per-key TTLs and leases through @strata/client against a real strata-server
// (docs/expiry.md). Nothing sleeps to wait for an expiry: each test watches
// for the DELETE event the server's expirer writes (bounded by a timeout).
'use strict';

const { describe, it, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Client, LeaseKeeper, StrataError, status } = require('@strata/client');
const { StrataServer, skipReason } = require('./server.js');

const WAIT_MS = 30000;
const isCode = (code) => (err) => err instanceof StrataError && err.code === code;
const str = (b) => b.toString('latin1');

async function take(it, n, ms = WAIT_MS) {
  const out = [];
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`only ${out.length} of ${n} events within ${ms} ms`)), ms);
  });
  try {
    while (out.length < n) {
      const step = await Promise.race([it.next(), timeout]);
      if (step.done) throw new Error(`the watch ended after ${out.length} of ${n} events`);
      out.push(step.value);
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

describe('expiry against strata-server', { skip: skipReason() }, () => {
  let server;
  let db;
  const watches = [];

  beforeEach(async () => {
    server = new StrataServer();
    await server.start();
    db = new Client(server.address);
  });

  afterEach(async () => {
    for (const w of watches.splice(0)) w.cancel();
    db.close();
    await server.cleanup();
  });

  it('a key with a TTL disappears with a DELETE event', async () => {
    const w = await db.watch({ key: 'session' });
    watches.push(w);
    const rev = await db.put('session', 'token', { ttlMs: 300 });
    const [put, del] = await take(w[Symbol.asyncIterator](), 2);
    assert.deepEqual([put.type, put.revision], ['PUT', rev]);
    assert.equal(del.type, 'DELETE');
    assert.ok(del.revision > rev);
    assert.equal(await db.get('session'), null);
    await assert.rejects(db.put('k', 'v', { ttlMs: -1 }), isCode(status.INVALID_ARGUMENT));
  });

  it('grant, attach, timeToLive, leases and revoke', async () => {
    const lease = await db.leaseGrant(60);
    assert.ok(lease.id > 0);
    assert.equal(lease.ttlSeconds, 60);
    await db.put('svc/a', '1', { lease: lease.id });
    await db.write([['put', 'svc/b', '2']]);
    assert.deepEqual(await db.leaseLeases(), [lease.id]);
    const ttl = await db.leaseTimeToLive(lease.id, { keys: true });
    assert.equal(ttl.grantedTtl, 60);
    assert.ok(ttl.ttlSeconds > 0 && ttl.ttlSeconds <= 60);
    assert.deepEqual(ttl.keys.map(str), ['svc/a']);
    assert.equal(await db.leaseKeepAlive(lease.id), 60);
    const w = await db.watch({ prefix: 'svc/a' });
    watches.push(w);
    const rev = await db.leaseRevoke(lease.id);
    const [del] = await take(w[Symbol.asyncIterator](), 1);
    assert.deepEqual([del.type, del.revision, str(del.key)], ['DELETE', rev, 'svc/a']);
    assert.equal(str(await db.get('svc/b')), '2');
    await assert.rejects(db.leaseRevoke(lease.id), isCode(status.NOT_FOUND));
    await assert.rejects(db.put('svc/c', '3', { lease: lease.id }), isCode(status.NOT_FOUND));
  });

  it('keepAlive keeps the keys; after stop() they expire', async () => {
    const lease = await db.leaseGrant(1);
    await db.put('lock', 'me', { lease: lease.id });
    const keeper = db.keepAlive(lease.id, { intervalMs: 200 });
    assert.ok(keeper instanceof LeaseKeeper);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // longer than the TTL
    assert.ok(keeper.alive, String(keeper.error));
    assert.ok(keeper.renewals >= 2);
    assert.equal(str(await db.get('lock')), 'me');
    const w = await db.watch({ key: 'lock' });
    watches.push(w);
    keeper.stop();
    const [del] = await take(w[Symbol.asyncIterator](), 1);
    assert.equal(del.type, 'DELETE');
    await assert.rejects(db.leaseKeepAlive(lease.id), isCode(status.NOT_FOUND));
  });
});
