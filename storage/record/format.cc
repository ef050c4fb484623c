#include "record/format.h"

#include <string>

#include "util/checksum.h"
#include "util/coding.h"

namespace strata::storage::record {

std::string_view FileHeader() {
  static const std::string* const header = [] {
    auto* h = new std::string(kFileMagic);
    PutFixed32(h, kFormatVersion);
    PutFixed32(h, Checksum32(*h));
    return h;
  }();
  return *header;
}

}  // namespace strata::storage::record
