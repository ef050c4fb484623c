// Revisions, reads at a revision, batchGet, deleteRange, compact and watch
// through @strata/client against real strata-servers (docs/revisions.md). Each
// test gets a fresh server, so revision numbers are exact. The watch-resume
// tests restart the server on the same data directory behind a TcpProxy, so
// the client keeps one address while the server's port changes.
'use strict';

const { describe, it, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { Client, Watch, WriteBatch, StrataError, status, prefixEnd } = require('@strata/client');
const { resumePolicy } = require('../lib/watch.js');
const { nodeBlocks, runExample } = require('./doc.js');
const { StrataServer, skipReason } = require('./server.js');
const { TcpProxy } = require('./tcp-proxy.js');

const WAIT_MS = 30000; // the longest any test waits for an event
const KIB = 1024;
// Fast reconnects for the resume tests: gRPC's own channel backoff (1 s,
// growing to 2 min) would otherwise pace them.
const FAST_RECONNECT = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };
const FAST_RESUME = { initialBackoffMs: 50, maxBackoffMs: 500, giveUpAfterMs: WAIT_MS };

const isCode = (code) => (err) => err instanceof StrataError && err.code === code;
const str = (b) => b.toString('latin1');
// [revision, type, key, value] of an event: easy to compare.
const short = (e) => [e.revision, e.type, str(e.key), str(e.value)];
const byRevisionThenKey = (a, b) => (a[0] - b[0]) || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0);

// Resolves as promise does, or rejects after ms (instead of hanging).
async function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// The next n events of a Watch's iterator; rejects (instead of hanging) after ms.
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

describe('argument checks of the revision calls (no server needed)', () => {
  it('rejects bad revisions and watch options before sending', async () => {
    const db = new Client('127.0.0.1:1');
    try {
      await assert.rejects(db.get('k', { revision: -1 }), RangeError);
      await assert.rejects(db.get('k', { revision: 1.5 }), RangeError);
      await assert.rejects(db.get('k', { revision: '1' }), TypeError);
      await assert.rejects(db.compact(-2), RangeError);
      await assert.rejects(db.batchGet('k'), TypeError);
      await assert.rejects(db.deleteRange('a'), TypeError); // end is required
      assert.throws(() => db.scan({ revision: -1 }), RangeError);
      assert.throws(() => db.scan({ start: 'a', prefix: 'p' }), TypeError);
      assert.throws(() => db.scan({ reversed: true }), /unknown scan option "reversed"/);
      await assert.rejects(db.watch({}), TypeError);
      await assert.rejects(db.watch({ key: 'k', prefix: 'p' }), TypeError);
      await assert.rejects(db.watch({ key: 'k', startRevison: 3 }), /unknown watch option "startRevison"/);
      await assert.rejects(db.watch({ key: 'k', resume: { initialBackoffMs: 0 } }), RangeError);
      await assert.rejects(db.watch({ key: 'k', resume: { giveUp: 1 } }), TypeError);
      await assert.rejects(db.watch({ key: 'k', timeoutMs: -1 }), isCode(status.DEADLINE_EXCEEDED));
    } finally {
      db.close();
    }
  });

  it('prefixEnd is the exclusive end of a prefix', () => {
    assert.deepEqual(prefixEnd('cfg/'), Buffer.from('cfg0'));
    assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff, 0xff])), Buffer.from('b'));
    assert.deepEqual(prefixEnd(Buffer.from([0xff])), Buffer.alloc(0));
    assert.deepEqual(prefixEnd(''), Buffer.alloc(0));
  });
});

