// The parts of a Txn (Client.txn): compares and operations.
//
// A Txn is etcd's compare -> then/else in one round trip
// (docs/transactions.md): if every Compare holds the success ops run, else
// the failure ops, all at one revision, serializable with every other write:
//
//   const r = await db.txn({
//     compare: [Compare.version('lock', '==', 0)],   // lock is free
//     success: [TxnOp.put('lock', 'me')],
//     failure: [TxnOp.get('lock')],
//   });
//   r.succeeded, r.revision, r.results[0].value
//
// Compares read a key's version (puts since it was created), create
// revision, mod revision, value or INT64 value (as a number); a missing key
// has version and revisions 0, so "key does not exist" is
// Compare.version(key, '==', 0), and a value compare on a missing key is
// false. The typed operations of docs/values.md run inside a Txn too, at its
// revision:
//
//   const r = await db.txn({
//     compare: [Compare.int64Value('stock', '>', 0)],
//     success: [TxnOp.increment('stock', -1), TxnOp.increment('sold'),
//               TxnOp.jsonMergePatch('order/1', { paid: true })],
//   });
//   r.results[0].counter, r.results[2].document
// Same shapes as the Python client's
// strata_client/txn.py and the C++ client's strata::Compare / strata::TxnOp.
'use strict';

const { toBuffer, prefixEnd, checkKeys, putOptions } = require('./convert');
const { checkValueType, jsonText } = require('./values');

// How a Compare relates the key's attribute to its constant: attribute OP constant.
const RESULTS = Object.freeze({ '==': 'EQUAL', '!=': 'NOT_EQUAL', '>': 'GREATER', '<': 'LESS' });
// The target -> the field of strata.v1.Compare that holds its constant.
const TARGET_FIELDS = Object.freeze({
  VERSION: 'version', CREATE: 'create_revision', MOD: 'mod_revision', VALUE: 'value', INT64_VALUE: 'int64_value',
});
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MAX_LIMIT = 0xffffffff;
const COMPARE_OPTION_KEYS = ['rangeEnd'];
const SCAN_OP_KEYS = ['start', 'end', 'prefix', 'limit', 'keysOnly', 'reverse'];
const INCREMENT_OP_KEYS = ['mustExist'];

// A compare constant: a safe integer or a BigInt in the int64 range.
function int64(n, what) {
  let b;
  if (typeof n === 'bigint') b = n;
  else if (Number.isSafeInteger(n)) b = BigInt(n);
  else throw new TypeError(`${what} must be a safe integer or a BigInt`);
  if (b < INT64_MIN || b > INT64_MAX) throw new RangeError(`${what} must fit in a signed 64-bit integer`);
  return n;
}

function checkLimit(limit) {
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT) {
    throw new RangeError(`limit must be an integer in [0, ${MAX_LIMIT}]`);
  }
  return limit;
}

// One condition of a Txn: the key's target attribute OP constant. Build it
// with Compare.version, .createRevision, .modRevision, .value or
// .int64Value. With
// rangeEnd every existing key of [key, rangeEnd) must satisfy it ('\0':
// every key >= key; an empty range compares as one missing key). Frozen.
class Compare {
  // Use the static constructors. target: 'VERSION', 'CREATE', 'MOD',
  // 'VALUE' or 'INT64_VALUE'; op: '==', '!=', '>' or '<'; constant: a
  // number or BigInt, or (VALUE) a Buffer.
  constructor(key, target, op, constant, rangeEnd = Buffer.alloc(0)) {
    if (!Object.prototype.hasOwnProperty.call(RESULTS, op)) {
      throw new TypeError(`compare op must be one of ${Object.keys(RESULTS).join(', ')}, not ${JSON.stringify(op)}`);
    }
    if (!Object.prototype.hasOwnProperty.call(TARGET_FIELDS, target)) {
      throw new TypeError(`compare target must be one of ${Object.keys(TARGET_FIELDS).join(', ')}`);
    }
    this.key = toBuffer(key, 'key');
    this.target = target;
    this.op = op;
    this.constant = target === 'VALUE' ? toBuffer(constant, 'value') : int64(constant, 'compare constant');
    this.rangeEnd = toBuffer(rangeEnd, 'rangeEnd');
    Object.freeze(this);
  }

  static _make(key, target, op, constant, options) {
    checkKeys(options, COMPARE_OPTION_KEYS, 'Compare');
    return new Compare(key, target, op, constant, options.rangeEnd);
  }

  // The key's version (puts since it was created; 0 if it does not exist)
  // OP version. Compare.version(k, '==', 0): k does not exist.
  static version(key, op, version, options = {}) {
    return Compare._make(key, 'VERSION', op, version, options);
  }

  // The revision that created the key (0 if it does not exist) OP revision.
  static createRevision(key, op, revision, options = {}) {
    return Compare._make(key, 'CREATE', op, revision, options);
  }

  // The revision of the key's latest put (0 if it does not exist) OP
  // revision: Compare.modRevision(k, '==', kv.modRevision) holds while k has
  // not changed since it was read.
  static modRevision(key, op, revision, options = {}) {
    return Compare._make(key, 'MOD', op, revision, options);
  }

  // The key's value OP value (bytewise); false for a missing key.
  static value(key, op, value, options = {}) {
    return Compare._make(key, 'VALUE', op, value, options);
  }

  // The key's INT64 value (docs/values.md) OP value, as numbers (10 > 9,
  // where value()'s byte order has '10' < '9'); false for a missing key. A
  // key of another type fails the whole Txn with FAILED_PRECONDITION naming
  // the key.
  static int64Value(key, op, value, options = {}) {
    return Compare._make(key, 'INT64_VALUE', op, value, options);
  }

