#ifndef STRATA_STORAGE_COMPACTION_COMPACTION_H_
#define STRATA_STORAGE_COMPACTION_COMPACTION_H_

// Leveled compaction policy (as in LevelDB): level 0 is compacted into
// level 1 when it holds level0_compaction_trigger files; level L >= 1 is
// compacted into L+1 when its bytes exceed MaxBytesForLevel(L) (each level
// 10x the previous). The policy is a pure function of a version and the
// "being compacted" marks; the merge itself lives in db/compaction_job.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/storage/options.h"
#include "version/version_set.h"

namespace strata::storage {

// One compaction: inputs[0] from `level`, inputs[1] from level + 1; the
// output goes to level + 1. Holds a reference to the version it was picked
// from.
class Compaction {
 public:
  Compaction(const Options& options, const InternalKeyComparator* icmp,
             Version* input_version, int level);
  ~Compaction();
  Compaction(const Compaction&) = delete;
  Compaction& operator=(const Compaction&) = delete;

  int level() const { return level_; }
  int output_level() const { return level_ + 1; }
  Version* input_version() const { return input_version_; }
  std::vector<FileRef>& inputs(int which) { return inputs_[which]; }
  std::vector<FileRef>& grandparents() { return grandparents_; }
  uint64_t max_output_file_size() const { return max_output_file_size_; }

  // A single input file with nothing to merge in the next level and little
  // grandparent overlap: it can be moved down by a manifest edit alone.
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

  // Sets or clears being_compacted on every input. REQUIRES: DB mutex.
  void MarkBeingCompacted(bool value);

  uint64_t InputBytes() const;

 private:
  const InternalKeyComparator* const icmp_;
  Version* const input_version_;
  const int level_;
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

// Per-database picker state: where the last compaction of each level
// stopped, so successive compactions walk the key space round-robin.
struct CompactionPickerState {
  std::string compact_pointer[kNumLevels];
};

// Picks the most needed compaction of `version`, skipping files already
// being compacted, or returns nullptr if none is due. REQUIRES: DB mutex
// (reads being_compacted). Marks nothing; the caller calls
// MarkBeingCompacted(true).
std::unique_ptr<Compaction> PickCompaction(const Options& options,
                                           const InternalKeyComparator* icmp,
                                           Version* version,
                                           CompactionPickerState* state);

// A compaction of the files of `level` overlapping [begin, end] (nullptr =
// unbounded) into level + 1, or nullptr if there is nothing to do or an
// input is busy. REQUIRES: DB mutex.
std::unique_ptr<Compaction> PickRangeCompaction(
    const Options& options, const InternalKeyComparator* icmp,
    Version* version, int level, const InternalKey* begin,
    const InternalKey* end);

// Bytes by which levels exceed their targets (plus L0 files over the
// trigger), an estimate of pending compaction work.
uint64_t EstimatePendingCompactionBytes(const Options& options,
                                        const Version* version);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_COMPACTION_COMPACTION_H_
