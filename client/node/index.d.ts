// Type declarations of @strata/client (hand-written; index.js is plain
// CommonJS). Keep them in step with lib/client.js: the parity test checks
// that every RPC method of Client.RPC_METHODS is declared here, and
// scripts/test-clients.sh compiles a sample against them.

/// <reference types="node" />

import type { ChannelCredentials, ChannelOptions, Metadata } from '@grpc/grpc-js';

export { status } from '@grpc/grpc-js';

/** Keys and values: a Buffer, any Uint8Array, or a string (UTF-8 encoded). */
export type BytesLike = Buffer | Uint8Array | string;

/** A PEM source: a Buffer/Uint8Array is the PEM text itself; a string is a file path. */
export type PemSource = Buffer | Uint8Array | string;

/** TLS or mutual TLS settings. Files are read once, when the Client is created. */
export interface TLSOptions {
  /** CA certificate(s) that signed the server's certificate; omitted = Node's default CA list. */
  ca?: PemSource;
  /** Client certificate chain for mutual TLS (needs key). */
  cert?: PemSource;
  /** Private key of cert (needs cert). */
  key?: PemSource;
  /** Name to check the server certificate against instead of the target's host. */
  serverName?: string;
}

export interface ClientOptions {
  /** Default deadline of each call in ms (for scan: the whole stream); null = none. Default 10000. */
  timeoutMs?: number | null;
  /** TLS or mutual TLS; omitted (and no credentials) = plaintext. */
  tls?: TLSOptions;
  /** grpc-js channel credentials, instead of tls. */
  credentials?: ChannelCredentials;
  /** Extra grpc-js channel options, e.g. {'grpc.max_receive_message_length': n}. */
  channelOptions?: ChannelOptions;
  /** The namespace of every call that names keys (docs/namespaces.md); '' (default) = the default namespace. */
  namespace?: string;
  /**
   * Default true: when a cluster node that is not the primary (and does not forward the call)
   * answers get/put/delete with FAILED_PRECONDITION naming the primary (its strata-primary
   * trailer, else the message "...; the primary is NODE at HOST:PORT"), retry there once and send every later
   * get/put/delete there (docs/cluster.md), until a call there rejects with UNAVAILABLE (the primary is
   * gone) or FAILED_PRECONDITION naming no primary (fenced after a failover): that call is not retried
   * (a write that failed UNAVAILABLE may have been applied), and the next one goes to target again.
   * Before the first get/put/delete, and again after such a forget, target is asked for
   * strata.v1.Cluster/GetRangeMap (2 s deadline at most) and the primary of the key's range is followed
   * from the start (a namespace client uses only a map of one range); a standalone server answers
   * UNIMPLEMENTED once and is never asked again, any other failure leaves the call on target.
   * false: reject with the replica's answer; no GetRangeMap.
   */
  followPrimary?: boolean;
}

/** One range of stored keys in a cluster's range map (proto/strata/v1/cluster.proto). */
export interface RangeInfo {
  id: number;
  /** Inclusive; empty = the start of the key space. */
  startKey: Buffer;
  /** Exclusive; empty = the end of the key space. */
  endKey: Buffer;
  /** One more with every primary change. */
  epoch: number;
  /** The primary's node id and the address to dial it at ('' if unknown). */
  primary: string;
  primaryAddress: string;
  /** Every replica's node id, in failover preference order. */
  replicas: string[];
  /** The replicas holding every acknowledged write. */
  inSync: string[];
}

/** A node known to the cluster. */
export interface ClusterNodeInfo {
  id: string;
  /** host:port clients and nodes dial. */
  address: string;
  member: boolean;
  live: boolean;
}

/** What Client.getRangeMap resolves to. */
export interface RangeMap {
  /** The etcd revision the map was read at; higher = newer. */
  etcdRevision: number;
  /** Every range, in key order. */
  ranges: RangeInfo[];
  nodes: ClusterNodeInfo[];
}

