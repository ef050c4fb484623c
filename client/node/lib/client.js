// A promise-based client for one Strata server (services strata.v1 and
// grpc.health.v1). Same surface as the Python client (client/python).
'use strict';

const grpc = require('@grpc/grpc-js');
const { ALL_METHODS, HEALTH_CHECK } = require('./proto');
const { StrataError, fromGrpcError } = require('./errors');
const { tlsCredentials, tlsChannelOptions } = require('./tls');
const { Watch, resumePolicy, toKeyValue } = require('./watch');
const { checkValueType, decodeValue, jsonText } = require('./values');
const { toBuffer, checkRevision, prefixEnd, checkKeys, putOptions } = require('./convert');
const { Compare, TxnOp } = require('./txn');
const { Transaction, runTransaction } = require('./transaction');

const DEFAULT_TIMEOUT_MS = 10000;
const CLIENT_OPTION_KEYS = ['timeoutMs', 'tls', 'credentials', 'channelOptions', 'namespace', 'followPrimary'];
const MAX_LIMIT = 0xffffffff;
const SCAN_OPTION_KEYS = ['start', 'end', 'prefix', 'limit', 'keysOnly', 'revision', 'reverse', 'timeoutMs'];
const WATCH_OPTION_KEYS = ['key', 'prefix', 'rangeEnd', 'startRevision', 'prevKv', 'progressNotify', 'resume', 'timeoutMs'];
const INCR_OPTION_KEYS = ['mustExist', 'ttlMs', 'namespace', 'timeoutMs'];
const JSON_UPDATE_OPTION_KEYS = ['mergePatch', 'jsonPatch', 'timeoutMs'];
const TXN_OPTION_KEYS = ['compare', 'success', 'failure', 'timeoutMs'];
const COMMIT_OPTION_KEYS = ['readRevision', 'readKeys', 'readRanges', 'mutations', 'timeoutMs'];
const BACKUP_OPTION_KEYS = ['sinceRevision', 'namespace', 'timeoutMs'];
const NAMESPACE_OPTION_KEYS = ['quotaBytes', 'quotaKeys', 'timeoutMs'];

// The options of backup/backupToFile, checked (TypeError for an unknown
// key, RangeError for a negative or non-integer sinceRevision).
function backupOptions(options, what) {
  checkKeys(options, BACKUP_OPTION_KEYS, what);
  const { sinceRevision = 0, namespace = null, timeoutMs = null } = options;
  return {
    sinceRevision: checkRevision(sinceRevision, 'sinceRevision'),
    namespace: namespace === null ? null : checkNamespace(namespace),
    timeoutMs,
  };
}

// The options of createNamespace/updateNamespace, checked the same way.
function namespaceOptions(options, what) {
  checkKeys(options, NAMESPACE_OPTION_KEYS, what);
  const { quotaBytes = 0, quotaKeys = 0, timeoutMs } = options;
  return {
    quotaBytes: checkRevision(quotaBytes, 'quotaBytes'),
    quotaKeys: checkRevision(quotaKeys, 'quotaKeys'),
    timeoutMs,
  };
}
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

// An ordered list of puts and deletes that Client.write applies atomically.
// Later mutations of the same key win. The server rejects batches over its
// mutation limit (10,000 by default) with INVALID_ARGUMENT, writing nothing.
class WriteBatch {
  constructor() {
    this._mutations = [];
  }

  // Appends a put of key=value; options is a type ('BYTES' (default),
  // 'TEXT', 'INT64' or 'JSON') or { type, ttlMs, lease } (see Client.put).
  // Returns this so calls can be chained.
  put(key, value, options = {}) {
    const { type = 'BYTES', ttlMs = 0, lease = 0 } = putOptions(options, ['type', 'ttlMs', 'lease'], 'WriteBatch.put');
    this._mutations.push({ put: { key: toBuffer(key, 'key'), value: toBuffer(value, 'value'), type: checkValueType(type), ttl_ms: ttlMs, lease } });
    return this;
  }

  // Appends a delete of key; returns this.
  delete(key) {
    this._mutations.push({ delete: { key: toBuffer(key, 'key') } });
    return this;
  }

  clear() {
    this._mutations = [];
  }

  get length() {
    return this._mutations.length;
  }

  // The WriteRequest message (proto field names) for this batch.
  toRequest() {
    return { mutations: [...this._mutations] };
  }

  // A batch from [['put', key, value], ['delete', key], ...]; TypeError for
  // any other shape.
  static fromOps(ops) {
    if (ops === null || typeof ops !== 'object' || typeof ops[Symbol.iterator] !== 'function') {
      throw new TypeError('write ops must be an iterable of [op, ...args] arrays');
    }
    const batch = new WriteBatch();
    for (const op of ops) {
      if (Array.isArray(op) && op[0] === 'put' && op.length === 3) batch.put(op[1], op[2]);
      else if (Array.isArray(op) && op[0] === 'delete' && op.length === 2) batch.delete(op[1]);
      else throw new TypeError(`bad write op ${JSON.stringify(op)}: want ['put', key, value] or ['delete', key]`);
    }
    return batch;
  }
}

