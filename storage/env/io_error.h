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
// The errno is attached as a payload (kErrnoPayloadUrl), so the engine can
// tell a full disk (IsOutOfSpace) from other failures without parsing text.
absl::Status IOError(std::string_view context, const std::string& path,
                     int err);

// Payload type URL of the errno (decimal text) of an I/O failure.
inline constexpr char kErrnoPayloadUrl[] = "type.strata.dev/errno";

// Whether s is an I/O failure for lack of space: ENOSPC or EDQUOT. Such a
// failure is transient (space can be freed), unlike EIO or corruption.
bool IsOutOfSpace(const absl::Status& s);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_ENV_IO_ERROR_H_