/** One replica of a range as the range's primary sees it. */
export interface ReplicaProgress {
  id: string;
  /** Its replication stream is up. */
  connected: boolean;
  inSync: boolean;
  /** The highest revision it acknowledged (applied and fsynced). */
  ackedRevision: number;
  lagRevisions: number;
  /** Seconds since it last held everything committed; 0 if it does. */
  lagSeconds: number;
  /** Its last report of free disk space and its reserve (false: none). */
  diskKnown: boolean;
  diskFreeBytes: number;
  diskMinFreeBytes: number;
}

/** A range's replication, from its primary. */
export interface RangeReplication {
  rangeId: number;
  epoch: number;
  primary: string;
  committedRevision: number;
  /** The highest revision every in-sync replica holds. */
  replicatedRevision: number;
  replicas: ReplicaProgress[];
}

/** What Client.clusterStatus resolves to. */
export interface ClusterStatus extends RangeMap {
  /** The node acting as controller ('' = none) and its term. */
  controller: string;
  controllerTerm: number;
  replicationFactor: number;
  minInSync: number;
  /** The ranges the answering node is the primary of (empty from a replica). */
  replication: RangeReplication[];
}

/** One namespace (listNamespaces). Quotas: 0 = unlimited. */
export interface NamespaceInfo {
  name: string;
  quotaBytes: number;
  quotaKeys: number;
  approximateKeys: number;
  approximateBytes: number;
}

/** Options of createNamespace / updateNamespace. */
export interface NamespaceQuotaOptions extends CallOptions {
  quotaBytes?: number;
  quotaKeys?: number;
}

/**
 * The type of a stored value (strata.v1.ValueType, docs/values.md): the
 * server checks a typed value when it is written and returns the type with it.
 */
export type ValueType = 'BYTES' | 'TEXT' | 'INT64' | 'JSON';

/** The value types, in wire order. */
export const VALUE_TYPES: readonly ValueType[];

/**
 * A value as JavaScript by its type: BYTES -> Buffer, TEXT -> string, INT64 ->
 * bigint, JSON -> the parsed document.
 */
export function decodeValue(value: Buffer, type: ValueType): unknown;

/** A JSON value as JavaScript (what JSON.parse returns). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Per-call options. */
/**
 * One message of the Backup stream (strata.v1.BackupResponse as loaded by
 * @grpc/proto-loader: longs as strings, the oneof's name in kind).
 */
export interface BackupMessage {
  header: { revision: string };
  kind: 'begin' | 'chunk' | 'manifest' | 'changes' | 'keys';
  begin: {
    format_version: number;
    revision: string;
    total_bytes: string;
    files: number;
    /** Incremental backups: the revision the changes start after. */
    from_revision: string;
    /** Namespace backups: the namespace ('' otherwise). */
    namespace: string;
  } | null;
  chunk: { file: string; offset: string; data: Buffer; xxh64: string } | null;
  /** Incremental backups: a serialized BackupChangeBatches and its XXH64. */
  changes: { first_revision: string; last_revision: string; data: Buffer; xxh64: string } | null;
  /** Namespace backups: a serialized BackupChangeBatch of entries and its XXH64. */
  keys: { data: Buffer; xxh64: string } | null;
  manifest: {
    format_version: number;
    revision: string;
    files: { name: string; size: string; xxh64: string }[];
    from_revision: string;
    /** Namespace backups: the namespace ('' otherwise). */
    namespace: string;
    batches: string;
    changes: string;
    changes_xxh64: string;
  } | null;
}

/** Options of backup and backupToFile. */
export interface BackupOptions extends CallOptions {
  /** > 0: an incremental backup of the changes after this revision. */
  sinceRevision?: number;
  /**
   * A backup of this namespace only (default: the client's; '' on a
   * client without one = the whole node). Not with sinceRevision.
   */
  namespace?: string;
}

export interface CallOptions {
  /** Overrides the Client's timeoutMs for this call; null = no deadline. */
  timeoutMs?: number | null;
}

/** Options of a read: get, getWithMetadata, batchGet. */
export interface ReadOptions extends CallOptions {
  /**
   * Read as of this revision; 0 (default) = the latest. Below the compacted
   * revision or above the current one: OUT_OF_RANGE. A non-negative integer.
   */
  revision?: number;
}

