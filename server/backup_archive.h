#ifndef STRATA_SERVER_BACKUP_ARCHIVE_H_
#define STRATA_SERVER_BACKUP_ARCHIVE_H_

// The backup file (docs/backup-format.md): what `strata backup create`
// writes from the Backup RPC's stream, and what `strata backup verify` and
// `strata-server --restore_from` read.
//
//   file    := magic "STRATABK" (8 bytes) fixed32le(format version)
//              message*
//   message := fixed32le(n) n bytes: a serialized strata.v1.BackupResponse
//
// The messages are the stream as the server sent it: a BackupBegin, the
// chunks of every file in order, then the BackupManifest. Reading checks
// every chunk's XXH64, that each file's chunks are contiguous, and that
// the files and their XXH64 are exactly the manifest's; any mismatch is
// DataLoss naming the backup and the file inside it.
//
// Thread safety: the functions are independent; each call is
// single-threaded.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// The first 8 bytes of a backup file.
inline constexpr std::string_view kBackupMagic = "STRATABK";
// The newest format version this build reads; it reads every version up
// to it. It writes full backups in version 1 (unchanged since the first
// release, so older builds still read them) and incremental backups in
// version 2 (which a version-1 reader refuses as too new instead of
// misreading).
// Namespace backups (one namespace's entries, BackupKeysChunks) are
// version 3, which older readers refuse as too new.
inline constexpr uint32_t kBackupFormatVersion = 3;
inline constexpr uint32_t kBackupFullFormatVersion = 1;
inline constexpr uint32_t kBackupIncrementalFormatVersion = 2;
inline constexpr uint32_t kBackupNamespaceFormatVersion = 3;
// The largest message a reader accepts (a chunk is ~1 MiB).
inline constexpr uint32_t kBackupMaxMessageBytes = 64u << 20;
// The largest committed batch an incremental backup carries (serialized
// BackupChangeBatch): a chunk holding it, with the chunk's and the
// message's framing (well under 1 KiB), stays within
// kBackupMaxMessageBytes. The server refuses a larger one
// (FailedPrecondition naming its revision and size: take a full backup).
inline constexpr uint32_t kBackupMaxChangeBatchBytes =
    kBackupMaxMessageBytes - (64u << 10);

// Writes a backup file: the header at construction, then each message.
// Thread safety: one thread at a time. Not copyable.
class BackupFileWriter {
 public:
  // `file` is not owned and stays open (the caller closes and syncs it).
  explicit BackupFileWriter(std::FILE* file) : file_(file) {}
  // Writes the header with `version` (the BackupBegin's format_version).
  // Errors: Unavailable/Internal with errno text.
  absl::Status WriteHeader(uint32_t version = kBackupFullFormatVersion);
  absl::Status Write(const v1::BackupResponse& message);

 private:
  std::FILE* const file_;
};

// What a backup holds.
struct BackupSummary {
  uint32_t format_version = 0;
  int64_t revision = 0;
  uint64_t files = 0;
  uint64_t bytes = 0;  // Of file data.
  // Set by VerifyBackup and RestoreBackup only: the keys in the restored
  // database, of which `system_keys` are the server's own (reserved
  // prefix: leases, ...).
  uint64_t keys = 0;
  uint64_t system_keys = 0;
  // Incremental backups: the revision the changes start after (0 for a
  // full backup; `revision` is the last one), the batches (one per
  // revision) and the changes (puts and deletes) they hold. After a
  // restore of a chain: the batches and changes applied.
  int64_t from_revision = 0;
  uint64_t batches = 0;
  uint64_t changes = 0;
  // Namespace backups (format 3): the namespace ("" otherwise); `changes`
  // counts its entries and `revision` is the source's revision it was
  // read at (after a restore: the restored database's revision, a new
  // history).
  std::string namespace_name;
};

// Reads the header and the BackupBegin of the backup at `path`: its format
// version, revision and (for an incremental) from_revision. Errors as
// ReadBackupFile's.
absl::StatusOr<BackupSummary> ReadBackupBegin(const std::string& path);

// Called with each batch of an incremental backup, in revision order, once
// its chunk's checksum has been checked. A non-OK status stops the read
// and is returned.
using BackupBatchFunction =
    std::function<absl::Status(const v1::BackupChangeBatch& batch)>;

