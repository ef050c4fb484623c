// TLS and mutual TLS settings -> grpc-js credentials and channel options.
'use strict';

const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');

const TLS_KEYS = ['ca', 'cert', 'key', 'serverName'];

// A PEM source: a Buffer/Uint8Array is the PEM text itself; a string is the
// path of a PEM file, read when the Client is created.
function readPem(source, what) {
  if (source === undefined || source === null) return null;
  if (typeof source === 'string') return fs.readFileSync(source);
  if (source instanceof Uint8Array) return Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  throw new TypeError(`tls.${what} must be a Buffer (PEM) or a file path, not ${typeof source}`);
}

// Checks a tls option object: known keys only, cert and key together.
function validateTls(tls) {
  if (tls === null || typeof tls !== 'object') throw new TypeError('tls must be an object');
  for (const k of Object.keys(tls)) {
    if (!TLS_KEYS.includes(k)) throw new TypeError(`unknown tls option "${k}" (known: ${TLS_KEYS.join(', ')})`);
  }
  if ((tls.cert == null) !== (tls.key == null)) {
    throw new TypeError('tls: cert and key go together (mutual TLS needs both)');
  }
  if (tls.serverName !== undefined && (typeof tls.serverName !== 'string' || tls.serverName === '')) {
    throw new TypeError('tls.serverName must be a non-empty string');
  }
}

// grpc-js ChannelCredentials for tls (reads the files; throws on a missing one).
function tlsCredentials(tls) {
  validateTls(tls);
  return grpc.credentials.createSsl(readPem(tls.ca, 'ca'), readPem(tls.key, 'key'), readPem(tls.cert, 'cert'));
}

// Channel options tls needs: the name to check the server certificate against.
function tlsChannelOptions(tls) {
  if (!tls.serverName) return {};
  return { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName };
}

module.exports = { tlsCredentials, tlsChannelOptions };
