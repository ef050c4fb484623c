// Compaction mechanism: run what the policy (compaction/compaction.h)
// picked, merging the inputs into new tables of the next level and
// dropping entries no reader can see.

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "db/table_file_writer.h"
#include "env/io_error.h"
#include "spdlog/spdlog.h"
#include "table/merging_iterator.h"
#include "util/status_macros.h"
#include "version/level_iterator.h"

namespace strata::storage {

void DBImpl::MaybeScheduleCompaction() { compaction_cv_.SignalAll(); }

void DBImpl::CompactionThreadMain() {
  MutexLock l(&mu_);
  versions_->AssertHeld();
  uint64_t backoff_micros = 0;  // After compactions failed for lack of space.
  while (true) {
    std::unique_ptr<Compaction> c;
    while (!shutting_down_.load()) {
      if (bg_error_.ok() && space_error_.ok() && manual_compactions_ == 0) {
        c = PickCompaction(options_, &icmp_, versions_->current(),
                           picker_state_, compacting_files_);
        if (c != nullptr) {
          picker_state_.Advance(*c);
          break;
        }
      }
      compaction_cv_.Wait(&mu_);
    }
    if (shutting_down_.load()) return;
    absl::Status s = RunCompaction(c.get());
    const bool out_of_space = !s.ok() && IsOutOfSpace(s);
    if (!s.ok() && !shutting_down_.load()) {
      if (out_of_space) {
        // Not fatal, and writes go on: the outputs are dropped and the
        // compaction is tried again after a backoff.
        space_errors_.Add();
        background_errors_.Add();
        backoff_micros =
            backoff_micros == 0
                ? options_.out_of_space_retry_initial_micros
                : std::min(2 * backoff_micros,
                           options_.out_of_space_retry_max_micros);
        spdlog::warn("compaction failed for lack of space ({}); retrying in "
                     "{} ms",
                     std::string(s.message()), backoff_micros / 1000);
      } else {
        RecordBackgroundError(s);
      }
    }
    if (s.ok()) backoff_micros = 0;
    c.reset();  // Unpins the input version, so its inputs become obsolete.
    DeleteObsoleteFiles();
    bg_done_cv_.SignalAll();
    if (out_of_space) CompactionBackoff(backoff_micros);
  }
}

absl::Status DBImpl::RunCompaction(Compaction* c) {
  versions_->AssertHeld();
  c->AddInputsTo(&compacting_files_);
  running_compactions_++;
  uint64_t start = env_->NowMicros();
  VersionEdit edit;
  absl::Status s;
  if (c->IsTrivialMove()) {
    const FileRef& f = c->inputs(0)[0];
    edit.RemoveFile(c->level(), f->number);
    edit.AddFile(c->output_level(), *f);
    s = versions_->LogAndApply(&edit);
  } else {
    s = DoCompactionWork(c, &edit);
    if (s.ok()) {
      c->AddInputDeletions(&edit);
      s = versions_->LogAndApply(&edit);
    }
    for (const auto& [level, f] : edit.new_files()) {
      pending_outputs_.erase(f.number);
    }
    compaction_counters_.read_bytes.Add(c->InputBytes());
  }
  c->RemoveInputsFrom(&compacting_files_);
  running_compactions_--;
  // Wakes a CompactRange waiting for these inputs (two CompactRange calls
  // at once, e.g. a namespace's reclaim and a Compact RPC).
  bg_done_cv_.SignalAll();
  if (s.ok()) {
    compaction_counters_.count.Add();
    compaction_counters_.seconds.Observe((env_->NowMicros() - start) / 1e6);
    InstallSuperVersion();
    MaybeScheduleCompaction();
  }
  // The caller deletes the inputs (DeleteObsoleteFiles) once it has dropped
  // the Compaction, which pins the input version until then.
  return s;
}

absl::Status DBImpl::DoCompactionWork(Compaction* c, VersionEdit* edit) {
  const SequenceNumber smallest_snapshot = OldestSnapshotSequence();
  // The oldest revision a reader may still read through a snapshot (the
  // history window aside): keys the CompactionFilter calls unreachable
  // since a revision at or before it are dropped whole.
  const SequenceNumber oldest_reader =
      snapshots_.empty() ? versions_->LastSequence() : *snapshots_.begin();
  const CompactionFilter* const filter = options_.compaction_filter.get();
  const Comparator* ucmp = icmp_.user_comparator();

  // Inputs: one iterator per L0 file, one concatenating iterator per level.
  ReadOptions ropts;
  ropts.fill_cache = false;
  std::vector<Iterator*> children;
  for (int which = 0; which < 2; which++) {
    const std::vector<FileRef>& files = c->inputs(which);
    if (files.empty()) continue;
    if (c->level() + which == 0) {
      for (const auto& f : files) {
        children.push_back(
            table_cache_->NewIterator(ropts, f->number, f->file_size));
      }
    } else {
      children.push_back(
          NewLevelIterator(ropts, table_cache_.get(), &icmp_, files));
    }
  }

  mu_.Unlock();
  std::unique_ptr<Iterator> input(NewMergingIterator(&icmp_, std::move(children)));
  std::unique_ptr<TableFileWriter> out;
  std::vector<FileMetaData> outputs;
  absl::Status s;
  std::string current_user_key;
  bool has_current_user_key = false;
  SequenceNumber last_sequence_for_key = kMaxSequenceNumber;
  bool key_changed = true;
  bool unreachable_key = false;  // The filter dropped the current key.

  auto finish_output = [&]() -> absl::Status {
    absl::Status fs = out->Finish();
    if (fs.ok()) {
      outputs.push_back(out->meta());
      compaction_counters_.written_bytes.Add(out->meta().file_size);
    } else {
      out->Abandon();
    }
    out.reset();
    return fs;
  };

  for (input->SeekToFirst(); input->Valid() && s.ok(); input->Next()) {
    if (shutting_down_.load()) {
      s = absl::CancelledError("compaction stopped by shutdown");
      break;
    }
    std::string_view key = input->key();
    ParsedInternalKey ikey;
    if (!ParseInternalKey(key, &ikey)) {
      s = absl::DataLossError("compaction input holds a malformed key");
      break;
    }
    key_changed = !has_current_user_key ||
                  ucmp->Compare(ikey.user_key, current_user_key) != 0;
    if (key_changed) {
      current_user_key.assign(ikey.user_key.data(), ikey.user_key.size());
      has_current_user_key = true;
      last_sequence_for_key = kMaxSequenceNumber;
      // Cut outputs only between user keys, so no user key spans two
      // tables of a level (lookups search one table per level).
      if (out != nullptr && (out->FileSize() >= c->max_output_file_size() ||
                             c->ShouldStopBefore(key))) {
        s = finish_output();
        if (!s.ok()) break;
      }
      unreachable_key = false;
      if (filter != nullptr) {
        std::optional<Revision> since = filter->UnreachableSince(ikey.user_key);
        unreachable_key = since.has_value() && *since <= oldest_reader;
      }
    }
    if (unreachable_key) {
      // Every version and tombstone of it: no reader can reach any of them
      // (CompactionFilter's contract), so versions left in deeper levels
      // are unreachable too and need no tombstone to hide them.
      compaction_counters_.filtered_entries.Add();
      continue;
    }

    bool drop = false;
    if (last_sequence_for_key <= smallest_snapshot) {
      // A newer entry for this key is visible to every snapshot.
      drop = true;
    } else if (ikey.type == kTypeDeletion &&
               ikey.sequence <= smallest_snapshot &&
               c->IsBaseLevelForKey(ikey.user_key)) {
      // No deeper level holds the key and no snapshot needs the tombstone.
      drop = true;
    }
    last_sequence_for_key = ikey.sequence;
    if (drop) continue;

    if (out == nullptr) {
      uint64_t number;
      {
        MutexLock l(&mu_);
        versions_->AssertHeld();
        number = versions_->NewFileNumber();
        pending_outputs_.insert(number);
      }
      auto created =
          TableFileWriter::Create(env_, dbname_, options_, &icmp_, number);
      if (!created.ok()) {
        s = created.status();
        break;
      }
      out = std::move(*created);
    }
    s = out->Add(key, input->value());
  }
  if (s.ok()) s = input->status();
  if (s.ok() && out != nullptr) s = finish_output();
  if (out != nullptr) out->Abandon();
  if (s.ok() && !outputs.empty()) s = env_->SyncDir(dbname_);
  if (s.ok() && TEST_hook) s = TEST_hook("compaction:outputs_written");
  input.reset();
  mu_.Lock();

  for (const FileMetaData& f : outputs) edit->AddFile(c->output_level(), f);
  if (!s.ok()) {
    // Outputs stay in pending_outputs_ until the caller clears them; they
    // are then unreferenced and deleted as obsolete.
    return s;
  }
  spdlog::debug("compacted L{} ({} files) + L{} ({} files) -> {} files (first {})",
                c->level(), c->inputs(0).size(), c->output_level(),
                c->inputs(1).size(), outputs.size(),
                outputs.empty() ? 0 : outputs[0].number);
  return absl::OkStatus();
}

absl::Status DBImpl::CompactRange(std::optional<std::string_view> begin,
                                  std::optional<std::string_view> end) {
  RETURN_IF_ERROR(Flush());
  std::optional<InternalKey> begin_key, end_key;
  if (begin) begin_key.emplace(*begin, kMaxSequenceNumber, kValueTypeForSeek);
  if (end) end_key.emplace(*end, 0, kTypeDeletion);
  MutexLock l(&mu_);
  versions_->AssertHeld();
  manual_compactions_++;
  absl::Status s;
  // Compact each level that has overlapping files into the next, down to
  // the deepest level holding any of the range.
  const InternalKey* b = begin_key ? &*begin_key : nullptr;
  const InternalKey* e = end_key ? &*end_key : nullptr;
  int max_level = 0;
  for (int level = 1; level < kNumLevels; level++) {
    if (!versions_->current()->GetOverlappingInputs(level, b, e).empty()) {
      max_level = level;
    }
  }
  for (int level = 0; level < std::max(max_level, 1) && s.ok(); level++) {
    while (s.ok() && !shutting_down_.load()) {
      Version* v = versions_->current();
      if (v->GetOverlappingInputs(level, b, e).empty()) break;
      std::unique_ptr<Compaction> c =
          PickRangeCompaction(options_, &icmp_, v, level, b, e,
                              compacting_files_);
      if (c == nullptr) {
        bg_done_cv_.Wait(&mu_);  // An input is busy in the background.
        continue;
      }
      s = RunManualCompaction(std::move(c));
    }
  }
  if (s.ok() && options_.compaction_filter != nullptr) {
    s = CompactBottomInPlace(b, e);
  }
  manual_compactions_--;
  MaybeScheduleCompaction();
  if (s.ok()) s = bg_error_;
  return s;
}

absl::Status DBImpl::RunManualCompaction(std::unique_ptr<Compaction> c) {
  versions_->AssertHeld();
  absl::Status s = RunCompaction(c.get());
  c.reset();  // Unpins the input version, so its files can go below.
  if (!s.ok()) {
    // Out of space: the caller hears of it; writes go on.
    if (IsOutOfSpace(s)) {
      space_errors_.Add();
      background_errors_.Add();
    } else {
      RecordBackgroundError(s);
    }
  }
  DeleteObsoleteFiles();  // The inputs, or a failed compaction's outputs.
  return s;
}

absl::Status DBImpl::CompactBottomInPlace(const InternalKey* b,
                                          const InternalKey* e) {
  versions_->AssertHeld();
  // The push-downs above never rewrite the deepest level holding the
  // range, and nothing else does either once the range gets no writes (a
  // deleted namespace): rewrite it in place so the filter sees its keys.
  while (!shutting_down_.load()) {
    Version* v = versions_->current();
    int level = 0;
    for (int l = kNumLevels - 1; l >= 1 && level == 0; l--) {
      if (!v->GetOverlappingInputs(l, b, e).empty()) level = l;
    }
    if (level == 0) return absl::OkStatus();
    std::unique_ptr<Compaction> c = PickInPlaceCompaction(
        options_, &icmp_, v, level, b, e, compacting_files_);
    if (c == nullptr) {
      bg_done_cv_.Wait(&mu_);  // An input is busy in the background.
      continue;
    }
    return RunManualCompaction(std::move(c));
  }
  return absl::OkStatus();
}

void DBImpl::CompactionBackoff(uint64_t micros) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(micros);
  while (!shutting_down_.load()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    compaction_cv_.WaitForMicros(
        &mu_, std::chrono::duration_cast<std::chrono::microseconds>(
                  deadline - now)
                  .count());
  }
}

}  // namespace strata::storage
