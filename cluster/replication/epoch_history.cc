// The epoch file (docs/replication.md):
//   file  := magic "STRATAEP" fixed32(version = 1) fixed32(range_id)
//            fixed64(highest_epoch) fixed32(n) entry{n}
//            fixed64(XXH64 of every byte before it, seed 0)
//   entry := fixed64(epoch) fixed64(start_revision)
// little-endian throughout.

#include "cluster/replication/epoch_history.h"

#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "strata/storage/env.h"
#include "xxhash.h"

namespace strata::cluster::replication {
namespace {

void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}
uint64_t GetFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

constexpr size_t kFixedHeader = 8 + 4 + 4 + 8 + 4;
constexpr size_t kEntrySize = 16;
constexpr size_t kTrailer = 8;
// More entries than any range will see (one per primary change); bounds
// what a corrupt count can make the decoder believe.
constexpr uint32_t kMaxEntries = 1u << 20;

}  // namespace

absl::Status ValidateEpochHistory(const EpochHistory& history) {
  for (size_t i = 0; i < history.size(); ++i) {
    const EpochStart& e = history[i];
    if (e.epoch == 0 || e.start_revision == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "epoch history entry %d (epoch %d, start revision %d): epochs and "
          "revisions start at 1",
          i, e.epoch, e.start_revision));
    }
    if (i > 0 && (e.epoch <= history[i - 1].epoch ||
                  e.start_revision < history[i - 1].start_revision)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "epoch history entry %d (epoch %d, start revision %d) does not "
          "follow entry %d (epoch %d, start revision %d)",
          i, e.epoch, e.start_revision, i - 1, history[i - 1].epoch,
          history[i - 1].start_revision));
    }
  }
  return absl::OkStatus();
}

std::optional<Epoch> EpochOf(const EpochHistory& history, Revision revision) {
  std::optional<Epoch> out;
  for (const EpochStart& e : history) {
    if (e.start_revision > revision) break;
    out = e.epoch;
  }
  return out;
}

std::optional<Revision> EndOf(const EpochHistory& history, Epoch epoch) {
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].epoch != epoch) continue;
    if (i + 1 == history.size()) return std::nullopt;
    return history[i + 1].start_revision - 1;
  }
  return std::nullopt;
}

absl::Status CheckNotDiverged(const EpochHistory& replica_history,
                              Revision last_revision,
                              const EpochHistory& primary_history) {
  if (last_revision == 0) return absl::OkStatus();
  const std::optional<Epoch> last_epoch =
      EpochOf(replica_history, last_revision);
  if (!last_epoch.has_value()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the replica holds revisions up to %d but its epoch history does not "
        "say which epoch wrote them",
        last_revision));
  }
  bool found = false;
  for (const EpochStart& e : primary_history) found |= e.epoch == *last_epoch;
  if (!found) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the replica's revisions up to %d were written in epoch %d, which "
        "the primary's history does not hold",
        last_revision, *last_epoch));
  }
  const std::optional<Revision> end = EndOf(primary_history, *last_epoch);
  if (end.has_value() && last_revision > *end) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the replica holds revisions up to %d from epoch %d, which ended at "
        "revision %d on the primary (a divergent tail of %d revisions)",
        last_revision, *last_epoch, *end, last_revision - *end));
  }
  return absl::OkStatus();
}

absl::Status StaleEpochError(RangeId range, Epoch epoch, Epoch highest) {
  absl::Status s = absl::FailedPreconditionError(absl::StrFormat(
      "range %d: epoch %d is older than epoch %d this replica has seen", range,
      epoch, highest));
  s.SetPayload(kStaleEpochPayload, absl::Cord(absl::StrCat(highest)));
  return s;
}

std::optional<Epoch> StaleEpochOf(const absl::Status& s) {
  if (!absl::IsFailedPrecondition(s)) return std::nullopt;
  const auto payload = s.GetPayload(kStaleEpochPayload);  // absl::optional
  Epoch highest = 0;
  if (!payload.has_value() ||
      !absl::SimpleAtoi(std::string(*payload), &highest)) {
    return std::nullopt;
  }
  return highest;
}

absl::StatusOr<EpochHistory> ExtendEpochHistory(const EpochHistory& history,
                                                Epoch epoch,
                                                Revision current_revision) {
  if (!history.empty() && epoch <= history.back().epoch) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "epoch %d is not above the history's last epoch %d", epoch,
        history.back().epoch));
  }
  EpochHistory out = history;
  out.push_back({epoch, current_revision + 1});
  return out;
}

