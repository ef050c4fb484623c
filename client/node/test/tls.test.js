// @strata/client over TLS and mutual TLS: one strata-server started with
// --tls_cert/--tls_key and --tls_client_ca (client certificates required), on
// certificates made by scripts/gen-test-certs.sh in a temporary directory.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Client, WriteBatch, StrataError, status } = require('@strata/client');
const { main } = require('../examples/example.js');
const { nodeBlocks, runExample } = require('./doc.js');
const { StrataServer, skipReason, genTestCerts, mtlsFlags } = require('./server.js');

describe('Client over mutual TLS', { skip: skipReason() }, () => {
  let server;
  let pki;
  const pem = (name) => path.join(pki, name);
  const mtls = (overrides = {}) => ({ ca: pem('ca.crt'), cert: pem('client.crt'), key: pem('client.key'), ...overrides });

  // A call with these settings fails with UNAVAILABLE (no connection).
  async function assertRefused(tls, why = '') {
    const c = new Client(server.address, { tls, timeoutMs: 10000 });
    try {
      const err = await c.put('refused', 'x').then(() => null, (e) => e);
      assert.ok(err instanceof StrataError, `expected a refusal, got ${err}`);
      assert.equal(err.code, status.UNAVAILABLE, err.message);
      assert.ok(err.details.includes(why), err.details);
    } finally {
      c.close();
    }
  }

  before(async () => {
    server = new StrataServer();
    pki = genTestCerts(path.join(server.dir, 'pki'));
    server.extraArgs = mtlsFlags(pki);
    await server.start();
  });

  after(async () => {
    if (server) await server.cleanup(); // removes pki too (it is in server.dir)
  });

  it('every call works over mutual TLS (file paths)', async () => {
    const db = new Client(server.address, { tls: mtls() });
    try {
      await db.put('m/a', '1');
      await db.write(new WriteBatch().put('m/b', '2').put('m/c', '3').delete('m/a'));
      assert.equal(await db.get('m/a'), null);
      assert.equal((await db.get('m/b')).toString(), '2');
      const pairs = [];
      for await (const { key, value } of db.scan({ start: 'm/', end: 'm0' })) pairs.push([key.toString(), value.toString()]);
      assert.deepEqual(pairs, [['m/b', '2'], ['m/c', '3']]);
      await db.delete('m/b');
      assert.equal(await db.health(), true);
    } finally {
      db.close();
    }
  });

  it('PEM Buffers work like paths', async () => {
    const read = (n) => fs.readFileSync(pem(n));
    const db = new Client(server.address, { tls: { ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key') } });
    try {
      await db.put('buffers', 'ok');
      assert.equal((await db.get('buffers')).toString(), 'ok');
    } finally {
      db.close();
    }
  });

  it('examples/example.js runs over mutual TLS', async () => {
    const r = await main(server.address, () => {}, mtls());
    assert.equal(r.value.toString(), 'world');
    assert.equal(r.serving, true);
  });

  it('serverName overrides the checked name', async () => {
    // The certificate names localhost and 127.0.0.1; we dial 127.0.0.1.
    const db = new Client(server.address, { tls: mtls({ serverName: 'localhost' }) });
    try {
      assert.equal(await db.health(), true);
    } finally {
      db.close();
    }
    await assertRefused(mtls({ serverName: 'wrong.example' }));
  });

  it('the server refuses a client without a certificate', async () => {
    await assertRefused({ ca: pem('ca.crt') });
  });

  it('the server refuses a certificate from another CA', async () => {
    await assertRefused(mtls({ cert: pem('other-client.crt'), key: pem('other-client.key') }));
  });

  it('the client refuses a server it does not trust', async () => {
    await assertRefused(mtls({ ca: pem('other-ca.crt') }));
  });

  it('a plaintext client cannot talk to a TLS server', async () => {
    const c = new Client(server.address, { timeoutMs: 10000 });
    try {
      await assert.rejects(c.get('k'), (e) => e instanceof StrataError && e.code === status.UNAVAILABLE);
    } finally {
      c.close();
    }
  });

  it('bad settings fail before connecting', () => {
    assert.throws(() => new Client(server.address, { tls: { ca: pem('ca.crt'), cert: pem('client.crt') } }), /cert and key go together/);
    assert.throws(() => new Client(server.address, { tls: { key: pem('client.key') } }), /cert and key go together/);
    assert.throws(() => new Client(server.address, { tls: { caFile: pem('ca.crt') } }), /unknown tls option "caFile"/);
    assert.throws(() => new Client(server.address, { tls: { serverName: '' } }), TypeError);
    assert.throws(() => new Client(server.address, { tls: { ca: 42 } }), TypeError);
    assert.throws(() => new Client(server.address, { tls: { ca: pem('missing.crt') } }), { code: 'ENOENT' });
    const grpc = require('@grpc/grpc-js');
    assert.throws(() => new Client(server.address, { tls: mtls(), credentials: grpc.credentials.createInsecure() }), TypeError);
  });

  it('the TLS example of docs/clients.md runs as written', async () => {
    const blocks = nodeBlocks().filter((b) => b.includes('tls:'));
    assert.equal(blocks.length, 1, 'docs/clients.md: one Node.js TLS example');
    const out = await runExample(blocks[0], { address: server.address, pki });
    assert.match(out, /over mutual TLS true/);
  });
});
