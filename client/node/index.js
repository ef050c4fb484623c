// @strata/client: the Node.js client of Strata, the gRPC key-value storage
// node. CommonJS (require it, or import it from ESM: the named exports below
// are detected). Types: index.d.ts. Usage: docs/clients.md.
'use strict';

const { status } = require('@grpc/grpc-js');
const {
  Client, WriteBatch, Watch, LeaseKeeper, DEFAULT_TIMEOUT_MS, prefixEnd, Compare, TxnOp, Transaction,
} = require('./lib/client');
const { StrataError } = require('./lib/errors');
const { VALUE_TYPES, decodeValue } = require('./lib/values');

module.exports = {
  Client, WriteBatch, Watch, LeaseKeeper, StrataError, status, DEFAULT_TIMEOUT_MS, prefixEnd, VALUE_TYPES, decodeValue,
  Compare, TxnOp, Transaction,
};
