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
}

/** Per-call options. */
export interface CallOptions {
  /** Overrides the Client's timeoutMs for this call; null = no deadline. */
  timeoutMs?: number | null;
}

export interface ScanOptions extends CallOptions {
  /** Inclusive lower bound; '' (default) = the first key. */
  start?: BytesLike;
  /** Exclusive upper bound; '' (default) = no upper bound. */
  end?: BytesLike;
  /** Maximum number of pairs, 0 (default) = no limit; an integer in [0, 2^32). */
  limit?: number;
  /** Leave values empty (default false). */
  keysOnly?: boolean;
}

export interface KeyValue {
  key: Buffer;
  value: Buffer;
}

/** One operation of Client.write in array form. */
export type WriteOp = ['put', BytesLike, BytesLike] | ['delete', BytesLike];

/** An ordered list of puts and deletes that Client.write applies atomically. */
export class WriteBatch {
  constructor();
  put(key: BytesLike, value: BytesLike): this;
  delete(key: BytesLike): this;
  clear(): void;
  readonly length: number;
  toRequest(): { mutations: object[] };
  static fromOps(ops: Iterable<WriteOp>): WriteBatch;
}

/** A failed call: code is the gRPC status number (see `status`). */
export class StrataError extends Error {
  constructor(code: number, details?: string, options?: { metadata?: Metadata | null; cause?: unknown });
  readonly name: 'StrataError';
  /** gRPC status code, e.g. status.INVALID_ARGUMENT (3). */
  readonly code: number;
  /** The code's name, e.g. 'INVALID_ARGUMENT'. */
  readonly codeName: string;
  /** The server's (or gRPC's) message; may be empty. */
  readonly details: string;
  /** Trailing metadata, when the failure came from a call. */
  readonly metadata: Metadata | null;
}

/** A connection to one Strata server. Share one Client; close() it when done. */
export class Client {
  constructor(target: string, options?: ClientOptions);
  readonly target: string;
  readonly timeoutMs: number | null;
  /** RPC full name ('strata.v1.KV/Get') -> the Client method that calls it. */
  static readonly RPC_METHODS: Readonly<Record<string, string>>;

  /** The value, or null when the key does not exist. */
  get(key: BytesLike, options?: CallOptions): Promise<Buffer | null>;
  /** Sets key to value; durable when it resolves. */
  put(key: BytesLike, value: BytesLike, options?: CallOptions): Promise<void>;
  /** Removes key (a missing key is fine). */
  delete(key: BytesLike, options?: CallOptions): Promise<void>;
  /** Applies every mutation atomically, in order. */
  write(batch: WriteBatch | Iterable<WriteOp>, options?: CallOptions): Promise<void>;
  /** The pairs with start <= key < end in key order; breaking out cancels the call. */
  scan(options?: ScanOptions): AsyncGenerator<KeyValue, void, undefined>;
  /** True when service ('' = the whole server) is SERVING. */
  health(service?: string, options?: CallOptions): Promise<boolean>;
  /** Closes the channel; in-flight calls are cancelled. */
  close(): void;
}

/** The default of ClientOptions.timeoutMs. */
export const DEFAULT_TIMEOUT_MS: number;
