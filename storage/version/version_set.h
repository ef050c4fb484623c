#ifndef STRATA_STORAGE_VERSION_VERSION_SET_H_
#define STRATA_STORAGE_VERSION_VERSION_SET_H_

// Versions and the manifest.
//
// A Version is an immutable set of SSTables per level. Readers pin the
// version they read (reference count) so a flush or compaction can install
// a new one without disturbing them, and a file is deleted only when no
// live version lists it. The VersionSet owns the chain of versions and the
// manifest: a log of VersionEdits (docs/manifest-format.md) plus CURRENT,
// which names the live manifest. An edit is written and fsynced to the
// manifest before its version becomes current, so a crash at any point
// leaves either the old or the new version.

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "record/writer.h"
#include "strata/storage/env.h"
#include "strata/storage/iterator.h"
#include "strata/storage/options.h"
#include "util/dbformat.h"
#include "util/mutex.h"
#include "version/table_cache.h"
#include "version/version_edit.h"

namespace strata::storage {

class VersionSet;

using FileRef = std::shared_ptr<FileMetaData>;

// Target size in bytes of `level` (level >= 1): base * 10^(level-1).
uint64_t MaxBytesForLevel(const Options& options, int level);

// Thread safety: a Version is immutable after it is installed; Ref/Unref
// are atomic and may be called from any thread.
class Version {
 public:
  // A version outside any VersionSet, holding `files` (sorted as an
  // installed version would be: level 0 newest file first, deeper levels by
  // smallest key), for the compaction policy's table tests and simulations.
  // It has no table cache: Get and AddIterators must not be called on it.
  // Returned with one reference, which the caller owns (Unref deletes it).
  // icmp is not owned and must outlive the version.
  // REQUIRES: files of each level >= 1 do not overlap.
  static Version* NewDetached(const InternalKeyComparator* icmp,
                              std::vector<FileRef> files[kNumLevels]);

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Drops a reference; the last one deletes the version (and lets its
  // files be deleted).
  void Unref();

  // Outcome of a point lookup in the SSTables.
  // Looks up key in L0 (newest first) and then one table per level,
  // skipping tables by key range and bloom filter. Fills *result (state
  // kNotFound if no table holds an entry for the key at or below the
  // lookup's sequence). Returns DataLoss for a corrupt table, I/O errors as
  // the Env reports them, and WouldBlockError() for a cache_only
  // read that needs I/O.
  // REQUIRES: not a detached version.
  absl::Status Get(const ReadOptions& options, const LookupKey& key,
                   LookupResult* result) const;

  // Appends iterators over every table (one per L0 file, one concatenating
  // iterator per deeper level). The caller owns them; they reference this
  // version's tables, so the version must be pinned while they live.
  // REQUIRES: not a detached version.
  void AddIterators(const ReadOptions& options,
                    std::vector<Iterator*>* iters) const;

  const std::vector<FileRef>& files(int level) const { return files_[level]; }
  int NumFiles(int level) const {
    return static_cast<int>(files_[level].size());
  }
  uint64_t LevelBytes(int level) const;

  // Files of `level` whose user-key range overlaps [begin, end] (nullptr =
  // unbounded). For level 0 the range grows to cover overlapping files
  // transitively, since L0 files overlap each other.
  std::vector<FileRef> GetOverlappingInputs(int level,
                                            const InternalKey* begin,
                                            const InternalKey* end) const;
  // True if some file in `level` overlaps the user-key range.
  bool OverlapInLevel(int level, std::string_view smallest_user_key,
                      std::string_view largest_user_key) const;

 private:
  friend class VersionSet;
  // vset is nullptr for a detached version.
  Version(VersionSet* vset, const InternalKeyComparator* icmp)
      : vset_(vset), icmp_(icmp) {}
  ~Version() = default;

  VersionSet* const vset_;
  const InternalKeyComparator* const icmp_;
  std::atomic<int> refs_{0};
  // Level 0 is ordered newest file first; deeper levels by smallest key
  // (their files do not overlap).
  std::vector<FileRef> files_[kNumLevels];
};

// Thread safety: methods marked REQUIRES(mu) need the DB mutex passed to
// the constructor; the rest are safe from any thread.
class VersionSet {
 public:
  // table_cache and mu are not owned and must outlive this.
  VersionSet(std::string dbname, const Options& options,
             TableCache* table_cache, const InternalKeyComparator* icmp,
             Mutex* mu);
  ~VersionSet();
  VersionSet(const VersionSet&) = delete;
  VersionSet& operator=(const VersionSet&) = delete;

  // Tells the thread-safety analysis that the DB mutex passed to the
  // constructor is held (the caller holds it under its own name, which the
  // analysis cannot relate to *mu_). Checks nothing at run time.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(*mu_) {}

  // Writes an empty database: MANIFEST-000001 and CURRENT.
  absl::Status CreateNew();

  // Rebuilds the current version from CURRENT and the manifest it names,
  // then starts a fresh manifest holding a snapshot of that version.
  // Returns DataLoss (naming the file and offset) for a corrupt CURRENT or
  // manifest, InvalidArgument for a database created with another
  // comparator.
  absl::Status Recover() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);

