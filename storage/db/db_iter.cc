#include "db/db_iter.h"

#include <memory>
#include <string>

#include "util/stored_value.h"

namespace strata::storage {
namespace {

// Moving forward, the internal iterator sits on the entry that supplies
// key()/value(). Moving backward, it sits just before all entries of the
// current user key, whose key and value are copied into saved_key_ and
// saved_value_ (as in LevelDB's DBIter).
class DBIter final : public Iterator {
 public:
  DBIter(const Comparator* ucmp, Iterator* internal, SequenceNumber sequence,
         uint64_t now_unix_ms, const LeaseDeadlines* leases)
      : ucmp_(ucmp),
        iter_(internal),
        sequence_(sequence),
        now_unix_ms_(now_unix_ms),
        leases_(leases) {}

  bool Valid() const override { return valid_; }
  std::string_view key() const override {
    return direction_ == kForward ? ExtractUserKey(iter_->key())
                                  : std::string_view(saved_key_);
  }
  std::string_view value() const override { return value_; }
  KeyMetadata metadata() const override { return metadata_; }
  absl::Status status() const override {
    return status_.ok() ? iter_->status() : status_;
  }

  void SeekToFirst() override {
    direction_ = kForward;
    saved_value_.clear();
    iter_->SeekToFirst();
    if (iter_->Valid()) {
      FindNextUserEntry(false);
    } else {
      valid_ = false;
    }
  }

  void Seek(std::string_view target) override {
    direction_ = kForward;
    saved_value_.clear();
    saved_key_.clear();
    AppendInternalKey(&saved_key_,
                      ParsedInternalKey{target, sequence_, kValueTypeForSeek});
    iter_->Seek(saved_key_);
    if (iter_->Valid()) {
      FindNextUserEntry(false);
    } else {
      valid_ = false;
    }
  }

  void SeekToLast() override {
    direction_ = kReverse;
    saved_value_.clear();
    iter_->SeekToLast();
    FindPrevUserEntry();
  }

  void Next() override {
    if (direction_ == kReverse) {
      direction_ = kForward;
      // iter_ is before the entries of key(); step into them, then past.
      if (!iter_->Valid()) {
        iter_->SeekToFirst();
      } else {
        iter_->Next();
      }
      if (!iter_->Valid()) {
        valid_ = false;
        saved_key_.clear();
        return;
      }
      // saved_key_ holds the current user key: skip its entries.
    } else {
      saved_key_.assign(ExtractUserKey(iter_->key()));
      iter_->Next();
      if (!iter_->Valid()) {
        valid_ = false;
        saved_key_.clear();
        return;
      }
    }
    FindNextUserEntry(true);
  }

  void Prev() override {
    if (direction_ == kForward) {
      // Step back until before every entry of the current user key.
      saved_key_.assign(ExtractUserKey(iter_->key()));
      while (true) {
        iter_->Prev();
        if (!iter_->Valid()) {
          valid_ = false;
          saved_key_.clear();
          saved_value_.clear();
          return;
        }
        if (ucmp_->Compare(ExtractUserKey(iter_->key()), saved_key_) < 0) {
          break;
        }
      }
      direction_ = kReverse;
    }
    FindPrevUserEntry();
  }

 private:
  enum Direction { kForward, kReverse };

  bool ParseKey(ParsedInternalKey* ikey) {
    if (!ParseInternalKey(iter_->key(), ikey)) {
      status_ = absl::DataLossError("malformed internal key in iterator");
      return false;
    }
    return true;
  }