describe('revisions against strata-server', { skip: skipReason() }, () => {
  let server;
  let db;
  const watches = [];
  const watch = async (opts, client = db) => {
    const w = await client.watch(opts);
    watches.push(w);
    return w;
  };

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

  it('writes resolve to their revision; reads with metadata and at a revision', async () => {
    assert.equal(await db.put('k', 'v1'), 1);
    assert.equal(await db.put('other', 'x'), 2);
    assert.equal(await db.write([['put', 'k', 'v2'], ['put', 'b', '1']]), 3);
    assert.equal(await db.delete('missing'), 3); // nothing changed: the current one
    const r = await db.getWithMetadata('k');
    assert.deepEqual(r, {
      revision: 3, found: true, value: Buffer.from('v2'),
      kv: { key: Buffer.from('k'), value: Buffer.from('v2'), createRevision: 1, modRevision: 3, version: 2, type: 'BYTES' },
    });
    assert.equal(str(await db.get('k', { revision: 2 })), 'v1');
    assert.deepEqual(await db.getWithMetadata('nope'), { revision: 3, found: false, value: null, kv: null });
    assert.equal(await db.delete('k'), 4);
    assert.equal(await db.get('k', { revision: 4 }), null);
  });

  it('OUT_OF_RANGE outside the history; compact moves its start', async () => {
    for (let i = 0; i < 5; i++) await db.put('k', String(i)); // 1..5
    await assert.rejects(db.get('k', { revision: 99 }), (e) => isCode(status.OUT_OF_RANGE)(e) &&
      /current revision 5/.test(e.details) && e.compactRevision === null);
    assert.equal(await db.compact(3), 5);
    await assert.rejects(db.get('k', { revision: 2 }), (e) => isCode(status.OUT_OF_RANGE)(e) && /compacted revision 3/.test(e.details));
    assert.equal(str(await db.get('k', { revision: 3 })), '2');
    await assert.rejects(db.compact(3), isCode(status.OUT_OF_RANGE));
    await assert.rejects(db.compact(0), isCode(status.INVALID_ARGUMENT));
  });

  it('scans at a revision, in reverse, by prefix, and says which revision it read', async () => {
    for (const k of ['a', 'b', 'c', 'd']) await db.put(k, '1'); // 1..4
    await db.put('b', '2'); // 5
    await db.delete('c'); // 6
    const collect = async (it) => {
      const out = [];
      for await (const kv of it) out.push(`${kv.key}=${kv.value}@${kv.modRevision}`);
      return out;
    };
    const latest = db.scan();
    assert.equal(latest.revision, null);
    assert.deepEqual(await collect(latest), ['a=1@1', 'b=2@5', 'd=1@4']);
    assert.equal(latest.revision, 6);
    const old = db.scan({ revision: 4 });
    assert.deepEqual(await collect(old), ['a=1@1', 'b=1@2', 'c=1@3', 'd=1@4']);
    assert.equal(old.revision, 4);
    assert.deepEqual(await collect(db.scan({ reverse: true })), ['d=1@4', 'b=2@5', 'a=1@1']);
    assert.deepEqual(await collect(db.scan({ start: 'b', end: 'd', reverse: true, revision: 4 })), ['c=1@3', 'b=1@2']);
    assert.deepEqual(await collect(db.scan({ reverse: true, limit: 2 })), ['d=1@4', 'b=2@5']);
    await db.write([['put', 'p/1', 'x'], ['put', 'p0', 'y']]); // 7
    assert.deepEqual(await collect(db.scan({ prefix: 'p/' })), ['p/1=x@7']);
    for await (const pair of db.scan({ start: 'b', end: 'c', keysOnly: true })) {
      assert.deepEqual(pair, { key: Buffer.from('b'), value: Buffer.alloc(0), createRevision: 2, modRevision: 5, version: 2, type: 'BYTES' });
    }
    const empty = db.scan({ start: 'x' });
    assert.deepEqual(await collect(empty), []);
    assert.equal(empty.revision, 7); // nothing found still says when
    await assert.rejects(collect(db.scan({ revision: 99 })), isCode(status.OUT_OF_RANGE));
  });

  it('batchGet reads every key at one revision, in request order', async () => {
    await db.put('a', '1'); // 1
    await db.put('b', '1'); // 2
    await db.put('a', '2'); // 3
    const r = await db.batchGet(['b', 'missing', Buffer.from('a')], { revision: 2 });
    assert.equal(r.revision, 2);
    assert.deepEqual(r.values.map((v) => (v === null ? null : str(v))), ['1', null, '1']);
    assert.deepEqual(r.kvs[2], { key: Buffer.from('a'), value: Buffer.from('1'), createRevision: 1, modRevision: 1, version: 1, type: 'BYTES' });
    assert.equal(r.kvs[1], null);
    const latest = await db.batchGet(new Set(['a']));
    assert.equal(latest.revision, 3);
    assert.equal(str(latest.values[0]), '2');
    await assert.rejects(db.batchGet([]), isCode(status.INVALID_ARGUMENT));
  });

  it('deleteRange deletes at one revision and returns the deleted pairs', async () => {
    for (const k of ['a', 'b1', 'b2', 'b3', 'c']) await db.put(k, `v-${k}`); // 1..5
    const r = await db.deleteRange('b', 'c', { prevKv: true });
    assert.equal(r.revision, 6);
    assert.equal(r.deleted, 3);
    assert.deepEqual(r.prevKvs.map((kv) => [str(kv.key), str(kv.value), kv.modRevision]),
      [['b1', 'v-b1', 2], ['b2', 'v-b2', 3], ['b3', 'v-b3', 4]]);
    assert.deepEqual(await db.deleteRange('b', 'c', { prevKv: true }), { revision: 6, deleted: 0, prevKvs: [] });
    assert.deepEqual(await db.deleteRange('', ''), { revision: 7, deleted: 2, prevKvs: [] });
    assert.equal(str(await db.get('a', { revision: 6 })), 'v-a');
    assert.equal(await db.get('a'), null);
  });

  it('watch delivers every change in revision order while another client writes', async () => {
    const w = await watch({ prefix: 'w/' });
    assert.ok(w instanceof Watch);
    assert.equal(w.revision, 0); // opened at the current revision
    const it = w[Symbol.asyncIterator]();
    const expected = [];
    const writer = new Client(server.address);
    const write = (async () => {
      const live = new Set();
      try {
        for (let i = 0; i < 120; i++) {
          const key = `w/${i % 7}`;
          if (i % 5 === 3) {
            const rev = await writer.delete(key);
            if (live.delete(key)) expected.push([rev, 'DELETE', key, '']);
          } else if (i % 5 === 4) {
            const rev = await writer.write([['put', 'w/batch', String(i)], ['put', 'w/x', String(i)], ['put', 'other', 'x']]);
            expected.push([rev, 'PUT', 'w/batch', String(i)], [rev, 'PUT', 'w/x', String(i)]);
            live.add('w/batch');
            live.add('w/x');
          } else {
            const rev = await writer.put(key, String(i));
            await writer.put('other', String(i)); // outside the range
            expected.push([rev, 'PUT', key, String(i)]);
            live.add(key);
          }
        }
        expected.push([await writer.put('w/end', 'end'), 'PUT', 'w/end', 'end']); // the last event
      } finally {
        writer.close();
      }
    })();
    const got = [];
    const deadline = Date.now() + WAIT_MS;
    while (got.length === 0 || got[got.length - 1][2] !== 'w/end') {
      assert.ok(Date.now() < deadline, 'the watch fell behind the writer');
      got.push(...(await take(it, 1)).map(short));
    }
    await write;
    const revisions = got.map((g) => g[0]);
    assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b), 'events out of revision order');
    // Within one revision the order of keys is the server's: compare sorted.
    assert.deepEqual([...got].sort(byRevisionThenKey), [...expected].sort(byRevisionThenKey));
    assert.equal(w.revision, expected[expected.length - 1][0]);
  });

  it('watch from a past revision with prevKv; one key; a range', async () => {
    await db.put('cfg/a', '1'); // 1
    await db.put('zzz', 'x'); // 2
    await db.put('cfg/a', '2'); // 3
    await db.delete('cfg/a'); // 4
    const w = await watch({ prefix: 'cfg/', startRevision: 1, prevKv: true });
    const events = await take(w[Symbol.asyncIterator](), 3);
    assert.deepEqual(events.map(short), [[1, 'PUT', 'cfg/a', '1'], [3, 'PUT', 'cfg/a', '2'], [4, 'DELETE', 'cfg/a', '']]);
    assert.equal(events[0].prevKv, null);
    assert.deepEqual(events[1].prevKv, { key: Buffer.from('cfg/a'), value: Buffer.from('1'), createRevision: 1, modRevision: 1, version: 1, type: 'BYTES' });
    assert.equal(events[2].prevKv.version, 2);
    assert.deepEqual([events[1].createRevision, events[1].modRevision, events[1].version], [1, 3, 2]);
    assert.equal(w.revision, 4);

    const one = (await watch({ key: 'k' }))[Symbol.asyncIterator]();
    const range = (await watch({ key: 'b', rangeEnd: 'd' }))[Symbol.asyncIterator]();
    for (const k of ['a', 'b', 'k', 'c', 'd', 'kk']) await db.put(k, 'v'); // 5..10
    assert.deepEqual((await take(one, 1)).map(short), [[7, 'PUT', 'k', 'v']]);
    assert.deepEqual((await take(range, 2)).map((e) => str(e.key)), ['b', 'c']);
  });

  it('cancel() ends the iteration, breaking out of for await cancels the stream', async () => {
    const w = await watch({ key: 'k' });
    let gotOne;
    const first = new Promise((resolve) => { gotOne = resolve; });
    const loop = (async () => {
      const seen = [];
      for await (const e of w) { // waits for more after the first
        seen.push(str(e.value));
        gotOne();
      }
      return seen;
    })();
    await db.put('k', '0');
    await within(first, WAIT_MS, 'the first event');
    w.cancel(); // the loop is waiting in (or about to ask for) the next event: both must end
    assert.deepEqual(await within(loop, WAIT_MS, 'the loop ending after cancel()'), ['0']);
    assert.equal(w.cancelled, true);
    w.cancel(); // idempotent
    assert.throws(() => w[Symbol.asyncIterator](), TypeError); // iterated once
    const w2 = await watch({ key: 'k' });
    await db.put('k', '1');
    for await (const e of w2) {
      assert.equal(str(e.value), '1');
      break;
    }
    assert.equal(w2.cancelled, true);
    assert.equal(await db.health(), true);
  });

  it('a compacted startRevision rejects with OUT_OF_RANGE and the compacted revision', async () => {
    for (let i = 0; i < 5; i++) await db.put('k', String(i)); // 1..5
    await db.compact(4);
    const err = await db.watch({ key: 'k', startRevision: 2 }).then(() => null, (e) => e);
    assert.ok(isCode(status.OUT_OF_RANGE)(err), String(err));
    assert.equal(err.compactRevision, 4);
    // The documented recovery: read at the compacted revision, watch on.
    assert.equal(str(await db.get('k', { revision: 4 })), '3');
    const w = await watch({ key: 'k', startRevision: 5 });
    assert.deepEqual((await take(w[Symbol.asyncIterator](), 1)).map(short), [[5, 'PUT', 'k', '4']]);
  });

  it('the revisions example of docs/clients.md runs as written', async () => {
    const blocks = nodeBlocks().filter((b) => b.includes('.watch('));
    assert.equal(blocks.length, 1, 'docs/clients.md: one Node.js watch example');
    const out = await runExample(blocks[0], { address: server.address });
    assert.deepEqual(out.trim().split('\n'), ['1', '2 1 2 2', '[["cfg/b","x"]]']);
  });

  it('a revision larger than one message arrives whole', async () => {
    const w = await watch({ prefix: 'big/' });
    const it = w[Symbol.asyncIterator]();
    const big = Buffer.alloc(600 * KIB, 120); // three: more than one ~1 MiB message
    const rev = await db.write([0, 1, 2].map((i) => ['put', `big/${i}`, big]));
    const rev2 = await db.put('big/after', '1');
    const events = await take(it, 4);
    assert.deepEqual(events.slice(0, 3).map((e) => str(e.key)).sort(), ['big/0', 'big/1', 'big/2']);
    assert.ok(events.slice(0, 3).every((e) => e.revision === rev && e.value.equals(big)));
    assert.deepEqual(short(events[3]), [rev2, 'PUT', 'big/after', '1']);
  });
});

