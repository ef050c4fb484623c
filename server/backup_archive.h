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
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// The first 8 bytes of a backup file.
inline constexpr std::string_view kBackupMagic = "STRATABK";
// The format version this build writes; it reads every version up to it.
inline constexpr uint32_t kBackupFormatVersion = 1;
// The largest message a reader accepts (a chunk is ~1 MiB).
inline constexpr uint32_t kBackupMaxMessageBytes = 64u << 20;

// Writes a backup file: the header at construction, then each message.
// Thread safety: one thread at a time. Not copyable.
class BackupFileWriter {
 public:
  // `file` is not owned and stays open (the caller closes and syncs it).
  explicit BackupFileWriter(std::FILE* file) : file_(file) {}
  // Writes the header. Errors: Unavailable/Internal with errno text.
  absl::Status WriteHeader();
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
};

// Reads and checks the backup file at `path`; unless `out_dir` is empty,
// writes its files into `out_dir` (created if missing; it must be empty),
// each fsynced, then the directory. Errors: NotFound for a missing backup
// file; DataLoss naming the backup and the file inside it for a corrupt
// or truncated backup; FailedPrecondition for a format newer than this
// build or a non-empty out_dir; I/O errors with the path.
absl::StatusOr<BackupSummary> ReadBackupFile(const std::string& path,
                                             const std::string& out_dir);

// ReadBackupFile into a temporary directory next to `scratch_dir` (made
// and removed here; "" = $TMPDIR or /tmp), then opens the database it
// holds and counts its keys: what `strata backup verify` reports.
absl::StatusOr<BackupSummary> VerifyBackup(const std::string& path,
                                           const std::string& scratch_dir);

// Builds the data directory `data_dir` from the backup at `path` (what
// strata-server --restore_from does before it opens the engine): the
// backup is unpacked and checked in a sibling directory, then moved into
// place. `data_dir` must be missing or empty, unless `force`, which
// removes what it holds first (only once the backup has been read
// successfully). Errors: FailedPrecondition naming data_dir when it is not
// empty and !force; those of ReadBackupFile (nothing is changed then).
absl::StatusOr<BackupSummary> RestoreBackup(const std::string& path,
                                            const std::string& data_dir,
                                            bool force);

// Checks a file name inside a backup: non-empty, no '/', not "." or "..".
bool IsValidBackupFileName(std::string_view name);

}  // namespace strata::server

#endif  // STRATA_SERVER_BACKUP_ARCHIVE_H_
