"""Exceptions raised by strata_client.

Every failed RPC raises a StrataError (or a subclass chosen by the gRPC status
code) carrying the status code and the server's message. The original
grpc.RpcError is kept as __cause__. See docs/clients.md for which code each RPC
returns when, and which calls are safe to retry.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

import grpc


class StrataError(Exception):
    """A Strata RPC failed.

    Attributes:
      code: the grpc.StatusCode of the failure (never OK).
      details: the server's (or the gRPC library's) message; may be empty.
    """

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self.code = code
        self.details = details or ""
        name = str(code.name)
        super().__init__(f"{name}: {self.details}" if self.details else name)


class InvalidArgument(StrataError):
    """INVALID_ARGUMENT: empty or too long key, too large value, too many
    mutations in one Write. Nothing was written. Do not retry unchanged."""


class DeadlineExceeded(StrataError):
    """DEADLINE_EXCEEDED: the call's timeout expired. A Put/Delete/Write may or
    may not have been applied."""


class Cancelled(StrataError):
    """CANCELLED: the call was cancelled (by the client or during shutdown)."""


class Unavailable(StrataError):
    """UNAVAILABLE: the server is unreachable or shutting down, the TLS
    handshake failed (wrong CA, name or client certificate), or the engine is
    in its read-only error state after a failed WAL sync."""


class ResourceExhausted(StrataError):
    """RESOURCE_EXHAUSTED: a message exceeded the gRPC size limit, or the server
    is over its in-flight cap."""


class DataLoss(StrataError):
    """DATA_LOSS: the server found corrupt data on disk."""


class Internal(StrataError):
    """INTERNAL: a bug or unexpected failure in the server or the gRPC stack."""


class Unimplemented(StrataError):
    """UNIMPLEMENTED: the server does not know the method (version skew)."""


class NotFound(StrataError):
    """NOT_FOUND: e.g. a health check of a service the server does not know."""


class Unauthenticated(StrataError):
    """UNAUTHENTICATED: the server needs credentials this call did not carry."""


class PermissionDenied(StrataError):
    """PERMISSION_DENIED: the caller's identity may not do this."""


class FailedPrecondition(StrataError):
    """FAILED_PRECONDITION: the server's state does not allow the call."""


class Aborted(StrataError):
    """ABORTED: the call conflicted with another and was abandoned."""


class OutOfRange(StrataError):
    """OUT_OF_RANGE: a revision outside the retained history.

    A read (get, scan, batch_get) at a revision below the compacted revision
    or above the current one, a compact() not above the compacted revision,
    or a watch whose changes were compacted (docs/revisions.md).

    Attributes:
      compact_revision: for a watch ended by compaction, the compacted
        revision the server reported: read the range at it, then watch from
        it + 1. None for any other OUT_OF_RANGE (the details name the bounds).
    """

    def __init__(self, code: grpc.StatusCode, details: str = "",
                 compact_revision: Optional[int] = None) -> None:
        super().__init__(code, details)
        self.compact_revision = compact_revision


_BY_CODE: Dict[Any, Type[StrataError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
}


def from_rpc_error(err: grpc.RpcError) -> StrataError:
    """Converts a grpc.RpcError into the matching StrataError subclass.

    Codes without a dedicated subclass (UNKNOWN, ALREADY_EXISTS) give a plain
    StrataError whose .code tells them apart.
    """
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    return _BY_CODE.get(code, StrataError)(code, str(details or ""))