describe('watch progress notifications', { skip: skipReason() }, () => {
  it('PROGRESS events say how far the quiet range is complete', async () => {
    const server = new StrataServer(['--watch_progress_interval=100ms']);
    await server.start();
    const db = new Client(server.address);
    const w = await db.watch({ key: 'quiet', progressNotify: true });
    try {
      const it = w[Symbol.asyncIterator]();
      const rev = await db.put('elsewhere', 'x');
      let e;
      do {
        [e] = await take(it, 1);
        assert.equal(e.type, 'PROGRESS');
        assert.equal(e.key.length, 0);
      } while (e.revision < rev);
      assert.equal(w.revision, e.revision);
      const rev2 = await db.put('quiet', 'now');
      do [e] = await take(it, 1); while (e.type === 'PROGRESS');
      assert.deepEqual(short(e), [rev2, 'PUT', 'quiet', 'now']);
    } finally {
      w.cancel();
      db.close();
      await server.cleanup();
    }
  });
});

describe('watch resume across a server restart', { skip: skipReason() }, () => {
  let server;
  let proxy;
  let watcher;
  let w;

  beforeEach(async () => {
    server = new StrataServer();
    await server.start();
    proxy = new TcpProxy(server.address);
    await proxy.listen();
    watcher = new Client(proxy.address, { channelOptions: FAST_RECONNECT });
  });

  afterEach(async () => {
    if (w) w.cancel();
    watcher.close();
    await proxy.close();
    await server.cleanup();
  });

  // SIGKILL, then start again on the same data directory: the new address
  // (the proxy still forwards to the dead one).
  async function restart() {
    await server.kill();
    return server.start();
  }

  async function withClient(address, fn) {
    const c = new Client(address);
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  }

  it('resumes from the last revision + 1: no gap, no duplicate', async () => {
    w = await watcher.watch({ prefix: 'r/', resume: FAST_RESUME });
    const it = w[Symbol.asyncIterator]();
    const expected = [];
    await withClient(server.address, async (c) => {
      for (let i = 0; i < 5; i++) expected.push([await c.put(`r/${i}`, `v${i}`), 'PUT', `r/${i}`, `v${i}`]);
    });
    const got = (await take(it, 3)).map(short);
    const address = await restart();
    await withClient(address, async (c) => {
      // Changes made while the watcher cannot reach the server.
      for (let i = 5; i < 10; i++) expected.push([await c.put(`r/${i}`, `v${i}`), 'PUT', `r/${i}`, `v${i}`]);
      expected.push([await c.delete('r/0'), 'DELETE', 'r/0', '']);
      const rev = await c.write([['put', 'r/a', '1'], ['put', 'r/b', '2']]);
      expected.push([rev, 'PUT', 'r/a', '1'], [rev, 'PUT', 'r/b', '2']);
      proxy.setBackend(address);
      got.push(...(await take(it, expected.length - 3)).map(short));
      assert.deepEqual(got, expected);
      assert.ok(w.resumes >= 1, `resumes ${w.resumes}`);
      assert.equal(w.revision, rev);
      // Nothing more was buffered: the next event is the next change.
      const last = await c.put('r/z', 'end');
      assert.deepEqual((await take(it, 1)).map(short), [[last, 'PUT', 'r/z', 'end']]);
    });
  });

  it('resuming into compacted history rejects with OUT_OF_RANGE and compactRevision', async () => {
    w = await watcher.watch({ prefix: 'r/', resume: FAST_RESUME });
    const it = w[Symbol.asyncIterator]();
    const first = await withClient(server.address, (c) => c.put('r/1', '1'));
    assert.equal((await take(it, 1))[0].revision, first);
    const address = await restart();
    const current = await withClient(address, async (c) => {
      await c.put('r/2', '2');
      const rev = await c.put('r/3', '3');
      await c.compact(rev);
      return rev;
    });
    proxy.setBackend(address);
    const err = await take(it, 1).then(() => null, (e) => e);
    assert.ok(isCode(status.OUT_OF_RANGE)(err), String(err));
    assert.equal(err.compactRevision, current);
    assert.equal(w.compactRevision, current);
  });

  it('without resume, a restart rejects with UNAVAILABLE', async () => {
    w = await watcher.watch({ prefix: 'r/', resume: false });
    const it = w[Symbol.asyncIterator]();
    await withClient(server.address, (c) => c.put('r/1', '1'));
    await take(it, 1);
    await restart();
    await assert.rejects(take(it, 1), isCode(status.UNAVAILABLE));
  });

  it('cancel() ends a watch that is resuming', async () => {
    w = await watcher.watch({ prefix: 'r/' }); // the default policy: keeps trying
    const before = proxy.connections;
    await server.kill(); // and never back
    const loop = (async () => {
      const seen = [];
      for await (const e of w) seen.push(e);
      return seen;
    })();
    // A reconnection reached the proxy: the loop is resuming (or about to).
    await within(proxy.waitConnections(before + 1), WAIT_MS, 'a reconnection');
    w.cancel();
    assert.deepEqual(await within(loop, WAIT_MS, 'the loop ending after cancel()'), []);
  });

  it('gives up after giveUpAfterMs', async () => {
    w = await watcher.watch({ prefix: 'r/', resume: { initialBackoffMs: 50, maxBackoffMs: 200, giveUpAfterMs: 1000 } });
    await server.kill(); // and never back
    await assert.rejects(take(w[Symbol.asyncIterator](), 1), isCode(status.UNAVAILABLE));
  });
});