export interface ScanOptions extends CallOptions {
  /** Inclusive lower bound; '' (default) = the first key. */
  start?: BytesLike;
  /** Exclusive upper bound; '' (default) = no upper bound. */
  end?: BytesLike;
  /** Every key starting with this, instead of start/end. */
  prefix?: BytesLike;
  /** Maximum number of pairs, 0 (default) = no limit; an integer in [0, 2^32). */
  limit?: number;
  /** Leave values empty (default false). */
  keysOnly?: boolean;
  /** Read as of this revision; 0 (default) = the latest when the call starts. */
  revision?: number;
  /** Descending key order, same bounds (default false). */
  reverse?: boolean;
}

/**
 * A key, its value and its revisions (etcd's mvccpb.KeyValue). Revisions are
 * numbers: they count writes, so they stay far below 2^53.
 */
export interface KeyValue {
  key: Buffer;
  /** Empty for a keysOnly scan. */
  value: Buffer;
  /** Revision of the put that created the key (since its last delete). */
  createRevision: number;
  /** Revision of its latest put. */
  modRevision: number;
  /** Puts since it was created: 1 for a new key. */
  version: number;
  /** The value's type ('BYTES' unless it was written typed). */
  type: ValueType;
}

/** Options of Client.put. */
export interface PutOptions extends CallOptions {
  /** The value's type (default 'BYTES'); checked by the server. */
  type?: ValueType;
}

/** Options of Client.incr. */
export interface IncrOptions extends CallOptions {
  /** A missing key rejects with NOT_FOUND instead of counting from 0. */
  mustExist?: boolean;
  /** > 0: the counter expires this many ms after the increment; 0 (default) keeps its expiry. */
  ttlMs?: number;
  /** The key's namespace; '' (default) = the default one (the only one for now). */
  namespace?: string;
}

/** Options of Client.jsonUpdate: exactly one patch. Buffers are sent as JSON text. */
export type JsonUpdateOptions =
  | (CallOptions & { mergePatch: unknown; jsonPatch?: never })
  | (CallOptions & { jsonPatch: unknown; mergePatch?: never });

/** What Client.scan returns: the pairs, and the revision they were read at. */
export interface ScanIterator extends AsyncGenerator<KeyValue, void, undefined> {
  /** The revision the scan reads at; null until its first message arrived. */
  readonly revision: number | null;
}

/** What Client.getWithMetadata resolves to. */
export interface GetResult {
  /** The revision the read was made at. */
  revision: number;
  found: boolean;
  /** The value, or null when the key did not exist. */
  value: Buffer | null;
  /** The key with its metadata, or null when it did not exist. */
  kv: KeyValue | null;
}

/** What Client.batchGet resolves to: every key read at one revision. */
export interface BatchGetResult {
  revision: number;
  /** One per requested key, in request order; null for a missing key. */
  kvs: (KeyValue | null)[];
  /** The values in request order; null for a missing key. */
  values: (Buffer | null)[];
}

export interface DeleteRangeOptions extends CallOptions {
  /** Also return the deleted pairs (default false). */
  prevKv?: boolean;
}

/** Expiry of a put (docs/expiry.md). */
export interface ExpiryOptions {
  /** The key expires this many milliseconds after the write (0 = none). */
  ttlMs?: number;
  /** Attach the key to this lease (0 = none). */
  lease?: number;
}

export interface PutOptions extends CallOptions, ExpiryOptions {}

export interface LeaseGrantOptions extends CallOptions {
  /** The id to give the lease (0 = the server picks one). */
  id?: number;
}

export interface LeaseTimeToLiveOptions extends CallOptions {
  /** Also list the lease's keys. */
  keys?: boolean;
}

/** What Client.leaseGrant resolves to. */
export interface LeaseGrantResult {
  id: number;
  ttlSeconds: number;
  revision: number;
}

/** What Client.leaseTimeToLive resolves to. */
export interface LeaseTimeToLiveResult {
  id: number;
  /** Seconds left before it expires (rounded up). */
  ttlSeconds: number;
  /** The TTL it was granted (what a keep-alive renews to). */
  grantedTtl: number;
  /** With keys: the keys attached to it, in key order; else []. */
  keys: Buffer[];
}