// One gRPC channel to target. Share one Client: calls are multiplexed.
// Options: timeoutMs (default deadline of each call, for scan the whole
// stream; null = none), tls ({ca, cert, key, serverName}: TLS or mutual TLS),
// credentials (grpc-js ChannelCredentials, instead of tls), channelOptions,
// namespace (of every call that names keys, docs/namespaces.md; '' = the
// default; inNamespace(name) gives a client for another on the same channel),
// followPrimary (default true: when a cluster node that is not the primary
// and does not forward (--cluster_forward=false) answers get/put/delete with
// FAILED_PRECONDITION naming the primary in its strata-primary trailer, or
// from older servers in the message "...; the primary is NODE at HOST:PORT", dial
// HOST:PORT with the same credentials and options, retry the call there once
// and send every later get/put/delete there, as the C++ client, until a call
// there rejects UNAVAILABLE (the primary is gone) or FAILED_PRECONDITION
// naming no primary (fenced after a failover): that call is not retried (a
// write that failed UNAVAILABLE may have been applied) and the next goes to
// target again; before the first get/put/delete, and after such a forget,
// target is asked for its range map (GetRangeMap, 2 s deadline at most) and
// the primary of the key's range followed from the start; a standalone
// server answers UNIMPLEMENTED once and is not asked again; false = reject
// with the replica's answer, no GetRangeMap; other methods always use
// target).
// Every method rejects with a StrataError carrying the gRPC status code;
// bad arguments throw TypeError/RangeError before anything is sent.
class Client {
  constructor(target, options = {}) {
    if (typeof target !== 'string' || target === '') throw new TypeError('target must be a "host:port" string');
    for (const k of Object.keys(options)) {
      if (!CLIENT_OPTION_KEYS.includes(k)) {
        throw new TypeError(`unknown Client option "${k}" (known: ${CLIENT_OPTION_KEYS.join(', ')})`);
      }
    }
    const {
      timeoutMs = DEFAULT_TIMEOUT_MS, tls, credentials, channelOptions = {}, namespace = '', followPrimary = true,
    } = options;
    if (typeof followPrimary !== 'boolean') throw new TypeError('followPrimary must be a boolean');
    this.followPrimary = followPrimary;
    this.namespace = checkNamespace(namespace);
    if (tls !== undefined && credentials !== undefined) throw new TypeError('pass tls or credentials, not both');
    checkTimeout(timeoutMs);
    this.target = target;
    this.timeoutMs = timeoutMs;
    let creds = credentials || grpc.credentials.createInsecure();
    let extra = {};
    if (tls !== undefined) {
      creds = tlsCredentials(tls);
      extra = tlsChannelOptions(tls);
    }
    // No receive limit of our own, as the C++ client: the server bounds its
    // replies (--max_message_bytes), and a Txn reply or a backup chunk may
    // pass gRPC's default 4 MiB. channelOptions may set one.
    const channelArgs = { 'grpc.max_receive_message_length': -1, ...channelOptions, ...extra };
    this._dial = (address) => new grpc.Client(address, creds, channelArgs);
    this._channel = this._dial(target);
    // The primary this client follows (route.followed: a Followed, or null
    // while it uses target) and whether the next routed call first asks
    // target for the range map (route.map: 'wanted' before the first call
    // and after a forget, 'done' once asked, 'unimplemented' for a
    // standalone server: never again); shared with its inNamespace() copies.
    this._route = { followed: null, map: 'wanted' };
  }

  // The HOST:PORT of the primary this client followed and now sends
  // get/put/delete to, or null while it uses target.
  get primary() {
    return this._route.followed === null ? null : this._route.followed.address;
  }

  _callOptions(timeoutMs) {
    const ms = timeoutMs === undefined ? this.timeoutMs : timeoutMs;
    checkTimeout(ms);
    return ms === null ? {} : { deadline: new Date(Date.now() + ms) };
  }

  // The request with the client's namespace when it names keys and none.
  _withNamespace(rpc, request) {
    if (this.namespace === '' || request.namespace || !NAMESPACED_RPCS.has(rpc)) return request;
    return { ...request, namespace: this.namespace };
  }

  // A client for another namespace on the same channel (closing either
  // closes both).
  inNamespace(namespace) {
    const other = Object.create(Client.prototype);
    Object.assign(other, this);
    other.namespace = checkNamespace(namespace);
    return other;
  }

