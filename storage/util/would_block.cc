#include "strata/storage/db.h"

namespace strata::storage {

bool IsWouldBlock(const absl::Status& status) {
  return absl::IsUnavailable(status) && status.message() == "would block";
}

}  // namespace strata::storage