/** Renews a lease on a timer (Client.keepAlive). */
export class LeaseKeeper {
  readonly id: number;
  /** Set (and the keeper stops) when a renewal fails with NOT_FOUND. */
  readonly error: StrataError | null;
  /** The last other error (retried at the next tick). */
  readonly lastError: StrataError | null;
  readonly renewals: number;
  /** True until stopped or the lease is lost. */
  readonly alive: boolean;
  /** Stops renewing (the lease then expires after its TTL). */
  stop(): void;
}

/** What Client.deleteRange resolves to. */
export interface DeleteRangeResult {
  /** The revision of the deletion (the current one if nothing was deleted). */
  revision: number;
  /** How many keys were deleted. */
  deleted: number;
  /** With prevKv: the deleted pairs in key order; else []. */
  prevKvs: KeyValue[];
}

/** PUT and DELETE: a change. PROGRESS (only with progressNotify): nothing changed up to `revision`. */
export type WatchEventType = 'PUT' | 'DELETE' | 'PROGRESS';

/**
 * One change: the key's new state (DELETE: empty value, createRevision and
 * version 0; PROGRESS: empty key) and, with prevKv, its state before.
 */
export interface WatchEvent extends Omit<KeyValue, 'type'> {
  type: WatchEventType;
  /** PUT: the new value's type; 'BYTES' otherwise. */
  valueType: ValueType;
  /** The change's revision (= modRevision); PROGRESS: every change up to it was delivered. */
  revision: number;
  /** With prevKv: the key's state before the change; null if it did not exist (or without prevKv). */
  prevKv: KeyValue | null;
}

/** How a Watch reopens a stream broken with UNAVAILABLE. */
export interface ResumeOptions {
  /** First wait in ms (default 100); each wait is drawn between half and all of it. */
  initialBackoffMs?: number;
  /** Longest wait in ms (default 5000). */
  maxBackoffMs?: number;
  /** Growth of the wait per failed attempt (default 2). */
  multiplier?: number;
  /** Reject with the last error after this long without a stream; null (default) = keep trying. */
  giveUpAfterMs?: number | null;
}

interface WatchCommonOptions extends CallOptions {
  /** First revision reported; 0 (default) = changes after the current revision. */
  startRevision?: number;
  /** Include each key's previous state (default false). */
  prevKv?: boolean;
  /** Yield PROGRESS events while nothing changes (default false). */
  progressNotify?: boolean;
  /** Reopen a broken stream from the last revision + 1: true (default), false, or the backoff. */
  resume?: boolean | ResumeOptions;
}

/**
 * What to watch: { key } one key, { key, rangeEnd } [key, rangeEnd) ('\0' =
 * every key >= key), or { prefix } every key starting with it. timeoutMs
 * bounds opening the stream only.
 */
export type WatchOptions =
  | (WatchCommonOptions & { key: BytesLike; rangeEnd?: BytesLike; prefix?: never })
  | (WatchCommonOptions & { prefix: BytesLike; key?: never; rangeEnd?: never });

/**
 * The changes to a key or range, in revision order, each exactly once,
 * across reconnects. Made by Client.watch; iterate it once with for await.
 */
export class Watch implements AsyncIterable<WatchEvent> {
  private constructor();
  /** Every change up to this revision has been yielded: watch again from revision + 1 to continue. */
  readonly revision: number;
  /** Set when the watch ended by compaction (as the error's). */
  readonly compactRevision: number | null;
  /** How many times the stream was reopened. */
  readonly resumes: number;
  readonly cancelled: boolean;
  /** Cancels the stream and ends the iteration. Idempotent. */
  cancel(): void;
  [Symbol.asyncIterator](): AsyncGenerator<WatchEvent, void, undefined>;
}

/** One operation of Client.write in array form. */
export type WriteOp = ['put', BytesLike, BytesLike] | ['delete', BytesLike];

/** An ordered list of puts and deletes that Client.write applies atomically. */
export class WriteBatch {
  constructor();
  /** Appends a put; options is a ValueType, or { type, ttlMs, lease }. */
  put(key: BytesLike, value: BytesLike, options?: ValueType | (ExpiryOptions & { type?: ValueType })): this;
  delete(key: BytesLike): this;
  clear(): void;
  readonly length: number;
  toRequest(): { mutations: object[] };
  static fromOps(ops: Iterable<WriteOp>): WriteBatch;
}

