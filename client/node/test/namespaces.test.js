// Namespaces through @strata/client against a real strata-server
// (docs/namespaces.md): the admin calls, the client's namespace option and
// inNamespace(), isolation of the same key, NOT_FOUND for an unknown one.
'use strict';

const { describe, it, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Client, WriteBatch, StrataError, status } = require('@strata/client');
const { StrataServer, skipReason } = require('./server.js');

const isCode = (code) => (err) => err instanceof StrataError && err.code === code;

describe('namespaces against strata-server', { skip: skipReason() }, () => {
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

  it('creates, lists, updates and deletes namespaces', async () => {
    assert.ok(await db.createNamespace('team/a', { quotaBytes: 100, quotaKeys: 5 }) > 0);
    await db.createNamespace('team/b');
    await assert.rejects(db.createNamespace('team/a'), isCode(status.ALREADY_EXISTS));
    await assert.rejects(db.createNamespace('bad name'), isCode(status.INVALID_ARGUMENT));
    await db.updateNamespace('team/b', { quotaKeys: 9 });
    assert.deepEqual(await db.listNamespaces('team/'), [
      { name: 'team/a', quotaBytes: 100, quotaKeys: 5, approximateKeys: 0, approximateBytes: 0 },
      { name: 'team/b', quotaBytes: 0, quotaKeys: 9, approximateKeys: 0, approximateBytes: 0 },
    ]);
    // Only the quota given changes; the other stays.
    await db.updateNamespace('team/a', { quotaKeys: 6 });
    assert.deepEqual((await db.listNamespaces('team/a'))[0],
      { name: 'team/a', quotaBytes: 100, quotaKeys: 6, approximateKeys: 0, approximateBytes: 0 });
    await db.updateNamespace('team/a', { quotaBytes: 0 });
    assert.deepEqual((await db.listNamespaces('team/a'))[0],
      { name: 'team/a', quotaBytes: 0, quotaKeys: 6, approximateKeys: 0, approximateBytes: 0 });
    await db.deleteNamespace('team/a');
    await assert.rejects(db.deleteNamespace('team/a'), isCode(status.NOT_FOUND));
    assert.deepEqual((await db.listNamespaces()).map((n) => n.name), ['team/b']);
  });

  it('refuses unknown or out-of-range options before sending anything', async () => {
    // snake_case would silently have meant "no quota" and "a full backup".
    await assert.rejects(db.createNamespace('c', { quota_bytes: 100 }), TypeError);
    await assert.rejects(db.updateNamespace('c', { quotaKeys: -1 }), RangeError);
    await assert.rejects(db.backupToFile('/nonexistent/f', { since: 5 }), TypeError);
    await assert.rejects(async () => {
      for await (const m of db.backup({ sinceRevision: 1.5 })) void m;
    }, RangeError);
    assert.deepEqual(await db.listNamespaces(), []);
  });

  it('backs up one namespace (format 3) with the namespace option', async () => {
    await db.createNamespace('a', { quotaKeys: 10 });
    await db.createNamespace('b');
    const a = new Client(server.address, { namespace: 'a' });
    try {
      await a.put('k', 'A');
      await a.inNamespace('b').put('k', 'B');
      // The client's namespace, or the option on a client without one.
      for (const [client, options] of [[a, {}], [db, { namespace: 'a' }]]) {
        const file = path.join(server.dir, 'a.backup');
        assert.ok(await client.backupToFile(file, options) > 0);
        assert.equal(fs.readFileSync(file).readUInt32LE(8), 3);
        const kinds = [];
        let begin = null;
        for await (const m of client.backup(options)) {
          kinds.push(m.kind);
          if (m.kind === 'begin') begin = m.begin;
        }
        assert.equal(begin.namespace, 'a');
        assert.equal(kinds[kinds.length - 1], 'manifest');
        assert.ok(kinds.slice(1, -1).every((k) => k === 'keys'));
      }
      await assert.rejects(db.backupToFile(path.join(server.dir, 'n'), { namespace: 'nope' }),
        isCode(status.NOT_FOUND));
      assert.equal(fs.existsSync(path.join(server.dir, 'n')), false);
      await assert.rejects(async () => {
        for await (const m of a.backup({ sinceRevision: 1 })) void m;
      }, isCode(status.UNIMPLEMENTED));
    } finally {
      a.close();
    }
  });

  it('keeps the same key apart in two namespaces', async () => {
    await db.createNamespace('a');
    await db.createNamespace('b');
    const a = new Client(server.address, { namespace: 'a' });
    const b = a.inNamespace('b');
    try {
      await db.put('k', 'default');
      await a.put('k', 'A');
      await b.write(new WriteBatch().put('k', 'B').put('only-b', '1'));
      assert.equal((await db.get('k')).toString(), 'default');
      assert.equal((await a.get('k')).toString(), 'A');
      assert.equal((await b.get('k')).toString(), 'B');
      const keys = [];
      for await (const p of b.scan()) keys.push(p.key.toString());
      assert.deepEqual(keys, ['k', 'only-b']);
      await db.deleteNamespace('a');
      await assert.rejects(a.get('k'), isCode(status.NOT_FOUND));
      assert.equal((await b.get('k')).toString(), 'B');
    } finally {
      a.close();
    }
  });
});