// ---- Watch against scripted streams: the resume bookkeeping -----------------

function rpcError(code, details = '') {
  return Object.assign(new Error(details), { code, details });
}

// A grpc-js-like call that plays a script of WatchResponses and errors.
function fakeCall(script) {
  const call = {
    cancelled: false,
    on: () => call,
    cancel: () => { call.cancelled = true; },
    async* [Symbol.asyncIterator]() {
      for (const item of script) {
        if (call.cancelled) throw rpcError(grpc.status.CANCELLED);
        if (item instanceof Error) throw item;
        yield item;
      }
      throw rpcError(grpc.status.UNAVAILABLE, 'script ended');
    },
  };
  return call;
}

function msg(header, events = [], compact = 0) {
  return {
    header: { revision: String(header) },
    compact_revision: String(compact),
    events: events.map(([rev, key]) => ({
      type: 'PUT',
      kv: { key: Buffer.from(key), value: Buffer.from('v'), create_revision: '0', mod_revision: String(rev), version: '0' },
      prev_kv: null,
    })),
  };
}

async function scripted(streams, { start = 0, progressNotify = false } = {}) {
  const requests = [];
  const openCall = (req, waitForReady) => {
    assert.equal(waitForReady, requests.length > 0); // resumes wait for the channel
    requests.push(req.start_revision);
    return fakeCall(streams[requests.length - 1]);
  };
  const w = new Watch(openCall, { key: Buffer.from('k'), range_end: Buffer.alloc(0), start_revision: start },
    { progressNotify, resume: resumePolicy({ initialBackoffMs: 1, maxBackoffMs: 1, giveUpAfterMs: 10000 }) });
  await w._establish(null);
  return { w, it: w[Symbol.asyncIterator](), requests };
}

