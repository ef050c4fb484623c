#ifndef STRATA_CLUSTER_CONTROL_STRINGS_H_
#define STRATA_CLUSTER_CONTROL_STRINGS_H_

// String helpers shared by the control plane's .cc files.

#include <string_view>

#include "absl/strings/string_view.h"

namespace strata::cluster {

// Debian's Abseil has its own string_view (STYLE.md): convert at the
// Abseil call sites (StrCat, error messages). The view aliases `s`.
inline absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_CONTROL_STRINGS_H_
