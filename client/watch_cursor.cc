#include "client/watch_cursor.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace strata::internal {

WatchCursor::WatchCursor(Revision start_revision)
    : positioned_(start_revision > 0),
      complete_(start_revision > 0 ? start_revision - 1 : 0) {}

void WatchCursor::Resume() {
  skip_ = partial_;
  expect_opening_ = true;
}

absl::StatusOr<std::optional<WatchBatch>> WatchCursor::Accept(
    WatchBatch batch) {
  if (expect_opening_) {
    expect_opening_ = false;
    if (batch.events.empty() && batch.revision == complete_) {
      return std::optional<WatchBatch>();  // Says nothing new.
    }
  }
  // Check the whole batch before changing any state.
  const Revision reported = positioned_ ? std::max(batch.revision, complete_)
                                        : batch.revision;
  Revision previous = positioned_ ? complete_ : 0;
  for (const WatchEvent& e : batch.events) {
    const Revision r = e.revision();
    if (positioned_ && r <= complete_) {
      return absl::InternalError(absl::StrFormat(
          "watch: the server sent a change at revision %d after reporting "
          "every change up to %d (it would be a duplicate)",
          r, complete_));
    }
    if (r < previous || r > reported + 1) {
      return absl::InternalError(absl::StrFormat(
          "watch: the server sent a change at revision %d out of order "
          "(after %d, in a message complete up to %d)",
          r, previous, batch.revision));
    }
    previous = r;
  }

  const bool had_events = !batch.events.empty();
  std::vector<WatchEvent> kept;
  kept.reserve(batch.events.size());
  for (WatchEvent& e : batch.events) {
    if (skip_ > 0 && e.revision() == complete_ + 1) {
      skip_--;  // Delivered before the break.
      continue;
    }
    kept.push_back(std::move(e));
  }
  const bool advanced = !positioned_ || batch.revision > complete_;
  if (advanced) {
    positioned_ = true;
    complete_ = batch.revision;
    partial_ = 0;
    skip_ = 0;
  }
  for (const WatchEvent& e : kept) {
    if (e.revision() == complete_ + 1) partial_++;
  }
  if (had_events && kept.empty() && !advanced) {
    return std::optional<WatchBatch>();  // All of it was re-sent.
  }
  batch.events = std::move(kept);
  batch.revision = complete_;
  return std::optional<WatchBatch>(std::move(batch));
}

}  // namespace strata::internal
