// Argument conversions shared by the Client and the transaction helpers.
'use strict';

// Keys and values are bytes: Buffers. Strings are UTF-8 encoded; any
// Uint8Array is wrapped without copying.
function toBuffer(x, what) {
  if (Buffer.isBuffer(x)) return x;
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  throw new TypeError(`${what} must be a Buffer, Uint8Array or string, not ${x === null ? 'null' : typeof x}`);
}

// A revision argument: a safe non-negative integer (revisions count writes,
// so 2^53 is out of reach), 0 = the latest where the call allows it.
function checkRevision(rev, what = 'revision') {
  if (typeof rev !== 'number') throw new TypeError(`${what} must be a number, not ${rev === null ? 'null' : typeof rev}`);
  if (!Number.isSafeInteger(rev) || rev < 0) throw new RangeError(`${what} must be a non-negative integer`);
  return rev;
}

// The exclusive end of the keys starting with prefix (Scan's convention:
// an empty Buffer = no upper bound, for a prefix of only 0xff bytes or an
// empty one). prefixEnd('cfg/') is Buffer 'cfg0'.
function prefixEnd(prefix) {
  const p = toBuffer(prefix, 'prefix');
  let n = p.length;
  while (n > 0 && p[n - 1] === 0xff) n--;
  if (n === 0) return Buffer.alloc(0);
  const end = Buffer.from(p.subarray(0, n));
  end[n - 1]++;
  return end;
}

// TypeError for an option not in known.
function checkKeys(options, known, what) {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw new TypeError(`unknown ${what} option "${k}" (known: ${known.join(', ')})`);
  }
}

// The options of a put: a ValueType name (a string) or an object with only
// known keys; TypeError for anything else (a number, null, a typo'd key).
function putOptions(options, known, what) {
  if (typeof options === 'string') return { type: options };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${what} options must be a value type name or an object, not ${options === null ? 'null' : typeof options}`);
  }
  checkKeys(options, known, what);
  return options;
}

module.exports = { toBuffer, checkRevision, prefixEnd, checkKeys, putOptions };
