#ifndef STRATA_STORAGE_ENV_IO_ERROR_H_
#define STRATA_STORAGE_ENV_IO_ERROR_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace strata::storage {

// Maps an errno from a file operation to a Status carrying the operation,
// the path and the errno text: NotFound for ENOENT; Unavailable for
// conditions an operator can fix (ENOSPC, EDQUOT, EIO, EROFS, EMFILE, ...);
// Internal otherwise.
absl::Status IOError(std::string_view context, const std::string& path,
                     int err);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_ENV_IO_ERROR_H_