  // Calls a unary RPC by full name; resolves to its response message.
  _unary(rpc, request, timeoutMs) {
    request = this._withNamespace(rpc, request);
    const m = ALL_METHODS[rpc];
    const options = this._callOptions(timeoutMs);
    return new Promise((resolve, reject) => {
      this._channel.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request,
        options, (err, resp) => (err ? reject(fromGrpcError(err)) : resolve(resp)));
    });
  }

  // _unary for get/put/delete: to the primary this client follows, if any;
  // on a replica's answer naming the primary (strata-primary trailer, else
  // "the primary is NODE at HOST:PORT"), follows it (once per call) and
  // sticks to it until a call there finds it lost (UNAVAILABLE, or
  // FAILED_PRECONDITION naming no primary: a fenced old primary); that call
  // rejects as is (not retried: a write that failed UNAVAILABLE may have been
  // applied) and the next one goes to target again (see followPrimary).
  // Before the first routed call (and after each forget) it asks target for
  // the range map and follows the primary of the key's range (see
  // _followRangeMap).
  async _routedUnary(rpc, request, timeoutMs) {
    request = this._withNamespace(rpc, request);
    const m = ALL_METHODS[rpc];
    if (this.followPrimary && this._route.followed === null && this._route.map === 'wanted') {
      this._route.map = 'done';
      await this._followRangeMap(request.key, request.namespace || '', timeoutMs);
    }
    const call = (channel) => new Promise((resolve, reject) => {
      channel.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request,
        this._callOptions(timeoutMs), (err, resp) => (err ? reject(err) : resolve(resp)));
    });
    // Runs the call on a followed primary's channel; forgets that primary if
    // the call finds it lost.
    const callFollowed = async (followed) => {
      followed.inFlight++;
      try {
        return await call(followed.channel);
      } catch (err) {
        if (lostPrimary(err) && this._namedPrimary(err) === null) this._unfollow(followed);
        throw err;
      } finally {
        followed.inFlight--;
        followed.closeIfUnused();
      }
    };
    let primary;
    try {
      const followed = this._route.followed;
      return await (followed === null ? call(this._channel) : callFollowed(followed));
    } catch (err) {
      primary = this._namedPrimary(err);
      if (primary === null) throw fromGrpcError(err);
    }
    let followed = this._route.followed;
    if (followed === null || followed.address !== primary) {
      if (followed !== null) followed.retire();
      followed = new Followed(primary, this._dial(primary));
      this._route.followed = followed;
    }
    try {
      return await callFollowed(followed);
    } catch (err) {
      throw fromGrpcError(err);
    }
  }

  // The primary a FAILED_PRECONDITION answer names (to be followed), or null.
  _namedPrimary(err) {
    if (!this.followPrimary || !err || err.code !== grpc.status.FAILED_PRECONDITION) return null;
    return primaryTrailer(err.metadata) || namedPrimary(String(err.details || ''));
  }

  // Stops following `followed` (gone or fenced) so the next call goes to
  // target, which is asked for the range map again first (a miss); a no-op
  // if another call has followed a newer primary since.
  _unfollow(followed) {
    if (this._route.followed !== followed) return;
    this._route.followed = null;
    if (this._route.map === 'done') this._route.map = 'wanted';
    followed.retire();
  }

  // Asks target for strata.v1.Cluster/GetRangeMap (deadline: RANGE_MAP_TIMEOUT_MS
  // or the call's, the shorter) and follows the primary of the range holding
  // key in namespace, unless that is target itself. UNIMPLEMENTED (a
  // standalone server) marks the map as never to be asked again; any failure
  // leaves the call on target.
  async _followRangeMap(key, namespace, timeoutMs) {
    const ms = timeoutMs === undefined ? this.timeoutMs : timeoutMs;
    let map;
    try {
      map = await this.getRangeMap({
        timeoutMs: ms === null ? RANGE_MAP_TIMEOUT_MS : Math.min(ms, RANGE_MAP_TIMEOUT_MS),
      });
    } catch (err) {
      if (err && err.code === grpc.status.UNIMPLEMENTED) this._route.map = 'unimplemented';
      return;
    }
    const address = primaryFor(map.ranges, namespace, key);
    if (!address || address === this.target || this._route.followed !== null) return;
    this._route.followed = new Followed(address, this._dial(address));
  }

  // Starts a server-streaming RPC by full name; returns the grpc-js call.
  _serverStream(rpc, request, timeoutMs) {
    request = this._withNamespace(rpc, request);
    const m = ALL_METHODS[rpc];
    return this._channel.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize,
      request, this._callOptions(timeoutMs));
  }

  // Every write resolves to the revision it committed at (docs/revisions.md);
  // a write that changed nothing (deleting a missing key) resolves to the
  // current revision. Reads take { revision } (0 = the latest): one below the
  // compacted revision or above the current one rejects with OUT_OF_RANGE.

  // Resolves to the value (a Buffer) or null when the key does not exist. An
  // existing key with an empty value resolves to an empty Buffer. With
  // revision > 0, the value as of that revision.
  async get(key, { revision = 0, timeoutMs } = {}) {
    return (await this.getWithMetadata(key, { revision, timeoutMs })).value;
  }

  // Resolves to { revision (read at), found, value (Buffer | null), kv
  // (KeyValue with createRevision, modRevision, version; null if missing) }.
  async getWithMetadata(key, { revision = 0, timeoutMs } = {}) {
    const k = toBuffer(key, 'key');
    const resp = await this._routedUnary('strata.v1.KV/Get', { key: k, revision: checkRevision(revision) }, timeoutMs);
    const kv = resp.found ? toKeyValue({ ...resp, key: k }) : null;
    return { revision: Number(resp.header.revision), found: Boolean(resp.found), value: kv ? kv.value : null, kv };
  }

  // Sets key to value; durable when it resolves. Resolves to its revision.
  // type ('TEXT', 'INT64', 'JSON'; default 'BYTES') makes it a typed value
  // the server checks (docs/values.md): INVALID_ARGUMENT, nothing written,
  // if it is not of its type; a JSON value is stored normalized.
  // ttlMs > 0: the key expires that many milliseconds after the write (no
  // read returns it from then on; docs/expiry.md); lease: attach the key to
  // a lease (leaseGrant), NOT_FOUND if it does not exist (nothing written).
  async put(key, value, { type = 'BYTES', ttlMs = 0, lease = 0, timeoutMs } = {}) {
    const request = {
      key: toBuffer(key, 'key'), value: toBuffer(value, 'value'), type: checkValueType(type), ttl_ms: ttlMs, lease,
    };
    const resp = await this._routedUnary('strata.v1.KV/Put', request, timeoutMs);
    return Number(resp.header.revision);
  }

  // Stores a JavaScript value as a JSON value (JSON.stringify; a Buffer is
  // taken as JSON text). Resolves to the revision.
  async putJson(key, document, { timeoutMs } = {}) {
    return this.put(key, jsonText(document, 'document'), { type: 'JSON', timeoutMs });
  }

  // Resolves to the value of key decoded by its type (Buffer, string,
  // BigInt, or the JSON document; see decodeValue), or undefined when the
  // key does not exist (a JSON null is null).
  async getTyped(key, { revision = 0, timeoutMs } = {}) {
    const { kv } = await this.getWithMetadata(key, { revision, timeoutMs });
    return kv ? decodeValue(kv.value, kv.type) : undefined;
  }

  // Adds delta (a safe integer or a BigInt, default 1) to the INT64 value
  // of key atomically and durably; resolves to the new value as a BigInt.
  // A missing key counts from 0 (mustExist: NOT_FOUND); a key of another
  // type rejects with FAILED_PRECONDITION, an int64 overflow with
  // OUT_OF_RANGE (nothing written). ttlMs > 0 makes the counter expire that
  // many milliseconds later; 0 keeps its expiry.
  async incr(key, delta = 1, options = {}) {
    checkKeys(options, INCR_OPTION_KEYS, 'incr');
    const { mustExist = false, ttlMs = 0, namespace = '', timeoutMs } = options;
    let d;
    if (typeof delta === 'bigint') d = delta;
    else if (Number.isSafeInteger(delta)) d = BigInt(delta);
    else throw new TypeError('delta must be a safe integer or a BigInt');
    if (d < INT64_MIN || d > INT64_MAX) throw new RangeError('delta must fit in a signed 64-bit integer');
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) throw new RangeError('ttlMs must be a non-negative integer');
    if (typeof namespace !== 'string') throw new TypeError('namespace must be a string');
    const request = {
      key: toBuffer(key, 'key'), delta: d.toString(), must_exist: Boolean(mustExist),
      ttl_ms: ttlMs, namespace,
    };
    const resp = await this._unary('strata.v1.KV/Increment', request, timeoutMs);
    return BigInt(resp.value);
  }

  // Resolves to the value at pointer (RFC 6901; '' = the whole document,
  // '/a/0') of the JSON value of key, parsed. NOT_FOUND for a missing key
  // or a pointer that does not resolve (the message says which);
  // FAILED_PRECONDITION for a key of another type; INVALID_ARGUMENT for a
  // malformed pointer.
  async jsonGet(key, pointer = '', { timeoutMs } = {}) {
    if (typeof pointer !== 'string') throw new TypeError('pointer must be a string');
    const resp = await this._unary('strata.v1.KV/JsonGet', { key: toBuffer(key, 'key'), pointer }, timeoutMs);
    return JSON.parse(resp.json.toString('utf8'));
  }

  // Applies { mergePatch } (RFC 7386: {a: 2, b: null} sets a, removes b) or
  // { jsonPatch } (RFC 6902: [{op: 'add', path: '/a', value: 2}]) to the JSON
  // value of key atomically; resolves to the new document, parsed. Patches
  // are serialized with JSON.stringify (a Buffer is sent as JSON text).
  // NOT_FOUND for a missing key; INVALID_ARGUMENT for a patch that is not
  // valid; FAILED_PRECONDITION for a key of another type or a JSON Patch
  // that does not apply (a failed test): nothing is written then.
  async jsonUpdate(key, options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('jsonUpdate options must be an object');
    checkKeys(options, JSON_UPDATE_OPTION_KEYS, 'jsonUpdate');
    const hasMerge = Object.prototype.hasOwnProperty.call(options, 'mergePatch');
    const hasPatch = Object.prototype.hasOwnProperty.call(options, 'jsonPatch');
    if (hasMerge === hasPatch) throw new TypeError('jsonUpdate: pass exactly one of mergePatch and jsonPatch');
    const request = { key: toBuffer(key, 'key') };
    if (hasMerge) request.merge_patch = jsonText(options.mergePatch, 'mergePatch');
    else request.json_patch = jsonText(options.jsonPatch, 'jsonPatch');
    const resp = await this._unary('strata.v1.KV/JsonUpdate', request, options.timeoutMs);
    return JSON.parse(resp.json.toString('utf8'));
  }

  // Leases (docs/expiry.md): keys attached to a lease are deleted, all at one
  // revision, when it expires (its TTL passes without a keep-alive) or is
  // revoked. An unknown or expired lease rejects with NOT_FOUND.

  // Creates a lease of ttlSeconds (id 0 = the server picks one). Resolves to
  // { id, ttlSeconds, revision }.
  async leaseGrant(ttlSeconds, { id = 0, timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/LeaseGrant', { ttl_seconds: ttlSeconds, id }, timeoutMs);
    return { id: Number(resp.id), ttlSeconds: Number(resp.ttl_seconds), revision: Number(resp.header.revision) };
  }

  // Ends the lease now, deleting its keys at one revision; resolves to it.
  async leaseRevoke(id, { timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/LeaseRevoke', { id }, timeoutMs);
    return Number(resp.header.revision);
  }

  // Renews the lease to its full TTL (durably); resolves to the TTL (seconds).
  async leaseKeepAlive(id, { timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/LeaseKeepAlive', { id }, timeoutMs);
    return Number(resp.ttl_seconds);
  }

  // Resolves to { id, ttlSeconds (left, rounded up), grantedTtl, keys
  // (Buffers, with { keys: true }; else []) }.
  async leaseTimeToLive(id, { keys = false, timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/LeaseTimeToLive', { id, keys: Boolean(keys) }, timeoutMs);
    return { id: Number(resp.id), ttlSeconds: Number(resp.ttl_seconds), grantedTtl: Number(resp.granted_ttl), keys: resp.keys };
  }

  // Resolves to the ids of every live lease, ascending.
  async leaseLeases({ timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/LeaseLeases', {}, timeoutMs);
    return resp.ids.map(Number);
  }

  // Keeps the lease alive until stop(): renews at once, then every
  // intervalMs (default a third of its TTL). Returns a LeaseKeeper; its
  // .error is set (and it stops) when a renewal fails with NOT_FOUND (the
  // lease expired or was revoked); other errors are retried at the next tick
  // (.lastError). The timer does not keep the process alive.
  keepAlive(id, { intervalMs } = {}) {
    return new LeaseKeeper(this, id, intervalMs);
  }

  // Removes key (a missing key is fine: nothing changes and it resolves to
  // the current revision); durable when it resolves. Resolves to its revision.
  async delete(key, { timeoutMs } = {}) {
    const resp = await this._routedUnary('strata.v1.KV/Delete', { key: toBuffer(key, 'key') }, timeoutMs);
    return Number(resp.header.revision);
  }

  // Applies every mutation atomically, in order, at one revision. batch is a
  // WriteBatch or an iterable of ['put', key, value] / ['delete', key].
  // Resolves to the revision.
  async write(batch, { timeoutMs } = {}) {
    const b = batch instanceof WriteBatch ? batch : WriteBatch.fromOps(batch);
    const resp = await this._unary('strata.v1.KV/Write', b.toRequest(), timeoutMs);
    return Number(resp.header.revision);
  }

  // An async iterable of KeyValue ({ key, value, createRevision, modRevision,
  // version }) with start <= key < end (or starting with prefix) in key
  // order (reverse: descending, same bounds), all read at one revision:
  // revision, or (0) the latest when the call starts; the iterator's
  // .revision says which (null until the first message arrived). end '' =
  // no upper bound, limit 0 = no limit, keysOnly leaves values empty. The
  // call starts when iteration starts; leaving the loop early
  // (break/return/throw) cancels it.
  scan(options = {}) {
    checkKeys(options, SCAN_OPTION_KEYS, 'scan');
    const { start = '', end = '', prefix, limit = 0, keysOnly = false, revision = 0, reverse = false, timeoutMs } = options;
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT) {
      throw new RangeError(`limit must be an integer in [0, ${MAX_LIMIT}]`);
    }
    let startKey = toBuffer(start, 'start');
    let endKey = toBuffer(end, 'end');
    if (prefix !== undefined) {
      if (startKey.length || endKey.length) throw new TypeError('scan: pass prefix or start/end, not both');
      startKey = toBuffer(prefix, 'prefix');
      endKey = prefixEnd(startKey);
    }
    const request = {
      start_key: startKey, end_key: endKey, limit, keys_only: Boolean(keysOnly),
      revision: checkRevision(revision), reverse: Boolean(reverse),
    };
    if (timeoutMs !== undefined) checkTimeout(timeoutMs);
    const state = { revision: null };
    const it = this._scan(request, timeoutMs, state);
    Object.defineProperty(it, 'revision', { get: () => state.revision, enumerable: true });
    return it;
  }

  async *_scan(request, timeoutMs, state) {
    const call = this._serverStream('strata.v1.KV/Scan', request, timeoutMs);
    const responses = call[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        let step;
        try {
          step = await responses.next();
        } catch (err) {
          finished = true; // the call ended with this status
          throw fromGrpcError(err);
        }
        if (step.done) {
          finished = true;
          return;
        }
        if (state.revision === null) state.revision = Number(step.value.header.revision);
        for (const pair of step.value.pairs) yield toKeyValue(pair);
      }
    } finally {
      if (!finished) {
        call.on('error', () => {}); // the CANCELLED status we cause is expected
        call.cancel();
      }
    }
  }

  // Reads every key at one revision (0 = the latest). Resolves to
  // { revision, kvs, values }: one KeyValue (or null for a missing key) and
  // one value (Buffer or null) per key, in request order. 1..10,000 keys
  // (the server's --max_batch_mutations), else INVALID_ARGUMENT.
  async batchGet(keys, { revision = 0, timeoutMs } = {}) {
    if (keys === null || typeof keys !== 'object' || typeof keys[Symbol.iterator] !== 'function') {
      throw new TypeError('keys must be an iterable of keys');
    }
    const request = { keys: Array.from(keys, (k) => toBuffer(k, 'key')), revision: checkRevision(revision) };
    const resp = await this._unary('strata.v1.KV/BatchGet', request, timeoutMs);
    const kvs = resp.results.map((r, i) => (r.found ? toKeyValue({ ...r, key: request.keys[i] }) : null));
    return { revision: Number(resp.header.revision), kvs, values: kvs.map((kv) => (kv ? kv.value : null)) };
  }

  // Deletes every key with start <= key < end atomically, at one revision.
  // start '' = the first key and end '' = no upper bound, so
  // deleteRange('', '') deletes everything (both are required for that
  // reason; prefixEnd(p) gives the end of a prefix). Resolves to
  // { revision, deleted (a count), prevKvs } where prevKvs, with prevKv, are
  // the deleted pairs in key order (more than --max_batch_mutations of them:
  // FAILED_PRECONDITION, nothing deleted); else [].
  async deleteRange(start, end, { prevKv = false, timeoutMs } = {}) {
    const request = { start_key: toBuffer(start, 'start'), end_key: toBuffer(end, 'end'), prev_kv: Boolean(prevKv) };
    const resp = await this._unary('strata.v1.KV/DeleteRange', request, timeoutMs);
    return { revision: Number(resp.header.revision), deleted: Number(resp.deleted), prevKvs: resp.prev_kvs.map(toKeyValue) };
  }

  // Transactions (docs/transactions.md): txn is etcd's compare -> then/else
  // in one round trip; transaction() and runTransaction() are optimistic
  // read-write transactions that end in one commit.

  // Evaluates every Compare of compare and, if all hold, runs the success
  // ops (TxnOp), else the failure ops, atomically at one revision (etcd's
  // Txn). Resolves to { succeeded, results, revision }: results has one
  // { kind, kv, value, kvs, counter, json, document } per op of the branch
  // that ran (kv/value for a get: null when missing; kvs for a scan;
  // counter, a BigInt, for an increment; json, the text, and document, the
  // parsed value, for jsonGet and jsonUpdate), revision is the one it
  // committed at (the current one if it wrote nothing). No compares: the
  // success branch runs. INVALID_ARGUMENT (nothing written) for more than
  // the server's --max_batch_mutations compares or ops per branch, a bad
  // key or value, a branch that writes a key twice; FAILED_PRECONDITION if
  // range compares cover more than --max_batch_mutations keys or the
  // response would exceed --max_message_bytes. A typed op that fails (a
  // missing key, a key of another type, an overflow, a JSON Patch test)
  // rejects with its code (NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE),
  // nothing written; the message names the op ('success op 2: ...').
  async txn(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('txn options must be an object');
    checkKeys(options, TXN_OPTION_KEYS, 'txn');
    const { compare = [], success = [], failure = [], timeoutMs } = options;
    const list = (xs, cls, what) => {
      if (xs === null || typeof xs !== 'object' || typeof xs[Symbol.iterator] !== 'function') {
        throw new TypeError(`txn: ${what} must be an iterable of ${cls.name}`);
      }
      const out = Array.from(xs);
      for (const x of out) if (!(x instanceof cls)) throw new TypeError(`txn: ${what} must hold ${cls.name} values`);
      return out;
    };
    const compares = list(compare, Compare, 'compare');
    const okOps = list(success, TxnOp, 'success');
    const elseOps = list(failure, TxnOp, 'failure');
    const request = {
      compare: compares.map((c) => c.toProto()),
      success: okOps.map((op) => op.message),
      failure: elseOps.map((op) => op.message),
    };
    const resp = await this._unary('strata.v1.KV/Txn', request, timeoutMs);
    const ops = resp.succeeded ? okOps : elseOps;
    if (resp.responses.length !== ops.length) {
      throw new StrataError(grpc.status.INTERNAL,
        `Txn: the branch has ${ops.length} ops, the server answered ${resp.responses.length}`);
    }
    const results = ops.map((op, i) => {
      const r = resp.responses[i];
      const result = { kind: op.kind, kv: null, value: null, kvs: [], counter: null, json: null };
      if (op.kind === 'get') {
        result.kv = r.get && r.get.found ? toKeyValue({ ...r.get, key: op.key }) : null;
        result.value = result.kv ? result.kv.value : null;
      } else if (op.kind === 'scan') {
        result.kvs = (r.scan ? r.scan.pairs : []).map(toKeyValue);
      } else if (op.kind === 'increment') {
        result.counter = BigInt(r.increment ? r.increment.value : 0);
      } else if (op.kind === 'jsonGet' || op.kind === 'jsonUpdate') {
        const field = op.kind === 'jsonGet' ? r.json_get : r.json_update;
        result.json = field ? field.json : Buffer.alloc(0);
        result.document = JSON.parse(result.json.toString('utf8'));
      }
      return result;
    });
    return { succeeded: Boolean(resp.succeeded), results, revision: Number(resp.header.revision) };
  }

  // Commits an optimistic transaction that read readKeys and readRanges
  // ([{ start, end }], end '' = no upper bound) at readRevision: applies
  // mutations (a WriteBatch or write() arrays) atomically at a new revision,
  // which it resolves to, iff nothing it read changed after readRevision.
  // The low-level call under transaction(); prefer that. Rejects with
  // ABORTED (nothing written) if a read key, or a key in a read range
  // (created, changed or deleted: no phantoms), changed after readRevision,
  // naming the first; FAILED_PRECONDITION if readRevision is below the
  // compacted revision ("transaction too old") or a range read is older
  // than the server's window of recent writes; INVALID_ARGUMENT if it is
  // above the current revision. With no reads it is a blind write,
  // committed unconditionally.
  async commit(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('commit options must be an object');
    checkKeys(options, COMMIT_OPTION_KEYS, 'commit');
    const { readRevision = 0, readKeys = [], readRanges = [], mutations = [], timeoutMs } = options;
    const b = mutations instanceof WriteBatch ? mutations : WriteBatch.fromOps(mutations);
    const keys = Array.from(readKeys, (k) => toBuffer(k, 'read key'));
    const ranges = Array.from(readRanges, (r) => {
      if (r === null || typeof r !== 'object') throw new TypeError('readRanges must hold { start, end } objects');
      return { start_key: toBuffer(r.start === undefined ? '' : r.start, 'read range start'),
        end_key: toBuffer(r.end === undefined ? '' : r.end, 'read range end') };
    });
    return this._commitMutations(checkRevision(readRevision, 'readRevision'), keys, ranges,
      b.toRequest().mutations, timeoutMs);
  }

  // The Commit RPC with converted arguments (proto field names).
  async _commitMutations(readRevision, readKeys, readRanges, mutations, timeoutMs) {
    const request = { read_revision: readRevision, read_keys: readKeys, read_ranges: readRanges, mutations };
    const resp = await this._unary('strata.v1.KV/Commit', request, timeoutMs);
    return Number(resp.header.revision);
  }

  // A new optimistic read-write transaction (see Transaction in
  // lib/transaction.js): its first read pins a revision and every read is
  // made at it, with its own buffered writes applied; await tx.commit()
  // (ABORTED if something it read changed since: run it again, or use
  // runTransaction). A transaction that only read never calls the server to
  // commit.
  transaction() {
    return new Transaction(this);
  }

  // Runs await fn(tx) in a new Transaction and commits it; resolves to what
  // fn resolved to. If the commit is ABORTED (another write changed what fn
  // read), waits and runs fn again in a fresh transaction, up to
  // maxAttempts (default 10) times in all; then rejects with ABORTED,
  // saying so. The wait before retry n is min(maxBackoffMs, initialBackoffMs
  // * 2^(n-1)) ms (defaults 10 and 1000) times a random factor in [0.5, 1)
  // (jitter, so clients that conflicted do not collide again in step);
  // onRetry(n, error) is called before each retry. fn must do all its reads
  // and writes through tx and may run several times; any other error from
  // fn (or from the commit) ends it at once, nothing committed. fn may
  // commit tx itself.
  async runTransaction(fn, options = {}) {
    return runTransaction(this, fn, options);
  }

  // Discards the history before revision (etcd's Compact): reads at lower
  // revisions and watches from them reject with OUT_OF_RANGE afterwards.
  // revision must be above the compacted revision and at most the current one
  // (else OUT_OF_RANGE); 0 is INVALID_ARGUMENT. Resolves to the current revision.
  async compact(revision, { timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/Compact', { revision: checkRevision(revision) }, timeoutMs);
    return Number(resp.header.revision);
  }

  // Streams every change to a key or range (docs/revisions.md, "Watch").
  // What: { key } one key; { key, rangeEnd } [key, rangeEnd) (rangeEnd
  // '\0': every key >= key); { prefix } every key starting with it ('':
  // every key). startRevision is the first revision reported (0 = changes
  // after the current revision); prevKv adds each key's previous state;
  // progressNotify yields PROGRESS events while nothing changes.
  //
  // Resolves to a Watch once the server has opened the stream (so every
  // write that commits afterwards is delivered); timeoutMs bounds that wait
  // only. Rejects if it cannot be opened (UNAVAILABLE, INVALID_ARGUMENT,
  // OUT_OF_RANGE with compactRevision for a compacted startRevision). Once
  // open, resume (true: default backoff; false: off; or { initialBackoffMs,
  // maxBackoffMs, multiplier, giveUpAfterMs }) reopens a stream that broke
  // with UNAVAILABLE from the last revision received + 1, without
  // duplicating or skipping an event. Iterate the Watch with for await;
  // cancel() or leaving the loop cancels it.
  async watch(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('watch options must be an object');
    checkKeys(options, WATCH_OPTION_KEYS, 'watch');
    const { key, prefix, rangeEnd, startRevision = 0, prevKv = false, progressNotify = false, resume = true, timeoutMs } = options;
    let k;
    let end;
    if (prefix !== undefined) {
      if (key !== undefined || rangeEnd !== undefined) throw new TypeError('watch: pass key (and rangeEnd) or prefix, not both');
      k = toBuffer(prefix, 'prefix');
      end = prefixEnd(k);
      if (end.length === 0) end = Buffer.from([0]);
    } else if (key !== undefined) {
      k = toBuffer(key, 'key');
      end = rangeEnd === undefined ? Buffer.alloc(0) : toBuffer(rangeEnd, 'rangeEnd');
    } else {
      throw new TypeError('watch: pass key or prefix');
    }
    const request = this._withNamespace('strata.v1.KV/Watch', {
      key: k, range_end: end, start_revision: checkRevision(startRevision, 'startRevision'),
      prev_kv: Boolean(prevKv), progress_notify: Boolean(progressNotify),
    });
    const policy = resumePolicy(resume);
    const ms = timeoutMs === undefined ? this.timeoutMs : timeoutMs;
    checkTimeout(ms);
    const m = ALL_METHODS['strata.v1.KV/Watch'];
    const openCall = (req, waitForReady) => this._channel.makeServerStreamRequest(m.path, m.requestSerialize,
      m.responseDeserialize, req, new grpc.Metadata({ waitForReady }), {});
    const w = new Watch(openCall, request, { progressNotify, resume: policy });
    await w._establish(ms);
    return w;
  }

  // Asks the standard health service (grpc.health.v1.Health/Check): resolves
  // to true when service ('' = the whole server, 'strata.v1.KV') is SERVING,
  // false otherwise (NOT_SERVING once shutdown has begun). An unknown service
  // rejects with NOT_FOUND.
  async health(service = '', { timeoutMs } = {}) {
    if (typeof service !== 'string') throw new TypeError('service must be a string');
    const resp = await this._unary(HEALTH_CHECK, { service }, timeoutMs);
    return resp.status === 'SERVING';
  }

  // Streams a full, consistent backup of the store (the raw Backup RPC,
  // docs/backup.md): an async iterator of the BackupResponse messages as the
  // server sends them (a begin, the files' chunks, then the manifest with
  // each file's XXH64). No deadline unless timeoutMs. One backup runs at a
  // time on a server: another rejects with RESOURCE_EXHAUSTED. With
  // sinceRevision > 0, an incremental backup of the changes after it (a
  // begin with from_revision, 'changes' chunks, the manifest); OUT_OF_RANGE
  // if they are no longer retained (take a full backup). namespace
  // (default: the client's; '' on a client without one = the whole node):
  // a backup of that namespace only (format 3, 'keys' chunks,
  // docs/backup.md "One namespace"); NOT_FOUND if it does not exist,
  // UNIMPLEMENTED with sinceRevision.
  async *backup(options = {}) {
    const { sinceRevision, namespace, timeoutMs } = backupOptions(options, 'backup');
    if (timeoutMs !== null) checkTimeout(timeoutMs);
    const request = { since_revision: String(sinceRevision) };
    if (namespace !== null) request.namespace = namespace;
    const call = this._serverStream('strata.v1.KV/Backup', request, timeoutMs);
    let finished = false;
    try {
      for await (const message of call) yield message;
      finished = true;
    } catch (err) {
      finished = true;
      throw fromGrpcError(err);
    } finally {
      if (!finished) call.cancel();
    }
  }

  // Writes a full backup to the file `path` in the backup file format
  // (docs/backup-format.md; what `strata backup create` writes): to
  // path + '.partial', fsynced, renamed once the manifest has arrived.
  // Resolves to the revision the backup holds (its last one). With
  // sinceRevision > 0, an incremental backup (`strata backup create
  // --since`).
  async backupToFile(path, options = {}) {
    const { sinceRevision, namespace, timeoutMs } = backupOptions(options, 'backupToFile');
    const fs = require('fs');
    const partial = `${path}.partial`;
    const fd = fs.openSync(partial, 'w');
    let revision = 0;
    let complete = false;
    try {
      const { responseSerialize } = ALL_METHODS['strata.v1.KV/Backup'];
      let header = false;
      const inner = { sinceRevision, timeoutMs };
      if (namespace !== null) inner.namespace = namespace;
      for await (const message of this.backup(inner)) {
        if (!header) {
          // The file's version is the begin's: 1 full, 2 incremental, 3 one
          // namespace.
          const h = Buffer.alloc(12);
          h.write('STRATABK', 0, 'latin1');
          h.writeUInt32LE((message.begin && message.begin.format_version) || 1, 8);
          fs.writeSync(fd, h);
          header = true;
        }
        const data = responseSerialize(message);
        const len = Buffer.alloc(4);
        len.writeUInt32LE(data.length, 0);
        fs.writeSync(fd, len);
        fs.writeSync(fd, data);
        revision = Number(message.header.revision);
        complete = message.kind === 'manifest';
      }
      if (!complete) throw new Error('the backup stream ended without its manifest');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    } catch (err) {
      try { fs.closeSync(fd); } catch (_) { /* already closed */ }
      fs.rmSync(partial, { force: true });
      throw err;
    }
    fs.renameSync(partial, path);
    return revision;
  }

  // Namespaces (docs/namespaces.md): names are 1..255 bytes of
  // [A-Za-z0-9._/-] (else INVALID_ARGUMENT). Quotas: 0 = unlimited.

  // Creates an empty namespace (ALREADY_EXISTS if it exists); resolves to
  // the revision.
  async createNamespace(name, options = {}) {
    const { quotaBytes, quotaKeys, timeoutMs } = namespaceOptions(options, 'createNamespace');
    const resp = await this._unary('strata.v1.KV/CreateNamespace',
      { name: checkNamespace(name), quota_bytes: quotaBytes, quota_keys: quotaKeys }, timeoutMs);
    return Number(resp.header.revision);
  }

  // Deletes a namespace and all its keys at once (NOT_FOUND if it does not
  // exist); resolves to the revision.
  async deleteNamespace(name, { timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/DeleteNamespace', { name: checkNamespace(name) }, timeoutMs);
    return Number(resp.header.revision);
  }

  // The namespaces whose names start with prefix, in name order:
  // [{name, quotaBytes, quotaKeys, approximateKeys, approximateBytes}].
  async listNamespaces(prefix = '', { timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.KV/ListNamespaces', { prefix: checkNamespace(prefix) }, timeoutMs);
    return resp.namespaces.map((n) => ({
      name: n.name,
      quotaBytes: Number(n.quota_bytes),
      quotaKeys: Number(n.quota_keys),
      approximateKeys: Number(n.approximate_keys),
      approximateBytes: Number(n.approximate_bytes),
    }));
  }

  // Replaces a namespace's quotas (NOT_FOUND if it does not exist); resolves
  // to the revision.
  // A quota not given (undefined) stays as it is: the server keeps it.
  async updateNamespace(name, options = {}) {
    const { quotaBytes, quotaKeys, timeoutMs } = namespaceOptions(options, 'updateNamespace');
    const resp = await this._unary('strata.v1.KV/UpdateNamespace',
      {
        name: checkNamespace(name),
        quota_bytes: quotaBytes,
        keep_quota_bytes: options.quotaBytes === undefined,
        quota_keys: quotaKeys,
        keep_quota_keys: options.quotaKeys === undefined,
      }, timeoutMs);
    return Number(resp.header.revision);
  }

  // strata.v1.Cluster (docs/cluster.md): any node of a cluster answers from
  // the range map it watches in etcd (it may trail etcd briefly); a node that
  // is not clustered rejects with UNIMPLEMENTED.

  // Resolves to the cluster's range map: { etcdRevision, ranges: [{ id,
  // startKey, endKey (Buffers, empty = unbounded), epoch, primary,
  // primaryAddress, replicas, inSync }], nodes: [{ id, address, member, live }] }.
  async getRangeMap({ timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.Cluster/GetRangeMap', {}, timeoutMs);
    return toRangeMap(resp);
  }

  // Resolves to the range map plus { controller ('' = none), controllerTerm,
  // replicationFactor, minInSync, replication } (what `strata cluster
  // status` shows). replication: the ranges the answering node is the
  // primary of (empty from a replica), each { rangeId, epoch, primary,
  // committedRevision, replicatedRevision, replicas: [{ id, connected,
  // inSync, ackedRevision, lagRevisions, lagSeconds, diskKnown,
  // diskFreeBytes, diskMinFreeBytes }] }.
  async clusterStatus({ timeoutMs } = {}) {
    const resp = await this._unary('strata.v1.Cluster/GetClusterStatus', {}, timeoutMs);
    return {
      ...toRangeMap(resp),
      controller: resp.controller,
      controllerTerm: Number(resp.controller_term),
      replicationFactor: Number(resp.replication_factor),
      minInSync: Number(resp.min_in_sync),
      replication: (resp.replication || []).map((r) => ({
        rangeId: Number(r.range_id),
        epoch: Number(r.epoch),
        primary: r.primary,
        committedRevision: Number(r.committed_revision),
        replicatedRevision: Number(r.replicated_revision),
        replicas: (r.replicas || []).map((p) => ({
          id: p.id,
          connected: Boolean(p.connected),
          inSync: Boolean(p.in_sync),
          ackedRevision: Number(p.acked_revision),
          lagRevisions: Number(p.lag_revisions),
          lagSeconds: Number(p.lag_seconds),
          diskKnown: Boolean(p.disk_known),
          diskFreeBytes: Number(p.disk_free_bytes),
          diskMinFreeBytes: Number(p.disk_min_free_bytes),
        })),
      })),
    };
  }

  // Closes the channel (and the followed primary's); in-flight calls are
  // cancelled. Idempotent.
  close() {
    this._channel.close();
    if (this._route.followed !== null) this._route.followed.channel.close();
  }
}

// A primary a Client follows: its address, the channel to it, and how many
// calls run on that channel. A primary no longer followed (another one was
// named, or it was lost) is retired: its channel is closed once no call runs
// on it, as grpc-js's close() fails calls still waiting for a connection.
class Followed {
  constructor(address, channel) {
    this.address = address;
    this.channel = channel;
    this.inFlight = 0;
    this.retired = false;
    this.closed = false;
  }

  retire() {
    this.retired = true;
    this.closeIfUnused();
  }

  closeIfUnused() {
    if (this.retired && this.inFlight === 0 && !this.closed) {
      this.closed = true;
      this.channel.close();
    }
  }
}

// Whether a call to a followed primary found it no longer (reachable as) the
// primary: UNAVAILABLE (gone or unreachable) or FAILED_PRECONDITION (a fenced
// old primary; callers first check that it names no primary to follow).
function lostPrimary(err) {
  return Boolean(err) && (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.FAILED_PRECONDITION);
}

// Every RPC of proto/strata/v1 and the Client method that calls it. The
// parity test (client/python/tests/test_parity.py) checks this table, and the
// Python client's, against the proto in both directions: a new RPC is a
// method above plus its line here (and the same in client/python), plus its
// declaration in index.d.ts.
Client.RPC_METHODS = Object.freeze({
  'strata.v1.KV/Get': 'get',
  'strata.v1.KV/Put': 'put',
  'strata.v1.KV/Delete': 'delete',
  'strata.v1.KV/Scan': 'scan',
  'strata.v1.KV/Write': 'write',
  'strata.v1.KV/Watch': 'watch',
  'strata.v1.KV/Compact': 'compact',
  'strata.v1.KV/BatchGet': 'batchGet',
  'strata.v1.KV/DeleteRange': 'deleteRange',
  'strata.v1.KV/Txn': 'txn',
  'strata.v1.KV/Commit': 'commit',
  'strata.v1.KV/Increment': 'incr',
  'strata.v1.KV/JsonGet': 'jsonGet',
  'strata.v1.KV/JsonUpdate': 'jsonUpdate',
  'strata.v1.KV/LeaseGrant': 'leaseGrant',
  'strata.v1.KV/LeaseRevoke': 'leaseRevoke',
  'strata.v1.KV/LeaseKeepAlive': 'leaseKeepAlive',
  'strata.v1.KV/LeaseTimeToLive': 'leaseTimeToLive',
  'strata.v1.KV/LeaseLeases': 'leaseLeases',
  'strata.v1.KV/Backup': 'backup',
  'strata.v1.KV/CreateNamespace': 'createNamespace',
  'strata.v1.KV/DeleteNamespace': 'deleteNamespace',
  'strata.v1.KV/ListNamespaces': 'listNamespaces',
  'strata.v1.KV/UpdateNamespace': 'updateNamespace',
  'strata.v1.Cluster/GetRangeMap': 'getRangeMap',
  'strata.v1.Cluster/GetClusterStatus': 'clusterStatus',
});

// The trailing metadata key in which a node that is not the primary (and did
// not forward the call) names the primary's HOST:PORT.
const PRIMARY_TRAILER = 'strata-primary';

// The HOST:PORT in a "not the primary" answer's strata-primary trailer (the
// error's grpc-js Metadata), or null. Servers before the trailer name the
// primary only in the message (namedPrimary).
function primaryTrailer(metadata) {
  if (!metadata || typeof metadata.get !== 'function') return null;
  const values = metadata.get(PRIMARY_TRAILER);
  if (values.length === 0 || values[0] === '') return null;
  return String(values[0]);
}

// The marker of a replica's "not the primary" answer, as the C++ client reads it.
const PRIMARY_MARKER = '; the primary is ';

// The HOST:PORT in "...; the primary is NODE at HOST:PORT", or null.
function namedPrimary(details) {
  const at = details.lastIndexOf(PRIMARY_MARKER);
  if (at < 0) return null;
  const addr = details.indexOf(' at ', at + PRIMARY_MARKER.length);
  if (addr < 0) return null;
  const address = details.slice(addr + 4);
  return address === '' || address.includes(' ') ? null : address;
}

// How long routing waits for the range map before it sends the call to
// target.
const RANGE_MAP_TIMEOUT_MS = 2000;

// The primary address of the range (getRangeMap()'s ranges) holding
// key (a Buffer) of namespace, or '' if none. The default namespace's stored
// keys are the keys, except those starting \xff\xff, stored as
// \xff\xff\xff key[2:] (server/keyspace.h); a named namespace's need its id,
// which the client does not know: then only a map of exactly one range answers.
function primaryFor(ranges, namespace, key) {
  if (namespace !== '') return ranges.length === 1 ? ranges[0].primaryAddress : '';
  const stored = key.length >= 2 && key[0] === 0xff && key[1] === 0xff
    ? Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), key.subarray(2)]) : key;
  const r = ranges.find((x) => Buffer.compare(stored, x.startKey) >= 0 &&
    (x.endKey.length === 0 || Buffer.compare(stored, x.endKey) < 0));
  return r ? r.primaryAddress : '';
}

// A GetRangeMapResponse (or the same fields of GetClusterStatusResponse) as
// the client returns it.
function toRangeMap(resp) {
  return {
    etcdRevision: Number(resp.etcd_revision),
    ranges: resp.ranges.map((r) => ({
      id: r.id,
      startKey: r.start_key,
      endKey: r.end_key,
      epoch: Number(r.epoch),
      primary: r.primary,
      primaryAddress: r.primary_address,
      replicas: [...r.replicas],
      inSync: [...r.in_sync],
    })),
    nodes: resp.nodes.map((n) => ({ id: n.id, address: n.address, member: n.member, live: n.live })),
  };
}

// The RPCs whose request names keys in a namespace (a top-level namespace
// field): the client's namespace is set on them.
const NAMESPACED_RPCS = new Set(Object.entries(ALL_METHODS)
  .filter(([, m]) => m.requestType && m.requestType.type && Array.isArray(m.requestType.type.field) &&
    m.requestType.type.field.some((f) => f.name === 'namespace'))
  .map(([name]) => name));

function checkNamespace(name) {
  if (typeof name !== 'string') throw new TypeError('namespace must be a string');
  return name;
}

// Renews a lease on a timer (Client.keepAlive).
class LeaseKeeper {
  constructor(client, id, intervalMs) {
    this.id = id;
    this.error = null;
    this.lastError = null;
    this.renewals = 0;
    this._client = client;
    this._intervalMs = intervalMs;
    this._stopped = false;
    this._timer = null;
    this._tick();
  }

  get alive() {
    return !this._stopped && this.error === null;
  }

  async _tick() {
    if (!this.alive) return;
    try {
      const ttl = await this._client.leaseKeepAlive(this.id);
      this.renewals += 1;
      if (this._intervalMs === undefined) this._intervalMs = Math.max(100, (ttl * 1000) / 3);
    } catch (err) {
      if (err.code === grpc.status.NOT_FOUND) {
        this.error = err;
        return;
      }
      this.lastError = err;
    }
    if (this._stopped) return;
    this._timer = setTimeout(() => this._tick(), this._intervalMs === undefined ? 1000 : this._intervalMs);
    this._timer.unref();
  }

  // Stops renewing (the lease then expires after its TTL).
  stop() {
    this._stopped = true;
    if (this._timer !== null) clearTimeout(this._timer);
  }
}

function checkTimeout(ms) {
  if (ms !== null && (typeof ms !== 'number' || Number.isNaN(ms))) {
    throw new TypeError('timeoutMs must be a number of milliseconds or null');
  }
}

module.exports = {
  Client, WriteBatch, StrataError, Watch, LeaseKeeper, DEFAULT_TIMEOUT_MS, prefixEnd, Compare, TxnOp, Transaction,
};
