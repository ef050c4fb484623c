#ifndef STRATA_STORAGE_UTIL_STORED_VALUE_H_
#define STRATA_STORAGE_UTIL_STORED_VALUE_H_

// The stored form of a value: what a kTypeValueMeta entry holds in the
// memtable, in SSTables and in a committed WAL batch. Part of the on-disk
// format (docs/sstable-format.md, "Entry values"):
//
//   stored_value := varint32(meta_len) meta[meta_len] user_value
//   meta         := varint64(mod_revision - create_revision)
//                   varint64(version)
//                   varint32(attribute_flags)
//                   [varint64(expire_at_unix_ms)]   if flags & 1
//                   [varint64(lease)]               if flags & 2
//                   [u8(value_type)]                if flags & 4
//
// mod_revision is not stored: it is the entry's sequence number (its
// internal key). A flag this build does not know is DataLoss naming it (a
// newer format), never silently ignored. A kTypeValue entry (format
// version 1, before revisions) stores the user value alone; its metadata
// reads as create_revision = mod_revision = the entry's sequence number,
// version 1.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "strata/storage/key_metadata.h"
#include "strata/storage/options.h"
#include "util/dbformat.h"

namespace strata::storage {

// Longest encoded meta: four varint64s, a varint32 and a byte.
inline constexpr size_t kMaxMetadataLength = 4 * 10 + 5 + 1;
// Encodes meta (the `meta` production above) into buf; returns its length.
size_t EncodeMetadata(const KeyMetadata& meta, char* buf);

// Appends the stored form of (meta, value) for an entry at sequence
// meta.mod_revision. REQUIRES: meta.create_revision <= meta.mod_revision.
void AppendStoredValue(std::string* dst, const KeyMetadata& meta,
                       std::string_view value);

// Decodes an entry's stored value. `type` is the entry's type (kTypeValue
// or kTypeValueMeta) and `sequence` its sequence number. On success sets
// *meta and points *value into `stored`. Returns DataLoss if the bytes do
// not parse or carry an unknown flag.
absl::Status DecodeStoredValue(ValueType type, SequenceNumber sequence,
                               std::string_view stored, KeyMetadata* meta,
                               std::string_view* value);

// Whether an entry of this type and stored value has an expiry deadline at
// or before now_unix_ms (0 = never judge expiry): its own
// (expire_at_unix_ms) or, when `leases` is given and the value is attached
// to a lease, the lease's. A value that does not parse counts as not
// expired (the read that decodes it reports DataLoss).
bool IsExpired(ValueType type, std::string_view stored, uint64_t now_unix_ms,
               const LeaseDeadlines* leases = nullptr);
// The same judgement for decoded attributes.
bool IsExpired(const PutAttributes& attributes, uint64_t now_unix_ms,
               const LeaseDeadlines* leases);

// Encodes / decodes PutAttributes alone (as in a user's WriteBatch):
//   varint32(flags) [varint64 expire] [varint64 lease] [u8 type]
void AppendAttributes(std::string* dst, const PutAttributes& a);
// Consumes the attributes from the front of *input; false if malformed or
// an unknown flag is set.
bool ConsumeAttributes(std::string_view* input, PutAttributes* a);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_STORED_VALUE_H_
