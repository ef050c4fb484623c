// Typed values (docs/values.md): the value types, and values decoded to
// JavaScript by their type.
'use strict';

// strata.v1.ValueType names, as the requests take them and KeyValue.type
// carries them.
const VALUE_TYPES = Object.freeze(['BYTES', 'TEXT', 'INT64', 'JSON']);

// A wire type (the name proto-loader gives, or a number it does not know:
// a newer server's type) as one of VALUE_TYPES; unknown types read as
// BYTES, i.e. the raw value.
function valueTypeName(t) {
  return VALUE_TYPES.includes(t) ? t : 'BYTES';
}

// A type argument: one of VALUE_TYPES (any case); TypeError otherwise.
function checkValueType(t) {
  const name = typeof t === 'string' ? t.toUpperCase() : t;
  if (!VALUE_TYPES.includes(name)) {
    throw new TypeError(`type must be one of ${VALUE_TYPES.join(', ')}, not ${JSON.stringify(t)}`);
  }
  return name;
}

// A value as JavaScript by its type: BYTES -> Buffer, TEXT -> string,
// INT64 -> BigInt (exact over the whole int64 range), JSON -> JSON.parse
// (integers beyond 2^53 lose precision, as in any JSON.parse).
function decodeValue(value, type) {
  switch (type) {
    case 'TEXT': return value.toString('utf8');
    case 'INT64': return BigInt(value.toString('latin1'));
    case 'JSON': return JSON.parse(value.toString('utf8'));
    default: return value;
  }
}

// A document or patch for the server: a Buffer/Uint8Array is JSON text as
// is; any other value is serialized with JSON.stringify (a string becomes a
// JSON string). TypeError for what JSON cannot hold (undefined, a function,
// a BigInt).
function jsonText(value, what) {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  let text;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`${what} cannot be encoded as JSON: ${err.message}`);
  }
  if (text === undefined) throw new TypeError(`${what} cannot be encoded as JSON (${typeof value})`);
  return Buffer.from(text, 'utf8');
}

module.exports = { VALUE_TYPES, valueTypeName, checkValueType, decodeValue, jsonText };