// Reads and checks the incremental backup at `path` (format 2,
// docs/backup-format.md): every chunk's XXH64, that the batches are the
// consecutive revisions from_revision + 1 .. revision, one each, and the
// manifest's counts and XXH64. Calls `apply` (if set) with each batch as it
// goes: a corrupt chunk is found only after the batches before it were
// passed on. Errors: DataLoss naming the backup file (and the chunk's
// offset and revisions) for a corrupt or truncated one; InvalidArgument
// for a full backup; FailedPrecondition for a newer format; `apply`'s.
absl::StatusOr<BackupSummary> ReadIncrementalBackup(
    const std::string& path, const BackupBatchFunction& apply);

// Reads and checks the namespace backup at `path` (format 3,
// docs/backup-format.md): every chunk's XXH64, that each holds puts at the
// backup's revision, and the manifest's count and XXH64. Calls `apply` (if
// set) with each chunk's entries as it goes. Errors: DataLoss naming the
// backup file (and the chunk's offset) for a corrupt or truncated one;
// InvalidArgument for another kind of backup; FailedPrecondition for a
// newer format; `apply`'s.
using BackupEntriesFunction =
    std::function<absl::Status(const v1::BackupChangeBatch& entries)>;
absl::StatusOr<BackupSummary> ReadNamespaceBackup(
    const std::string& path, const BackupEntriesFunction& apply);

// Reads and checks the backup file at `path`; unless `out_dir` is empty,
// writes its files into `out_dir` (created if missing; it must be empty),
// each fsynced, then the directory. Errors: NotFound for a missing backup
// file; DataLoss naming the backup and the file inside it for a corrupt
// or truncated backup; FailedPrecondition for a format newer than this
// build or a non-empty out_dir; I/O errors with the path.
absl::StatusOr<BackupSummary> ReadBackupFile(const std::string& path,
                                             const std::string& out_dir);

// What `strata backup verify` reports. A full backup: ReadBackupFile into
// a temporary directory next to `scratch_dir` (made and removed here; "" =
// $TMPDIR or /tmp), then opens the database it holds and counts its keys.
// An incremental backup: ReadIncrementalBackup (no database: keys stay 0).
absl::StatusOr<BackupSummary> VerifyBackup(const std::string& path,
                                           const std::string& scratch_dir);

// A namespace backup (format 3) restores alone: `paths` must be just it
// and `to_revision` 0 (else InvalidArgument). Its entries are written
// into a new database, one write per chunk, so the restored node holds
// that namespace (catalog record, quotas, usage, keys with their values,
// types, TTL deadlines and leases, the leases themselves) and nothing
// else, in a new history: revisions start at 1 and every key has version
// 1.
//
// Builds the data directory `data_dir` from backups (what strata-server
// --restore_from does before it opens the engine): `paths[0]`, a full
// backup, is unpacked and checked in a sibling directory; then the
// incremental backups `paths[1..]` are applied in order, each batch at its
// own revision (DB::ApplyCommittedBatch), up to `to_revision` (0 = all);
// then the directory is moved into place. Each incremental must start at
// or below the revision the restore has reached (batches at or below it
// are skipped), so a chain may overlap but not leave a gap. Every
// incremental is read and checked to its end, even past to_revision.
// `data_dir` must be missing or empty, unless `force`, which removes what
// it holds first (only once every backup has been read successfully).
// The summary's revision is the restored one.
//
// Errors (data_dir is unchanged then): FailedPrecondition naming data_dir
// when it is not empty and !force; InvalidArgument when paths is empty,
// paths[0] is incremental or a later one is full, to_revision is below
// the full backup's revision or above the last revision the backups hold
// (naming both); FailedPrecondition naming the files for a gap in the
// chain; those of ReadBackupFile and ReadIncrementalBackup (DataLoss
// naming the corrupt file).
absl::StatusOr<BackupSummary> RestoreBackup(
    const std::vector<std::string>& paths, const std::string& data_dir,
    bool force, int64_t to_revision = 0);
// A full backup alone.
absl::StatusOr<BackupSummary> RestoreBackup(const std::string& path,
                                            const std::string& data_dir,
                                            bool force);

// Checks a file name inside a backup: non-empty, no '/', not "." or "..".
bool IsValidBackupFileName(std::string_view name);

}  // namespace strata::server

#endif  // STRATA_SERVER_BACKUP_ARCHIVE_H_
