#ifndef STRATA_STORAGE_TOOLS_VERIFY_H_
#define STRATA_STORAGE_TOOLS_VERIFY_H_

// Offline verification of a database directory (the `strata-verify` tool):
// reads every file the engine owns and checks every checksum and invariant
// it can, without modifying anything.
//
//   CURRENT   format, checksum, names an existing manifest.
//   manifest  every record's framing and checksum (docs/wal-format.md), every
//             version edit decodes, the comparator matches, a complete
//             snapshot is present; the resulting tree: every listed table
//             exists with the listed size, levels >= 1 do not overlap.
//   tables    footer, index, filter and properties blocks (Table::Open),
//             then every data block's checksum and contents by a full scan:
//             internal keys parse and strictly increase, lie within the
//             manifest's smallest/largest, carry sequence numbers not above
//             the manifest's last sequence, and the entry count matches the
//             properties. Tables not listed by the manifest are checked too
//             and reported as orphans (a crash mid-flush leaves them; the
//             next open deletes them).
//   WALs      every live WAL (number >= the manifest's minimum WAL number):
//             every record's framing and checksum, every payload decodes as
//             a write batch with the right count, sequence numbers increase.
//             A torn final record is a warning (what a crash leaves), not
//             an error.
//
// Errors are what would make the engine refuse to open, or return DataLoss
// or a wrong answer later. Warnings are states a crash legitimately leaves
// behind and the next open cleans up.
//
// Thread safety: VerifyDatabase is reentrant; it holds the directory's LOCK
// for its duration, so it cannot run beside a live server.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "strata/storage/env.h"

namespace strata::storage {

struct VerifyOptions {
  // File system to read through; nullptr = Env::Default(). Not owned.
  Env* env = nullptr;
  // Add one line per file checked to VerifyReport::info.
  bool verbose = false;
};

struct VerifyReport {
  // "<file>: <problem>" lines: corruption or inconsistency.
  std::vector<std::string> errors;
  // "<file>: <note>" lines: leftovers of a crash that the next open
  // repairs (torn WAL tail, orphan table, stale manifest, temp file).
  std::vector<std::string> warnings;
  // Per-file summaries (VerifyOptions::verbose).
  std::vector<std::string> info;
  int files_checked = 0;
  bool ok() const { return errors.empty(); }
};

// Verifies the database in `dir`. Problems in the files are reported in
// the VerifyReport; the returned status is an error only when verification
// could not run: NotFound if `dir` or its CURRENT does not exist,
// FailedPrecondition if the LOCK is held (a server is using the
// directory), or the Env's error listing the directory.
absl::StatusOr<VerifyReport> VerifyDatabase(const std::string& dir,
                                            const VerifyOptions& options = {});

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TOOLS_VERIFY_H_
