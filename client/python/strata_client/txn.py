"""The parts of a Txn (Client.txn): compares and operations.

A Txn is etcd's compare -> then/else in one round trip
(docs/transactions.md): if every Compare holds the success ops run, else the
failure ops, all at one revision, serializable with every other write:

    from strata_client import Compare, TxnOp
    r = db.txn(compare=[Compare.version("lock", "==", 0)],     # lock is free
               success=[TxnOp.put("lock", "me")],
               failure=[TxnOp.get("lock")])
    r.succeeded, r.revision, r.results[0].value

Compares read a key's version (puts since it was created), create revision,
mod revision, value or INT64 value (as a number); a missing key has version
and revisions 0, so "key does not exist" is Compare.version(key, "==", 0),
and a value compare on a missing key is false. Plain immutable values, safe
to share between threads.

The typed operations of docs/values.md run inside a Txn too, at its
revision (take one from a stock counter, add one to a sold counter and mark
the order paid, only while stock > 0):

    r = db.txn(compare=[Compare.int64_value("stock", ">", 0)],
               success=[TxnOp.increment("stock", -1), TxnOp.increment("sold"),
                        TxnOp.json_merge_patch("order/1", {"paid": True})])
    r.results[0].counter, r.results[2].document
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Union

from ._convert import BytesLike, json_text, to_bytes, value_type_name
from ._gen import kv_pb2
from .results import ValueType, prefix_end

# How a Compare relates the key's attribute to its constant:
# attribute <op> constant.
CompareOp = Literal["==", "!=", ">", "<"]

_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", ">": "GREATER", "<": "LESS"}


class CompareTarget(str, enum.Enum):
    """What a Compare reads of the key (strata.v1.Compare.CompareTarget)."""

    VERSION = "VERSION"  # puts since the key was created; 0 when missing
    CREATE = "CREATE"  # the revision that created it; 0 when missing
    MOD = "MOD"  # the revision of its latest put; 0 when missing
    VALUE = "VALUE"  # its value (false for a missing key)
    INT64_VALUE = "INT64_VALUE"  # its INT64 value as a number (false when missing)


def _int64(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError(f"{what} must fit in a signed 64-bit integer")
    return n


@dataclass(frozen=True)
class Compare:
    """One condition of a Txn: the key's target attribute <op> constant.

    Build it with Compare.version, .create_revision, .mod_revision, .value or
    .int64_value.
    With range_end, every existing key of [key, range_end) must satisfy it
    (b"\\x00": every key >= key; an empty range compares as one missing key).

    Attributes:
      key: the key (or the start of the range).
      target: the attribute compared (CompareTarget).
      op: "==", "!=", ">" or "<".
      constant: an int for VERSION, CREATE, MOD and INT64_VALUE; bytes for
        VALUE.
      range_end: b"" for just key; else the exclusive end of the range.
    """

    key: bytes
    target: CompareTarget
    op: CompareOp
    constant: Union[int, bytes]
    range_end: bytes = b""

    @classmethod
    def _make(cls, key: BytesLike, target: CompareTarget, op: CompareOp,
              constant: Union[int, bytes], range_end: BytesLike) -> Compare:
        if op not in _RESULTS:
            raise ValueError(f"compare op must be one of {', '.join(_RESULTS)}, not {op!r}")
        return cls(key=to_bytes(key, "key"), target=target, op=op, constant=constant,
                   range_end=to_bytes(range_end, "range_end"))

    @classmethod
    def version(cls, key: BytesLike, op: CompareOp, version: int, *,
                range_end: BytesLike = b"") -> Compare:
        """The key's version (puts since it was created; 0 if it does not
        exist) <op> version. Compare.version(k, "==", 0): k does not exist."""
        return cls._make(key, CompareTarget.VERSION, op, _int64(version, "version"), range_end)

    @classmethod
    def create_revision(cls, key: BytesLike, op: CompareOp, revision: int, *,
                        range_end: BytesLike = b"") -> Compare:
        """The revision that created the key (0 if it does not exist) <op> revision."""
        return cls._make(key, CompareTarget.CREATE, op, _int64(revision, "revision"), range_end)

    @classmethod
    def mod_revision(cls, key: BytesLike, op: CompareOp, revision: int, *,
                     range_end: BytesLike = b"") -> Compare:
        """The revision of the key's latest put (0 if it does not exist) <op>
        revision. Compare.mod_revision(k, "==", kv.mod_revision): k has not
        changed since it was read."""
        return cls._make(key, CompareTarget.MOD, op, _int64(revision, "revision"), range_end)

    @classmethod
    def value(cls, key: BytesLike, op: CompareOp, value: BytesLike, *,
              range_end: BytesLike = b"") -> Compare:
        """The key's value <op> value (bytewise); false for a missing key."""
        return cls._make(key, CompareTarget.VALUE, op, to_bytes(value, "value"), range_end)

    @classmethod
    def int64_value(cls, key: BytesLike, op: CompareOp, value: int, *,
                    range_end: BytesLike = b"") -> Compare:
        """The key's INT64 value (docs/values.md) <op> value, as numbers (10 >
        9, where .value's byte order has b"10" < b"9"); false for a missing
        key. A key of another type fails the whole Txn with
        FailedPrecondition naming the key."""
        return cls._make(key, CompareTarget.INT64_VALUE, op, _int64(value, "value"), range_end)

    def in_range(self, end: BytesLike) -> Compare:
        """The same compare over every key of [key, end) (b"\\x00": every key >= key)."""
        return dataclasses.replace(self, range_end=to_bytes(end, "range_end"))

    def in_prefix(self) -> Compare:
        """The same compare over every key that starts with key."""
        return dataclasses.replace(self, range_end=prefix_end(self.key) or b"\x00")

    def to_proto(self) -> kv_pb2.Compare:
        """The strata.v1.Compare message."""
        fields: Dict[str, Any] = {"key": self.key, "range_end": self.range_end,
                                  "result": _RESULTS[self.op], "target": self.target.value}
        field = {CompareTarget.VERSION: "version", CompareTarget.CREATE: "create_revision",
                 CompareTarget.MOD: "mod_revision", CompareTarget.VALUE: "value",
                 CompareTarget.INT64_VALUE: "int64_value"}[self.target]
        fields[field] = self.constant
        return kv_pb2.Compare(**fields)


