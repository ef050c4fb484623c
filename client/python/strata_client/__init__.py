"""Python client for Strata, the gRPC key-value storage node.

    import strata_client
    with strata_client.Client("127.0.0.1:50051") as db:
        db.put(b"hello", b"world")
        assert db.get(b"hello") == b"world"
        for key, value in db.scan(start=b"a", end=b"b", limit=10):
            ...

Over TLS, or mutual TLS with a client certificate:

    tls = strata_client.TLSConfig(ca="ca.crt", cert="client.crt", key="client.key")
    db = strata_client.Client("db.example:50051", tls=tls)

Keys and values are bytes (str is accepted and encoded as UTF-8). Install with
`pip install ./client/python`: the protobuf modules (strata_client._gen) are
generated from proto/ when the package is built. See docs/clients.md for the
error model.
"""

from .client import (DEFAULT_TIMEOUT, BytesLike, ChannelOptions, Client,
                     ScanIterator, Timeout, WriteBatch, WriteOp)
from .errors import (Aborted, Cancelled, DataLoss, DeadlineExceeded,
                     FailedPrecondition, Internal, InvalidArgument, NotFound,
                     PermissionDenied, ResourceExhausted, StrataError,
                     Unauthenticated, Unavailable, Unimplemented,
                     from_rpc_error)
from .tls import PemSource, TLSConfig

__version__ = "0.1.0"

__all__ = [
    "Client", "ScanIterator", "WriteBatch", "TLSConfig",
    "BytesLike", "WriteOp", "Timeout", "DEFAULT_TIMEOUT", "ChannelOptions", "PemSource",
    "StrataError", "InvalidArgument", "DeadlineExceeded", "Cancelled",
    "Unavailable", "ResourceExhausted", "DataLoss", "Internal", "Unimplemented",
    "NotFound", "Unauthenticated", "PermissionDenied", "FailedPrecondition", "Aborted",
    "from_rpc_error",
]