  // Writes edit (plus the counters) to the manifest, fsyncs it, and makes
  // the resulting version current. Concurrent callers are serialized; the
  // mutex is released while the manifest is written. On error the current
  // version is unchanged and the error is returned (the caller should treat
  // it as a background error).
  absl::Status LogAndApply(VersionEdit* edit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);

  Version* current() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return current_;
  }
  uint64_t NewFileNumber() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return next_file_number_++;
  }
  // Ensures future file numbers are above `number` (files found on disk).
  void MarkFileNumberUsed(uint64_t number) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // The oldest WAL still needed: WALs numbered below it are fully flushed
  // to installed tables.
  uint64_t MinWalNumber() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return min_wal_number_;
  }
  uint64_t ManifestFileNumber() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return manifest_file_number_;
  }

  // The sequence number of the newest acknowledged write; readable from any
  // thread (acquire) so reads need no lock.
  SequenceNumber LastSequence() const {
    return last_sequence_.load(std::memory_order_acquire);
  }
  void SetLastSequence(SequenceNumber s) {
    last_sequence_.store(s, std::memory_order_release);
  }

  // Revisions older than this may have been dropped by compaction: reads
  // below it are refused. Persisted in the manifest (edit tag 7); advanced
  // only through LogAndApply, so it is durable before any compaction uses
  // it. Readable from any thread.
  SequenceNumber CompactedRevision() const {
    return compacted_revision_.load(std::memory_order_acquire);
  }
  // The database format recovered from the manifest (1 for a database
  // written before revisions, until an edit sets it).
  uint32_t DatabaseFormat() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return database_format_;
  }

  // A manifest edit describing version `v` whole (comparator, counters as
  // they are now, every file of v), as the first record of a new manifest
  // holds. For checkpoints, which write it to another directory with
  // WriteManifestFile; the caller may override fields (e.g. the last
  // sequence and minimum WAL of the state it copies).
  VersionEdit SnapshotEdit(const Version* v) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);

  // Adds the number of every file listed by any live version.
  void AddLiveFiles(std::set<uint64_t>* live);

  TableCache* table_cache() const { return table_cache_; }
  const InternalKeyComparator* icmp() const { return icmp_; }
  const Options& options() const { return options_; }

 private:
  friend class Version;
  class Builder;

  void AppendVersion(Version* v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  void RemoveVersion(Version* v);
  // SnapshotEdit with the compacted revision `compacted`.
  VersionEdit SnapshotEdit(const Version* v, SequenceNumber compacted) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // Writes version v (its files) with the compacted revision `compacted`
  // and the current counters as one record.
  absl::Status WriteSnapshot(record::Writer* manifest, const Version* v,
                             SequenceNumber compacted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // Starts MANIFEST-<new number> with a snapshot and points CURRENT at it.
  // The first form snapshots the current version; the second version v
  // (not yet installed), and sets *renamed once CURRENT may name the new
  // manifest (even if a later step failed).
  absl::Status StartNewManifest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  absl::Status StartNewManifest(const Version* v, SequenceNumber compacted,
                                bool* renamed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  absl::Status ReadCurrentFile(std::string* manifest_name);

  const std::string dbname_;
  const Options options_;
  Env* const env_;
  TableCache* const table_cache_;
  const InternalKeyComparator* const icmp_;
  Mutex* const mu_;

  uint64_t next_file_number_ ABSL_GUARDED_BY(*mu_) = 2;
  uint64_t manifest_file_number_ ABSL_GUARDED_BY(*mu_) = 0;
  uint64_t min_wal_number_ ABSL_GUARDED_BY(*mu_) = 0;
  std::atomic<SequenceNumber> last_sequence_{0};
  std::atomic<SequenceNumber> compacted_revision_{0};
  uint32_t database_format_ ABSL_GUARDED_BY(*mu_) = 1;

  std::unique_ptr<record::Writer> manifest_ ABSL_GUARDED_BY(*mu_);
  uint64_t manifest_bytes_ ABSL_GUARDED_BY(*mu_) = 0;
  bool manifest_busy_ ABSL_GUARDED_BY(*mu_) = false;
  CondVar manifest_cv_;

  Version* current_ ABSL_GUARDED_BY(*mu_) = nullptr;
  // Every version that is still referenced, for AddLiveFiles.
  Mutex versions_mu_;
  std::list<Version*> versions_ ABSL_GUARDED_BY(versions_mu_);
};

// Points CURRENT at MANIFEST-<manifest_number> atomically (temp file,
// fsync, rename, directory fsync). Format:
// "strata-current 1 MANIFEST-<number> <checksum>\n" (docs/manifest-format.md).
// *renamed tells whether the rename happened, i.e. whether CURRENT may now
// name the new manifest even if an error is returned (the directory fsync
// failed). Errors: the Env's.
absl::Status SetCurrentFile(Env* env, const std::string& dbname,
                            uint64_t manifest_number, bool* renamed);

// Writes a manifest holding the single record `edit` as
// <dir>/MANIFEST-<manifest_number>, fsyncs it and points <dir>/CURRENT at
// it: with the tables and WALs the edit names, `dir` is then an openable
// database (checkpoints). Errors: the Env's.
absl::Status WriteManifestFile(Env* env, const std::string& dir,
                               uint64_t manifest_number,
                               const VersionEdit& edit);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_VERSION_VERSION_SET_H_
