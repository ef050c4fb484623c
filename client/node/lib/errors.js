// The error every failed call rejects with.
'use strict';

const grpc = require('@grpc/grpc-js');

// A Strata RPC failed. code is the gRPC status number (grpc.status, e.g.
// status.INVALID_ARGUMENT === 3), codeName its name ('INVALID_ARGUMENT'),
// details the server's (or gRPC's) message, metadata the trailers, cause the
// original grpc-js ServiceError. compactRevision is set on the OUT_OF_RANGE
// that ends a watch whose changes were compacted: the compacted revision
// (read the range at it, then watch from it + 1); null otherwise. See
// docs/clients.md for which code means what.
class StrataError extends Error {
  constructor(code, details = '', { metadata = null, cause, compactRevision = null } = {}) {
    const codeName = grpc.status[code] || `CODE_${code}`;
    super(details ? `${codeName}: ${details}` : codeName, cause === undefined ? undefined : { cause });
    this.name = 'StrataError';
    this.code = code;
    this.codeName = codeName;
    this.details = details || '';
    this.metadata = metadata;
    this.compactRevision = compactRevision;
  }
}

// A grpc-js error (ServiceError or anything else) as a StrataError.
function fromGrpcError(err) {
  if (err instanceof StrataError) return err;
  const code = err && typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
  const details = err && typeof err.details === 'string' ? err.details : String((err && err.message) || err);
  return new StrataError(code, details, { metadata: (err && err.metadata) || null, cause: err });
}

module.exports = { StrataError, fromGrpcError };
