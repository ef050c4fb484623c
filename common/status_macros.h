#ifndef STRATA_COMMON_STATUS_MACROS_H_
#define STRATA_COMMON_STATUS_MACROS_H_

// Early returns for absl::Status / absl::StatusOr outside the engine
// (Debian's Abseil, 20220623, ships none). The engine keeps its own copy,
// storage/util/status_macros.h: the include lint (tests/lint/) bars
// storage/ from including common/, and users of the engine from including
// its internals. The definitions below are token for token the engine's,
// so a file that sees both (the engine's own tests) compiles: C++ allows
// an identical redefinition of a macro. Keep the two in step.

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define STRATA_CONCAT_INNER_(a, b) a##b
#define STRATA_CONCAT_(a, b) STRATA_CONCAT_INNER_(a, b)

// Evaluates expr (an absl::Status); returns it from the enclosing function
// if it is not OK.
#define RETURN_IF_ERROR(expr)                           \
  do {                                                  \
    ::absl::Status strata_status_ = (expr);             \
    if (!strata_status_.ok()) return strata_status_;    \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates expr (an absl::StatusOr<T>);
// returns its status if not OK, otherwise assigns the value to lhs (which
// may be a declaration such as `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(STRATA_CONCAT_(strata_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // STRATA_COMMON_STATUS_MACROS_H_