# What a TxnOp does.
TxnOpKind = Literal["get", "put", "delete", "scan", "increment", "json_get", "json_update"]


@dataclass(frozen=True)
class TxnOp:
    """One operation of a Txn branch: TxnOp.get, .put, .delete, .scan, or a
    typed one: .increment, .json_get, .json_merge_patch, .json_patch.

    Reads see the branch's earlier writes and are made at the Txn's revision.
    A branch may write each key once (else InvalidArgument). A typed op
    that fails fails the whole Txn with its error, nothing written.

    Attributes:
      kind: "get", "put", "delete", "scan", "increment", "json_get" or
        "json_update" (json_merge_patch and json_patch).
      key: the key (for a scan: its start).
      message: the strata.v1.RequestOp it sends.
    """

    kind: TxnOpKind
    key: bytes
    message: Any = dataclasses.field(repr=False, compare=False)

    @classmethod
    def get(cls, key: BytesLike) -> TxnOp:
        """Reads key; its result's .kv is the KeyValue, or None if missing."""
        k = to_bytes(key, "key")
        return cls("get", k, kv_pb2.RequestOp(get=kv_pb2.GetRequest(key=k)))

    @classmethod
    def put(cls, key: BytesLike, value: BytesLike,
            type: ValueType = ValueType.BYTES) -> TxnOp:
        """Sets key to value (of the given ValueType, checked by the server).
        TTLs and leases are not supported inside a Txn (use put or write)."""
        k = to_bytes(key, "key")
        return cls("put", k, kv_pb2.RequestOp(put=kv_pb2.PutRequest(
            key=k, value=to_bytes(value, "value"), type=value_type_name(type))))

    @classmethod
    def delete(cls, key: BytesLike) -> TxnOp:
        """Removes key (a missing key is fine)."""
        k = to_bytes(key, "key")
        return cls("delete", k, kv_pb2.RequestOp(delete=kv_pb2.DeleteRequest(key=k)))

    @classmethod
    def scan(cls, start: BytesLike = b"", end: BytesLike = b"", limit: int = 0,
             keys_only: bool = False, *, prefix: Optional[BytesLike] = None,
             reverse: bool = False) -> TxnOp:
        """Reads the pairs of [start, end) (end b"": no upper bound; or every
        key starting with prefix) as Client.scan does, all in one response
        (the whole Txn response must fit the server's --max_message_bytes,
        else FailedPrecondition); its result's .kvs are the KeyValues."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 0xFFFFFFFF:
            raise ValueError("limit must be an int in [0, 2**32)")
        if prefix is not None:
            if start != b"" or end != b"":
                raise ValueError("scan: pass prefix or start/end, not both")
            s = to_bytes(prefix, "prefix")
            e = prefix_end(s)
        else:
            s, e = to_bytes(start, "start"), to_bytes(end, "end")
        return cls("scan", s, kv_pb2.RequestOp(scan=kv_pb2.ScanRequest(
            start_key=s, end_key=e, limit=limit, keys_only=bool(keys_only),
            reverse=bool(reverse))))

    @classmethod
    def increment(cls, key: BytesLike, delta: int = 1, *, must_exist: bool = False) -> TxnOp:
        """Adds delta to the INT64 value of key, as Client.incr (no ttl_ms
        inside a Txn); its result's .counter is the value after it. A missing
        key counts from 0 (must_exist=True: the Txn fails with NotFound); a
        key of another type fails it with FailedPrecondition, an overflow
        with OutOfRange."""
        k = to_bytes(key, "key")
        return cls("increment", k, kv_pb2.RequestOp(increment=kv_pb2.IncrementRequest(
            key=k, delta=_int64(delta, "delta"), must_exist=bool(must_exist))))

    @classmethod
    def json_get(cls, key: BytesLike, pointer: str = "") -> TxnOp:
        """Reads the JSON at pointer (RFC 6901, "" = the whole document) of
        the JSON value of key, as Client.json_get; its result's .json is the
        text and .document the Python objects. A missing key or a pointer
        that does not resolve fails the Txn with NotFound."""
        if not isinstance(pointer, str):
            raise TypeError(f"pointer must be a str, not {type(pointer).__name__}")
        k = to_bytes(key, "key")
        return cls("json_get", k, kv_pb2.RequestOp(json_get=kv_pb2.JsonGetRequest(
            key=k, pointer=pointer)))

    @classmethod
    def json_merge_patch(cls, key: BytesLike, patch: Any) -> TxnOp:
        """Applies a JSON Merge Patch (RFC 7386: {"a": 2, "b": None} sets a,
        removes b) to the JSON value of key, as Client.json_update; its
        result's .json / .document is the new document. patch: bytes are
        sent as JSON text; anything else is serialized with json.dumps (a
        str is a JSON string); ValueError if it cannot be."""
        k = to_bytes(key, "key")
        return cls("json_update", k, kv_pb2.RequestOp(json_update=kv_pb2.JsonUpdateRequest(
            key=k, merge_patch=json_text(patch, "patch"))))

    @classmethod
    def json_patch(cls, key: BytesLike, patch: Any) -> TxnOp:
        """Applies a JSON Patch (RFC 6902: [{"op": "add", "path": "/a",
        "value": 2}], all or nothing) to the JSON value of key, as
        json_merge_patch; a failed "test" fails the Txn with
        FailedPrecondition."""
        k = to_bytes(key, "key")
        return cls("json_update", k, kv_pb2.RequestOp(json_update=kv_pb2.JsonUpdateRequest(
            key=k, json_patch=json_text(patch, "patch"))))


__all__ = ["Compare", "CompareOp", "CompareTarget", "TxnOp", "TxnOpKind"]
