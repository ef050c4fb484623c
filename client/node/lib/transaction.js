// Optimistic read-write transactions over a Client (docs/transactions.md).
//
// FoundationDB's model, as the C++ client's strata::Transaction and the
// Python client's strata_client/transaction.py:
//
//   - the first read pins a revision (the latest one then); every later read
//     is made at it, so the transaction sees one snapshot;
//   - writes are buffered in the transaction, and its reads see them;
//   - commit() sends the buffered writes with what was read (keys and
//     scanned ranges); the server applies them at a new revision only if
//     nothing read changed after the pinned revision, else it rejects with
//     ABORTED (nothing written) and the transaction must run again.
//
// Committed read-write transactions are serializable; a transaction that
// only reads is a snapshot read and never calls the server to commit.
//
//   await db.runTransaction(async (tx) => {        // retried on ABORTED
//     const n = Number(await tx.get('n') ?? 0);
//     tx.put('n', String(n + 1));
//   });
'use strict';

const { status } = require('@grpc/grpc-js');
const { StrataError } = require('./errors');
const { toBuffer, prefixEnd, checkKeys, putOptions } = require('./convert');
const { checkValueType } = require('./values');
const { checkLimit } = require('./txn');

const MAX_LIMIT = 0xffffffff;
const SCAN_OPTION_KEYS = ['start', 'end', 'prefix', 'limit'];
const PUT_OPTION_KEYS = ['type'];
const RUN_OPTION_KEYS = ['maxAttempts', 'initialBackoffMs', 'maxBackoffMs', 'onRetry'];

// Buffers sort bytewise; Map keys must be strings: 'latin1' maps each byte
// to one code unit, so the strings sort as the bytes do.
const keyId = (b) => b.toString('latin1');
const fromId = (s) => Buffer.from(s, 'latin1');

// One optimistic read-write transaction on a Client (Client.transaction).
// Reads are async (the first one pins the snapshot; concurrent reads wait
// for it), writes are buffered synchronously, commit() sends them.
// Client.runTransaction runs a function in one and retries it on ABORTED.
// Keys and values are bytes (strings are UTF-8 encoded). Reads reject as
// Client.get and Client.scan do (OUT_OF_RANGE once the pinned revision has
// been compacted).
class Transaction {
  constructor(client, attempt = 1) {
    this._client = client;
    // 1 for the first attempt of runTransaction, 2 for its first retry...
    this.attempt = attempt;
    // After commit: the revision it committed at (a read-only
    // transaction: its read revision); null before.
    this.revision = null;
    this._readRevision = null;
    this._pinning = null; // the first read's promise, while it runs
    this._readKeys = new Map(); // key id -> Buffer, in first-read order
    this._readRanges = [];
    this._writes = new Map(); // key id -> {value, type} for a put, null for a delete
    this._finished = false;
  }

  // The pinned revision every read is made at; null before the first read.
  get readRevision() {
    return this._readRevision;
  }

  // The keys read so far, in first-read order (what commit sends).
  get readKeys() {
    return [...this._readKeys.values()];
  }

  // The ranges scanned so far, as {start, end} (end empty = no upper bound).
  get readRanges() {
    return this._readRanges.map((r) => ({ ...r }));
  }

  _checkOpen() {
    if (this._finished) throw new Error('the transaction has already committed or been discarded');
  }

  // Runs read(revision) at the pinned revision, pinning it with the first
  // read's answer (read resolves to {revision, ...}). Revision 0 is the
  // store before its first write: nothing exists in it, and asking the
  // server "at revision 0" would mean "the latest", so read gets null and
  // must answer "nothing" itself.
  async _read(read) {
    while (this._readRevision === null && this._pinning !== null) {
      await this._pinning.catch(() => {});
    }
    if (this._readRevision !== null) return read(this._readRevision === 0 ? null : this._readRevision);
    const p = read(0);
    this._pinning = p;
    try {
      const out = await p;
      if (this._readRevision === null) this._readRevision = out.revision;
      return out;
    } finally {
      this._pinning = null;
    }
  }

  // Resolves to the value of key in the transaction's snapshot, with its own
  // writes applied, or null if it does not exist. The first read pins the
  // snapshot. The key is recorded as read (unless this transaction wrote
  // it: then nothing is read from the server).
  async get(key) {
    this._checkOpen();
    const k = toBuffer(key, 'key');
    const id = keyId(k);
    if (this._writes.has(id)) {
      const w = this._writes.get(id);
      return w === null ? null : w.value;
    }
    const { value } = await this._read(async (revision) => {
      if (revision === null) return { revision: 0, value: null };
      return this._client.getWithMetadata(k, { revision });
    });
    if (!this._readKeys.has(id)) this._readKeys.set(id, k);
    return value;
  }

