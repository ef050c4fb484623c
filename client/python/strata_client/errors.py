"""Exceptions raised by strata_client.

Every failed RPC raises a StrataError (or a subclass chosen by the gRPC status
code) carrying the status code and the server's message. The original
grpc.RpcError is kept as __cause__. See docs/clients.md for which code each RPC
returns when, and which calls are safe to retry.
"""

from __future__ import annotations

import grpc


class StrataError(Exception):
    """A Strata RPC failed.

    Attributes:
      code: the grpc.StatusCode of the failure (never OK).
      details: the server's (or the gRPC library's) message; may be empty.
    """

    def __init__(self, code: grpc.StatusCode, details: str = ""):
        self.code = code
        self.details = details or ""
        super().__init__(f"{code.name}: {self.details}" if self.details else code.name)


class InvalidArgument(StrataError):
    """INVALID_ARGUMENT: empty or too long key, too large value, too many
    mutations in one Write. Nothing was written. Do not retry unchanged."""


class DeadlineExceeded(StrataError):
    """DEADLINE_EXCEEDED: the call's timeout expired. A Put/Delete/Write may or
    may not have been applied."""


class Cancelled(StrataError):
    """CANCELLED: the call was cancelled (by the client or during shutdown)."""


class Unavailable(StrataError):
    """UNAVAILABLE: the server is unreachable or shutting down, or the engine is
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


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def from_rpc_error(err: grpc.RpcError) -> StrataError:
    """Converts a grpc.RpcError into the matching StrataError subclass.

    Codes without a dedicated subclass (e.g. UNKNOWN, PERMISSION_DENIED) give a
    plain StrataError whose .code tells them apart.
    """
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    return _BY_CODE.get(code, StrataError)(code, details or "")