describe('Watch bookkeeping against scripted streams (no server needed)', () => {
  it('a split revision cut by a break is not delivered twice', async () => {
    const { w, it, requests } = await scripted([
      [msg(0), msg(1, [[1, 'a']]), msg(1, [[2, 'x'], [2, 'y']]), rpcError(grpc.status.UNAVAILABLE, 'shutting down')],
      // The server sends revision 2 whole (in another order), then more.
      [msg(1), msg(2, [[2, 'z'], [2, 'y'], [2, 'x']]), msg(3, [[3, 'a']])],
    ], { start: 1 });
    const got = (await take(it, 5)).map((e) => [e.revision, str(e.key)]);
    assert.deepEqual(got, [[1, 'a'], [2, 'x'], [2, 'y'], [2, 'z'], [3, 'a']]);
    assert.deepEqual(requests, [1, 2]); // resumed from the last complete revision + 1
    assert.deepEqual([w.revision, w.resumes], [3, 1]);
  });

  it('resumes after progress and drops what it already has', async () => {
    const { it, requests } = await scripted([
      [msg(4), msg(5, [[5, 'a']]), msg(9), rpcError(grpc.status.UNAVAILABLE)],
      [msg(9), msg(9, [[9, 'old']]), msg(10, [[10, 'b']])],
    ], { progressNotify: true });
    const got = (await take(it, 3)).map((e) => [e.type, e.revision, str(e.key)]);
    assert.deepEqual(got, [['PUT', 5, 'a'], ['PROGRESS', 9, ''], ['PUT', 10, 'b']]);
    assert.deepEqual(requests, [0, 10]);
  });

  it('revision counts only what was yielded', async () => {
    const { w, it } = await scripted([[msg(0), msg(2, [[1, 'a'], [2, 'b'], [2, 'c']]), msg(3, [[3, 'x'], [3, 'y']])]], { start: 1 });
    assert.equal(w.revision, 0);
    const seen = [];
    for (let i = 0; i < 5; i++) {
      await take(it, 1);
      seen.push(w.revision);
    }
    assert.deepEqual(seen, [1, 1, 2, 2, 3]);
  });

  it('a compaction message is not progress; other errors are not resumed', async () => {
    const { w, it, requests } = await scripted([
      [msg(0), msg(1, [[1, 'a']]), msg(7, [], 7), rpcError(grpc.status.OUT_OF_RANGE, 'compacted')],
    ], { start: 1 });
    assert.equal((await take(it, 1))[0].revision, 1);
    await assert.rejects(take(it, 1), (e) => isCode(status.OUT_OF_RANGE)(e) && e.compactRevision === 7);
    assert.equal(w.revision, 1);
    assert.deepEqual(requests, [1]);
    const other = await scripted([[msg(0), rpcError(grpc.status.INTERNAL, 'bug')]]);
    await assert.rejects(take(other.it, 1), isCode(status.INTERNAL));
    assert.deepEqual(other.requests, [0]);
  });
});

