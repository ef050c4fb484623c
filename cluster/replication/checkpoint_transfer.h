#ifndef STRATA_CLUSTER_REPLICATION_CHECKPOINT_TRANSFER_H_
#define STRATA_CLUSTER_REPLICATION_CHECKPOINT_TRANSFER_H_

// Moving a range's database between nodes for a re-sync
// (docs/replication.md, "Re-sync"): the primary streams a checkpoint
// (DB::CreateCheckpoint) as FetchCheckpointResponses; the replica writes
// them into a new directory, checking every chunk's and every file's
// XXH64 and the manifest, before anything replaces its database.
//
// Thread safety: the functions are independent; each call is
// single-threaded.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/replication/epoch_history.h"
#include "strata/storage/db.h"
#include "strata/v1/replication.pb.h"

namespace strata::cluster::replication {

// Sends one message; false if the stream is gone (the transfer stops).
using CheckpointSend =
    std::function<bool(const v1::FetchCheckpointResponse& message)>;

// Makes a checkpoint of `db` in a new directory under `scratch_dir`
// (created if missing), streams it through `send` (a CheckpointBegin
// carrying `history`, chunks of at most `chunk_bytes` in file order, the
// CheckpointManifest), and removes the directory whatever happens.
// Errors: those of CreateCheckpoint and of reading the files; Cancelled if
// `send` returned false.
absl::Status SendCheckpoint(storage::DB* db, const std::string& scratch_dir,
                            const EpochHistory& history, uint64_t chunk_bytes,
                            const CheckpointSend& send);

// Reads the next message into *message; false at the end of the stream.
using CheckpointRead = std::function<bool(v1::FetchCheckpointResponse* message)>;

// What a received checkpoint holds.
struct ReceivedCheckpoint {
  Revision revision = 0;
  EpochHistory history;
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Receives a checkpoint from `read` into `dir` (which must not exist; its
// parent must) and checks it: every chunk's XXH64, that each file's chunks
// are contiguous, and that the files, their sizes and XXH64 are exactly the
// manifest's and the begin's counts. Every file and the directory are
// fsynced before it returns OK. On any error `dir` is removed again.
// Errors: DataLoss naming the file for a corrupt or incomplete checkpoint
// (a chunk checksum mismatch, a gap, a missing manifest); InvalidArgument
// for a bad file name or message order; FailedPrecondition if `dir`
// exists; I/O errors with the path.
absl::StatusOr<ReceivedCheckpoint> ReceiveCheckpoint(const CheckpointRead& read,
                                                     const std::string& dir);

// Where ReplaceDirectory puts the directory it replaces: `to` + this.
inline constexpr char kReplacedSuffix[] = ".replaced";

// Replaces directory `to` by directory `from` (same file system): first
// RecoverReplaceDirectory(to), then renames `to` aside (to `to`.replaced),
// renames `from` to `to`, fsyncs the parent, then removes the old one. `to`
// may be missing. For swap hooks (ReplicaSink::SwapHook): call it between
// closing the old database and opening the new one. If renaming `from`
// fails, the old directory is renamed back: `to` is as it was. A crash at
// any point leaves a state RecoverReplaceDirectory repairs.
// Errors: Unavailable with the paths and errno text; the parent's fsync's.
absl::Status ReplaceDirectory(const std::string& from, const std::string& to);

// Repairs what a ReplaceDirectory(..., `to`) interrupted by a crash left
// (docs/replication.md, "Re-sync"); call it before opening the database in
// `to` (the node does, at start). If `to`.replaced exists:
//   - `to` missing: the swap stopped between its renames; the old
//     directory (a whole, closed database the epoch file still describes)
//     is renamed back to `to` and the parent fsynced. The re-sync that was
//     swapping runs again when the primary next connects.
//   - `to` present: the swap got further (or the old directory was partly
//     removed); `to`.replaced is removed.
// Otherwise (the usual case, and a fresh node without `to`) it does nothing.
// Errors: Unavailable with the path and errno text; the fsync's.
absl::Status RecoverReplaceDirectory(const std::string& to);

}  // namespace strata::cluster::replication

#endif  // STRATA_CLUSTER_REPLICATION_CHECKPOINT_TRANSFER_H_
