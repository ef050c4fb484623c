// txn, commit and the transaction helpers of @strata/client against a real
// strata-server (docs/transactions.md): compare -> then/else with every
// target, missing keys and ranges; optimistic transactions that pin a
// snapshot, read their own writes, abort on a changed read or a phantom in a
// scanned range and never commit when they only read; and no lost update when
// many concurrent workers increment one counter through txn or
// runTransaction. Same cases as client/python/tests/test_transactions.py.
'use strict';

const { describe, it, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Client, Compare, TxnOp, Transaction, WriteBatch, StrataError, status } = require('@strata/client');
const { StrataServer, skipReason } = require('./server.js');

// The counter tests: WORKERS concurrent workers x INCREMENTS increments each.
const WORKERS = 8;
const INCREMENTS = 40;
const TIME_LIMIT_MS = 120000; // for the whole of one counter test

const isCode = (code, substring = '') => (err) =>
  err instanceof StrataError && err.code === code && err.details.includes(substring);
const str = (b) => (b === null ? null : b.toString('latin1'));
const pairs = (kvs) => kvs.map((kv) => [str(kv.key), str(kv.value)]);

describe('Compare and TxnOp builders (no server needed)', () => {
  it('build the wire messages', () => {
    const c = Compare.version('k', '==', 0);
    assert.deepEqual([str(c.key), c.target, c.op, c.constant], ['k', 'VERSION', '==', 0]);
    assert.ok(Object.isFrozen(c));
    assert.deepEqual(c.toProto(), { key: Buffer.from('k'), range_end: Buffer.alloc(0), result: 'EQUAL', target: 'VERSION', version: '0' });
    const v = Compare.value('a/', '!=', 'x').inPrefix().toProto();
    assert.deepEqual([str(v.range_end), str(v.value), v.result], ['a0', 'x', 'NOT_EQUAL']);
    assert.deepEqual(Compare.modRevision(Buffer.from([0xff]), '>', 3n).inPrefix().rangeEnd, Buffer.from([0]));
    assert.equal(str(Compare.createRevision('k', '<', 9, { rangeEnd: 'm' }).rangeEnd), 'm');
    assert.deepEqual(TxnOp.scan({ prefix: 'p/', limit: 2 }).message.scan.end_key, Buffer.from('p0'));
    assert.equal(TxnOp.put('n', '1', 'INT64').message.put.type, 'INT64');
  });

  it('build the typed ops and the INT64_VALUE compare', () => {
    assert.deepEqual(Compare.int64Value('n', '>', -3, { rangeEnd: 'o' }).toProto(), {
      key: Buffer.from('n'), range_end: Buffer.from('o'), result: 'GREATER', target: 'INT64_VALUE', int64_value: '-3',
    });
    const inc = TxnOp.increment('c', -2n, { mustExist: true });
    assert.ok(Object.isFrozen(inc));
    assert.deepEqual([inc.kind, str(inc.key)], ['increment', 'c']);
    assert.deepEqual(inc.message, { increment: { key: Buffer.from('c'), delta: '-2', must_exist: true } });
    assert.equal(TxnOp.increment('c').message.increment.delta, '1');
    assert.deepEqual(TxnOp.jsonGet('d', '/a/0').message, { json_get: { key: Buffer.from('d'), pointer: '/a/0' } });
    assert.equal(TxnOp.jsonGet('d').kind, 'jsonGet');
    // Values are serialized; a Buffer is sent as JSON text as it is.
    const merge = TxnOp.jsonMergePatch('d', { b: null, a: [1] });
    assert.equal(merge.kind, 'jsonUpdate');
    assert.equal(str(merge.message.json_update.merge_patch), '{"b":null,"a":[1]}');
    const patch = TxnOp.jsonPatch('d', Buffer.from('[{"op":"remove","path":"/a"}]'));
    assert.equal(str(patch.message.json_update.json_patch), '[{"op":"remove","path":"/a"}]');
    assert.throws(() => Compare.int64Value('n', '==', '1'), TypeError);
    assert.throws(() => TxnOp.increment('c', 2n ** 63n), RangeError);
    assert.throws(() => TxnOp.increment('c', 1.5), TypeError);
    assert.throws(() => TxnOp.increment('c', 1, { must_exist: true }), /unknown TxnOp.increment option "must_exist"/);
    assert.throws(() => TxnOp.jsonGet('d', 7), TypeError);
    assert.throws(() => TxnOp.jsonMergePatch('d', undefined), TypeError);
  });

  it('reject bad arguments before anything is sent', async () => {
    assert.throws(() => Compare.version('k', '=', 0), TypeError);
    assert.throws(() => Compare.version('k', '==', 1.5), TypeError);
    assert.throws(() => Compare.modRevision('k', '<', 2n ** 63n), RangeError);
    assert.throws(() => Compare.version('k', '==', 0, { range_end: 'x' }), /unknown Compare option "range_end"/);
    assert.throws(() => TxnOp.put('k', 1), TypeError);
    assert.throws(() => TxnOp.put('k', '1', { type: 'YAML' }), TypeError);
    assert.throws(() => TxnOp.put('k', '1', 7), TypeError);
    assert.throws(() => TxnOp.scan({ limit: -1 }), RangeError);
    assert.throws(() => TxnOp.scan({ start: 'a', prefix: 'b' }), TypeError);
    const db = new Client('127.0.0.1:1');
    try {
      await assert.rejects(db.txn({ compare: [TxnOp.get('k')] }), /compare must hold Compare values/);
      await assert.rejects(db.txn({ success: [Compare.version('k', '==', 0)] }), /success must hold TxnOp values/);
      await assert.rejects(db.txn({ sucess: [] }), /unknown txn option "sucess"/);
      await assert.rejects(db.commit({ readRevision: -1 }), RangeError);
      await assert.rejects(db.runTransaction(async () => {}, { maxAttempts: 0 }), RangeError);
      await assert.rejects(db.runTransaction(async () => {}, { retries: 3 }), /unknown runTransaction option/);
      assert.throws(() => db.transaction().put('k', 'v', { ttlMs: 5 }), /unknown Transaction.put option "ttlMs"/);
    } finally {
      db.close();
    }
  });
});

