#ifndef STRATA_CLUSTER_REPLICATION_EPOCH_HISTORY_H_
#define STRATA_CLUSTER_REPLICATION_EPOCH_HISTORY_H_

// A range's epoch history (Kafka KIP-101's leader epochs) and the small
// file a replica keeps it in (docs/replication.md, "The epoch file").
//
// Every primary change bumps the range's epoch (the control plane does it
// in etcd). The history says which epoch wrote which revisions: entry i's
// primary wrote the revisions from its start_revision up to entry i+1's
// start_revision - 1 (the last entry: on and on). Two replicas' databases
// are prefixes of one log exactly when, for the last epoch that wrote to
// the shorter one, the longer one's history has that epoch too and it did
// not end before the shorter one's last revision (Divergence).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/storage/key_metadata.h"

namespace strata::cluster::replication {

using RangeId = uint32_t;
using Epoch = uint64_t;
using NodeId = std::string;
using storage::Revision;

struct EpochStart {
  Epoch epoch = 0;
  // The first revision the primary of `epoch` committed (or will commit).
  Revision start_revision = 0;
  bool operator==(const EpochStart&) const = default;
};

// Ascending epochs, non-decreasing start revisions.
using EpochHistory = std::vector<EpochStart>;

// InvalidArgument (naming the entry) unless `history` has strictly
// ascending epochs >= 1 and non-decreasing start revisions >= 1.
absl::Status ValidateEpochHistory(const EpochHistory& history);

// The epoch that wrote `revision` per `history` (the last entry starting at
// or before it); nullopt for revision 0 or one before the first entry.
std::optional<Epoch> EpochOf(const EpochHistory& history, Revision revision);

// The last revision `epoch` wrote per `history`: the start of the first
// later entry minus 1; nullopt if `epoch` is not in `history` or is its last
// entry (still writing).
std::optional<Revision> EndOf(const EpochHistory& history, Epoch epoch);

// Whether a replica holding revisions 1..`last_revision` written per
// `replica_history` is a prefix of the log of a primary with
// `primary_history`. OK if it is; FailedPrecondition naming the epoch and
// revisions if its tail diverged (those revisions were written by an
// epoch the primary's log does not hold them from): the engine cannot
// truncate revisions, so the replica must be rebuilt from a checkpoint.
absl::Status CheckNotDiverged(const EpochHistory& replica_history,
                              Revision last_revision,
                              const EpochHistory& primary_history);

// A replica's refusal of a primary whose `epoch` is older than the
// `highest` epoch it has accepted (the sender has been replaced):
// FailedPrecondition naming the range and both epochs, marked with a
// payload (kStaleEpochPayload, `highest` in decimal) so that StaleEpochOf
// tells it from every other FailedPrecondition (a DB not opened with
// allow_committed_batches, one shutting down, a leftover directory...).
// Only this refusal may fence a primary (docs/replication.md, "Fencing").
absl::Status StaleEpochError(RangeId range, Epoch epoch, Epoch highest);
// The replica's highest epoch if `s` is a StaleEpochError (in this process
// or rebuilt from an Append stream's trailer by the primary); nullopt for
// any other status, including a FailedPrecondition without the mark.
std::optional<Epoch> StaleEpochOf(const absl::Status& s);
// The payload's type URL (absl::Status::SetPayload); in-process only, the
// wire carries the mark as trailing metadata (service.h).
inline constexpr char kStaleEpochPayload[] = "strata.dev/replication/stale-epoch";

// The history a replica promoted to primary at `epoch` starts with: its own
// plus {epoch, current_revision + 1}. InvalidArgument if `epoch` is not
// above its last entry's.
absl::StatusOr<EpochHistory> ExtendEpochHistory(const EpochHistory& history,
                                                Epoch epoch,
                                                Revision current_revision);

// What the epoch file holds.
struct EpochFileContents {
  RangeId range_id = 0;
  // The highest epoch this replica has accepted a primary at; it refuses
  // anything older.
  Epoch highest_epoch = 0;
  EpochHistory history;
  bool operator==(const EpochFileContents&) const = default;
};

// Part of the on-disk format (docs/replication.md): never change these.
inline constexpr std::string_view kEpochFileMagic = "STRATAEP";
inline constexpr uint32_t kEpochFileFormatVersion = 1;

// Encodes the epoch file (grammar in docs/replication.md):
//   magic "STRATAEP" | fixed32 version | fixed32 range_id |
//   fixed64 highest_epoch | fixed32 n | n * (fixed64 epoch,
//   fixed64 start_revision) | fixed64 XXH64(all previous bytes, seed 0)
// all little-endian.
std::string EncodeEpochFile(const EpochFileContents& contents);
// Decodes it. DataLoss (naming `path`, for the message only) for a bad
// magic, a short or long file, a checksum mismatch or an invalid history;
// FailedPrecondition for a format version newer than this build's.
absl::StatusOr<EpochFileContents> DecodeEpochFile(std::string_view bytes,
                                                  std::string_view path);

// Writes the epoch file at `path` atomically and durably: a temporary file
// next to it, fsynced, renamed over it, then the directory fsynced.
// Unavailable/Internal with the path on an I/O error.
absl::Status WriteEpochFile(const std::string& path,
                            const EpochFileContents& contents);
// Reads it: NotFound if it does not exist; DecodeEpochFile's errors.
absl::StatusOr<EpochFileContents> ReadEpochFile(const std::string& path);

}  // namespace strata::cluster::replication

#endif  // STRATA_CLUSTER_REPLICATION_EPOCH_HISTORY_H_
