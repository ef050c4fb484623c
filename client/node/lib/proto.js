// The RPC methods the client can call, loaded from the .proto files with
// @grpc/proto-loader.
//
// Every method of every service in proto/strata/v1/*.proto is described here
// (full name, path, serializers, streaming), so the Client builds its calls
// from one table and a new RPC needs no plumbing: only its Client method and
// its line in Client.RPC_METHODS. grpc.health.v1.Health/Check comes from the
// same load.
//
// Where the protos are: <package>/proto in an installed package (copied there
// by `npm pack`, see scripts/copy-protos.js), else ../../proto of a Strata
// checkout (client/node).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const protoLoader = require('@grpc/proto-loader');

const PACKAGE_ROOT = path.resolve(__dirname, '..');
const STRATA_PROTO_DIR = 'strata/v1';
const HEALTH_PROTO = 'grpc/health/v1/health.proto';
const HEALTH_CHECK = 'grpc.health.v1.Health/Check';

// Keys and values are bytes: Buffers in requests and responses. keepCase keeps
// the proto field names (start_key, keys_only); oneofs adds Mutation.op;
// enums as their names (health: 'SERVING').
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

function findProtoRoot() {
  for (const candidate of [path.join(PACKAGE_ROOT, 'proto'), path.join(PACKAGE_ROOT, '..', '..', 'proto')]) {
    if (fs.existsSync(path.join(candidate, STRATA_PROTO_DIR, 'kv.proto'))) return candidate;
  }
  throw new Error(`@strata/client: proto/${STRATA_PROTO_DIR}/kv.proto not found next to ${PACKAGE_ROOT} ` +
    '(a packed package carries it in proto/; a checkout has it in ../../proto)');
}

// The proto files to load, relative to root: every strata/v1/*.proto, and health.
function protoFiles(root) {
  const strata = fs.readdirSync(path.join(root, STRATA_PROTO_DIR))
    .filter((f) => f.endsWith('.proto'))
    .sort()
    .map((f) => `${STRATA_PROTO_DIR}/${f}`);
  return [...strata, HEALTH_PROTO];
}

// {fullName: {path, requestSerialize, responseDeserialize, requestStream,
// responseStream}} for every method of the loaded services whose name starts
// with one of prefixes.
function methodTable(definition, prefixes) {
  const table = {};
  for (const [name, service] of Object.entries(definition)) {
    if (!prefixes.some((p) => name.startsWith(p)) || service.format !== undefined) continue;
    for (const [methodName, m] of Object.entries(service)) {
      if (m === null || typeof m !== 'object' || typeof m.path !== 'string') continue;
      table[`${name}/${methodName}`] = m;
    }
  }
  return table;
}

const PROTO_ROOT = findProtoRoot();
const definition = protoLoader.loadSync(protoFiles(PROTO_ROOT), { ...LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });

// Every RPC of proto/strata/v1, by full name ('strata.v1.KV/Get').
const METHODS = Object.freeze(methodTable(definition, ['strata.v1.']));
// Every callable method: METHODS plus grpc.health.v1.Health/Check.
const ALL_METHODS = Object.freeze({ ...METHODS, [HEALTH_CHECK]: methodTable(definition, ['grpc.health.v1.'])[HEALTH_CHECK] });

module.exports = { PROTO_ROOT, METHODS, ALL_METHODS, HEALTH_CHECK, protoFiles };
