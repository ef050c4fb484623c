"""Python client for Strata, the gRPC key-value storage node.

    import strata_client
    from strata_client import Compare, TxnOp
    with strata_client.Client("127.0.0.1:50051") as db:
        rev = db.put(b"hello", b"world")          # the revision it committed at
        assert db.get(b"hello") == b"world"
        for key, value in db.scan(start=b"a", end=b"b", limit=10):
            ...
        with db.watch(prefix=b"cfg/") as changes:  # every later change, in order
            for event in changes:
                ...
        db.incr("hits")                            # typed values: counters,
        db.put_json("doc", {"a": 1})               # JSON documents
        db.json_update("doc", merge_patch={"b": [2]})
        r = db.txn(compare=[Compare.version("lock", "==", 0)],   # compare -> then/else,
                   success=[TxnOp.put("lock", "me")],            # atomically
                   failure=[TxnOp.get("lock")])
        with db.transaction() as tx:               # optimistic, serializable
            tx.put("n", str(int(tx.get("n") or 0) + 1))
        db.run_transaction(fn)                     # fn(tx), retried on Aborted

Over TLS, or mutual TLS with a client certificate:

    tls = strata_client.TLSConfig(ca="ca.crt", cert="client.crt", key="client.key")
    db = strata_client.Client("db.example:50051", tls=tls)

Keys and values are bytes (str is accepted and encoded as UTF-8). Install with
`pip install ./client/python`: the protobuf modules (strata_client._gen) are
generated from proto/ when the package is built. See docs/clients.md for the
calls and the error model, docs/revisions.md for revisions and Watch,
docs/transactions.md for txn and transactions.
"""

from .client import (DEFAULT_TIMEOUT, BytesLike, ChannelOptions, Client, NamespaceInfo,
                     Pair, ScanIterator, Timeout, WriteBatch, WriteOp)
from .cluster import ClusterNode, ClusterStatus, Range, RangeMap
from .errors import (Aborted, Cancelled, DataLoss, DeadlineExceeded,
                     FailedPrecondition, Internal, InvalidArgument, NotFound,
                     OutOfRange, PermissionDenied, ResourceExhausted,
                     StrataError, Unauthenticated, Unavailable, Unimplemented,
                     from_rpc_error)
from .lease import LeaseKeeper
from .results import (BatchGetResult, DeleteRangeResult, GetResult, KeyValue,
                      ValueType, decode_value, LeaseGrantResult,
                      LeaseTimeToLiveResult, TxnOpResult, TxnResult, prefix_end,
                      prefix_range)
from .tls import PemSource, TLSConfig
from .transaction import Transaction
from .txn import Compare, CompareOp, CompareTarget, TxnOp, TxnOpKind
from .watch import EventType, ResumePolicy, Watch, WatchEvent

__version__ = "0.1.0"

__all__ = [
    "Client", "ScanIterator", "WriteBatch", "TLSConfig", "NamespaceInfo",
    "BytesLike", "WriteOp", "Pair", "Timeout", "DEFAULT_TIMEOUT", "ChannelOptions", "PemSource",
    "KeyValue", "GetResult", "BatchGetResult", "DeleteRangeResult", "prefix_end", "prefix_range",
    "ValueType", "decode_value",
    "LeaseGrantResult", "LeaseTimeToLiveResult", "LeaseKeeper",
    "Compare", "CompareOp", "CompareTarget", "TxnOp", "TxnOpKind", "TxnResult", "TxnOpResult",
    "Transaction",
    "Watch", "WatchEvent", "EventType", "ResumePolicy",
    "RangeMap", "ClusterStatus", "Range", "ClusterNode",
    "StrataError", "InvalidArgument", "DeadlineExceeded", "Cancelled",
    "Unavailable", "ResourceExhausted", "DataLoss", "Internal", "Unimplemented",
    "NotFound", "Unauthenticated", "PermissionDenied", "FailedPrecondition", "Aborted",
    "OutOfRange", "from_rpc_error",
]
