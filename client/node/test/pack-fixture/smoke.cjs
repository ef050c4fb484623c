// Uses the INSTALLED @strata/client (from its npm pack tarball) over mutual
// TLS. Run by test/pack.test.js inside a temporary project with
// STRATA_ADDRESS and STRATA_PKI (a gen-test-certs.sh directory) set.
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const { Client, WriteBatch, StrataError, status } = require('@strata/client');

async function main() {
  const where = require.resolve('@strata/client');
  assert.ok(where.startsWith(path.join(__dirname, 'node_modules') + path.sep), `resolved to ${where}`);
  const pki = process.env.STRATA_PKI;
  const db = new Client(process.env.STRATA_ADDRESS, {
    timeoutMs: 10000,
    tls: { ca: path.join(pki, 'ca.crt'), cert: path.join(pki, 'client.crt'), key: path.join(pki, 'client.key') },
  });
  try {
    await db.put('pack/a', '1');
    await db.write(new WriteBatch().put('pack/b', '2').delete('pack/a'));
    assert.equal(await db.get('pack/a'), null);
    const pairs = [];
    for await (const { key, value } of db.scan({ start: 'pack/', end: 'pack0' })) pairs.push(`${key}=${value}`);
    assert.deepEqual(pairs, ['pack/b=2']);
    const w = await db.watch({ prefix: 'pack/' });
    const rev = await db.delete('pack/b');
    for await (const e of w) {
      assert.deepEqual([e.type, String(e.key), e.revision], ['DELETE', 'pack/b', rev]);
      break; // cancels the watch
    }
    assert.equal((await db.getWithMetadata('pack/b', { revision: rev - 1 })).kv.version, 1);
    assert.equal(await db.health(), true);
    await db.put('pack/n', '1');
    const seen = await db.runTransaction(async (tx) => {
      const n = await tx.get('pack/n');
      tx.put('pack/n', `${n}+tx`);
      return String(n);
    });
    assert.deepEqual([seen, String(await db.get('pack/n'))], ['1', '1+tx']);
    const err = await db.put('', 'x').then(() => null, (e) => e);
    assert.ok(err instanceof StrataError && err.code === status.INVALID_ARGUMENT, String(err));
  } finally {
    db.close();
  }
  console.log('cjs ok');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