// ---- Transactions (docs/transactions.md)

/** How a Compare relates the key's attribute to its constant: attribute OP constant. */
export type CompareOp = '==' | '!=' | '>' | '<';

/** What a Compare reads of the key (strata.v1.Compare.CompareTarget). */
export type CompareTarget = 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'INT64_VALUE';

export interface CompareOptions {
  /** Compare every existing key of [key, rangeEnd) ('\0' = every key >= key); '' (default) = just key. */
  rangeEnd?: BytesLike;
}

/**
 * One condition of a Txn (etcd's Compare): the key's version, create
 * revision, mod revision or value OP a constant. A missing key has version
 * and revisions 0 (so "does not exist" is Compare.version(key, '==', 0)); a
 * value compare on a missing key is false. Frozen.
 */
export class Compare {
  private constructor();
  readonly key: Buffer;
  readonly target: CompareTarget;
  readonly op: CompareOp;
  /** A number or bigint for VERSION, CREATE, MOD and INT64_VALUE; a Buffer for VALUE. */
  readonly constant: number | bigint | Buffer;
  /** Empty = just key; else the exclusive end of the range. */
  readonly rangeEnd: Buffer;
  /** The key's version (puts since it was created; 0 if missing) OP version. */
  static version(key: BytesLike, op: CompareOp, version: number | bigint, options?: CompareOptions): Compare;
  /** The revision that created the key (0 if missing) OP revision. */
  static createRevision(key: BytesLike, op: CompareOp, revision: number | bigint, options?: CompareOptions): Compare;
  /** The revision of the key's latest put (0 if missing) OP revision. */
  static modRevision(key: BytesLike, op: CompareOp, revision: number | bigint, options?: CompareOptions): Compare;
  /** The key's value OP value (bytewise); false for a missing key. */
  static value(key: BytesLike, op: CompareOp, value: BytesLike, options?: CompareOptions): Compare;
  /**
   * The key's INT64 value OP value, as numbers (10 > 9; value() compares
   * bytes); false for a missing key; a key of another type fails the whole
   * Txn with FAILED_PRECONDITION.
   */
  static int64Value(key: BytesLike, op: CompareOp, value: number | bigint, options?: CompareOptions): Compare;
  /** The same compare over every key of [key, end). */
  inRange(end: BytesLike): Compare;
  /** The same compare over every key that starts with key. */
  inPrefix(): Compare;
  /** The strata.v1.Compare message (proto field names). */
  toProto(): object;
}

export type TxnOpKind = 'get' | 'put' | 'delete' | 'scan' | 'increment' | 'jsonGet' | 'jsonUpdate';

/** A scan inside a Txn: as ScanOptions, without revision (reads are at the Txn's revision). */
export interface TxnScanOptions {
  start?: BytesLike;
  end?: BytesLike;
  prefix?: BytesLike;
  limit?: number;
  keysOnly?: boolean;
  reverse?: boolean;
}

/** One operation of a Txn branch. Reads see the branch's earlier writes. Frozen. */
export class TxnOp {
  private constructor();
  readonly kind: TxnOpKind;
  /** The key (a scan's start). */
  readonly key: Buffer;
  /** The strata.v1.RequestOp it sends. */
  readonly message: object;
  static get(key: BytesLike): TxnOp;
  /** A put of a value of the given type (TTLs and leases are not supported in a Txn). */
  static put(key: BytesLike, value: BytesLike, options?: ValueType | { type?: ValueType }): TxnOp;
  static delete(key: BytesLike): TxnOp;
  /** All the pairs come in the one Txn response. */
  static scan(options?: TxnScanOptions): TxnOp;
  /**
   * Adds delta (default 1) to the INT64 value of key, as Client.incr (no
   * ttlMs in a Txn); the result's counter is the value after it. A missing
   * key counts from 0 (mustExist: the Txn fails with NOT_FOUND).
   */
  static increment(key: BytesLike, delta?: number | bigint, options?: { mustExist?: boolean }): TxnOp;
  /** The JSON at pointer ('' = the whole document), in the result's json and document. */
  static jsonGet(key: BytesLike, pointer?: string): TxnOp;
  /** An RFC 7386 JSON Merge Patch (serialized with JSON.stringify; a Buffer is JSON text). */
  static jsonMergePatch(key: BytesLike, patch: unknown): TxnOp;
  /** An RFC 6902 JSON Patch (all or nothing; a failed test fails the Txn). */
  static jsonPatch(key: BytesLike, patch: unknown): TxnOp;
}