  // The same compare over every key of [key, end) ('\0': every key >= key).
  inRange(end) {
    return new Compare(this.key, this.target, this.op, this.constant, end);
  }

  // The same compare over every key that starts with key.
  inPrefix() {
    const end = prefixEnd(this.key);
    return this.inRange(end.length ? end : Buffer.from([0]));
  }

  // The strata.v1.Compare message (proto field names).
  toProto() {
    const constant = this.target === 'VALUE' ? this.constant : this.constant.toString();
    return {
      key: this.key, range_end: this.rangeEnd, result: RESULTS[this.op], target: this.target,
      [TARGET_FIELDS[this.target]]: constant,
    };
  }
}

// One operation of a Txn branch: TxnOp.get, .put, .delete, .scan, or a
// typed one: .increment, .jsonGet, .jsonMergePatch, .jsonPatch. Reads see
// the branch's earlier writes and are made at the Txn's revision; a branch
// may write each key once (else INVALID_ARGUMENT); a typed op that fails
// fails the whole Txn with its code, nothing written. kind is 'get', 'put',
// 'delete', 'scan', 'increment', 'jsonGet' or 'jsonUpdate' (jsonMergePatch
// and jsonPatch); key the key (a scan's start); message the
// strata.v1.RequestOp it sends. Frozen.
class TxnOp {
  constructor(kind, key, message) {
    this.kind = kind;
    this.key = key;
    this.message = message;
    Object.freeze(this);
  }

  // Reads key; its result's kv is the KeyValue, or null if missing.
  static get(key) {
    const k = toBuffer(key, 'key');
    return new TxnOp('get', k, { get: { key: k } });
  }

  // Sets key to value; options is a ValueType or { type } (checked by the
  // server). TTLs and leases are not supported inside a Txn (use put or write).
  static put(key, value, options = {}) {
    const { type = 'BYTES' } = putOptions(options, ['type'], 'TxnOp.put');
    const k = toBuffer(key, 'key');
    return new TxnOp('put', k, { put: { key: k, value: toBuffer(value, 'value'), type: checkValueType(type) } });
  }

  // Removes key (a missing key is fine).
  static delete(key) {
    const k = toBuffer(key, 'key');
    return new TxnOp('delete', k, { delete: { key: k } });
  }

  // Reads the pairs of [start, end) ('' end: no upper bound), or of every
  // key starting with prefix, as Client.scan does (limit, keysOnly,
  // reverse), all in one response (the whole Txn response must fit the
  // server's --max_message_bytes, else FAILED_PRECONDITION); its result's
  // kvs are the KeyValues.
  static scan(options = {}) {
    checkKeys(options, SCAN_OP_KEYS, 'TxnOp.scan');
    const { start = '', end = '', prefix, limit = 0, keysOnly = false, reverse = false } = options;
    let s = toBuffer(start, 'start');
    let e = toBuffer(end, 'end');
    if (prefix !== undefined) {
      if (s.length || e.length) throw new TypeError('scan: pass prefix or start/end, not both');
      s = toBuffer(prefix, 'prefix');
      e = prefixEnd(s);
    }
    return new TxnOp('scan', s, {
      scan: { start_key: s, end_key: e, limit: checkLimit(limit), keys_only: Boolean(keysOnly), reverse: Boolean(reverse) },
    });
  }

  // Adds delta (a safe integer or a BigInt) to the INT64 value of key, as
  // Client.incr (no ttlMs inside a Txn); its result's counter (a BigInt) is
  // the value after it. A missing key counts from 0 ({ mustExist: true }:
  // the Txn fails with NOT_FOUND); a key of another type fails it with
  // FAILED_PRECONDITION, an overflow with OUT_OF_RANGE.
  static increment(key, delta = 1, options = {}) {
    checkKeys(options, INCREMENT_OP_KEYS, 'TxnOp.increment');
    const k = toBuffer(key, 'key');
    const d = int64(delta, 'delta');
    return new TxnOp('increment', k, {
      increment: { key: k, delta: d.toString(), must_exist: Boolean(options.mustExist) },
    });
  }

  // Reads the JSON at pointer (RFC 6901, '' = the whole document) of the
  // JSON value of key, as Client.jsonGet; its result's json is the text
  // and document the parsed value. A missing key or a pointer that does not
  // resolve fails the Txn with NOT_FOUND.
  static jsonGet(key, pointer = '') {
    if (typeof pointer !== 'string') throw new TypeError('pointer must be a string');
    const k = toBuffer(key, 'key');
    return new TxnOp('jsonGet', k, { json_get: { key: k, pointer } });
  }

  // Applies a JSON Merge Patch (RFC 7386: { a: 2, b: null } sets a, removes
  // b) to the JSON value of key, as Client.jsonUpdate; its result's json /
  // document is the new document. The patch is serialized with
  // JSON.stringify (a Buffer is sent as JSON text).
  static jsonMergePatch(key, patch) {
    const k = toBuffer(key, 'key');
    return new TxnOp('jsonUpdate', k, { json_update: { key: k, merge_patch: jsonText(patch, 'patch') } });
  }

  // Applies a JSON Patch (RFC 6902: [{ op: 'add', path: '/a', value: 2 }],
  // all or nothing) as jsonMergePatch does; a failed test fails the Txn
  // with FAILED_PRECONDITION.
  static jsonPatch(key, patch) {
    const k = toBuffer(key, 'key');
    return new TxnOp('jsonUpdate', k, { json_update: { key: k, json_patch: jsonText(patch, 'patch') } });
  }
}

module.exports = { Compare, TxnOp, checkLimit };
