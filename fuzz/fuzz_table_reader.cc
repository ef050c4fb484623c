// Fuzz target: the SSTable reader (footer, index, filter and properties
// blocks, data blocks, compression) and the block parser.
//
// The first input byte picks a mode:
//   0: the rest is a whole table file: Table::Open, then a full scan and
//      point lookups with checksum verification off, so damaged blocks
//      reach the block parser and the decompressors;
//   1: the rest is one block's contents: Block + iterator (seek, next,
//      prev), and UncompressBlock with each compression type;
//   2: a valid table is built from the input, then bytes of its data
//      blocks are overwritten by more input and it is read back without
//      checksum verification: near-valid blocks reach the parser.
// Properties: no crash, no sanitizer report, no hang; every error is
// DataLoss (or FailedPrecondition for an unknown format version).

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "fuzz/fuzz_util.h"
#include "table/block.h"
#include "table/format.h"
#include "table/table.h"
#include "table/table_builder.h"
#include "util/comparator.h"
#include "util/dbformat.h"

namespace {

using namespace strata::storage;

void CheckStatus(const absl::Status& s) {
  if (s.ok() || absl::IsDataLoss(s) || absl::IsFailedPrecondition(s)) return;
  std::abort();
}

void Exercise(Iterator* it, strata::fuzz::Input* in) {
  int n = 0;
  for (it->SeekToFirst(); it->Valid() && n < 100000; it->Next()) {
    (void)it->key().size();
    (void)it->value().size();
    n++;
  }
  CheckStatus(it->status());
  for (it->SeekToLast(); it->Valid() && n < 200000; it->Prev()) n++;
  CheckStatus(it->status());
  for (int i = 0; i < 4 && !in->empty(); i++) {
    it->Seek(in->Bytes(in->Byte() % 32));
    if (it->Valid()) it->Next();
    if (it->Valid()) it->Prev();
    CheckStatus(it->status());
  }
}

void FuzzTableFile(std::string_view file, strata::fuzz::Input* in,
                   bool internal_keys) {
  const InternalKeyComparator icmp(BytewiseComparator());
  TableOptions topts;
  topts.comparator = internal_keys ? static_cast<const Comparator*>(&icmp)
                                   : BytewiseComparator();
  topts.keys_are_internal = internal_keys;
  auto table = Table::Open(
      topts, "fuzz.sst", std::make_unique<strata::fuzz::StringRandomAccessFile>(file),
      file.size());
  if (!table.ok()) {
    CheckStatus(table.status());
    return;
  }
  ReadOptions ro;
  ro.verify_checksums = false;
  std::unique_ptr<Iterator> it((*table)->NewIterator(ro));
  Exercise(it.get(), in);
  for (int i = 0; i < 4; i++) {
    std::string key(in->Bytes(16));
    if (internal_keys) key.append(8, '\xff');
    absl::Status s = (*table)->InternalGet(ro, key, [](std::string_view, std::string_view) {});
    if (!s.ok() && !absl::IsDataLoss(s) && !absl::IsInvalidArgument(s)) std::abort();
    (void)(*table)->ApproximateOffsetOf(key);
  }
}

void FuzzBlock(strata::fuzz::Input* in) {
  std::string_view bytes = in->Rest();
  BlockContents contents;
  contents.buffer.reset(new char[bytes.size() + 1]);
  std::memcpy(contents.buffer.get(), bytes.data(), bytes.size());
  contents.data = std::string_view(contents.buffer.get(), bytes.size());
  Block block(std::move(contents), 0);
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  strata::fuzz::Input seeks(reinterpret_cast<const uint8_t*>(bytes.data()),
                            std::min<size_t>(bytes.size(), 64));
  Exercise(it.get(), &seeks);
  for (uint8_t type = 0; type < 6; type++) {
    auto r = UncompressBlock(type, bytes, "fuzz.sst", 0);
    if (!r.ok() && !absl::IsDataLoss(r.status())) std::abort();
  }
}

void FuzzNearValidTable(strata::fuzz::Input* in) {
  const InternalKeyComparator icmp(BytewiseComparator());
  TableBuilderOptions bopts;
  bopts.comparator = &icmp;
  bopts.block_size = 64 + in->Byte() * 4;
  bopts.block_restart_interval = 1 + in->Byte() % 16;
  bopts.compression = static_cast<CompressionType>(in->Byte() % 4);
  std::map<std::string, std::string> kv;
  const int n = 1 + in->Byte();
  for (int i = 0; i < n && !in->empty(); i++) {
    std::string key(in->Bytes(1 + in->Byte() % 12));
    kv[key] = std::string(in->Bytes(in->Byte() % 40));
  }
  std::string file;
  strata::fuzz::StringWritableFile out(&file);
  TableBuilder builder(bopts, &out);
  SequenceNumber seq = 1000;
  for (const auto& [k, v] : kv) {
    std::string ikey;
    AppendInternalKey(&ikey, ParsedInternalKey{k, seq--, kTypeValue});
    if (!builder.Add(ikey, v).ok()) std::abort();
  }
  if (!builder.Finish().ok()) std::abort();
  // Overwrite bytes of the data blocks (everything before the filter,
  // index and properties blocks, which Open checks with checksums).
  auto footer = Footer::DecodeFrom(
      std::string_view(file).substr(file.size() - Footer::kEncodedLength),
      "fuzz.sst", file.size() - Footer::kEncodedLength);
  if (!footer.ok()) std::abort();
  const uint64_t data_end = footer->filter_handle.size() > 0
                                ? footer->filter_handle.offset()
                                : footer->index_handle.offset();
  while (!in->empty() && data_end > 0) {
    const uint64_t at = (in->Byte() << 8 | in->Byte()) % data_end;
    file[at] = static_cast<char>(in->Byte());
  }
  strata::fuzz::Input none(nullptr, 0);
  FuzzTableFile(file, &none, /*internal_keys=*/true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  strata::fuzz::Input in(data, size);
  switch (in.Byte() % 4) {
    case 0: {
      std::string_view file = in.Rest();
      strata::fuzz::Input seeks(reinterpret_cast<const uint8_t*>(file.data()),
                                std::min<size_t>(file.size(), 64));
      FuzzTableFile(file, &seeks, /*internal_keys=*/true);
      break;
    }
    case 1:
      FuzzBlock(&in);
      break;
    case 2:
      FuzzNearValidTable(&in);
      break;
    case 3: {
      std::string_view file = in.Rest();
      strata::fuzz::Input seeks(reinterpret_cast<const uint8_t*>(file.data()),
                                std::min<size_t>(file.size(), 64));
      FuzzTableFile(file, &seeks, /*internal_keys=*/false);
      break;
    }
  }
  return 0;
}
