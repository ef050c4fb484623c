#include "strata/storage/db.h"

namespace strata::storage {
namespace {
constexpr char kWouldBlock[] = "would block";
}  // namespace

absl::Status WouldBlockError() { return absl::UnavailableError(kWouldBlock); }

bool IsWouldBlock(const absl::Status& status) {
  return absl::IsUnavailable(status) && status.message() == kWouldBlock;
}

}  // namespace strata::storage