  // Positions on the first visible entry at or after iter_. With
  // skipping, entries for user key saved_key_ are hidden.
  //
  // An older entry of a skipped key is passed over before its value is
  // looked at, and a newer one's stored value is parsed once, for both the
  // expiry check and the metadata (readseq spent ~8% of its CPU parsing
  // each entry twice).
  void FindNextUserEntry(bool skipping) {
    do {
      ParsedInternalKey ikey;
      if (ParseKey(&ikey) && ikey.sequence <= sequence_) {
        if (skipping && ucmp_->Compare(ikey.user_key, saved_key_) <= 0) {
          // Hidden by a newer entry or tombstone.
        } else if (ikey.type == kTypeDeletion) {
          // Hide every older entry of this key.
          saved_key_.assign(ikey.user_key.data(), ikey.user_key.size());
          skipping = true;
        } else if (!Decode(ikey.type, ikey.sequence, iter_->value())) {
          break;  // status_ says why.
        } else if (IsExpired(metadata_.attributes, now_unix_ms_, leases_)) {
          // An expired value hides older entries as a tombstone does.
          saved_key_.assign(ikey.user_key.data(), ikey.user_key.size());
          skipping = true;
        } else {
          saved_key_.clear();
          valid_ = true;
          return;
        }
      }
      if (!status_.ok()) break;
      iter_->Next();
    } while (iter_->Valid());
    saved_key_.clear();
    valid_ = false;
  }

  // Moving backward from iter_, finds the previous user key whose newest
  // visible entry is a value.
  void FindPrevUserEntry() {
    ValueType value_type = kTypeDeletion;
    if (iter_->Valid()) {
      do {
        ParsedInternalKey ikey;
        if (ParseKey(&ikey) && ikey.sequence <= sequence_) {
          if (value_type != kTypeDeletion &&
              ucmp_->Compare(ikey.user_key, saved_key_) < 0) {
            break;  // Found a non-deleted value for saved_key_.
          }
          value_type = Hides(ikey.type, iter_->value()) ? kTypeDeletion
                                                        : ikey.type;
          if (value_type == kTypeDeletion) {
            saved_key_.clear();
            saved_value_.clear();
          } else {
            saved_key_.assign(ikey.user_key.data(), ikey.user_key.size());
            std::string_view v = iter_->value();
            saved_value_.assign(v.data(), v.size());
            saved_type_ = ikey.type;
            saved_sequence_ = ikey.sequence;
          }
        }
        if (!status_.ok()) break;
        iter_->Prev();
      } while (iter_->Valid());
    }
    if (value_type == kTypeDeletion || !status_.ok()) {
      valid_ = false;
      saved_key_.clear();
      saved_value_.clear();
      direction_ = kForward;
    } else {
      valid_ = Decode(saved_type_, saved_sequence_, saved_value_);
    }
  }

  // Whether the entry makes its key absent: a tombstone, or an expired
  // value.
  bool Hides(ValueType type, std::string_view stored) const {
    return type == kTypeDeletion || IsExpired(type, stored, now_unix_ms_, leases_);
  }

  // Splits the current entry's stored value into value_ and metadata_.
  // False (with status_ DataLoss) if it does not parse.
  bool Decode(ValueType type, SequenceNumber sequence,
              std::string_view stored) {
    absl::Status s = DecodeStoredValue(type, sequence, stored, &metadata_,
                                       &value_);
    if (!s.ok()) {
      status_ = s;
      value_ = std::string_view();
      return false;
    }
    return true;
  }

  const Comparator* const ucmp_;
  std::unique_ptr<Iterator> iter_;
  const SequenceNumber sequence_;
  const uint64_t now_unix_ms_;  // 0: no expiry.
  const LeaseDeadlines* const leases_;  // nullptr: leases do not expire.
  absl::Status status_;
  std::string saved_key_;
  std::string saved_value_;  // Stored form (reverse direction).
  ValueType saved_type_ = kTypeDeletion;
  SequenceNumber saved_sequence_ = 0;
  // The current entry's user value (pointing into iter_'s value or
  // saved_value_) and metadata.
  std::string_view value_;
  KeyMetadata metadata_;
  Direction direction_ = kForward;
  bool valid_ = false;
};

}  // namespace

Iterator* NewDBIterator(const Comparator* user_comparator, Iterator* internal,
                        SequenceNumber sequence, uint64_t now_unix_ms,
                        const LeaseDeadlines* leases) {
  return new DBIter(user_comparator, internal, sequence, now_unix_ms, leases);
}

}  // namespace strata::storage
