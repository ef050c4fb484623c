#ifndef STRATA_STORAGE_KEY_METADATA_H_
#define STRATA_STORAGE_KEY_METADATA_H_

#include <cstdint>

namespace strata::storage {

// Revisions. Every committed write (one DB::Write, Put or Delete: one
// WriteBatch) gets the next revision, a 64-bit number that only grows and
// is never reused, even across restarts; all operations of one batch share
// it. Revision 0 means "no write yet" (and, in ReadOptions, "the latest").
// The engine's sequence numbers are these revisions (see
// docs/revisions.md).
using Revision = uint64_t;

// Attributes a writer may attach to a Put (WriteBatch::Put with
// PutAttributes). The engine stores and returns them; what they mean beyond
// that is up to the layer above (the server's expiry, leases and typed
// values).
struct PutAttributes {
  // Wall-clock deadline in milliseconds since the Unix epoch after which
  // the key is treated as absent by reads that pass a clock
  // (ReadOptions::now_unix_ms); 0 means none.
  uint64_t expire_at_unix_ms = 0;
  // Opaque lease id the key is attached to; 0 means none.
  uint64_t lease = 0;
  // Opaque value-type tag (the server's strata.v1.ValueType); 0 = bytes.
  uint8_t value_type = 0;

  bool empty() const {
    return expire_at_unix_ms == 0 && lease == 0 && value_type == 0;
  }
  friend bool operator==(const PutAttributes&, const PutAttributes&) = default;
};

// What the engine keeps about a live key beside its value: etcd's
// mvccpb.KeyValue metadata plus the Put's attributes.
struct KeyMetadata {
  // Revision of the Put that created the key since it was last deleted (or
  // ever).
  Revision create_revision = 0;
  // Revision of the key's latest Put.
  Revision mod_revision = 0;
  // Number of Puts since creation: 1 for a new key, +1 per overwrite, back
  // to 1 after a delete and re-create.
  uint64_t version = 0;
  // The latest Put's attributes.
  PutAttributes attributes;

  friend bool operator==(const KeyMetadata&, const KeyMetadata&) = default;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_KEY_METADATA_H_
