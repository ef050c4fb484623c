#ifndef STRATA_STORAGE_COMPACTION_COMPACTION_H_
#define STRATA_STORAGE_COMPACTION_COMPACTION_H_

// Leveled compaction policy (as in LevelDB): level 0 is compacted into
// level 1 when it holds level0_compaction_trigger files; level L >= 1 is
// compacted into L+1 when its bytes reach MaxBytesForLevel(L) (each level
// 10x the previous).
//
// The policy is a pure function: which compaction is due depends only on
// the (immutable) version, the set of files running compactions hold and
// the per-level round-robin pointers, and picking changes none of them. The
// caller (db/db_compaction.cc, under the DB mutex) records what it picked;
// the mechanism (merge, build, install) lives there too. That keeps the
// policy easy to table-test over hand-built versions
// (tests/storage/compaction/) and to simulate.

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "strata/storage/options.h"
#include "version/version_set.h"

namespace strata::storage {

// Numbers of the SSTables that are inputs of running compactions. A file in
// it is never picked again until its compaction ends. The DB owns it and
// guards it with its mutex.
using FilesInProgress = std::set<uint64_t>;

// Why a compaction was picked.
enum class CompactionReason {
  kLevel0Files,  // Level 0 reached level0_compaction_trigger files.
  kLevelSize,    // A level >= 1 reached its target size.
  kManual,       // DB::CompactRange.
};

// One compaction: inputs[0] from `level`, inputs[1] from level + 1; the
// output goes to level + 1. An in-place compaction (level >= 1) instead
// rewrites inputs[0] into `level` itself, with no inputs[1]: that is how
// DB::CompactRange lets the CompactionFilter see keys already in the
// bottom level, which no push-down compaction ever rewrites. Holds a
// reference to the version it was picked from. Thread safety: owned by the
// one thread that runs it.
class Compaction {
 public:
  Compaction(const Options& options, const InternalKeyComparator* icmp,
             Version* input_version, int level, CompactionReason reason,
             bool in_place = false);
  ~Compaction();
  Compaction(const Compaction&) = delete;
  Compaction& operator=(const Compaction&) = delete;

  int level() const { return level_; }
  int output_level() const { return output_level_; }
  bool in_place() const { return output_level_ == level_; }
  CompactionReason reason() const { return reason_; }
  Version* input_version() const { return input_version_; }
  std::vector<FileRef>& inputs(int which) { return inputs_[which]; }
  const std::vector<FileRef>& inputs(int which) const {
    return inputs_[which];
  }
  // Files of level + 2 overlapping the inputs (bounds output file sizes).
  std::vector<FileRef>& grandparents() { return grandparents_; }
  const std::vector<FileRef>& grandparents() const { return grandparents_; }
  uint64_t max_output_file_size() const { return max_output_file_size_; }

  // A single input file with nothing to merge in the next level and little
  // grandparent overlap: it can be moved down by a manifest edit alone.
  // Never for an in-place compaction (its point is the rewrite).
  bool IsTrivialMove() const;

  // Records the removal of every input in edit.
  void AddInputDeletions(VersionEdit* edit) const;

  // True if no level below the output level can hold user_key, so a
  // tombstone for it can be dropped. Calls must be in ascending key order.
  bool IsBaseLevelForKey(std::string_view user_key);

  // True if the output should be cut before internal_key because the
  // current output file already overlaps too many grandparent bytes
  // (keeps later compactions of the output level small).
  bool ShouldStopBefore(std::string_view internal_key);

  // Adds the number of every input to *files, or removes them: the DB's
  // record of what its running compactions hold.
  void AddInputsTo(FilesInProgress* files) const;
  void RemoveInputsFrom(FilesInProgress* files) const;

  uint64_t InputBytes() const;

 private:
  const InternalKeyComparator* const icmp_;
  Version* const input_version_;
  const int level_;
  const int output_level_;
  const CompactionReason reason_;
  const uint64_t max_output_file_size_;
  const uint64_t max_grandparent_overlap_bytes_;
  std::vector<FileRef> inputs_[2];
  std::vector<FileRef> grandparents_;

  // ShouldStopBefore state.
  size_t grandparent_index_ = 0;
  bool seen_key_ = false;
  uint64_t overlapped_bytes_ = 0;
  // IsBaseLevelForKey state: per level, the index of the first file that
  // may still contain keys >= the last key asked about.
  size_t level_ptrs_[kNumLevels] = {};
};

// Per-database picker state: where the last size-triggered compaction of
// each level stopped (its largest input key, encoded; empty = the level's
// start), so successive compactions of a level walk its key space
// round-robin instead of rewriting the same range. In memory only: after a
// restart every level starts again from its first file.
struct CompactionPickerState {
  std::string compact_pointer[kNumLevels];

  // Records that c was picked: a kLevelSize compaction moves its level's
  // pointer to its largest input key; other reasons leave it.
  void Advance(const Compaction& c);
};

// The most needed compaction of `version`, or nullptr if none is due or
// every due one needs a file in `in_progress`.
//
// Levels are scored (L0: files / level0_compaction_trigger; L >= 1: bytes /
// MaxBytesForLevel(L); the last level is never scored) and tried highest
// score first among those with score >= 1. Level 0 is compacted whole into
// level 1, so one L0 compaction runs at a time. A deeper level gives the
// first file after state.compact_pointer (wrapping around) that is not in
// progress and whose overlapping files in the next level are not either.
//
// Pure: reads its arguments and changes nothing. The caller records the
// pick (state->Advance, Compaction::AddInputsTo). REQUIRES: nothing changes
// `in_progress` or `state` during the call (the DB holds its mutex).
std::unique_ptr<Compaction> PickCompaction(const Options& options,
                                           const InternalKeyComparator* icmp,
                                           Version* version,
                                           const CompactionPickerState& state,
                                           const FilesInProgress& in_progress);

// A compaction of the files of `level` overlapping [begin, end] (nullptr =
// unbounded; at level 0 the range grows to every transitively overlapping
// file) into level + 1, with reason kManual; nullptr if no file overlaps or
// an input is in `in_progress`. Pure, like PickCompaction.
std::unique_ptr<Compaction> PickRangeCompaction(
    const Options& options, const InternalKeyComparator* icmp,
    Version* version, int level, const InternalKey* begin,
    const InternalKey* end, const FilesInProgress& in_progress);

// An in-place compaction (reason kManual) rewriting the files of `level`
// (>= 1) overlapping [begin, end] into `level` itself; nullptr if none
// overlaps or one is in `in_progress`. Pure, like PickCompaction.
std::unique_ptr<Compaction> PickInPlaceCompaction(
    const Options& options, const InternalKeyComparator* icmp,
    Version* version, int level, const InternalKey* begin,
    const InternalKey* end, const FilesInProgress& in_progress);

// Bytes by which levels exceed their targets (plus L0 files over the
// trigger), an estimate of pending compaction work.
uint64_t EstimatePendingCompactionBytes(const Options& options,
                                        const Version* version);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_COMPACTION_COMPACTION_H_
