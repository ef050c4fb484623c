#include "table/table_properties.h"

#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "table/block.h"
#include "table/block_builder.h"
#include "util/coding.h"

namespace strata::storage {

namespace {

// The name of each property on disk, and its field. Part of the on-disk
// format: never rename. Sorted bytewise (a block needs sorted keys).
struct Field {
  const char* name;
  uint64_t TableProperties::*member;
};
constexpr Field kFields[] = {
    {"strata.bloom.bits_per_key", &TableProperties::bloom_bits_per_key},
    {"strata.compression", &TableProperties::compression},
    {"strata.data.blocks", &TableProperties::num_data_blocks},
    {"strata.data.bytes", &TableProperties::data_bytes},
    {"strata.entries", &TableProperties::num_entries},
    {"strata.filter.bytes", &TableProperties::filter_bytes},
    {"strata.index.bytes", &TableProperties::index_bytes},
    {"strata.raw.key.bytes", &TableProperties::raw_key_bytes},
    {"strata.raw.value.bytes", &TableProperties::raw_value_bytes},
};

}  // namespace

std::string TableProperties::Encode() const {
  BlockBuilder builder(1);
  std::string value;
  for (const Field& f : kFields) {
    value.clear();
    PutVarint64(&value, this->*f.member);
    builder.Add(f.name, value);
  }
  return std::string(builder.Finish());
}

bool TableProperties::Decode(std::string_view block) {
  *this = TableProperties();
  auto buffer = std::make_unique<char[]>(block.size());
  std::memcpy(buffer.get(), block.data(), block.size());
  BlockContents contents;
  contents.data = std::string_view(buffer.get(), block.size());
  contents.buffer = std::move(buffer);
  Block b(std::move(contents));
  BlockIter it;
  it.Init(&b, BytewiseComparator(), nullptr);
  for (it.SeekToFirst(); it.Valid(); it.Next()) {
    for (const Field& f : kFields) {
      if (it.key() != f.name) continue;
      std::string_view v = it.value();
      if (!GetVarint64(&v, &(this->*f.member))) return false;
    }
  }
  return it.status().ok();
}

std::string TableProperties::ToString() const {
  std::string out;
  for (const Field& f : kFields) {
    absl::StrAppendFormat(&out, "%s: %d\n", f.name, this->*f.member);
  }
  return out;
}

}  // namespace strata::storage