/** The result of one TxnOp of the branch that ran, in the same position. */
export interface TxnOpResult {
  kind: TxnOpKind;
  /** get: the key's state, or null when it does not exist; null for the other kinds. */
  kv: KeyValue | null;
  /** get: the value, or null when the key does not exist. */
  value: Buffer | null;
  /** scan: the pairs; [] for the other kinds. */
  kvs: KeyValue[];
  /** increment: the counter after the increment; null for the other kinds. */
  counter: bigint | null;
  /** jsonGet: the normalized JSON text at the pointer; jsonUpdate: the new document's; null for the other kinds. */
  json: Buffer | null;
  /** jsonGet and jsonUpdate: json parsed; absent for the other kinds. */
  document?: JsonValue;
}

/** What Client.txn resolves to. */
export interface TxnResult {
  /** Whether every compare held (the success ops ran; else the failure ops). */
  succeeded: boolean;
  /** One per op of the branch that ran. */
  results: TxnOpResult[];
  /** The revision it committed at (the current one if it wrote nothing). */
  revision: number;
}

export interface TxnOptions extends CallOptions {
  /** All must hold for the success branch to run (none = success). */
  compare?: Iterable<Compare>;
  success?: Iterable<TxnOp>;
  failure?: Iterable<TxnOp>;
}

/** A range a transaction read: [start, end), end '' = no upper bound. */
export interface KeyRange {
  start?: BytesLike;
  end?: BytesLike;
}

export interface CommitOptions extends CallOptions {
  /** The revision every read was made at (0 = it read the empty store, or nothing). */
  readRevision?: number;
  readKeys?: Iterable<BytesLike>;
  readRanges?: Iterable<KeyRange>;
  mutations?: WriteBatch | Iterable<WriteOp>;
}

/** A key and its value. */
export interface Pair {
  key: Buffer;
  value: Buffer;
}

/** What Transaction.scan reads: as ScanOptions, at the transaction's revision. */
export interface TransactionScanOptions {
  start?: BytesLike;
  end?: BytesLike;
  prefix?: BytesLike;
  /** At most this many pairs; 0 (default) = all. */
  limit?: number;
}

/**
 * An optimistic read-write transaction (Client.transaction): the first read
 * pins a revision and every read is made at it, with the transaction's own
 * buffered writes applied; commit() sends the writes with the read set and
 * rejects with ABORTED if something read changed since. A transaction that
 * only read never calls the server to commit.
 */
export class Transaction {
  private constructor();
  /** 1 for the first attempt of runTransaction, 2 for its first retry... */
  readonly attempt: number;
  /** After commit: the revision it committed at (read-only: its read revision); null before. */
  readonly revision: number | null;
  /** The pinned revision; null before the first read. */
  readonly readRevision: number | null;
  /** The keys read so far (what commit sends). */
  readonly readKeys: Buffer[];
  /** The ranges scanned so far. */
  readonly readRanges: { start: Buffer; end: Buffer }[];
  /** The value in the snapshot (with the own writes applied), or null. */
  get(key: BytesLike): Promise<Buffer | null>;
  /** The pairs of the range in the snapshot (with the own writes applied), in key order. */
  scan(options?: TransactionScanOptions): Promise<Pair[]>;
  /** Buffers a put; nothing is sent before commit. */
  put(key: BytesLike, value: BytesLike, options?: ValueType | { type?: ValueType }): void;
  /** Buffers a delete; nothing is sent before commit. */
  delete(key: BytesLike): void;
  /** Commits once; resolves to the revision. ABORTED if something it read changed. */
  commit(options?: CallOptions): Promise<number>;
  /** Drops the buffered writes without committing. */
  discard(): void;
}

