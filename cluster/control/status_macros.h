#ifndef STRATA_CLUSTER_CONTROL_STATUS_MACROS_H_
#define STRATA_CLUSTER_CONTROL_STATUS_MACROS_H_

// Early returns for absl::Status / absl::StatusOr in the control plane
// (Debian's Abseil has none, and the engine's own are internal to it: the
// include lint keeps storage/ internals out of other trees).

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CLUSTER_CONCAT_INNER_(a, b) a##b
#define CLUSTER_CONCAT_(a, b) CLUSTER_CONCAT_INNER_(a, b)

// Evaluates expr (an absl::Status); returns it if it is not OK.
#define CLUSTER_RETURN_IF_ERROR(expr)                 \
  do {                                                \
    ::absl::Status cluster_status_ = (expr);          \
    if (!cluster_status_.ok()) return cluster_status_; \
  } while (0)

// Evaluates expr (an absl::StatusOr<T>); returns its status if not OK,
// else assigns the value to lhs (which may be a declaration).
#define CLUSTER_ASSIGN_OR_RETURN(lhs, expr)                                 \
  CLUSTER_ASSIGN_OR_RETURN_IMPL_(CLUSTER_CONCAT_(cluster_statusor_, __LINE__), \
                                 lhs, expr)
#define CLUSTER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#endif  // STRATA_CLUSTER_CONTROL_STATUS_MACROS_H_