describe('incremental backups against strata-server', { skip: skipReason() }, () => {
  it('backupToFile with sinceRevision writes a format-2 file of the changes', async () => {
    const fs = require('node:fs');
    const path = require('node:path');
    const server = new StrataServer();
    await server.start();
    const db = new Client(server.address);
    try {
      for (let i = 0; i < 5; i++) await db.put(`k${i}`, 'v');
      const full = path.join(server.dir, 'full.backup');
      const since = await db.backupToFile(full);
      assert.equal(since, 5);
      assert.equal(fs.readFileSync(full).readUInt32LE(8), 1);
      await db.put('k0', 'w');
      await db.delete('k1');
      const incr = path.join(server.dir, 'incr.backup');
      assert.equal(await db.backupToFile(incr, { sinceRevision: since }), 7);
      const bytes = fs.readFileSync(incr);
      assert.equal(bytes.toString('latin1', 0, 8), 'STRATABK');
      assert.equal(bytes.readUInt32LE(8), 2);
      const kinds = [];
      for await (const m of db.backup({ sinceRevision: since })) {
        kinds.push(m.kind);
        if (m.kind === 'begin') assert.equal(m.begin.from_revision, '5');
        if (m.kind === 'manifest') assert.equal(m.manifest.batches, '2');
      }
      assert.deepEqual(kinds, ['begin', 'changes', 'manifest']);
      // One batch of 6 MB travels as one chunk: above gRPC's default 4 MiB
      // receive limit, which the client lifts (as the C++ client does).
      const crypto = require('node:crypto');
      const big = new WriteBatch();
      for (let i = 0; i < 3; i++) big.put(`big${i}`, crypto.randomBytes(2000000));
      await db.write(big);
      assert.equal(await db.backupToFile(path.join(server.dir, 'big.backup'), { sinceRevision: 7 }), 8);
      await assert.rejects(db.backupToFile(path.join(server.dir, 'f'), { sinceRevision: 100 }),
        isCode(status.OUT_OF_RANGE));
      assert.equal(fs.existsSync(path.join(server.dir, 'f.partial')), false);
    } finally {
      db.close();
      await server.cleanup();
    }
  });
});