/** How Client.runTransaction retries. */
export interface RunTransactionOptions {
  /** Attempts in all, the first included (default 10); then ABORTED. */
  maxAttempts?: number;
  /** Wait before the first retry in ms (default 10), doubling up to maxBackoffMs, times a jitter in [0.5, 1). */
  initialBackoffMs?: number;
  /** Longest wait in ms (default 1000). */
  maxBackoffMs?: number;
  /** Called before each retry with the attempt that failed (1-based) and its ABORTED error. */
  onRetry?: (attempt: number, error: StrataError) => void;
}

/** A failed call: code is the gRPC status number (see `status`). */
export class StrataError extends Error {
  constructor(code: number, details?: string,
    options?: { metadata?: Metadata | null; cause?: unknown; compactRevision?: number | null });
  readonly name: 'StrataError';
  /** gRPC status code, e.g. status.INVALID_ARGUMENT (3). */
  readonly code: number;
  /** The code's name, e.g. 'INVALID_ARGUMENT'. */
  readonly codeName: string;
  /** The server's (or gRPC's) message; may be empty. */
  readonly details: string;
  /** Trailing metadata, when the failure came from a call. */
  readonly metadata: Metadata | null;
  /** The compacted revision, on the OUT_OF_RANGE that ends a watch by compaction; else null. */
  readonly compactRevision: number | null;
}

/** A connection to one Strata server. Share one Client; close() it when done. */
export class Client {
  constructor(target: string, options?: ClientOptions);
  readonly target: string;
  readonly timeoutMs: number | null;
  /** The namespace of this client's calls ('' = the default). */
  readonly namespace: string;
  /** A client for another namespace on the same channel. */
  inNamespace(namespace: string): Client;
  /** Whether get/put/delete follow a replica's "the primary is" answer (ClientOptions.followPrimary). */
  followPrimary: boolean;
  /** The HOST:PORT of the primary get/put/delete now go to, or null while they use target. */
  readonly primary: string | null;
  /** RPC full name ('strata.v1.KV/Get') -> the Client method that calls it. */
  static readonly RPC_METHODS: Readonly<Record<string, string>>;

