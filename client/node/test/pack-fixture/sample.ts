// Compiled (never run) by test/pack.test.js with tsc --strict against the
// installed package's index.d.ts: the declarations describe the API, and the
// expected errors at the end prove they reject misuse (an expected error that
// does not happen fails tsc too).
import {
  Client, WriteBatch, StrataError, Watch, status, prefixEnd, decodeValue, VALUE_TYPES, Compare, TxnOp, Transaction,
  type KeyValue, type TLSOptions, type WriteOp, type WatchEvent, type GetResult, type ScanIterator,
  type ValueType, type JsonValue, type TxnResult, type Pair,
} from '@strata/client';

async function sample(): Promise<void> {
  const tls: TLSOptions = { ca: 'ca.crt', cert: Buffer.from('pem'), key: 'client.key', serverName: 'localhost' };
  const db = new Client('127.0.0.1:50051', { timeoutMs: 5000, tls, channelOptions: { 'grpc.max_receive_message_length': 1 << 24 } });
  await db.put('k', Buffer.from('v'), { timeoutMs: null });
  const v: Buffer | null = await db.get(new Uint8Array([1]));
  const ops: WriteOp[] = [['put', 'a', '1'], ['delete', 'b']];
  await db.write(ops);
  await db.write(new WriteBatch().put('a', '1').delete('b'));
  await db.write(new WriteBatch().put('n', '1', 'INT64'));
  const t: ValueType = 'JSON';
  await db.put('doc', '{"a":1}', { type: t });
  await db.putJson('doc', { a: [1, 'x'] });
  const n: bigint = await db.incr('hits', 2n, { mustExist: false, ttlMs: 1000 });
  const doc: JsonValue = await db.jsonUpdate('doc', { mergePatch: { a: null } });
  const part: JsonValue = await db.jsonGet('doc', '/a/0');
  console.log(n, doc, part, await db.getTyped('doc'), decodeValue(Buffer.from('1'), 'INT64'), VALUE_TYPES.length);
  for await (const kv of db.scan({ start: 'a', end: 'b', limit: 10, keysOnly: true })) {
    const pair: KeyValue = kv;
    console.log(pair.key.length, pair.value.length, v);
  }
  const rev: number = await db.put('k', 'v');
  const old: Buffer | null = await db.get('k', { revision: rev - 1 });
  const meta: GetResult = await db.getWithMetadata('k', { revision: rev });
  if (meta.kv !== null) console.log(meta.revision, meta.kv.createRevision, meta.kv.modRevision, meta.kv.version, old);
  const it: ScanIterator = db.scan({ prefix: 'a/', revision: rev, reverse: true });
  for await (const kv of it) console.log(kv.key, kv.modRevision);
  const readAt: number | null = it.revision;
  const batch = await db.batchGet(['a', Buffer.from('b')], { revision: 0 });
  console.log(readAt, batch.revision, batch.kvs[0]?.version, batch.values[1]);
  const del = await db.deleteRange('a/', prefixEnd('a/'), { prevKv: true });
  console.log(del.revision, del.deleted, del.prevKvs.map((p) => p.key));
  await db.compact(del.revision);
  const w: Watch = await db.watch({ prefix: 'cfg/', startRevision: rev + 1, prevKv: true, progressNotify: true,
    resume: { initialBackoffMs: 50, giveUpAfterMs: null }, timeoutMs: 1000 });
  for await (const ev of w) {
    const e: WatchEvent = ev;
    if (e.type === 'PUT' || e.type === 'DELETE') console.log(e.key, e.value, e.revision, e.prevKv?.value);
    if (w.revision > rev) w.cancel();
  }
  const single = await db.watch({ key: 'k', rangeEnd: 'l', resume: false });
  single.cancel();
  try {
    await db.watch({ key: 'k', startRevision: 1 });
  } catch (e) {
    if (e instanceof StrataError && e.code === status.OUT_OF_RANGE) console.log(e.compactRevision);
  }
  const serving: boolean = await db.health('strata.v1.KV');
  const methods: Readonly<Record<string, string>> = Client.RPC_METHODS;
  const tr: TxnResult = await db.txn({
    compare: [Compare.version('lock', '==', 0), Compare.value('cfg/', '!=', 'x').inPrefix(), Compare.modRevision('k', '<', 5n)],
    success: [TxnOp.put('lock', 'me', { type: 'TEXT' }), TxnOp.scan({ prefix: 'cfg/', limit: 10, reverse: true })],
    failure: [TxnOp.get('lock'), TxnOp.delete('old')],
    timeoutMs: 1000,
  });
  if (tr.succeeded) console.log(tr.revision, tr.results[1].kvs.map((kv) => kv.modRevision));
  else console.log(tr.results[0].kind, tr.results[0].value, tr.results[0].kv?.version);
  const committed: number = await db.commit({
    readRevision: tr.revision, readKeys: ['lock'], readRanges: [{ start: 'cfg/', end: prefixEnd('cfg/') }],
    mutations: [['put', 'lock', 'you']],
  });
  const tx: Transaction = db.transaction();
  const lock: Buffer | null = await tx.get('lock');
  const pairs: Pair[] = await tx.scan({ prefix: 'cfg/', limit: 5 });
  tx.put('lock', 'x', 'TEXT');
  tx.delete('old');
  console.log(committed, lock, pairs.length, await tx.commit(), tx.readRevision, tx.readKeys, tx.readRanges);
  const attempt: number = await db.runTransaction(async (t) => {
    const v = await t.get('n');
    t.put('n', String(Number(v ?? 0) + 1));
    return t.attempt;
  }, { maxAttempts: 5, initialBackoffMs: 1, maxBackoffMs: 100, onRetry: (n, err) => console.log(n, err.codeName) });
  console.log(attempt);
  console.log(serving, methods);
  try {
    await db.delete('k');
  } catch (e) {
    if (e instanceof StrataError && e.code === status.UNAVAILABLE) console.log(e.codeName, e.details);
  }
  db.close();

  // @ts-expect-error keys are bytes or strings
  await db.get(42);
  // @ts-expect-error get resolves to Buffer | null
  const s: string = await db.get('k');
  // @ts-expect-error timeoutMs, not timeout
  new Client('x', { timeout: 5 });
  // @ts-expect-error serverName is a string
  new Client('x', { tls: { serverName: 1 } });
  // @ts-expect-error a write op is put or delete
  await db.write([['upsert', 'k', 'v']]);
  // @ts-expect-error revisions are numbers
  await db.compact('5');
  // @ts-expect-error key or prefix, not both
  await db.watch({ key: 'k', prefix: 'p' });
  // @ts-expect-error a watch needs key or prefix
  await db.watch({ startRevision: 3 });
  // @ts-expect-error reverse, not reversed
  db.scan({ reversed: true });
  // @ts-expect-error put resolves to the revision, a number
  const r: string = await db.put('k', 'v');
  // @ts-expect-error a Watch is made by Client.watch
  new Watch();
  // @ts-expect-error value types are BYTES, TEXT, INT64 or JSON
  await db.put('k', 'v', { type: 'YAML' });
  // @ts-expect-error incr resolves to a bigint
  const c: number = await db.incr('hits');
  // @ts-expect-error one patch, not both
  await db.jsonUpdate('doc', { mergePatch: {}, jsonPatch: [] });
  // @ts-expect-error compare ops are ==, !=, > and <
  Compare.version('k', '=', 0);
  // @ts-expect-error a branch holds TxnOps, not Compares
  await db.txn({ success: [Compare.version('k', '==', 0)] });
  // @ts-expect-error a Transaction is made by Client.transaction
  new Transaction();
  // @ts-expect-error Transaction.get resolves to Buffer | null
  const got: string = await db.transaction().get('k');
  console.log(got);
  console.log(c);
  console.log(r);
  console.log(s);
}

void sample;
