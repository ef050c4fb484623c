// The installed @strata/client imported from an ES module (named exports of
// the CommonJS package), over mutual TLS. See smoke.cjs.
import assert from 'node:assert/strict';
import path from 'node:path';
import { Client, Compare, TxnOp, status } from '@strata/client';
import strata from '@strata/client';

assert.equal(strata.Client, Client);
assert.equal(status.NOT_FOUND, 5);
const pki = process.env.STRATA_PKI;
const db = new Client(process.env.STRATA_ADDRESS, {
  tls: { ca: path.join(pki, 'ca.crt'), cert: path.join(pki, 'client.crt'), key: path.join(pki, 'client.key'), serverName: 'localhost' },
});
try {
  await db.put('esm', 'yes');
  assert.equal((await db.get('esm')).toString(), 'yes');
  assert.equal(await db.health('strata.v1.KV'), true);
  const r = await db.txn({ compare: [Compare.value('esm', '==', 'yes')], success: [TxnOp.put('esm', 'txn')] });
  assert.equal(r.succeeded, true);
} finally {
  db.close();
}
console.log('esm ok');
