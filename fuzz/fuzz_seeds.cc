// strata_fuzz_seeds OUTDIR: writes a starting corpus of valid inputs for
// each fuzz target (OUTDIR/<target>/seed-<n>), so fuzzing starts from real
// WAL files, tables, version edits and requests instead of noise.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "db/write_batch_internal.h"
#include "fuzz/fuzz_util.h"
#include "record/writer.h"
#include "strata/v1/kv.pb.h"
#include "table/block_builder.h"
#include "table/table_builder.h"
#include "util/comparator.h"
#include "util/dbformat.h"
#include "version/version_edit.h"

namespace {

using namespace strata::storage;
namespace fs = std::filesystem;

void Save(const fs::path& dir, int n, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / absl::StrFormat("seed-%03d", n), std::ios::binary);
  out << bytes;
}

std::string Wal(const std::vector<size_t>& record_sizes, size_t truncate_to) {
  std::string file;
  {
    record::Writer writer(
        std::make_unique<strata::fuzz::StringWritableFile>(&file));
    // One committed batch per revision, as the commit leader writes them
    // (WAL format version 2).
    Revision revision = 1;
    for (size_t size : record_sizes) {
      CommittedBatchBuilder b(revision);
      KeyMetadata meta;
      meta.create_revision = revision;
      meta.mod_revision = revision;
      meta.version = 1;
      b.Put("key" + std::to_string(revision), meta, std::string(size, 'v'));
      b.Delete("gone" + std::to_string(revision));
      if (!writer.AddRecord(b.Finish()).ok()) std::abort();
      revision++;
    }
  }
  if (truncate_to < file.size()) file.resize(truncate_to);
  return file;
}

std::string Table(CompressionType compression, int n, bool internal,
                  size_t block_size) {
  const InternalKeyComparator icmp(BytewiseComparator());
  TableBuilderOptions o;
  o.comparator = internal ? static_cast<const Comparator*>(&icmp) : BytewiseComparator();
  o.keys_are_internal = internal;
  o.compression = compression;
  o.block_size = block_size;
  std::string file;
  strata::fuzz::StringWritableFile out(&file);
  TableBuilder builder(o, &out);
  for (int i = 0; i < n; i++) {
    std::string key = absl::StrFormat("key%04d", i);
    if (internal) {
      std::string ikey;
      AppendInternalKey(&ikey, ParsedInternalKey{key, 100000u - i,
                                                 i % 5 ? kTypeValue : kTypeDeletion});
      key = ikey;
    }
    if (!builder.Add(key, std::string(i % 60, 'a' + i % 26)).ok()) std::abort();
  }
  if (!builder.Finish().ok()) std::abort();
  return file;
}

std::string Edit(int files) {
  VersionEdit e;
  e.SetComparatorName(BytewiseComparator()->Name());
  e.SetMinWalNumber(12);
  e.SetNextFile(40);
  e.SetLastSequence(123456);
  for (int i = 0; i < files; i++) {
    FileMetaData f;
    f.number = 20 + i;
    f.file_size = 4096 * (i + 1);
    f.smallest = InternalKey("a" + std::to_string(i), 5, kTypeValue);
    f.largest = InternalKey("z" + std::to_string(i), 9, kTypeDeletion);
    e.AddFile(i % kNumLevels, f);
    if (i % 2) e.RemoveFile(i % kNumLevels, 3 + i);
  }
  std::string out;
  e.EncodeTo(&out);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: strata_fuzz_seeds OUTDIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  // WAL: empty, one record, several, one spanning blocks, torn.
  int n = 0;
  Save(out / "fuzz_wal_reader", n++, Wal({}, SIZE_MAX));
  Save(out / "fuzz_wal_reader", n++, Wal({10}, SIZE_MAX));
  Save(out / "fuzz_wal_reader", n++, Wal({1, 100, 0, 7, 300}, SIZE_MAX));
  Save(out / "fuzz_wal_reader", n++, Wal({40000, 5}, SIZE_MAX));
  Save(out / "fuzz_wal_reader", n++, Wal({20, 20, 20}, 70));
  // Tables: mode byte, then the bytes.
  n = 0;
  for (CompressionType c : {CompressionType::kNone, CompressionType::kSnappy,
                            CompressionType::kLZ4, CompressionType::kZstd}) {
    Save(out / "fuzz_table_reader", n++,
         std::string(1, '\0') + Table(c, 40, true, 256));
  }
  Save(out / "fuzz_table_reader", n++, std::string(1, '\3') + Table(CompressionType::kNone, 20, false, 128));
  {
    BlockBuilder b(2);
    b.Add("apple", "red");
    b.Add("apricot", "orange");
    b.Add("banana", "yellow");
    Save(out / "fuzz_table_reader", n++, std::string(1, '\1') + std::string(b.Finish()));
  }
  Save(out / "fuzz_table_reader", n++,
       std::string("\2\x10\x04\x02\x08") + "k1\x03v1v2k2\x02xx");
  // Version edits.
  n = 0;
  for (int files : {0, 1, 5}) Save(out / "fuzz_version_edit", n++, Edit(files));
  // Requests: method byte, four limit bytes (0 = defaults), the message.
  n = 0;
  const std::string limits(4, '\0');
  strata::v1::GetRequest get;
  get.set_key("k");
  Save(out / "fuzz_request", n++, std::string(1, '\0') + limits + get.SerializeAsString());
  strata::v1::PutRequest put;
  put.set_key("key");
  put.set_value("value");
  Save(out / "fuzz_request", n++, std::string(1, '\1') + limits + put.SerializeAsString());
  strata::v1::DeleteRequest del;
  del.set_key("key");
  Save(out / "fuzz_request", n++, std::string(1, '\2') + limits + del.SerializeAsString());
  strata::v1::WriteRequest write;
  write.add_mutations()->mutable_put()->set_key("a");
  write.add_mutations()->mutable_delete_()->set_key("b");
  write.add_mutations();
  Save(out / "fuzz_request", n++, std::string(1, '\3') + limits + write.SerializeAsString());
  strata::v1::ScanRequest scan;
  scan.set_start_key("c");
  scan.set_end_key("q");
  scan.set_limit(7);
  Save(out / "fuzz_request", n++, std::string(1, '\4') + limits + scan.SerializeAsString());
  std::printf("seeds written to %s\n", out.c_str());
  return 0;
}
