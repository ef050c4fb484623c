#include "compaction/compaction.h"

#include <algorithm>

namespace strata::storage {
namespace {

uint64_t TotalBytes(const std::vector<FileRef>& files) {
  uint64_t sum = 0;
  for (const auto& f : files) sum += f->file_size;
  return sum;
}

bool AnyInProgress(const std::vector<FileRef>& files,
                   const FilesInProgress& in_progress) {
  return std::any_of(files.begin(), files.end(), [&](const FileRef& f) {
    return in_progress.count(f->number) > 0;
  });
}

// Smallest and largest internal keys covered by files.
void GetRange(const InternalKeyComparator* icmp,
              const std::vector<FileRef>& files, InternalKey* smallest,
              InternalKey* largest) {
  for (size_t i = 0; i < files.size(); i++) {
    const FileRef& f = files[i];
    if (i == 0 || icmp->Compare(f->smallest.Encode(), smallest->Encode()) < 0) {
      *smallest = f->smallest;
    }
    if (i == 0 || icmp->Compare(f->largest.Encode(), largest->Encode()) > 0) {
      *largest = f->largest;
    }
  }
}

// Fills inputs[1] and grandparents from inputs[0]. Returns false if a
// needed file is in progress.
bool SetupOtherInputs(const InternalKeyComparator* icmp,
                      const FilesInProgress& in_progress, Compaction* c) {
  Version* v = c->input_version();
  InternalKey smallest, largest;
  GetRange(icmp, c->inputs(0), &smallest, &largest);
  c->inputs(1) = v->GetOverlappingInputs(c->output_level(), &smallest, &largest);
  if (AnyInProgress(c->inputs(1), in_progress)) return false;
  if (c->output_level() + 1 < kNumLevels) {
    std::vector<FileRef> all = c->inputs(0);
    all.insert(all.end(), c->inputs(1).begin(), c->inputs(1).end());
    GetRange(icmp, all, &smallest, &largest);
    c->grandparents() =
        v->GetOverlappingInputs(c->output_level() + 1, &smallest, &largest);
  }
  return true;
}

// How far `level` is over its compaction trigger: >= 1 means due.
double LevelScore(const Options& options, const Version& version,
                  int level) {
  if (level == 0) {
    return static_cast<double>(version.NumFiles(0)) /
           options.level0_compaction_trigger;
  }
  return static_cast<double>(version.LevelBytes(level)) /
         static_cast<double>(MaxBytesForLevel(options, level));
}

// Level 0 whole into level 1.
std::unique_ptr<Compaction> PickLevel0(const Options& options,
                                       const InternalKeyComparator* icmp,
                                       Version* version,
                                       const FilesInProgress& in_progress) {
  const std::vector<FileRef>& files = version->files(0);
  // L0 files overlap, and merging all of them together shrinks L0
  // fastest. One L0 compaction at a time.
  if (AnyInProgress(files, in_progress)) return nullptr;
  auto c = std::make_unique<Compaction>(options, icmp, version, 0,
                                        CompactionReason::kLevel0Files);
  c->inputs(0) = files;
  if (!SetupOtherInputs(icmp, in_progress, c.get())) return nullptr;
  return c;
}

// One file of `level` (>= 1), round-robin from the compact pointer.
std::unique_ptr<Compaction> PickLevelFile(const Options& options,
                                          const InternalKeyComparator* icmp,
                                          Version* version, int level,
                                          const std::string& pointer,
                                          const FilesInProgress& in_progress) {
  const std::vector<FileRef>& files = version->files(level);
  // The first file after the last compacted key.
  size_t start = 0;
  if (!pointer.empty()) {
    while (start < files.size() &&
           icmp->Compare(files[start]->largest.Encode(), pointer) <= 0) {
      start++;
    }
  }
  for (size_t n = 0; n < files.size(); n++) {
    const FileRef& f = files[(start + n) % files.size()];
    if (in_progress.count(f->number) > 0) continue;
    auto c = std::make_unique<Compaction>(options, icmp, version, level,
                                          CompactionReason::kLevelSize);
    c->inputs(0).push_back(f);
    if (SetupOtherInputs(icmp, in_progress, c.get())) return c;
  }
  return nullptr;
}

}  // namespace

Compaction::Compaction(const Options& options,
                       const InternalKeyComparator* icmp,
                       Version* input_version, int level,
                       CompactionReason reason, bool in_place)
    : icmp_(icmp),
      input_version_(input_version),
      level_(level),
      output_level_(in_place ? level : level + 1),
      reason_(reason),
      max_output_file_size_(options.target_file_size),
      max_grandparent_overlap_bytes_(10 * options.target_file_size) {
  input_version_->Ref();
  for (int i = 0; i < kNumLevels; i++) level_ptrs_[i] = 0;
}

Compaction::~Compaction() { input_version_->Unref(); }

bool Compaction::IsTrivialMove() const {
  return !in_place() && inputs_[0].size() == 1 && inputs_[1].empty() &&
         TotalBytes(grandparents_) <= max_grandparent_overlap_bytes_;
}

void Compaction::AddInputDeletions(VersionEdit* edit) const {
  for (int which = 0; which < 2; which++) {
    for (const auto& f : inputs_[which]) {
      edit->RemoveFile(which == 0 ? level_ : output_level_, f->number);
    }
  }
}

bool Compaction::IsBaseLevelForKey(std::string_view user_key) {
  const Comparator* ucmp = icmp_->user_comparator();
  for (int lvl = output_level_ + 1; lvl < kNumLevels; lvl++) {
    const std::vector<FileRef>& files = input_version_->files(lvl);
    while (level_ptrs_[lvl] < files.size()) {
      const FileRef& f = files[level_ptrs_[lvl]];
      if (ucmp->Compare(user_key, f->largest.user_key()) <= 0) {
        if (ucmp->Compare(user_key, f->smallest.user_key()) >= 0) {
          return false;  // The key may exist in this deeper file.
        }
        break;
      }
      level_ptrs_[lvl]++;
    }
  }
  return true;
}

bool Compaction::ShouldStopBefore(std::string_view internal_key) {
  while (grandparent_index_ < grandparents_.size() &&
         icmp_->Compare(internal_key,
                        grandparents_[grandparent_index_]->largest.Encode()) >
             0) {
    if (seen_key_) {
      overlapped_bytes_ += grandparents_[grandparent_index_]->file_size;
    }
    grandparent_index_++;
  }
  seen_key_ = true;
  if (overlapped_bytes_ > max_grandparent_overlap_bytes_) {
    overlapped_bytes_ = 0;
    return true;
  }
  return false;
}

void Compaction::AddInputsTo(FilesInProgress* files) const {
  for (const auto& inputs : inputs_) {
    for (const auto& f : inputs) files->insert(f->number);
  }
}

void Compaction::RemoveInputsFrom(FilesInProgress* files) const {
  for (const auto& inputs : inputs_) {
    for (const auto& f : inputs) files->erase(f->number);
  }
}

uint64_t Compaction::InputBytes() const {
  return TotalBytes(inputs_[0]) + TotalBytes(inputs_[1]);
}

void CompactionPickerState::Advance(const Compaction& c) {
  if (c.reason() != CompactionReason::kLevelSize || c.inputs(0).empty()) {
    return;
  }
  // Files of a level >= 1 are sorted and disjoint: the last one ends last.
  compact_pointer[c.level()] = std::string(c.inputs(0).back()->largest.Encode());
}

std::unique_ptr<Compaction> PickCompaction(const Options& options,
                                           const InternalKeyComparator* icmp,
                                           Version* version,
                                           const CompactionPickerState& state,
                                           const FilesInProgress& in_progress) {
  // Levels by score, highest first; only those due (score >= 1).
  std::vector<std::pair<double, int>> scored;
  for (int level = 0; level < kNumLevels - 1; level++) {
    double score = LevelScore(options, *version, level);
    if (score >= 1) scored.emplace_back(score, level);
  }
  std::sort(scored.rbegin(), scored.rend());

  for (const auto& [score, level] : scored) {
    std::unique_ptr<Compaction> c =
        level == 0 ? PickLevel0(options, icmp, version, in_progress)
                   : PickLevelFile(options, icmp, version, level,
                                   state.compact_pointer[level], in_progress);
    if (c != nullptr) return c;
  }
  return nullptr;
}

std::unique_ptr<Compaction> PickRangeCompaction(
    const Options& options, const InternalKeyComparator* icmp,
    Version* version, int level, const InternalKey* begin,
    const InternalKey* end, const FilesInProgress& in_progress) {
  std::vector<FileRef> inputs = version->GetOverlappingInputs(level, begin, end);
  if (inputs.empty() || AnyInProgress(inputs, in_progress)) return nullptr;
  auto c = std::make_unique<Compaction>(options, icmp, version, level,
                                        CompactionReason::kManual);
  c->inputs(0) = std::move(inputs);
  if (!SetupOtherInputs(icmp, in_progress, c.get())) return nullptr;
  return c;
}

std::unique_ptr<Compaction> PickInPlaceCompaction(
    const Options& options, const InternalKeyComparator* icmp,
    Version* version, int level, const InternalKey* begin,
    const InternalKey* end, const FilesInProgress& in_progress) {
  if (level < 1) return nullptr;  // Level 0 files overlap: never in place.
  std::vector<FileRef> inputs = version->GetOverlappingInputs(level, begin, end);
  if (inputs.empty() || AnyInProgress(inputs, in_progress)) return nullptr;
  auto c = std::make_unique<Compaction>(options, icmp, version, level,
                                        CompactionReason::kManual,
                                        /*in_place=*/true);
  // The outputs hold a subset of the inputs' keys, so they stay within the
  // inputs' range, which no other file of the level overlaps.
  c->inputs(0) = std::move(inputs);
  if (level + 1 < kNumLevels) {
    InternalKey smallest, largest;
    GetRange(icmp, c->inputs(0), &smallest, &largest);
    c->grandparents() =
        version->GetOverlappingInputs(level + 1, &smallest, &largest);
  }
  return c;
}

uint64_t EstimatePendingCompactionBytes(const Options& options,
                                        const Version* version) {
  uint64_t pending = 0;
  if (version->NumFiles(0) >= options.level0_compaction_trigger) {
    pending += version->LevelBytes(0);
  }
  for (int level = 1; level < kNumLevels - 1; level++) {
    uint64_t bytes = version->LevelBytes(level);
    uint64_t target = MaxBytesForLevel(options, level);
    if (bytes > target) pending += bytes - target;
  }
  return pending;
}

}  // namespace strata::storage
