#include "record/format.h"

#include <string>

#include "util/checksum.h"
#include "util/coding.h"

namespace strata::storage::record {

std::string_view FileHeader(uint32_t version) {
  static const std::string* const headers = [] {
    auto* h = new std::string[kMaxFormatVersion + 1];
    for (uint32_t v = 1; v <= kMaxFormatVersion; v++) {
      h[v] = std::string(kFileMagic);
      PutFixed32(&h[v], v);
      PutFixed32(&h[v], Checksum32(h[v]));
    }
    return h;
  }();
  return headers[version >= 1 && version <= kMaxFormatVersion ? version : 1];
}

}  // namespace strata::storage::record
