// WatchCursor: the arithmetic that lets a resumed Watch stream continue
// with no gap and no duplicate, including a revision split over messages.

#include "client/watch_cursor.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::internal {
namespace {

WatchEvent Put(Revision r, std::string key) {
  WatchEvent e;
  e.type = WatchEvent::Type::kPut;
  e.kv.key = std::move(key);
  e.kv.mod_revision = r;
  return e;
}

WatchBatch Batch(Revision revision, std::vector<WatchEvent> events = {}) {
  WatchBatch b;
  b.revision = revision;
  b.events = std::move(events);
  return b;
}

// "rev:key" per delivered event; "-" when the batch was dropped.
std::string Delivered(WatchCursor& cursor, WatchBatch batch) {
  absl::StatusOr<std::optional<WatchBatch>> out =
      cursor.Accept(std::move(batch));
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return "error";
  if (!out->has_value()) return "-";
  std::string s = "@" + std::to_string((*out)->revision);
  for (const WatchEvent& e : (*out)->events) {
    s += " " + std::to_string(e.revision()) + ":" + e.kv.key;
  }
  return s;
}

TEST(WatchCursorTest, StartRevisionPositionsTheCursor) {
  WatchCursor cursor(5);
  EXPECT_TRUE(cursor.positioned());
  EXPECT_EQ(cursor.complete(), 4);
  EXPECT_EQ(cursor.resume_from(), 5);
  EXPECT_EQ(Delivered(cursor, Batch(4)), "@4");  // The opening batch.
  EXPECT_EQ(Delivered(cursor, Batch(6, {Put(5, "a"), Put(6, "b")})),
            "@6 5:a 6:b");
  EXPECT_EQ(cursor.resume_from(), 7);
}

TEST(WatchCursorTest, FromNowIsPositionedByTheFirstBatch) {
  WatchCursor cursor(0);
  EXPECT_FALSE(cursor.positioned());
  EXPECT_EQ(Delivered(cursor, Batch(41)), "@41");
  EXPECT_TRUE(cursor.positioned());
  EXPECT_EQ(cursor.resume_from(), 42);
}

TEST(WatchCursorTest, ResumedStreamDropsOnlyItsOpeningBatch) {
  WatchCursor cursor(1);
  EXPECT_EQ(Delivered(cursor, Batch(0)), "@0");
  EXPECT_EQ(Delivered(cursor, Batch(2, {Put(1, "a"), Put(2, "b")})),
            "@2 1:a 2:b");
  cursor.Resume();
  EXPECT_EQ(Delivered(cursor, Batch(2)), "-");
  EXPECT_EQ(Delivered(cursor, Batch(3, {Put(3, "c")})), "@3 3:c");
  // Progress notifications (same revision, no events) still come through.
  EXPECT_EQ(Delivered(cursor, Batch(3)), "@3");
  EXPECT_EQ(Delivered(cursor, Batch(3)), "@3");
}

// Revision 5 travels in two messages (the first reports 4). The stream
// breaks after the first: the resumed stream re-sends all of revision 5,
// and only the part not yet delivered is delivered.
TEST(WatchCursorTest, SplitRevisionIsNotDuplicatedAfterResume) {
  WatchCursor cursor(5);
  EXPECT_EQ(Delivered(cursor, Batch(4)), "@4");
  EXPECT_EQ(Delivered(cursor, Batch(4, {Put(5, "a"), Put(5, "b")})),
            "@4 5:a 5:b");
  EXPECT_EQ(cursor.resume_from(), 5);
  cursor.Resume();
  EXPECT_EQ(Delivered(cursor, Batch(4)), "-");
  EXPECT_EQ(Delivered(cursor, Batch(4, {Put(5, "a"), Put(5, "b")})), "-");
  EXPECT_EQ(Delivered(cursor, Batch(5, {Put(5, "c")})), "@5 5:c");
  EXPECT_EQ(Delivered(cursor, Batch(6, {Put(6, "d")})), "@6 6:d");
}

TEST(WatchCursorTest, SplitRevisionResentInOneMessage) {
  WatchCursor cursor(5);
  EXPECT_EQ(Delivered(cursor, Batch(4, {Put(5, "a")})), "@4 5:a");
  cursor.Resume();
  EXPECT_EQ(Delivered(cursor, Batch(4)), "-");
  // The server may pack the whole revision and the next into one message.
  EXPECT_EQ(Delivered(cursor, Batch(6, {Put(5, "a"), Put(5, "b"),
                                        Put(6, "c")})),
            "@6 5:b 6:c");
}

TEST(WatchCursorTest, TwoBreaksInsideOneSplitRevision) {
  WatchCursor cursor(5);
  EXPECT_EQ(Delivered(cursor, Batch(4, {Put(5, "a")})), "@4 5:a");
  cursor.Resume();
  EXPECT_EQ(Delivered(cursor, Batch(4)), "-");
  EXPECT_EQ(Delivered(cursor, Batch(4, {Put(5, "a"), Put(5, "b")})),
            "@4 5:b");
  cursor.Resume();
  EXPECT_EQ(Delivered(cursor, Batch(4)), "-");
  EXPECT_EQ(Delivered(cursor, Batch(4, {Put(5, "a"), Put(5, "b")})), "-");
  EXPECT_EQ(Delivered(cursor, Batch(5, {Put(5, "c")})), "@5 5:c");
}

TEST(WatchCursorTest, ChangeAtOrBelowTheReportedRevisionIsInternal) {
  WatchCursor cursor(1);
  EXPECT_EQ(Delivered(cursor, Batch(3, {Put(2, "a"), Put(3, "b")})),
            "@3 2:a 3:b");
  absl::StatusOr<std::optional<WatchBatch>> dup =
      cursor.Accept(Batch(4, {Put(3, "b"), Put(4, "c")}));
  EXPECT_TRUE(absl::IsInternal(dup.status())) << dup.status();
  // Nothing changed: the next good batch still follows revision 3.
  EXPECT_EQ(cursor.complete(), 3);
  EXPECT_EQ(Delivered(cursor, Batch(4, {Put(4, "c")})), "@4 4:c");
}

TEST(WatchCursorTest, ChangesOutOfOrderOrBeyondTheHeaderAreInternal) {
  WatchCursor cursor(1);
  EXPECT_TRUE(absl::IsInternal(
      cursor.Accept(Batch(3, {Put(3, "a"), Put(2, "b")})).status()));
  EXPECT_TRUE(
      absl::IsInternal(cursor.Accept(Batch(1, {Put(3, "a")})).status()));
}

}  // namespace
}  // namespace strata::internal