describe('transactions against strata-server', { skip: skipReason() }, () => {
  let server;
  let db;

  beforeEach(async () => {
    server = new StrataServer();
    await server.start();
    db = new Client(server.address);
  });

  afterEach(async () => {
    db.close();
    await server.cleanup();
  });

  describe('txn', () => {
    it('a missing key compares as version 0, and each branch runs', async () => {
      const create = {
        compare: [Compare.version('lock', '==', 0)],
        success: [TxnOp.put('lock', 'me'), TxnOp.get('lock')],
        failure: [TxnOp.get('lock')],
      };
      const first = await db.txn(create);
      assert.equal(first.succeeded, true);
      assert.deepEqual(first.results.map((r) => r.kind), ['put', 'get']);
      // The branch's get sees its own put, with the metadata it commits with.
      const { kv } = first.results[1];
      assert.deepEqual([str(kv.key), str(kv.value), kv.version, kv.modRevision], ['lock', 'me', 1, first.revision]);
      const second = await db.txn(create);
      assert.equal(second.succeeded, false);
      assert.equal(str(second.results[0].value), 'me');
      assert.equal(second.revision, first.revision); // it wrote nothing
      assert.equal(str(await db.get('lock')), 'me');
    });

    it('every target and result', async () => {
      const rev1 = await db.put('k', 'b');
      const rev2 = await db.put('k', 'c'); // version 2, created at rev1, modified at rev2
      await db.put('other', 'x');
      const cases = [
        [Compare.version('k', '==', 2), true], [Compare.version('k', '!=', 2), false],
        [Compare.version('k', '>', 1), true], [Compare.version('k', '<', 2), false],
        [Compare.createRevision('k', '==', rev1), true], [Compare.createRevision('k', '>', rev1), false],
        [Compare.modRevision('k', '==', BigInt(rev2)), true], [Compare.modRevision('k', '<', rev2), false],
        [Compare.value('k', '==', 'c'), true], [Compare.value('k', '>', 'b'), true],
        [Compare.value('k', '<', 'c'), false], [Compare.value('k', '!=', 'c'), false],
        // A missing key: version and revisions 0; a value compare is false.
        [Compare.version('missing', '==', 0), true], [Compare.modRevision('missing', '<', 1), true],
        [Compare.createRevision('missing', '>', 0), false], [Compare.value('missing', '==', ''), false],
        [Compare.value('missing', '!=', 'x'), false],
      ];
      for (const [compare, holds] of cases) {
        const r = await db.txn({ compare: [compare], success: [TxnOp.get('k')], failure: [TxnOp.get('other')] });
        const what = `${str(compare.key)} ${compare.target} ${compare.op} ${compare.constant}`;
        assert.equal(r.succeeded, holds, what);
        assert.equal(str(r.results[0].value), holds ? 'c' : 'x', what);
      }
      // All compares must hold; none: success.
      assert.equal((await db.txn({ compare: [Compare.version('k', '==', 2), Compare.version('other', '==', 2)] })).succeeded, false);
      assert.equal((await db.txn()).succeeded, true);
    });

    it('a range compare needs every key of the range', async () => {
      await db.write(new WriteBatch().put('cfg/a', '1').put('cfg/b', '1'));
      const allOne = () => db.txn({ compare: [Compare.value('cfg/', '==', '1').inPrefix()] });
      assert.equal((await allOne()).succeeded, true);
      await db.put('cfg/b', '2');
      assert.equal((await allOne()).succeeded, false);
      assert.equal((await db.txn({ compare: [Compare.version('cfg/a', '>', 0, { rangeEnd: 'cfg/b' })] })).succeeded, true);
      // An empty range compares as one missing key; '\0': every key >= key.
      assert.equal((await db.txn({ compare: [Compare.version('none/', '==', 0).inPrefix()] })).succeeded, true);
      assert.equal((await db.txn({ compare: [Compare.value('none/', '==', '').inPrefix()] })).succeeded, false);
      assert.equal((await db.txn({ compare: [Compare.version('cfg/a', '>', 0).inRange('\0')] })).succeeded, true);
    });

    it("a branch's scans and gets see its earlier writes", async () => {
      await db.write(new WriteBatch().put('s/a', '1').put('s/b', '2'));
      const r = await db.txn({
        success: [TxnOp.delete('s/a'), TxnOp.put('s/c', '3'), TxnOp.scan({ prefix: 's/' }),
          TxnOp.scan({ prefix: 's/', reverse: true, limit: 1 }), TxnOp.get('s/a')],
      });
      assert.deepEqual(r.results.map((x) => x.kind), ['delete', 'put', 'scan', 'scan', 'get']);
      assert.deepEqual(pairs(r.results[2].kvs), [['s/b', '2'], ['s/c', '3']]);
      assert.deepEqual(pairs(r.results[3].kvs), [['s/c', '3']]);
      assert.equal(r.results[4].kv, null);
      const after = [];
      for await (const kv of db.scan({ prefix: 's/' })) after.push(kv);
      assert.deepEqual(pairs(after), [['s/b', '2'], ['s/c', '3']]);
    });

    it('a typed put is checked, and a branch may write a key once', async () => {
      await db.txn({ success: [TxnOp.put('n', '5', 'INT64')] });
      assert.equal(await db.incr('n'), 6n);
      await assert.rejects(db.txn({ success: [TxnOp.put('n', 'x', 'INT64')] }), isCode(status.INVALID_ARGUMENT));
      await assert.rejects(db.txn({ success: [TxnOp.put('a', '1'), TxnOp.delete('a')] }),
        isCode(status.INVALID_ARGUMENT, 'second time'));
      assert.equal(await db.get('a'), null);
      assert.equal(str(await db.get('n')), '6');
    });
  });

  describe('typed ops in a txn', () => {
    it('run at one revision, guarded by a numeric compare', async () => {
      await db.put('stock', '10', { type: 'INT64' });
      await db.putJson('order/1', { qty: 1, note: 'x' });
      // As numbers 10 > 9; as bytes '10' < '9'.
      const sell = {
        compare: [Compare.int64Value('stock', '>', 9), Compare.value('stock', '<', '9')],
        success: [TxnOp.increment('stock', -1), TxnOp.increment('sold'),
          TxnOp.jsonMergePatch('order/1', { note: null, paid: true }),
          TxnOp.jsonGet('order/1', '/paid'), TxnOp.get('sold')],
        failure: [TxnOp.jsonPatch('order/1', [{ op: 'replace', path: '/qty', value: 0 }]),
          TxnOp.jsonGet('order/1')],
      };
      let r = await db.txn(sell);
      assert.equal(r.succeeded, true);
      assert.deepEqual(r.results.map((x) => x.kind), ['increment', 'increment', 'jsonUpdate', 'jsonGet', 'get']);
      assert.deepEqual([r.results[0].counter, r.results[1].counter], [9n, 1n]);
      assert.equal(str(r.results[2].json), '{"paid":true,"qty":1}');
      assert.deepEqual(r.results[2].document, { paid: true, qty: 1 });
      assert.equal(r.results[3].document, true); // sees the branch's patch
      assert.deepEqual([str(r.results[4].value), r.results[4].kv.type], ['1', 'INT64']);
      assert.deepEqual([r.results[4].counter, r.results[4].json, r.results[4].document], [null, null, undefined]);
      for (const key of ['stock', 'sold', 'order/1']) {
        const got = await db.getWithMetadata(key);
        assert.equal(got.kv.modRevision, r.revision, key);
      }
      // Stock is 9 now: the compare fails and the else branch's JSON Patch runs.
      r = await db.txn(sell);
      assert.equal(r.succeeded, false);
      assert.deepEqual(r.results[0].document, { paid: true, qty: 0 });
      assert.equal(str(r.results[1].json), '{"paid":true,"qty":0}');
      assert.equal(str(await db.get('stock')), '9');
    });

    it('a failing typed op fails the whole txn and writes nothing', async () => {
      await db.put('text', 'not a number');
      await db.putJson('doc', {});
      const before = await db.put('n', '1', { type: 'INT64' });
      const cases = [
        [[], [TxnOp.put('a', '1'), TxnOp.increment('none', 1, { mustExist: true })], status.NOT_FOUND, 'success op 1: '],
        [[], [TxnOp.increment('text')], status.FAILED_PRECONDITION, 'success op 0: '],
        [[], [TxnOp.increment('n', 2n ** 63n - 1n)], status.OUT_OF_RANGE, 'success op 0: '],
        [[], [TxnOp.put('a', '1'), TxnOp.jsonGet('doc', '/missing')], status.NOT_FOUND, 'success op 1: '],
        [[], [TxnOp.jsonPatch('doc', [{ op: 'test', path: '/a', value: 1 }])], status.FAILED_PRECONDITION, 'success op 0: '],
        [[], [TxnOp.jsonMergePatch('doc', Buffer.from('{'))], status.INVALID_ARGUMENT, 'success op 0: '],
        [[Compare.int64Value('text', '==', 1)], [TxnOp.put('a', '1')], status.FAILED_PRECONDITION, '"text"'],
      ];
      for (const [compare, success, code, message] of cases) {
        await assert.rejects(db.txn({ compare, success }), isCode(code, message), message);
      }
      assert.equal((await db.getWithMetadata('any')).revision, before);
      assert.equal(await db.get('a'), null);
    });
  });

  describe('commit', () => {
    it('applies the mutations only if nothing read changed', async () => {
      const rev = await db.put('x', '1');
      const committed = await db.commit({ readRevision: rev, readKeys: ['x'], mutations: [['put', 'x', '2'], ['put', 'y', '2']] });
      assert.ok(committed > rev);
      assert.equal(str(await db.get('y')), '2');
      // Read at rev (before the commit above changed x): aborted, nothing written.
      await assert.rejects(db.commit({ readRevision: rev, readKeys: ['x'], mutations: new WriteBatch().put('z', '3') }),
        isCode(status.ABORTED, '"x"'));
      assert.equal(await db.get('z'), null);
      // A key created in a read range after the read revision: a phantom.
      await assert.rejects(db.commit({ readRevision: rev, readRanges: [{ start: 'y' }], mutations: [['put', 'z', '3']] }),
        isCode(status.ABORTED));
      assert.equal(await db.get('z'), null);
      // A blind write (no reads) commits unconditionally.
      assert.ok(await db.commit({ mutations: [['delete', 'x']] }) > committed);
      assert.equal(await db.get('x'), null);
    });

    it('a read revision below the compacted one is too old', async () => {
      const rev = await db.put('k', '1');
      await db.put('k', '2');
      await db.compact(await db.put('other', 'x'));
      await assert.rejects(db.commit({ readRevision: rev, readKeys: ['k'], mutations: [['put', 'k', '3']] }),
        isCode(status.FAILED_PRECONDITION, 'too old'));
      assert.equal(str(await db.get('k')), '2');
    });
  });

  describe('transaction', () => {
    it('reads one snapshot with its own writes applied', async () => {
      await db.write(new WriteBatch().put('a', '1').put('b', '2').put('c', '3'));
      const tx = db.transaction();
      assert.ok(tx instanceof Transaction);
      assert.equal(tx.readRevision, null);
      // Concurrent first reads: one pins the snapshot, the other waits for it.
      const [a, b] = await Promise.all([tx.get('a'), tx.get('b')]);
      assert.deepEqual([str(a), str(b)], ['1', '2']);
      const pinned = tx.readRevision;
      await db.put('b', 'changed'); // after the snapshot: not seen
      assert.equal(str(await tx.get('b')), '2');
      assert.equal(tx.readRevision, pinned);
      tx.put('a', '10');
      tx.delete('b');
      tx.put('d', '4');
      assert.equal(str(await tx.get('a')), '10');
      assert.equal(await tx.get('b'), null);
      assert.deepEqual(pairs(await tx.scan()), [['a', '10'], ['c', '3'], ['d', '4']]);
      // A limit counts the merged pairs; the read range stops at the last one.
      assert.deepEqual(pairs(await tx.scan({ start: 'a', end: 'z', limit: 2 })), [['a', '10'], ['c', '3']]);
      const last = tx.readRanges[tx.readRanges.length - 1];
      assert.deepEqual([str(last.start), str(last.end)], ['a', 'c\0']);
      assert.deepEqual(tx.readKeys.map(str), ['a', 'b']);
      // b changed after the snapshot: the commit aborts, nothing written.
      await assert.rejects(tx.commit(), isCode(status.ABORTED, '"b"'));
      assert.equal(str(await db.get('a')), '1');
      await assert.rejects(tx.commit(), /already committed or been discarded/);
      assert.throws(() => tx.put('a', '0'), /already committed or been discarded/);
    });

    it('commits its buffered writes', async () => {
      await db.put('n', '41');
      const tx = db.transaction();
      tx.put('n', String(Number(await tx.get('n')) + 1));
      const rev = await tx.commit();
      assert.equal(tx.revision, rev);
      assert.equal(str(await db.get('n')), '42');
      assert.equal((await db.getWithMetadata('n')).revision, rev);
      const dropped = db.transaction();
      dropped.put('n', '0');
      dropped.discard();
      assert.equal(str(await db.get('n')), '42');
    });

    it('a phantom in a scanned empty range aborts the commit', async () => {
      await db.put('unrelated', 'x');
      const tx = db.transaction();
      assert.deepEqual(await tx.scan({ prefix: 'jobs/' }), []);
      await db.put('jobs/1', 'new'); // another writer creates a key in the range
      tx.put('jobs/count', '0');
      await assert.rejects(tx.commit(), isCode(status.ABORTED, 'jobs/1'));
      assert.equal(await db.get('jobs/count'), null);
    });

    it('a read-only transaction never commits', async () => {
      await db.put('k', '1');
      const rev = await db.put('j', '1');
      const tx = db.transaction();
      assert.equal(str(await tx.get('k')), '1');
      assert.deepEqual(pairs(await tx.scan({ prefix: 'j' })), [['j', '1']]);
      // Its reads are stale before it ends: a Commit would be ABORTED, so
      // only not calling the server lets it succeed.
      const changed = await db.put('k', '2');
      assert.equal(await tx.commit(), rev);
      assert.equal((await db.getWithMetadata('k')).revision, changed); // nothing moved
    });

    it('a snapshot of the empty store stays empty', async () => {
      const tx = db.transaction();
      assert.equal(await tx.get('a'), null);
      assert.equal(tx.readRevision, 0);
      await db.put('b', '1');
      assert.equal(await tx.get('b'), null); // revision 0: nothing exists yet
      assert.deepEqual(await tx.scan(), []);
      tx.put('c', '1');
      await assert.rejects(tx.commit(), isCode(status.ABORTED));
      assert.equal(await db.get('c'), null);
    });
  });

  describe('runTransaction', () => {
    it('retries an aborted transaction and resolves to what fn returned', async () => {
      await db.put('k', '1');
      const attempts = [];
      const retried = [];
      const seen = await db.runTransaction(async (tx) => {
        attempts.push(tx.attempt);
        const v = await tx.get('k');
        if (tx.attempt === 1) await db.put('k', '5'); // conflicts with this attempt only
        tx.put('k', String(Number(v) + 1));
        return str(v);
      }, { initialBackoffMs: 1, onRetry: (n, err) => retried.push([n, err.code]) });
      assert.equal(seen, '5');
      assert.deepEqual(attempts, [1, 2]);
      assert.deepEqual(retried, [[1, status.ABORTED]]);
      assert.equal(str(await db.get('k')), '6');
    });

    it('gives up after maxAttempts', async () => {
      await db.put('k', '1');
      await assert.rejects(db.runTransaction(async (tx) => {
        await tx.get('k');
        await db.put('k', String(tx.attempt));
        tx.put('k', 'never');
      }, { maxAttempts: 3, initialBackoffMs: 1 }), isCode(status.ABORTED, 'gave up after 3 attempts'));
      assert.equal(str(await db.get('k')), '3');
    });

    it('does not retry other errors', async () => {
      const calls = [];
      await assert.rejects(db.runTransaction(async (tx) => {
        calls.push(tx.attempt);
        tx.put('k', '1');
        throw new RangeError('no');
      }), RangeError);
      assert.deepEqual(calls, [1]);
      assert.equal(await db.get('k'), null);
    });
  });

  describe('no lost update', () => {
    // Runs increment(client, deadline) INCREMENTS times in each of WORKERS
    // concurrent workers (each with its own Client); resolves to the retries
    // they counted. Fails on any error or past the time limit.
    async function runWorkers(increment) {
      const deadline = Date.now() + TIME_LIMIT_MS;
      const clients = Array.from({ length: WORKERS }, () => new Client(server.address));
      try {
        const retries = await Promise.all(clients.map(async (c) => {
          let n = 0;
          for (let i = 0; i < INCREMENTS; i++) n += await increment(c, deadline);
          return n;
        }));
        assert.equal(str(await db.get('counter')), String(WORKERS * INCREMENTS));
        return retries.reduce((a, b) => a + b, 0);
      } finally {
        for (const c of clients) c.close();
      }
    }

    it('through txn compare-and-swap', async () => {
      const retries = await runWorkers(async (c, deadline) => {
        for (let failed = 0; Date.now() < deadline; failed++) {
          const { kv } = await c.getWithMetadata('counter');
          const guard = kv ? Compare.value('counter', '==', kv.value) : Compare.version('counter', '==', 0);
          const next = String(Number(kv ? str(kv.value) : 0) + 1);
          if ((await c.txn({ compare: [guard], success: [TxnOp.put('counter', next)] })).succeeded) return failed;
        }
        throw new Error('time limit reached');
      });
      assert.ok(retries > 0, 'no compare ever failed: no contention');
    });

    it('through runTransaction', async () => {
      const retries = await runWorkers(async (c, deadline) => {
        let aborted = 0;
        await c.runTransaction(async (tx) => {
          if (Date.now() > deadline) throw new Error('time limit reached');
          tx.put('counter', String(Number(str(await tx.get('counter')) || 0) + 1));
        }, { maxAttempts: 10000, initialBackoffMs: 1, maxBackoffMs: 50, onRetry: () => { aborted++; } });
        return aborted;
      });
      assert.ok(retries > 0, 'no commit was ever aborted: no contention');
    });
  });
});
