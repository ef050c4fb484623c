// Typed values through @strata/client against a real strata-server
// (docs/values.md): typed puts and their checks, values decoded to
// JavaScript, incr (also many at once), jsonGet and jsonUpdate.
'use strict';

const { describe, it, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Client, WriteBatch, StrataError, status, decodeValue, VALUE_TYPES } = require('@strata/client');
const { StrataServer, skipReason } = require('./server.js');

const isCode = (code, substring = '') => (err) =>
  err instanceof StrataError && err.code === code && err.details.includes(substring);

describe('typed-value argument checks (no server needed)', () => {
  it('rejects bad types, deltas and patch options before sending', async () => {
    const db = new Client('127.0.0.1:1');
    try {
      await assert.rejects(db.put('k', 'v', { type: 'YAML' }), TypeError);
      assert.throws(() => new WriteBatch().put('k', 'v', 7), TypeError);
      await assert.rejects(db.incr('k', 1.5), TypeError);
      await assert.rejects(db.incr('k', 2n ** 63n), RangeError);
      await assert.rejects(db.incr('k', 1, { ttlMs: -1 }), RangeError);
      await assert.rejects(db.incr('k', 1, { mustexist: true }), /unknown incr option "mustexist"/);
      await assert.rejects(db.jsonUpdate('k', {}), TypeError);
      await assert.rejects(db.jsonUpdate('k', { mergePatch: {}, jsonPatch: [] }), TypeError);
      await assert.rejects(db.putJson('k', undefined), TypeError);
      await assert.rejects(db.putJson('k', 1n), TypeError);
    } finally {
      db.close();
    }
  });

  it('decodes values by their type', () => {
    assert.deepEqual(VALUE_TYPES, ['BYTES', 'TEXT', 'INT64', 'JSON']);
    assert.equal(decodeValue(Buffer.from('-9223372036854775808'), 'INT64'), -(2n ** 63n));
    assert.equal(decodeValue(Buffer.from('caf\u00e9'), 'TEXT'), 'caf\u00e9');
    assert.deepEqual(decodeValue(Buffer.from('{"a":[null]}'), 'JSON'), { a: [null] });
    assert.deepEqual(decodeValue(Buffer.from([0xff]), 'BYTES'), Buffer.from([0xff]));
  });
});

describe('typed values against strata-server', { skip: skipReason() }, () => {
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

  it('typed puts come back with their type, decoded', async () => {
    await db.put('t', 'caf\u00e9', { type: 'TEXT' });
    await db.put('i', '-42', { type: 'int64' });
    await db.putJson('j', { b: [1, 2.5, null], a: 'x' });
    await db.put('b', Buffer.from([0xff]));
    const { kv } = await db.getWithMetadata('j');
    assert.equal(kv.type, 'JSON');
    assert.equal(kv.value.toString(), '{"a":"x","b":[1,2.5,null]}'); // normalized
    assert.equal(await db.getTyped('t'), 'caf\u00e9');
    assert.equal(await db.getTyped('i'), -42n);
    assert.deepEqual(await db.getTyped('j'), { a: 'x', b: [1, 2.5, null] });
    assert.equal(await db.getTyped('missing'), undefined);
    const types = {};
    for await (const p of db.scan()) types[p.key.toString()] = p.type;
    assert.deepEqual(types, { b: 'BYTES', i: 'INT64', j: 'JSON', t: 'TEXT' });
    await db.write(new WriteBatch().put('n', '5', 'INT64'));
    assert.equal(await db.incr('n', 2), 7n);
  });

  it('a value not of its type is INVALID_ARGUMENT and nothing is written', async () => {
    await assert.rejects(db.put('k', '9223372036854775808', { type: 'INT64' }), isCode(status.INVALID_ARGUMENT, 'not an INT64'));
    await assert.rejects(db.put('k', Buffer.from([0xc0, 0xaf]), { type: 'TEXT' }), isCode(status.INVALID_ARGUMENT, 'not valid UTF-8'));
    await assert.rejects(db.put('k', '{"a":', { type: 'JSON' }), isCode(status.INVALID_ARGUMENT, 'not valid JSON'));
    assert.equal(await db.get('k'), null);
  });

  it('incr counts, exactly, also from many calls at once', async () => {
    assert.equal(await db.incr('hits'), 1n);
    assert.equal(await db.incr('hits', -11n), -10n);
    const values = await Promise.all(Array.from({ length: 200 }, () => db.incr('hot')));
    assert.deepEqual(values.map(Number).sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1));
    await db.put('max', '9223372036854775806', { type: 'INT64' });
    assert.equal(await db.incr('max'), 2n ** 63n - 1n);
    await assert.rejects(db.incr('max'), isCode(status.OUT_OF_RANGE, 'overflows int64'));
    await assert.rejects(db.incr('absent', 1, { mustExist: true }), isCode(status.NOT_FOUND));
    await db.put('text', '1', { type: 'TEXT' });
    await assert.rejects(db.incr('text'), isCode(status.FAILED_PRECONDITION, 'holds a TEXT value, not INT64'));
    await assert.rejects(db.incr('x', 1, { namespace: 'tenant' }), isCode(status.NOT_FOUND, 'namespace "tenant" does not exist'));
  });

  it('jsonGet and jsonUpdate', async () => {
    await db.putJson('doc', { a: { b: [10, 20] }, 'x/y': 1 });
    assert.equal(await db.jsonGet('doc', '/a/b/1'), 20);
    assert.equal(await db.jsonGet('doc', '/x~1y'), 1);
    assert.deepEqual(await db.jsonUpdate('doc', { mergePatch: { a: null, c: 'new' } }), { c: 'new', 'x/y': 1 });
    assert.deepEqual(await db.jsonUpdate('doc', { jsonPatch: [{ op: 'add', path: '/l', value: [1] }] }),
      { c: 'new', l: [1], 'x/y': 1 });
    assert.deepEqual(await db.jsonUpdate('doc', { jsonPatch: Buffer.from('[{"op":"remove","path":"/l"}]') }),
      { c: 'new', 'x/y': 1 });
    await assert.rejects(db.jsonGet('missing'), isCode(status.NOT_FOUND, 'key not found'));
    await assert.rejects(db.jsonGet('doc', '/zz'), isCode(status.NOT_FOUND, 'pointer "/zz" does not resolve'));
    await assert.rejects(db.jsonUpdate('doc', { jsonPatch: [{ op: 'test', path: '/c', value: 'old' }] }),
      isCode(status.FAILED_PRECONDITION, 'test failed'));
    await assert.rejects(db.jsonUpdate('doc', { jsonPatch: Buffer.from('[{') }), isCode(status.INVALID_ARGUMENT));
    // A merge patch of null replaces the document with null.
    assert.equal(await db.jsonUpdate('doc', { mergePatch: null }), null);
    assert.equal(await db.getTyped('doc'), null);
  });

  it('watch events carry the type', async () => {
    const start = await db.put('w', '1', { type: 'INT64' });
    await db.incr('w');
    const w = await db.watch({ key: 'w', startRevision: start });
    const got = [];
    for await (const e of w) {
      got.push([e.type, e.valueType, decodeValue(e.value, e.valueType)]);
      if (got.length === 2) break;
    }
    assert.deepEqual(got, [['PUT', 'INT64', 1n], ['PUT', 'INT64', 2n]]);
  });
});
