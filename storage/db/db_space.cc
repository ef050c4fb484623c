// Running out of disk space: pause writes, retry, resume by themselves.
//
// A failure for lack of space (ENOSPC, EDQUOT; IsOutOfSpace) is transient:
// an operator or a compaction frees space. RecordBackgroundError sets
// space_error_ instead of the sticky bg_error_, and writes fail with it
// (ResourceExhausted) while it is set. The flush thread then retries what
// failed, after a backoff that doubles from
// Options::out_of_space_retry_initial_micros to ..._max_micros:
//
//   1. If a WAL append or sync failed (wal_broken_), the WAL may end in a
//      torn record, or in complete records of a group that was refused.
//      Nothing is ever appended after them: the WAL is closed and cut back
//      to its published offset (the end of the last acknowledged group),
//      then writes switch to a fresh WAL. The refused group's revisions are
//      nowhere, so the next writes may take them again. (A full memtable
//      is switched too: its switch may be what failed.)
//   2. Every immutable memtable is flushed.
//
// When both succeed, space_error_ is cleared and writes resume. No
// acknowledged write is lost (it is in the memtable and its WAL, which
// stays until the memtable's table is installed) or duplicated (its WAL
// ends with it). A failure that is not for lack of space during a retry
// (EIO, corruption) makes the database read-only as usual.

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "env/io_error.h"
#include "spdlog/spdlog.h"
#include "util/filename.h"
#include "util/status_macros.h"

namespace strata::storage {

void DBImpl::WaitForOutOfSpaceRetry() {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(space_retry_micros_);
  while (!shutting_down_.load() && retry_requests_ == retry_attempts_ &&
         bg_error_.ok() && !space_error_.ok()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    flush_cv_.WaitForMicros(
        &mu_, std::chrono::duration_cast<std::chrono::microseconds>(
                  deadline - now)
                  .count());
  }
}

void DBImpl::RetryAfterOutOfSpace() {
  if (bg_error_.ok() && !space_error_.ok()) {
    absl::Status s = ResumeAfterOutOfSpace();
    if (s.ok()) {
      spdlog::info("writes resumed: disk space is available again");
      space_error_ = absl::OkStatus();
      space_retry_micros_ = 0;
      PublishWriteAvailability();
      space_resumes_.Add();
      MaybeScheduleCompaction();
    } else if (!IsOutOfSpace(s)) {
      // Not transient: read-only (unless SwitchMemTable already said so).
      if (bg_error_.ok()) RecordBackgroundError(s);
    } else {
      space_retry_micros_ =
          std::min(2 * std::max<uint64_t>(space_retry_micros_, 1),
                   options_.out_of_space_retry_max_micros);
      spdlog::debug("still out of disk space ({}); next retry in {} ms",
                    std::string(s.message()), space_retry_micros_ / 1000);
    }
  }
  retry_attempts_ = retry_requests_;
  bg_done_cv_.SignalAll();
}

absl::Status DBImpl::ResumeAfterOutOfSpace() {
  // No leader may be using the WAL or the memtable: wait for the one in
  // flight (if any); later ones start only under mu_, held from here on,
  // and refuse to write while space_error_ is set.
  while (leader_active_) bg_done_cv_.Wait(&mu_);
  RETURN_IF_ERROR(bg_error_);
  // A full memtable means the failure may have been its switch (creating
  // the next WAL): redo it here, so writes do not resume only to fail
  // again at once.
  if (wal_broken_ || mem_->ApproximateMemoryUsage() >= options_.memtable_bytes) {
    if (wal_broken_) RETURN_IF_ERROR(RepairWalTail());
    absl::Status s = SwitchMemTable();
    if (!s.ok()) return bg_error_.ok() ? space_error_ : bg_error_;
  }
  while (!imm_.empty()) {
    RETURN_IF_ERROR(FlushOldestImmutable());
    bg_done_cv_.SignalAll();
  }
  return absl::OkStatus();
}

absl::Status DBImpl::RepairWalTail() {
  // Close first: a close may still write buffered bytes of the failed
  // record, which the truncation then removes.
  wal_->Close().IgnoreError();
  const std::string path = WalFileName(dbname_, wal_number_);
  absl::Status s = env_->TruncateFile(path, published_wal_offset_);
  if (s.ok() || IsOutOfSpace(s)) return s;
  return absl::UnavailableError(
      absl::StrFormat("cannot drop the unacknowledged tail of %s: %s", path,
                      s.message()));
}

absl::Status DBImpl::TEST_RetryOutOfSpaceNow() {
  MutexLock l(&mu_);
  if (bg_error_.ok() && !space_error_.ok()) {
    const uint64_t want = ++retry_requests_;
    flush_cv_.SignalAll();
    while (retry_attempts_ < want && !shutting_down_.load()) {
      bg_done_cv_.Wait(&mu_);
    }
  }
  return WriteRefusal();
}

}  // namespace strata::storage