  /** The value (as of options.revision), or null when the key does not exist. */
  get(key: BytesLike, options?: ReadOptions): Promise<Buffer | null>;
  /** The value with its metadata and the revision read at. */
  getWithMetadata(key: BytesLike, options?: ReadOptions): Promise<GetResult>;
  /** Sets key to value (of options.type, with options.ttlMs / options.lease); durable when it resolves. Resolves to its revision. */
  put(key: BytesLike, value: BytesLike, options?: PutOptions): Promise<number>;
  /** Stores a JavaScript value as a JSON value (JSON.stringify; a Buffer is JSON text). */
  putJson(key: BytesLike, document: unknown, options?: CallOptions): Promise<number>;
  /** The value decoded by its type (see decodeValue); undefined when the key does not exist. */
  getTyped(key: BytesLike, options?: ReadOptions): Promise<unknown>;
  /** Adds delta (default 1) to the INT64 value of key atomically; resolves to the new value. */
  incr(key: BytesLike, delta?: number | bigint, options?: IncrOptions): Promise<bigint>;
  /** The JSON at pointer (RFC 6901, '' = the whole document) of key's JSON value, parsed. */
  jsonGet(key: BytesLike, pointer?: string, options?: CallOptions): Promise<JsonValue>;
  /** Applies a merge patch (RFC 7386) or JSON Patch (RFC 6902) atomically; resolves to the new document. */
  jsonUpdate(key: BytesLike, options: JsonUpdateOptions): Promise<JsonValue>;
  /** Removes key (a missing key is fine). Resolves to its revision (the current one if nothing changed). */
  delete(key: BytesLike, options?: CallOptions): Promise<number>;
  /** Applies every mutation atomically, in order, at one revision; resolves to it. */
  write(batch: WriteBatch | Iterable<WriteOp>, options?: CallOptions): Promise<number>;
  /** The pairs with start <= key < end in key order, at one revision; breaking out cancels the call. */
  scan(options?: ScanOptions): ScanIterator;
  /** 1..10,000 keys read at one revision. */
  batchGet(keys: Iterable<BytesLike>, options?: ReadOptions): Promise<BatchGetResult>;
  /** Deletes every key with start <= key < end ('' = unbounded) at one revision. */
  deleteRange(start: BytesLike, end: BytesLike, options?: DeleteRangeOptions): Promise<DeleteRangeResult>;
  /** Discards the history before revision; resolves to the current revision. */
  compact(revision: number, options?: CallOptions): Promise<number>;
  /** Compare -> then/else atomically at one revision (etcd's Txn). */
  txn(options?: TxnOptions): Promise<TxnResult>;
  /** Commits an optimistic transaction's writes iff nothing it read changed; resolves to the revision. */
  commit(options: CommitOptions): Promise<number>;
  /** A new optimistic read-write transaction. */
  transaction(): Transaction;
  /** Runs fn in a transaction and commits it, retrying on ABORTED; resolves to fn's result. */
  runTransaction<T>(fn: (tx: Transaction) => T | Promise<T>, options?: RunTransactionOptions): Promise<T>;
  /** Creates a lease of ttlSeconds (options.id 0 = the server picks one). */
  leaseGrant(ttlSeconds: number, options?: LeaseGrantOptions): Promise<LeaseGrantResult>;
  /** Ends the lease now, deleting its keys at one revision; resolves to it. */
  leaseRevoke(id: number, options?: CallOptions): Promise<number>;
  /** Renews the lease to its full TTL; resolves to the TTL in seconds. */
  leaseKeepAlive(id: number, options?: CallOptions): Promise<number>;
  /** The lease's remaining and granted TTL, and (options.keys) its keys. */
  leaseTimeToLive(id: number, options?: LeaseTimeToLiveOptions): Promise<LeaseTimeToLiveResult>;
  /** The ids of every live lease, ascending. */
  leaseLeases(options?: CallOptions): Promise<number[]>;
  /**
   * Streams a full backup (the raw Backup RPC, docs/backup.md): the
   * BackupResponse messages as sent (begin, chunks, manifest). No deadline
   * unless options.timeoutMs.
   */
  backup(options?: BackupOptions): AsyncIterableIterator<BackupMessage>;
  /**
   * Writes a backup to path (docs/backup-format.md), atomically; resolves
   * to the revision it holds (options.sinceRevision: an incremental).
   */
  backupToFile(path: string, options?: BackupOptions): Promise<number>;
  /** Renews the lease on a timer until stop(). */
  keepAlive(id: number, options?: { intervalMs?: number }): LeaseKeeper;
  /** Resolves to a Watch once the server opened the stream. */
  watch(options: WatchOptions): Promise<Watch>;
  /** True when service ('' = the whole server) is SERVING. */
  health(service?: string, options?: CallOptions): Promise<boolean>;
  /** Creates an empty namespace (ALREADY_EXISTS if it exists); resolves to the revision. */
  createNamespace(name: string, options?: NamespaceQuotaOptions): Promise<number>;
  /** Deletes a namespace and all its keys at once (NOT_FOUND if absent); resolves to the revision. */
  deleteNamespace(name: string, options?: CallOptions): Promise<number>;
  /** The namespaces whose names start with prefix, in name order. */
  listNamespaces(prefix?: string, options?: CallOptions): Promise<NamespaceInfo[]>;
  /** Sets the quotas given (a quota not given stays as it is; NOT_FOUND if absent); resolves to the revision. */
  updateNamespace(name: string, options?: NamespaceQuotaOptions): Promise<number>;
  /** The cluster's range map (strata.v1.Cluster/GetRangeMap); UNIMPLEMENTED on a node that is not clustered. */
  getRangeMap(options?: CallOptions): Promise<RangeMap>;
  /** The range map plus membership, the controller and the configuration (strata.v1.Cluster/GetClusterStatus). */
  clusterStatus(options?: CallOptions): Promise<ClusterStatus>;
  /** Closes the channel (and the followed primary's); in-flight calls are cancelled. */
  close(): void;
}

/** The default of ClientOptions.timeoutMs. */
export const DEFAULT_TIMEOUT_MS: number;

/** The exclusive end of the keys starting with prefix (empty = no upper bound). */
export function prefixEnd(prefix: BytesLike): Buffer;
