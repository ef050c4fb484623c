"""What the revision-aware calls of Client return (docs/revisions.md).

Plain immutable values, converted from the response messages so callers
never handle protobuf objects. Revisions are ints: the store's 64-bit
revision numbers, 1 for the first write.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple


class ValueType(enum.IntEnum):
    """The type of a stored value (strata.v1.ValueType, docs/values.md).

    The server checks a typed value when it is written (InvalidArgument
    otherwise) and returns the type with it; BYTES, the default, is opaque.
    """

    BYTES = 0
    TEXT = 1  # UTF-8 text
    INT64 = 2  # decimal text of a signed 64-bit integer, b"-42"
    JSON = 3  # a JSON text, stored normalized


def value_type(number: int) -> ValueType:
    """The ValueType of a wire number; one this client does not know (a
    newer server's) reads as BYTES, i.e. its raw value."""
    try:
        return ValueType(number)
    except ValueError:
        return ValueType.BYTES


def decode_value(value: bytes, type: ValueType) -> Any:
    """A value as a Python object by its type: BYTES -> bytes, TEXT -> str,
    INT64 -> int, JSON -> what json.loads makes of it (None for null)."""
    if type == ValueType.TEXT:
        return value.decode("utf-8")
    if type == ValueType.INT64:
        return int(value)
    if type == ValueType.JSON:
        return json.loads(value)
    return value


@dataclass(frozen=True)
class KeyValue:
    """A key, its value and its metadata (etcd's mvccpb.KeyValue).

    Attributes:
      key, value: bytes (value is b"" for a keys_only scan).
      create_revision: the revision of the put that created the key (since
        its last delete).
      mod_revision: the revision of its latest put.
      version: the number of puts since it was created: 1 for a new key.
      type: the value's ValueType (BYTES unless it was written typed).
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    type: ValueType = ValueType.BYTES

    def decoded(self) -> Any:
        """The value as a Python object by its type (see decode_value)."""
        return decode_value(self.value, self.type)

    @classmethod
    def from_proto(cls, kv: Any, key: Optional[bytes] = None) -> KeyValue:
        """From a strata.v1.KeyValue, or from a GetResponse (which has the
        same metadata fields but no key: pass the key)."""
        return cls(key=kv.key if key is None else key, value=kv.value,
                   create_revision=int(kv.create_revision),
                   mod_revision=int(kv.mod_revision), version=int(kv.version),
                   type=value_type(int(kv.type)))


@dataclass(frozen=True)
class GetResult:
    """What Client.get_with_metadata read.

    Attributes:
      revision: the revision the read was made at (the latest when the call
        asked for revision 0).
      kv: the key with its value and metadata; None when the key did not
        exist at that revision.
    """

    revision: int
    kv: Optional[KeyValue]

    @property
    def found(self) -> bool:
        """True when the key existed at `revision`."""
        return self.kv is not None

    @property
    def value(self) -> Optional[bytes]:
        """The value, or None when the key did not exist (as Client.get)."""
        return None if self.kv is None else self.kv.value


@dataclass(frozen=True)
class BatchGetResult:
    """What Client.batch_get read: every key at one revision.

    Attributes:
      revision: the revision all the keys were read at.
      kvs: one entry per requested key, in request order: its KeyValue, or
        None when it did not exist.
    """

    revision: int
    kvs: List[Optional[KeyValue]] = field(default_factory=list)

    @property
    def values(self) -> List[Optional[bytes]]:
        """The values in request order (None for a missing key)."""
        return [None if kv is None else kv.value for kv in self.kvs]


@dataclass(frozen=True)
class DeleteRangeResult:
    """What Client.delete_range did.

    Attributes:
      revision: the revision of the deletion; the current revision when the
        range held no key (nothing changed, no revision taken).
      deleted: how many keys were deleted.
      prev_kvs: with prev_kv=True, the deleted pairs in key order; else [].
    """

    revision: int
    deleted: int
    prev_kvs: List[KeyValue] = field(default_factory=list)


@dataclass(frozen=True)
class LeaseGrantResult:
    """What Client.lease_grant did: the lease's id and TTL (seconds), and the
    revision of the grant."""

    id: int
    ttl_seconds: int
    revision: int


@dataclass(frozen=True)
class LeaseTimeToLiveResult:
    """A lease's state (Client.lease_time_to_live).

    Attributes:
      id: the lease.
      ttl_seconds: seconds left before it expires (rounded up).
      granted_ttl: the TTL it was granted (what a keep-alive renews to).
      keys: with keys=True, the keys attached to it in key order; else [].
    """

    id: int
    ttl_seconds: int
    granted_ttl: int
    keys: List[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class TxnOpResult:
    """The result of one TxnOp of the branch a Txn ran, in the same position.

    Attributes:
      kind: the op's kind: "get", "put", "delete", "scan", "increment",
        "json_get" or "json_update".
      kv: get: the key's state (with its metadata; a key the branch put
        earlier shows the metadata it will have), or None when it does not
        exist. None for the other kinds.
      kvs: scan: the pairs, in the scan's order; [] for the other kinds.
      counter: increment: the counter after the increment; None for the
        other kinds.
      json: json_get: the normalized JSON text at the pointer; json_update:
        the new document's; None for the other kinds (see .document).
    """

    kind: str
    kv: Optional[KeyValue] = None
    kvs: List[KeyValue] = field(default_factory=list)
    counter: Optional[int] = None
    json: Optional[bytes] = None

    @property
    def document(self) -> Any:
        """json_get and json_update: .json parsed into Python objects (a JSON
        null is None); None for the other kinds."""
        return None if self.json is None else json.loads(self.json)

    @property
    def value(self) -> Optional[bytes]:
        """get: the value, or None when the key does not exist."""
        return None if self.kv is None else self.kv.value


@dataclass(frozen=True)
class TxnResult:
    """What Client.txn did.

    Attributes:
      succeeded: True when every compare held (the success ops ran), False
        when the failure ops ran.
      results: one TxnOpResult per op of the branch that ran, in order.
      revision: the revision the Txn committed at (the current one if the
        ops wrote nothing); its compares and reads saw the state just
        before it.
    """

    succeeded: bool
    results: List[TxnOpResult]
    revision: int


def prefix_end(prefix: bytes) -> bytes:
    """The exclusive end of the key range of every key starting with prefix.

    Scan's convention: b"" means no upper bound, which is what a prefix of
    only 0xff bytes (or an empty prefix) needs. prefix_end(b"cfg/") == b"cfg0".
    """
    end = bytearray(prefix)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return b""
    end[-1] += 1
    return bytes(end)


def prefix_range(prefix: bytes) -> Tuple[bytes, bytes]:
    """(start, end) of the keys starting with prefix, for scan or delete_range."""
    return prefix, prefix_end(prefix)


__all__ = ["KeyValue", "GetResult", "BatchGetResult", "DeleteRangeResult", "TxnOpResult", "TxnResult",
           "prefix_end", "prefix_range", "ValueType", "value_type", "decode_value"]