std::string EncodeEpochFile(const EpochFileContents& contents) {
  std::string out(kEpochFileMagic);
  PutFixed32(&out, kEpochFileFormatVersion);
  PutFixed32(&out, contents.range_id);
  PutFixed64(&out, contents.highest_epoch);
  PutFixed32(&out, static_cast<uint32_t>(contents.history.size()));
  for (const EpochStart& e : contents.history) {
    PutFixed64(&out, e.epoch);
    PutFixed64(&out, e.start_revision);
  }
  PutFixed64(&out, XXH64(out.data(), out.size(), 0));
  return out;
}

absl::StatusOr<EpochFileContents> DecodeEpochFile(std::string_view bytes,
                                                  std::string_view path) {
  auto corrupt = [&](std::string_view what) {
    return absl::DataLossError(
        absl::StrFormat("epoch file %s: %s", path, what));
  };
  if (bytes.size() < kFixedHeader + kTrailer) {
    return corrupt(absl::StrFormat("%d bytes, shorter than its header",
                                   bytes.size()));
  }
  if (bytes.substr(0, kEpochFileMagic.size()) != kEpochFileMagic) {
    return corrupt("bad magic");
  }
  const char* p = bytes.data();
  const uint32_t n = GetFixed32(p + 24);
  if (n > kMaxEntries ||
      bytes.size() != kFixedHeader + n * kEntrySize + kTrailer) {
    return corrupt(absl::StrFormat("%d bytes for %d entries", bytes.size(), n));
  }
  const size_t body = bytes.size() - kTrailer;
  if (XXH64(p, body, 0) != GetFixed64(p + body)) {
    return corrupt("checksum mismatch");
  }
  const uint32_t version = GetFixed32(p + 8);
  if (version > kEpochFileFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "epoch file %s: format version %d is newer than this build's %d",
        path, version, kEpochFileFormatVersion));
  }
  if (version == 0) return corrupt("format version 0");
  EpochFileContents out;
  out.range_id = GetFixed32(p + 12);
  out.highest_epoch = GetFixed64(p + 16);
  for (uint32_t i = 0; i < n; ++i) {
    const char* e = p + kFixedHeader + i * kEntrySize;
    out.history.push_back({GetFixed64(e), GetFixed64(e + 8)});
  }
  if (absl::Status s = ValidateEpochHistory(out.history); !s.ok()) {
    return corrupt(std::string(s.message()));
  }
  if (!out.history.empty() && out.history.back().epoch > out.highest_epoch) {
    return corrupt("history epoch above the highest epoch");
  }
  return out;
}

absl::Status WriteEpochFile(const std::string& path,
                            const EpochFileContents& contents) {
  storage::Env* env = storage::Env::Default();
  const std::string tmp = path + ".tmp";
  absl::StatusOr<std::unique_ptr<storage::WritableFile>> f =
      env->NewWritableFile(tmp);
  if (!f.ok()) return f.status();
  absl::Status s = (*f)->Append(EncodeEpochFile(contents));
  if (s.ok()) s = (*f)->Sync();
  if (absl::Status c = (*f)->Close(); s.ok()) s = c;
  if (s.ok()) s = env->RenameFile(tmp, path);
  if (s.ok()) {
    const size_t slash = path.rfind('/');
    s = env->SyncDir(slash == std::string::npos ? "." : path.substr(0, slash));
  }
  return s;
}

absl::StatusOr<EpochFileContents> ReadEpochFile(const std::string& path) {
  storage::Env* env = storage::Env::Default();
  if (!env->FileExists(path)) {
    return absl::NotFoundError(absl::StrCat("epoch file ", path, ": missing"));
  }
  absl::StatusOr<std::unique_ptr<storage::SequentialFile>> f =
      env->NewSequentialFile(path);
  if (!f.ok()) return f.status();
  std::string bytes;
  char buf[4096];
  while (true) {
    absl::StatusOr<std::string_view> r = (*f)->Read(sizeof(buf), buf);
    if (!r.ok()) return r.status();
    if (r->empty()) break;
    bytes.append(r->data(), r->size());
    if (bytes.size() > kFixedHeader + kMaxEntries * kEntrySize + kTrailer) {
      return absl::DataLossError(
          absl::StrCat("epoch file ", path, ": too large"));
    }
  }
  return DecodeEpochFile(bytes, path);
}

}  // namespace strata::cluster::replication
