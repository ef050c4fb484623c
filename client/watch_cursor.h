#ifndef STRATA_CLIENT_WATCH_CURSOR_H_
#define STRATA_CLIENT_WATCH_CURSOR_H_

// WatchCursor: where a Watch stream stands, so that a stream re-opened
// after a break (WatchStream's resume) continues exactly where the caller
// is, with no gap and no duplicate. Internal to the client library; a
// separate class so its arithmetic is tested on its own
// (tests/client/watch_cursor_test.cc).
//
// The server's promise (docs/revisions.md): a message's header.revision R
// means every change up to R has been sent. Events of one revision normally
// travel in one message, but a revision with more than ~1 MiB of events is
// split over consecutive messages, all but the last reporting R - 1. So
// after a break the stream resumes from R + 1, and if part of revision R + 1
// had already been delivered, the re-sent copy of that part (the same
// events in the same order: they are read from the same committed batch) is
// dropped.

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "client/strata_client.h"

namespace strata::internal {

// Thread safety: none (the owning WatchStream's reader thread uses it).
class WatchCursor {
 public:
  // start_revision as in WatchOptions (0 = from now: position unknown until
  // the first batch).
  explicit WatchCursor(Revision start_revision);

  // Whether the position is known, so a stream can be re-opened at
  // resume_from(): a start revision was given or a batch was accepted.
  bool positioned() const { return positioned_; }
  // Every change up to this revision has been delivered.
  Revision complete() const { return complete_; }
  // The start_revision of a re-opened stream: complete() + 1.
  Revision resume_from() const { return complete_ + 1; }

  // A new stream from resume_from() begins: its opening batch (no events,
  // revision complete()) is dropped, and so are the first events of
  // revision complete() + 1 as many as were delivered before the break.
  // REQUIRES: positioned().
  void Resume();

  // Takes the next batch received on the stream. Returns the batch to
  // deliver (with re-sent events removed), or std::nullopt when nothing of
  // it is to be delivered. Internal if it carries an event at or below
  // complete(), or events out of revision order: delivering it would
  // duplicate or reorder changes.
  absl::StatusOr<std::optional<WatchBatch>> Accept(WatchBatch batch);

 private:
  bool positioned_;
  Revision complete_;
  // Events of revision complete_ + 1 delivered so far (a split revision).
  int64_t partial_ = 0;
  // Events of revision complete_ + 1 still to drop after a Resume.
  int64_t skip_ = 0;
  // A resumed stream's opening batch is expected next.
  bool expect_opening_ = false;
};

}  // namespace strata::internal

#endif  // STRATA_CLIENT_WATCH_CURSOR_H_