  // Resolves to the pairs ({key, value}, Buffers) with start <= key < end
  // ('' end: no upper bound), or of every key starting with prefix, in key
  // order, at most limit (0 = all), in the snapshot with the transaction's
  // own writes applied. The range is recorded as read (up to the last pair
  // returned when the limit cut it short), so a key another writer creates,
  // changes or deletes in it makes the commit abort (no phantoms).
  async scan(options = {}) {
    this._checkOpen();
    checkKeys(options, SCAN_OPTION_KEYS, 'Transaction.scan');
    const { start = '', end = '', prefix, limit = 0 } = options;
    checkLimit(limit);
    let s = toBuffer(start, 'start');
    let e = toBuffer(end, 'end');
    if (prefix !== undefined) {
      if (s.length || e.length) throw new TypeError('scan: pass prefix or start/end, not both');
      s = toBuffer(prefix, 'prefix');
      e = prefixEnd(s);
    }
    if (e.length && Buffer.compare(e, s) <= 0) return [];
    const writes = [...this._writes.entries()]
      .map(([id, w]) => [fromId(id), w])
      .filter(([k]) => Buffer.compare(s, k) <= 0 && (e.length === 0 || Buffer.compare(k, e) < 0))
      .sort(([a], [b]) => Buffer.compare(a, b));
    // Buffered deletes may hide pairs the server returns: ask for as many
    // more, so a limited scan still fills its limit.
    const deletes = writes.filter(([, w]) => w === null).length;
    const serverLimit = limit === 0 ? 0 : Math.min(limit + deletes, MAX_LIMIT);
    const { pairs } = await this._read(async (revision) => {
      if (revision === null) return { revision: 0, pairs: [] };
      const it = this._client.scan({ start: s, end: e, limit: serverLimit, revision });
      const got = [];
      for await (const kv of it) got.push({ key: kv.key, value: kv.value });
      if (it.revision === null) throw new Error("the server's Scan sent no header (no revision to pin)");
      return { revision: it.revision, pairs: got };
    });
    const out = merge(pairs, writes, limit);
    // What the result depends on: the whole range, or up to the last pair
    // returned when the limit cut it.
    let readEnd = e;
    if (limit !== 0 && out.length >= limit) readEnd = Buffer.concat([out[out.length - 1].key, Buffer.from([0])]);
    this._readRanges.push({ start: s, end: readEnd });
    return out;
  }

  // Buffers a put; options is a ValueType or { type }. Later writes of the
  // same key win. Nothing is sent before commit.
  put(key, value, options = {}) {
    this._checkOpen();
    const { type = 'BYTES' } = putOptions(options, PUT_OPTION_KEYS, 'Transaction.put');
    const t = checkValueType(type);
    this._writes.set(keyId(toBuffer(key, 'key')), { value: toBuffer(value, 'value'), type: t });
  }

  // Buffers a delete of key; nothing is sent before commit.
  delete(key) {
    this._checkOpen();
    this._writes.set(keyId(toBuffer(key, 'key')), null);
  }

  // Commits, once; resolves to the revision. A transaction that wrote
  // something sends one Commit with its read set and resolves to the
  // revision it committed at; rejects with ABORTED if something it read
  // changed after its read revision (nothing written: run it again from the
  // start), FAILED_PRECONDITION if its snapshot is too old. A transaction
  // that only read resolves to its read revision (0 if it read nothing)
  // without calling the server: its reads were one snapshot.
  async commit({ timeoutMs } = {}) {
    this._checkOpen();
    this._finished = true;
    if (this._writes.size === 0) {
      this.revision = this._readRevision === null ? 0 : this._readRevision;
      return this.revision;
    }
    const mutations = [...this._writes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, w]) => {
      const key = fromId(id);
      return w === null ? { delete: { key } } : { put: { key, value: w.value, type: w.type } };
    });
    const ranges = this._readRanges.map((r) => ({ start_key: r.start, end_key: r.end }));
    this.revision = await this._client._commitMutations(this._readRevision || 0, this.readKeys, ranges, mutations, timeoutMs);
    return this.revision;
  }

  // Drops the buffered writes without committing (nothing is sent).
  discard() {
    this._finished = true;
  }
}

// The server's pairs with the buffered writes of the range applied (they
// win), in key order, at most limit (0 = all). When the server's answer was
// cut by its limit, the merge reaches limit at or before its last pair (at
// most as many pairs are hidden as there are buffered deletes).
function merge(base, writes, limit) {
  const out = [];
  let i = 0;
  let j = 0;
  while ((limit === 0 || out.length < limit) && (i < base.length || j < writes.length)) {
    const order = j === writes.length ? -1 : i === base.length ? 1 : Buffer.compare(base[i].key, writes[j][0]);
    if (order < 0) {
      out.push(base[i++]);
      continue;
    }
    if (order === 0) i++;
    const [key, w] = writes[j++];
    if (w !== null) out.push({ key, value: w.value });
  }
  return out;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Client.runTransaction (see there).
async function runTransaction(client, fn, options) {
  if (typeof fn !== 'function') throw new TypeError('runTransaction needs a function (tx) => ...');
  if (options === null || typeof options !== 'object') throw new TypeError('runTransaction options must be an object');
  checkKeys(options, RUN_OPTION_KEYS, 'runTransaction');
  const { maxAttempts = 10, initialBackoffMs = 10, maxBackoffMs = 1000, onRetry } = options;
  if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) throw new RangeError('maxAttempts must be an integer >= 1');
  if (!(initialBackoffMs >= 0 && initialBackoffMs <= maxBackoffMs)) {
    throw new RangeError('need 0 <= initialBackoffMs <= maxBackoffMs');
  }
  if (onRetry !== undefined && typeof onRetry !== 'function') throw new TypeError('onRetry must be a function');
  let backoff = initialBackoffMs;
  let last = null;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const tx = new Transaction(client, attempt);
    try {
      const result = await fn(tx);
      if (!tx._finished) await tx.commit();
      return result;
    } catch (err) {
      if (!(err instanceof StrataError && err.code === status.ABORTED)) throw err;
      last = err;
    } finally {
      tx._finished = true;
    }
    if (attempt === maxAttempts) break;
    if (onRetry !== undefined) onRetry(attempt, last);
    // Exponential backoff with jitter: clients that conflicted do not
    // collide again in step.
    await sleep(backoff * (0.5 + Math.random() / 2));
    backoff = Math.min(backoff * 2, maxBackoffMs);
  }
  throw new StrataError(status.ABORTED, `transaction gave up after ${maxAttempts} attempts; the last: ${last.details}`,
    { cause: last });
}

module.exports = { Transaction, runTransaction };
