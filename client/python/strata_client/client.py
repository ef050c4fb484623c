"""A typed Python client over the strata.v1 gRPC services."""

from __future__ import annotations

import copy
import enum
import json
import os
import struct
import threading
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import (Any, Callable, ClassVar, Dict, Generic, Iterable, Iterator, List,
                    Literal, Mapping, Optional, Sequence, Tuple, Type, TypeVar,
                    Union, overload)

import grpc

from . import _rpc
from .cluster import ClusterStatus, RangeMap, named_primary, primary_trailer
from ._convert import BytesLike
from ._convert import check_revision as _revision
from ._convert import json_text as _json_text
from ._convert import to_bytes as _to_bytes
from ._convert import value_type_name as _value_type
from ._gen import kv_pb2
from .errors import Aborted, Internal, StrataError, from_rpc_error
from .lease import LeaseKeeper
from .results import (BatchGetResult, DeleteRangeResult, GetResult, KeyValue,
                      ValueType, decode_value, LeaseGrantResult,
                      LeaseTimeToLiveResult, TxnOpResult, TxnResult, prefix_end)
from .tls import TLSConfig
from .transaction import Transaction, run_transaction
from .txn import Compare, TxnOp
from .watch import ResumePolicy, Watch

# One operation of Client.write in tuple form: ("put", key, value) or
# ("delete", key).
WriteOp = Union[Tuple[str, BytesLike, BytesLike], Tuple[str, BytesLike]]

# Extra gRPC channel arguments, e.g. [("grpc.max_receive_message_length", n)].
ChannelOptions = Sequence[Tuple[str, Any]]


class _Default(enum.Enum):
    """Marker for "use the Client's default timeout" (None means no deadline)."""

    TIMEOUT = 0


DEFAULT_TIMEOUT = _Default.TIMEOUT

# A per-call timeout: seconds, None for no deadline, or DEFAULT_TIMEOUT for the
# Client's.
Timeout = Union[float, None, _Default]


class _Unset(enum.Enum):
    """Marker for an argument not given (None is a JSON value: null)."""

    UNSET = 0


_UNSET = _Unset.UNSET


class WriteBatch:
    """An ordered list of puts and deletes that Client.write applies atomically.

    Later mutations of the same key win. Not thread-safe; build it in one thread.
    The server rejects batches over its mutation limit (10,000 by default) with
    InvalidArgument, writing nothing.
    """

    def __init__(self) -> None:
        self._mutations: List[kv_pb2.Mutation] = []

    def put(self, key: BytesLike, value: BytesLike,
            type: ValueType = ValueType.BYTES, *, ttl_ms: int = 0,
            lease: int = 0) -> WriteBatch:
        """Appends a put of key=value (of the given ValueType, expiring ttl_ms
        after the write, attached to lease: see Client.put). Returns self so
        calls can be chained."""
        self._mutations.append(kv_pb2.Mutation(
            put=kv_pb2.PutRequest(key=_to_bytes(key, "key"),
                                  value=_to_bytes(value, "value"),
                                  type=_value_type(type),
                                  ttl_ms=int(ttl_ms), lease=int(lease))))
        return self

    def delete(self, key: BytesLike) -> WriteBatch:
        """Appends a delete of key. Returns self so calls can be chained."""
        self._mutations.append(kv_pb2.Mutation(
            delete=kv_pb2.DeleteRequest(key=_to_bytes(key, "key"))))
        return self

    def clear(self) -> None:
        """Removes every mutation."""
        self._mutations.clear()

    def __len__(self) -> int:
        return len(self._mutations)

    def to_request(self) -> kv_pb2.WriteRequest:
        """The WriteRequest message for this batch."""
        return kv_pb2.WriteRequest(mutations=self._mutations)

    @classmethod
    def from_ops(cls, ops: Iterable[WriteOp]) -> WriteBatch:
        """Builds a batch from ("put", key, value) and ("delete", key) tuples.

        Raises ValueError for any other shape.
        """
        batch = cls()
        for op in ops:
            if not isinstance(op, (tuple, list)) or not op:
                raise ValueError(f"bad write op {op!r}")
            fields: Sequence[Any] = op  # the length is checked here, not typed
            if fields[0] == "put" and len(fields) == 3:
                batch.put(fields[1], fields[2])
            elif fields[0] == "delete" and len(fields) == 2:
                batch.delete(fields[1])
            else:
                raise ValueError(
                    f"bad write op {op!r}: want ('put', key, value) or ('delete', key)")
        return batch


# What a ScanIterator yields: (key, value) pairs, or KeyValue with metadata.
T = TypeVar("T")
# What the function given to run_transaction returns.
R = TypeVar("R")
Pair = Tuple[bytes, bytes]


def _pair(kv: Any) -> Pair:
    return kv.key, kv.value


class ScanIterator(Generic[T]):
    """Iterates the pairs of one Scan call as they stream in.

    Yields (key, value) tuples, or KeyValue objects (with their revisions)
    from scan(..., metadata=True). The server sends pairs in batches
    (messages of at most ~1 MiB); this iterator hides the batching. Stopping
    early - close(), leaving a `with` block, or dropping the iterator (e.g.
    `break` out of a for loop) - cancels the RPC so the server stops
    reading. Errors raise StrataError subclasses from next(). Not
    thread-safe.

    Attributes:
      revision: the revision the scan reads at (every message carries it);
        None until the first message has arrived, i.e. until next() has
        returned a pair or the iteration has ended. Pass it as scan(...,
        revision=) to read more of the range at the same revision, or as
        watch(start_revision=revision + 1) to follow the range from there.
      messages: how many ScanResponse messages have been received so far.
    """

    def __init__(self, call: Any, convert: Callable[[Any], T]) -> None:
        self._call = call
        self._convert = convert
        self._pending: Sequence[kv_pb2.KeyValue] = ()
        self._pos = 0
        self._done = False
        self.messages = 0
        self.revision: Optional[int] = None

    def __iter__(self) -> ScanIterator[T]:
        return self

    def __next__(self) -> T:
        while self._pos >= len(self._pending):
            if self._done:
                raise StopIteration
            try:
                resp: kv_pb2.ScanResponse = next(self._call)
            except StopIteration:
                self._done = True
                raise
            except grpc.RpcError as e:
                self._done = True
                raise from_rpc_error(e) from e
            self.messages += 1
            if self.revision is None:
                self.revision = int(resp.header.revision)
            self._pending = resp.pairs
            self._pos = 0
        kv = self._pending[self._pos]
        self._pos += 1
        return self._convert(kv)

    def close(self) -> None:
        """Cancels the call if it is still running. Idempotent."""
        if not self._done:
            self._done = True
            self._call.cancel()
        self._pending = ()

    def __enter__(self) -> ScanIterator[T]:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown; nothing useful to do
            pass


class Client:
    """A connection to one Strata server (services strata.v1 and grpc.health.v1).

    Thread-safe: one Client (one gRPC channel) may be shared by many threads.
    Every RPC method raises a StrataError subclass on failure (see errors.py);
    bad arguments raise TypeError or ValueError before anything is sent.

    Args:
      target: "host:port", e.g. "127.0.0.1:50051" (any gRPC target string).
      timeout: default deadline in seconds for each call; None for no deadline.
        For scan() it bounds the whole stream; for watch() only opening the
        stream (a watch has no deadline). Each method also takes a timeout=
        argument that overrides it for that call.
      credentials: grpc.ChannelCredentials for TLS (prefer tls=); None for
        plaintext unless tls is given.
      options: extra channel arguments, e.g. [("grpc.max_receive_message_length", n)].
      tls: a TLSConfig: TLS, or mutual TLS with a client certificate. Its files
        are read here (OSError if one cannot be). Not together with credentials.
      namespace: the namespace of every call that names keys (docs/namespaces.md);
        "" = the default namespace. in_namespace(name) gives a client on the same
        channel for another one; incr also takes namespace= per call.
      follow_primary: when a cluster node that is not the primary answers
        get/put/delete with FailedPrecondition naming the primary (a node
        started with --cluster_forward=false; nodes forward by default) in
        its strata-primary trailer (or, from older servers, the message
        "...; the primary is NODE at HOST:PORT"; docs/cluster.md), dial
        HOST:PORT (same credentials and options),
        retry that call there once, and send every later get/put/delete to it
        (as the C++ client) until a call there fails Unavailable (the primary
        is gone) or FailedPrecondition naming no primary (it was fenced after
        a failover): that call's error is raised, not retried (a write that
        failed Unavailable may have been applied), and the next call goes to
        target again. Before the first get/put/delete, and again after such
        a forget, target is asked for its range map (GetRangeMap, a 2 s
        deadline at most) and the primary of the key's range is followed
        from the start (a namespace client uses only a map of one range);
        a standalone server answers Unimplemented once and is never asked
        again, any other failure leaves the call on target. False: surface
        the error, no GetRangeMap. Other methods always use target.
    """

    # Every RPC of proto/strata/v1 and the Client method that calls it. The
    # parity test (client/python/tests/test_parity.py) checks this table, and
    # the Node client's, against the proto in both directions: a new RPC is a
    # method below plus its line here (and the same in client/node).
    RPC_METHODS: ClassVar[Mapping[str, str]] = MappingProxyType({
        "strata.v1.KV/Get": "get",
        "strata.v1.KV/Put": "put",
        "strata.v1.KV/Delete": "delete",
        "strata.v1.KV/Scan": "scan",
        "strata.v1.KV/Write": "write",
        "strata.v1.KV/Watch": "watch",
        "strata.v1.KV/Compact": "compact",
        "strata.v1.KV/BatchGet": "batch_get",
        "strata.v1.KV/DeleteRange": "delete_range",
        "strata.v1.KV/Txn": "txn",
        "strata.v1.KV/Commit": "commit",
        "strata.v1.KV/Increment": "incr",
        "strata.v1.KV/JsonGet": "json_get",
        "strata.v1.KV/JsonUpdate": "json_update",
        "strata.v1.KV/LeaseGrant": "lease_grant",
        "strata.v1.KV/LeaseRevoke": "lease_revoke",
        "strata.v1.KV/LeaseKeepAlive": "lease_keep_alive",
        "strata.v1.KV/LeaseTimeToLive": "lease_time_to_live",
        "strata.v1.KV/LeaseLeases": "lease_leases",
        "strata.v1.KV/Backup": "backup",
        "strata.v1.KV/CreateNamespace": "create_namespace",
        "strata.v1.KV/DeleteNamespace": "delete_namespace",
        "strata.v1.KV/ListNamespaces": "list_namespaces",
        "strata.v1.KV/UpdateNamespace": "update_namespace",
        "strata.v1.Cluster/GetRangeMap": "get_range_map",
        "strata.v1.Cluster/GetClusterStatus": "cluster_status",
    })

    def __init__(self, target: str, timeout: Optional[float] = 10.0,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 options: Optional[ChannelOptions] = None, *,
                 tls: Optional[TLSConfig] = None, namespace: str = "",
                 follow_primary: bool = True) -> None:
        if tls is not None and credentials is not None:
            raise ValueError("Client: pass tls= or credentials=, not both")
        self.namespace = _namespace(namespace)
        self.target = target
        self.timeout = timeout
        channel_options: List[Tuple[str, Any]] = list(options or [])
        # No receive limit of our own, as the C++ client: the server bounds
        # its replies (--max_message_bytes), and a Txn reply or a backup
        # chunk may pass gRPC's default 4 MiB.
        if not any(k == "grpc.max_receive_message_length" for k, _ in channel_options):
            channel_options.append(("grpc.max_receive_message_length", -1))
        if tls is not None:
            credentials = tls.channel_credentials()
            channel_options += tls.channel_options()
        self._credentials = credentials
        self._channel_options = channel_options
        self._channel = self._dial(target)
        self._calls: Dict[str, Any] = self._callables(self._channel)
        self.follow_primary = bool(follow_primary)
        # Shared with in_namespace() copies: the primary they all follow.
        self._route = _Route()

    def _dial(self, target: str) -> grpc.Channel:
        if self._credentials is not None:
            return grpc.secure_channel(target, self._credentials, options=self._channel_options)
        return grpc.insecure_channel(target, options=self._channel_options)

    @staticmethod
    def _callables(channel: grpc.Channel) -> Dict[str, Any]:
        return {m.full_name: Client._callable(channel, m)
                for m in [*_rpc.METHODS.values(), _rpc.HEALTH_CHECK]}

    @staticmethod
    def _callable(channel: grpc.Channel, method: _rpc.Method) -> Any:
        factory = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }[(method.client_streaming, method.server_streaming)]
        return factory(method.path,
                       request_serializer=method.request.SerializeToString,
                       response_deserializer=method.response.FromString)

    def _deadline(self, timeout: Timeout) -> Optional[float]:
        return self.timeout if isinstance(timeout, _Default) else timeout

    def _with_namespace(self, request: Any) -> Any:
        """Sets the client's namespace on a request that names keys and none."""
        if self.namespace and "namespace" in request.DESCRIPTOR.fields_by_name \
                and not request.namespace:
            request.namespace = self.namespace
        return request

    def in_namespace(self, namespace: str) -> Client:
        """A client for another namespace on the same channel (closing either
        closes both)."""
        other = copy.copy(self)
        other.namespace = _namespace(namespace)
        return other

    def _unary(self, rpc: str, request: Any, timeout: Timeout) -> Any:
        """Calls a unary RPC by full name; returns its response message."""
        request = self._with_namespace(request)
        try:
            return self._calls[rpc](request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def _routed_unary(self, rpc: str, request: Any, timeout: Timeout) -> Any:
        """_unary for get/put/delete: to the primary this client follows, if
        any; on a replica's "the primary is NODE at HOST:PORT" answer, follows
        it (once per call) and sticks to it until it is lost (see
        follow_primary)."""
        request = self._with_namespace(request)
        if self.follow_primary and self._route.take_map_turn():
            self._follow_range_map(bytes(request.key), str(request.namespace), timeout)
        followed = self._route.calls()
        calls = followed or self._calls
        try:
            return calls[rpc](request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:
            primary = self._primary_named_by(e)
            if primary is None:
                if followed is not None and _lost_primary(e):
                    self._route.forget(followed)
                raise from_rpc_error(e) from e
        calls = self._route.follow(primary, self._dial, self._callables)
        try:
            return calls[rpc](request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:
            if _lost_primary(e) and self._primary_named_by(e) is None:
                self._route.forget(calls)
            raise from_rpc_error(e) from e

    def _follow_range_map(self, key: bytes, namespace: str, timeout: Timeout) -> None:
        """Asks target for its range map and follows the primary of the range
        holding key, unless that is target itself. Unimplemented (a
        standalone server): never asked again; any failure: the call stays on
        target."""
        deadline = self._deadline(timeout)
        deadline = _RANGE_MAP_TIMEOUT if deadline is None else min(deadline, _RANGE_MAP_TIMEOUT)
        try:
            range_map = self.get_range_map(timeout=deadline)
        except StrataError as e:
            if e.code == grpc.StatusCode.UNIMPLEMENTED:
                self._route.map_unimplemented()
            return
        address = range_map.primary_for(namespace, key)
        if address and address != self.target:
            self._route.follow_if_none(address, self._dial, self._callables)

    def _primary_named_by(self, e: grpc.RpcError) -> Optional[str]:
        if not self.follow_primary or not isinstance(e, grpc.Call) \
                or e.code() != grpc.StatusCode.FAILED_PRECONDITION:
            return None
        return primary_trailer(e.trailing_metadata()) \
            or named_primary(str(e.details() or ""))

    @property
    def primary(self) -> Optional[str]:
        """The HOST:PORT of the primary this client followed and now sends
        get/put/delete to, or None while it uses target."""
        return self._route.address()

    def _server_stream(self, rpc: str, request: Any, timeout: Timeout) -> Any:
        """Starts a server-streaming RPC; returns the call (an iterator)."""
        request = self._with_namespace(request)
        try:
            return self._calls[rpc](request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:  # pragma: no cover - errors normally come on read
            raise from_rpc_error(e) from e

    # Every write returns the revision it committed at (docs/revisions.md);
    # a write that changed nothing (deleting a missing key) returns the
    # current revision. Reads take revision= (0 = the latest): a revision
    # below the compacted revision or above the current one raises
    # OutOfRange.

    def get(self, key: BytesLike, *, revision: int = 0,
            timeout: Timeout = DEFAULT_TIMEOUT) -> Optional[bytes]:
        """Returns the value of key, or None if the key does not exist.

        An existing key with an empty value returns b"" (not None). With
        revision > 0, the value as of that revision. get_with_metadata also
        returns the key's revisions and the revision read at.
        """
        return self.get_with_metadata(key, revision=revision, timeout=timeout).value

    def get_with_metadata(self, key: BytesLike, *, revision: int = 0,
                          timeout: Timeout = DEFAULT_TIMEOUT) -> GetResult:
        """Reads key with its metadata: a GetResult whose .revision is the
        revision read at and whose .kv is the KeyValue (create_revision,
        mod_revision, version), or None when the key does not exist."""
        k = _to_bytes(key, "key")
        resp: kv_pb2.GetResponse = self._routed_unary(
            "strata.v1.KV/Get", kv_pb2.GetRequest(key=k, revision=_revision(revision)), timeout)
        kv = KeyValue.from_proto(resp, key=k) if resp.found else None
        return GetResult(revision=int(resp.header.revision), kv=kv)

    def put(self, key: BytesLike, value: BytesLike, *, type: ValueType = ValueType.BYTES,
            ttl_ms: int = 0, lease: int = 0,
            timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Sets key to value; durable when it returns. Returns its revision.

        type makes it a typed value (docs/values.md) that the server checks:
        TEXT must be UTF-8, INT64 the decimal text of a 64-bit integer, JSON
        a JSON text (stored normalized); otherwise InvalidArgument and
        nothing is written.

        ttl_ms > 0: the key expires that many milliseconds after the write (no
        read returns it from then on; docs/expiry.md); 0 clears an earlier TTL.
        lease: attach the key to a lease (lease_grant); NotFound if the lease
        does not exist (nothing is written).
        """
        resp = self._routed_unary("strata.v1.KV/Put",
                           kv_pb2.PutRequest(key=_to_bytes(key, "key"),
                                             value=_to_bytes(value, "value"),
                                             type=_value_type(type),
                                             ttl_ms=int(ttl_ms), lease=int(lease)), timeout)
        return int(resp.header.revision)

    def put_json(self, key: BytesLike, document: Any, *,
                 timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Stores a Python value (dict, list, str, int, float, bool, None) as
        a JSON value, serialized with json.dumps (ValueError if it cannot
        be; NaN and infinities cannot). Returns the revision."""
        return self.put(key, _json_text(document, "document"), type=ValueType.JSON,
                        timeout=timeout)

    def get_typed(self, key: BytesLike, default: Any = None, *, revision: int = 0,
                  timeout: Timeout = DEFAULT_TIMEOUT) -> Any:
        """The value of key decoded by its type: bytes (BYTES), str (TEXT),
        int (INT64) or the JSON document as Python objects (JSON); default
        when the key does not exist (pass a sentinel to tell a JSON null
        from a missing key)."""
        kv = self.get_with_metadata(key, revision=revision, timeout=timeout).kv
        return default if kv is None else kv.decoded()

    def incr(self, key: BytesLike, delta: int = 1, *, must_exist: bool = False,
             ttl_ms: int = 0, namespace: str = "",
             timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Adds delta to the INT64 value of key atomically and durably and
        returns the new value (no increment is lost or applied twice,
        whatever the concurrency).

        A missing key counts from 0 (must_exist=True: NotFound). A key of
        another type raises FailedPrecondition; a sum outside the int64 range
        OutOfRange (nothing written). ttl_ms > 0 makes the counter expire
        that many milliseconds later; 0 keeps its expiry.
        """
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        if not -(1 << 63) <= delta < (1 << 63):
            raise ValueError("delta must fit in a signed 64-bit integer")
        request = kv_pb2.IncrementRequest(key=_to_bytes(key, "key"), delta=delta,
                                          must_exist=must_exist, ttl_ms=ttl_ms,
                                          namespace=namespace)
        resp = self._unary("strata.v1.KV/Increment", request, timeout)
        return int(resp.value)

    def json_get(self, key: BytesLike, pointer: str = "", *,
                 timeout: Timeout = DEFAULT_TIMEOUT) -> Any:
        """The value at pointer (RFC 6901, "" = the whole document, "/a/0")
        of the JSON value of key, as Python objects.

        NotFound for a missing key, or for a pointer that does not resolve
        (the message says which); FailedPrecondition for a key of another
        type; InvalidArgument for a malformed pointer.
        """
        request = kv_pb2.JsonGetRequest(key=_to_bytes(key, "key"), pointer=pointer)
        resp = self._unary("strata.v1.KV/JsonGet", request, timeout)
        return json.loads(resp.json)

    def json_update(self, key: BytesLike, *, merge_patch: Any = _UNSET,
                    json_patch: Any = _UNSET,
                    timeout: Timeout = DEFAULT_TIMEOUT) -> Any:
        """Applies a JSON Merge Patch (RFC 7386) or a JSON Patch (RFC 6902)
        to the JSON value of key atomically, and returns the new document
        as Python objects.

        Exactly one of merge_patch (e.g. {"a": 2, "b": None}: sets a,
        removes b) and json_patch (e.g. [{"op": "add", "path": "/a",
        "value": 2}]). Python values are serialized with json.dumps; bytes
        are sent as JSON text as they are. NotFound for a missing key;
        InvalidArgument for a patch that is not valid; FailedPrecondition
        for a key of another type or a JSON Patch that does not apply (a
        failed "test"): nothing is written then.
        """
        if (merge_patch is _UNSET) == (json_patch is _UNSET):
            raise ValueError("json_update: pass exactly one of merge_patch and json_patch")
        if merge_patch is not _UNSET:
            request = kv_pb2.JsonUpdateRequest(
                key=_to_bytes(key, "key"), merge_patch=_json_text(merge_patch, "merge_patch"))
        else:
            request = kv_pb2.JsonUpdateRequest(
                key=_to_bytes(key, "key"), json_patch=_json_text(json_patch, "json_patch"))
        resp = self._unary("strata.v1.KV/JsonUpdate", request, timeout)
        return json.loads(resp.json)

    # Leases (docs/expiry.md): keys attached to a lease are deleted, all at
    # one revision, when it expires (its TTL passes without a keep-alive) or
    # is revoked. Unknown or expired leases raise NotFound.

    def lease_grant(self, ttl_seconds: int, *, id: int = 0,  # noqa: A002 - the wire name
                    timeout: Timeout = DEFAULT_TIMEOUT) -> LeaseGrantResult:
        """Creates a lease of ttl_seconds (id 0 = the server picks one).

        Returns a LeaseGrantResult (.id, .ttl_seconds, .revision).
        """
        resp = self._unary("strata.v1.KV/LeaseGrant",
                           kv_pb2.LeaseGrantRequest(ttl_seconds=int(ttl_seconds), id=int(id)),
                           timeout)
        return LeaseGrantResult(id=int(resp.id), ttl_seconds=int(resp.ttl_seconds),
                                revision=int(resp.header.revision))

    def lease_revoke(self, lease: int, *, timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Ends the lease now, deleting its keys at one revision (returned)."""
        resp = self._unary("strata.v1.KV/LeaseRevoke",
                           kv_pb2.LeaseRevokeRequest(id=int(lease)), timeout)
        return int(resp.header.revision)

    def lease_keep_alive(self, lease: int, *, timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Renews the lease to its full TTL (durably); returns the TTL in seconds."""
        resp = self._unary("strata.v1.KV/LeaseKeepAlive",
                           kv_pb2.LeaseKeepAliveRequest(id=int(lease)), timeout)
        return int(resp.ttl_seconds)

    def lease_time_to_live(self, lease: int, *, keys: bool = False,
                           timeout: Timeout = DEFAULT_TIMEOUT) -> LeaseTimeToLiveResult:
        """The lease's remaining and granted TTL, and with keys=True its keys."""
        resp = self._unary("strata.v1.KV/LeaseTimeToLive",
                           kv_pb2.LeaseTimeToLiveRequest(id=int(lease), keys=bool(keys)), timeout)
        return LeaseTimeToLiveResult(id=int(resp.id), ttl_seconds=int(resp.ttl_seconds),
                                     granted_ttl=int(resp.granted_ttl),
                                     keys=[bytes(k) for k in resp.keys])

    def lease_leases(self, *, timeout: Timeout = DEFAULT_TIMEOUT) -> List[int]:
        """The ids of every live lease, ascending."""
        resp = self._unary("strata.v1.KV/LeaseLeases", kv_pb2.LeaseLeasesRequest(), timeout)
        return [int(i) for i in resp.ids]

    def keep_alive(self, lease: int, *, interval: Optional[float] = None) -> LeaseKeeper:
        """Keeps the lease alive from a background thread until stopped.

        Renews every interval seconds (default: a third of the lease's TTL).
        Returns a LeaseKeeper: use it as a context manager or call stop();
        .error holds the exception that ended it early (e.g. NotFound once
        the lease expired or was revoked), else None.
        """
        return LeaseKeeper(self, int(lease), interval)

    def delete(self, key: BytesLike, *, timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Removes key (a missing key is fine); durable when it returns.

        Returns the revision of the delete; for a missing key nothing
        changes and the current revision is returned.
        """
        resp = self._routed_unary("strata.v1.KV/Delete",
                           kv_pb2.DeleteRequest(key=_to_bytes(key, "key")), timeout)
        return int(resp.header.revision)

    def write(self, batch: Union[WriteBatch, Iterable[WriteOp]], *,
              timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Applies every mutation of batch atomically, in order, at one revision.

        batch is a WriteBatch, or an iterable of ("put", key, value) and
        ("delete", key) tuples (ValueError for any other shape). Returns the
        revision (the current one if the batch changed nothing).
        """
        if not isinstance(batch, WriteBatch):
            batch = WriteBatch.from_ops(batch)
        resp = self._unary("strata.v1.KV/Write", batch.to_request(), timeout)
        return int(resp.header.revision)

    @overload
    def scan(self, start: BytesLike = b"", end: BytesLike = b"", limit: int = 0,
             keys_only: bool = False, *, prefix: Optional[BytesLike] = None,
             revision: int = 0, reverse: bool = False, metadata: Literal[False] = False,
             timeout: Timeout = DEFAULT_TIMEOUT) -> ScanIterator[Pair]: ...

    @overload
    def scan(self, start: BytesLike = b"", end: BytesLike = b"", limit: int = 0,
             keys_only: bool = False, *, prefix: Optional[BytesLike] = None,
             revision: int = 0, reverse: bool = False, metadata: Literal[True],
             timeout: Timeout = DEFAULT_TIMEOUT) -> ScanIterator[KeyValue]: ...

    def scan(self, start: BytesLike = b"", end: BytesLike = b"", limit: int = 0,
             keys_only: bool = False, *, prefix: Optional[BytesLike] = None,
             revision: int = 0, reverse: bool = False, metadata: bool = False,
             timeout: Timeout = DEFAULT_TIMEOUT
             ) -> Union[ScanIterator[Pair], ScanIterator[KeyValue]]:
        """Streams the pairs with start <= key < end in key order.

        An empty end means no upper bound; prefix=p instead of start/end
        scans the keys starting with p. limit=0 means no limit (ValueError
        outside [0, 2**32)); keys_only returns b"" for every value; reverse
        streams in descending key order (same bounds; limit counts from the
        end). All pairs are read at one revision: `revision`, or (0) the
        latest when the call starts; the iterator's .revision says which.
        Yields (key, value) tuples, or KeyValue objects with metadata=True.
        The call starts now; pairs arrive as you iterate.
        """
        if limit < 0 or limit > 0xFFFFFFFF:
            raise ValueError("limit must be in [0, 2**32)")
        if prefix is not None:
            if start != b"" or end != b"":
                raise ValueError("scan: pass prefix or start/end, not both")
            start = _to_bytes(prefix, "prefix")
            end = prefix_end(start)
        request = kv_pb2.ScanRequest(start_key=_to_bytes(start, "start"),
                                     end_key=_to_bytes(end, "end"),
                                     limit=limit, keys_only=keys_only,
                                     revision=_revision(revision), reverse=bool(reverse))
        call = self._server_stream("strata.v1.KV/Scan", request, timeout)
        if metadata:
            return ScanIterator(call, KeyValue.from_proto)
        return ScanIterator(call, _pair)

    def backup(self, *, since_revision: int = 0, namespace: Optional[str] = None,
               timeout: Optional[float] = None) -> Iterator[Any]:
        """Streams a full, consistent backup of the store (the raw Backup RPC).

        Yields the kv_pb2.BackupResponse messages as the server sends them:
        a BackupBegin (.begin: revision, total_bytes, files), the chunks of
        every file (.chunk), then the BackupManifest (.manifest, with each
        file's XXH64). With since_revision > 0, an incremental backup of
        the changes committed after it: a BackupBegin with from_revision,
        BackupChangeChunks (.changes), then the manifest; OutOfRange if
        those changes are no longer retained (take a full backup). No
        deadline by default (timeout=None). One backup runs at a time on a
        server: another raises ResourceExhausted. backup_to_file writes
        them as a backup file (docs/backup.md).

        namespace (default: the client's namespace; "" on a client without
        one: the whole node): a backup of that namespace only, format 3
        (BackupKeysChunks in .keys; docs/backup.md "One namespace");
        NotFound if it does not exist, Unimplemented with since_revision.
        """
        request = kv_pb2.BackupRequest(since_revision=int(since_revision))
        if namespace is not None:
            request.namespace = _namespace(namespace)
        call = self._server_stream("strata.v1.KV/Backup", request, timeout)
        try:
            for message in call:
                yield message
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def backup_to_file(self, path: str, *, since_revision: int = 0,
                       namespace: Optional[str] = None,
                       timeout: Optional[float] = None) -> int:
        """Writes a backup to `path` in the backup file format.

        The format is docs/backup-format.md (what `strata backup create`
        writes, read by `strata backup verify` and strata-server
        --restore_from). since_revision > 0: an incremental backup of the
        changes after it (`strata backup create --since`); namespace: a
        backup of one namespace, as backup() (`strata -n NS backup
        create`). Written to
        path + ".partial", fsynced, and renamed once the final manifest has
        arrived. Returns the revision the backup holds (its last one).
        """
        partial = path + ".partial"
        revision = 0
        complete = False
        header = False
        try:
            with open(partial, "wb") as out:
                for message in self.backup(since_revision=since_revision,
                                           namespace=namespace, timeout=timeout):
                    if not header:
                        # The file's version is the BackupBegin's: 1 full, 2
                        # incremental, 3 one namespace.
                        version = message.begin.format_version if message.HasField("begin") else 0
                        out.write(b"STRATABK" + struct.pack("<I", version or 1))
                        header = True
                    data = message.SerializeToString()
                    out.write(struct.pack("<I", len(data)) + data)
                    revision = int(message.header.revision)
                    complete = message.HasField("manifest")
                if not complete:
                    raise OSError("the backup stream ended without its manifest")
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise
        return revision

    def batch_get(self, keys: Iterable[BytesLike], *, revision: int = 0,
                  timeout: Timeout = DEFAULT_TIMEOUT) -> BatchGetResult:
        """Reads every key at one revision (0 = the latest).

        Returns a BatchGetResult: .revision read at, .kvs one KeyValue (or
        None for a missing key) per key in request order, .values the
        values. 1..10,000 keys (the server's --max_batch_mutations); more,
        or none, raises InvalidArgument.
        """
        request = kv_pb2.BatchGetRequest(keys=[_to_bytes(k, "key") for k in keys],
                                         revision=_revision(revision))
        resp: kv_pb2.BatchGetResponse = self._unary("strata.v1.KV/BatchGet", request, timeout)
        kvs = [KeyValue.from_proto(r, key=k) if r.found else None
               for k, r in zip(request.keys, resp.results)]
        return BatchGetResult(revision=int(resp.header.revision), kvs=kvs)

    def delete_range(self, start: BytesLike, end: BytesLike, *, prev_kv: bool = False,
                     timeout: Timeout = DEFAULT_TIMEOUT) -> DeleteRangeResult:
        """Deletes every key with start <= key < end atomically, at one revision.

        An empty start is the first key and an empty end no upper bound, so
        delete_range(b"", b"") deletes everything (both are required for
        that reason); prefix_range(p) gives the bounds of a prefix. Returns
        a DeleteRangeResult: .revision, .deleted (a count) and, with prev_kv,
        .prev_kvs (the deleted pairs in key order; over the server's
        --max_batch_mutations of them raises FailedPrecondition and deletes
        nothing).
        """
        request = kv_pb2.DeleteRangeRequest(start_key=_to_bytes(start, "start"),
                                            end_key=_to_bytes(end, "end"), prev_kv=prev_kv)
        resp: kv_pb2.DeleteRangeResponse = self._unary("strata.v1.KV/DeleteRange",
                                                       request, timeout)
        return DeleteRangeResult(revision=int(resp.header.revision), deleted=int(resp.deleted),
                                 prev_kvs=[KeyValue.from_proto(kv) for kv in resp.prev_kvs])

    # Transactions (docs/transactions.md): txn is etcd's compare -> then/else
    # in one round trip; transaction() and run_transaction() are optimistic
    # read-write transactions that end in one commit().

    def txn(self, compare: Iterable[Compare] = (), success: Iterable[TxnOp] = (),
            failure: Iterable[TxnOp] = (), *, timeout: Timeout = DEFAULT_TIMEOUT) -> TxnResult:
        """Evaluates every Compare and, if all hold, runs the success ops,
        else the failure ops, atomically at one revision (etcd's Txn).

        Returns a TxnResult: .succeeded (whether the compares held), .results
        (one TxnOpResult per op of the branch that ran: .kv for a get, .kvs
        for a scan, .counter for an increment, .json and .document for
        json_get, json_merge_patch and json_patch) and .revision (the revision it committed at, or the
        current one if it wrote nothing). No compares: the success branch
        runs. InvalidArgument (nothing written) for more than the server's
        --max_batch_mutations compares or ops per branch, a bad key or
        value, a branch that writes a key twice, or a put with a TTL or a
        lease; FailedPrecondition if range compares cover more than
        --max_batch_mutations keys or the response would exceed
        --max_message_bytes. A typed op that fails (a missing key, a key of
        another type, an overflow, a JSON Patch "test") fails the whole Txn
        with its error (NotFound, FailedPrecondition, OutOfRange), nothing
        written; the message names the op ("success op 2: ...").
        """
        compares, ok_ops, else_ops = list(compare), list(success), list(failure)
        for c in compares:
            if not isinstance(c, Compare):
                raise TypeError(f"compare must hold Compare values, not {type(c).__name__}")
        for op in ok_ops + else_ops:
            if not isinstance(op, TxnOp):
                raise TypeError(f"success and failure must hold TxnOp values, "
                                f"not {type(op).__name__}")
        request = kv_pb2.TxnRequest(compare=[c.to_proto() for c in compares],
                                    success=[op.message for op in ok_ops],
                                    failure=[op.message for op in else_ops])
        resp: kv_pb2.TxnResponse = self._unary("strata.v1.KV/Txn", request, timeout)
        ops = ok_ops if resp.succeeded else else_ops
        if len(resp.responses) != len(ops):
            raise Internal(grpc.StatusCode.INTERNAL,
                           f"Txn: the branch has {len(ops)} ops, the server answered "
                           f"{len(resp.responses)}")
        results = []
        for op, r in zip(ops, resp.responses):
            if op.kind == "get":
                kv = KeyValue.from_proto(r.get, key=op.key) if r.get.found else None
                results.append(TxnOpResult(kind="get", kv=kv))
            elif op.kind == "scan":
                results.append(TxnOpResult(kind="scan",
                                           kvs=[KeyValue.from_proto(p) for p in r.scan.pairs]))
            elif op.kind == "increment":
                results.append(TxnOpResult(kind="increment", counter=int(r.increment.value)))
            elif op.kind == "json_get":
                results.append(TxnOpResult(kind="json_get", json=bytes(r.json_get.json)))
            elif op.kind == "json_update":
                results.append(TxnOpResult(kind="json_update", json=bytes(r.json_update.json)))
            else:
                results.append(TxnOpResult(kind=op.kind))
        return TxnResult(succeeded=bool(resp.succeeded), results=results,
                         revision=int(resp.header.revision))

    def commit(self, read_revision: int, read_keys: Iterable[BytesLike] = (),
               read_ranges: Iterable[Tuple[BytesLike, BytesLike]] = (),
               mutations: Union[WriteBatch, Iterable[WriteOp]] = (), *,
               timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Commits an optimistic transaction that read read_keys and
        read_ranges ((start, end) pairs, end b"" = no upper bound) at
        read_revision: applies mutations (a WriteBatch or write() tuples)
        atomically at a new revision, which it returns, iff nothing it read
        changed after read_revision. The low-level call under
        transaction(); prefer that.

        Aborted (nothing written) if a read key, or a key in a read range
        (created, changed or deleted: no phantoms), changed after
        read_revision; the message names the first. FailedPrecondition if
        read_revision is below the compacted revision ("transaction too
        old") or a range read is older than the server's window of recent
        writes; InvalidArgument if it is above the current revision. With
        no reads it is a blind write, committed unconditionally.
        """
        if not isinstance(mutations, WriteBatch):
            mutations = WriteBatch.from_ops(mutations)
        ranges = [(_to_bytes(s, "read range start"), _to_bytes(e, "read range end"))
                  for s, e in read_ranges]
        return self._commit_mutations(_revision(read_revision, "read_revision"),
                                      [_to_bytes(k, "read key") for k in read_keys], ranges,
                                      list(mutations.to_request().mutations), timeout)

    def _commit_mutations(self, read_revision: int, read_keys: List[bytes],
                          read_ranges: List[Tuple[bytes, bytes]], mutations: List[Any],
                          timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """The Commit RPC with converted arguments (mutations: kv_pb2.Mutation)."""
        request = kv_pb2.CommitRequest(
            read_revision=read_revision, read_keys=read_keys,
            read_ranges=[kv_pb2.KeyRange(start_key=s, end_key=e) for s, e in read_ranges],
            mutations=mutations)
        resp = self._unary("strata.v1.KV/Commit", request, timeout)
        return int(resp.header.revision)

    def transaction(self) -> Transaction:
        """A new optimistic read-write transaction (see Transaction):

            with db.transaction() as tx:
                tx.put("n", str(int(tx.get("n") or 0) + 1))

        Its first read pins a revision and every read is made at it (with the
        transaction's own buffered writes applied); leaving the block without
        an exception commits (Aborted if something it read changed since: run
        it again, or use run_transaction); a transaction that only read never
        calls the server to commit.
        """
        return Transaction(self)

    def run_transaction(self, fn: Callable[[Transaction], R], *, max_attempts: int = 10,
                        initial_backoff: float = 0.01, max_backoff: float = 1.0,
                        on_retry: Optional[Callable[[int, Aborted], None]] = None) -> R:
        """Runs fn(tx) in a new Transaction and commits it; returns what fn
        returned. If the commit is Aborted (another write changed what fn
        read), sleeps and runs fn again in a fresh transaction, up to
        max_attempts times in all; then raises Aborted, saying so.

        The sleep before retry n is min(max_backoff, initial_backoff *
        2**(n-1)) seconds times a random factor in [0.5, 1) (jitter, so
        clients that conflicted do not collide again in step). on_retry(n,
        error) is called before each retry with the attempt that failed
        (1-based) and its Aborted error, e.g. for logging. fn must do all its
        reads and writes through tx and may run several times; any other
        exception from fn (or from the commit) ends it at once, nothing
        committed, and propagates. fn may commit tx itself.
        """
        return run_transaction(self, fn, max_attempts=max_attempts,
                               initial_backoff=initial_backoff, max_backoff=max_backoff,
                               on_retry=on_retry)

    def compact(self, revision: int, *, timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Discards the history before revision (etcd's Compact).

        Afterwards reads at lower revisions, and watches from them, raise
        OutOfRange. revision must be above the current compacted revision and
        at most the current revision (else OutOfRange); 0 is
        InvalidArgument. Returns the current revision.
        """
        request = kv_pb2.CompactRequest(revision=_revision(revision))
        resp = self._unary("strata.v1.KV/Compact", request, timeout)
        return int(resp.header.revision)

    def watch(self, key: Optional[BytesLike] = None, *, prefix: Optional[BytesLike] = None,
              range_end: Optional[BytesLike] = None, start_revision: int = 0,
              prev_kv: bool = False, progress_notify: bool = False,
              resume: Union[bool, ResumePolicy] = True,
              timeout: Timeout = DEFAULT_TIMEOUT) -> Watch:
        """Streams every change to a key or range: a Watch, iterated for
        WatchEvents in revision order (docs/revisions.md, "Watch").

        What: key alone, one key; key and range_end, [key, range_end)
        (range_end b"\\x00": every key >= key); prefix, every key starting
        with it (b"": every key). start_revision is the first revision
        reported; 0 means changes after the current revision. prev_kv adds
        each key's previous state to its events; progress_notify yields
        PROGRESS events while nothing changes (every
        --watch_progress_interval on the server).

        Returns once the server has opened the stream, so every write that
        commits afterwards is delivered; timeout bounds that wait only (the
        stream itself has no deadline). Raises here if it cannot be opened
        (e.g. Unavailable, InvalidArgument, OutOfRange for a compacted
        start_revision). Once open, resume (True: ResumePolicy(); False:
        off) reopens a stream that broke with UNAVAILABLE (the server
        stopped or restarted) from the last revision received + 1, without
        duplicating or skipping an event. close() the Watch (or use `with`)
        to cancel it.
        """
        if prefix is not None:
            if key is not None or range_end is not None:
                raise ValueError("watch: pass key (and range_end) or prefix, not both")
            k = _to_bytes(prefix, "prefix")
            end = prefix_end(k) or b"\x00"
        elif key is not None:
            k = _to_bytes(key, "key")
            end = b"" if range_end is None else _to_bytes(range_end, "range_end")
        else:
            raise ValueError("watch: pass key= or prefix=")
        request = kv_pb2.WatchRequest(key=k, range_end=end,
                                      start_revision=_revision(start_revision, "start_revision"),
                                      prev_kv=prev_kv, progress_notify=progress_notify)
        policy: Optional[ResumePolicy]
        if isinstance(resume, ResumePolicy):
            policy = resume
        else:
            policy = ResumePolicy() if resume else None
        self._with_namespace(request)
        call = self._calls["strata.v1.KV/Watch"]
        return Watch(lambda req, ready: call(req, timeout=None, wait_for_ready=ready), request,
                     progress_notify=progress_notify, resume=policy,
                     timeout=self._deadline(timeout))

    # Namespaces (docs/namespaces.md): names are 1..255 bytes of
    # [A-Za-z0-9._/-] (else InvalidArgument). Quotas: 0 = unlimited.

    def create_namespace(self, name: str, *, quota_bytes: int = 0, quota_keys: int = 0,
                         timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Creates an empty namespace; AlreadyExists if it exists. Returns the revision."""
        resp = self._unary("strata.v1.KV/CreateNamespace",
                           kv_pb2.CreateNamespaceRequest(name=name, quota_bytes=int(quota_bytes),
                                                         quota_keys=int(quota_keys)), timeout)
        return int(resp.header.revision)

    def delete_namespace(self, name: str, *, timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Deletes a namespace and all its keys at once (fast whatever its size);
        NotFound if it does not exist. Returns the revision."""
        resp = self._unary("strata.v1.KV/DeleteNamespace",
                           kv_pb2.DeleteNamespaceRequest(name=name), timeout)
        return int(resp.header.revision)

    def list_namespaces(self, prefix: str = "", *,
                        timeout: Timeout = DEFAULT_TIMEOUT) -> List[NamespaceInfo]:
        """The namespaces whose names start with prefix, in name order (the
        default namespace is not listed)."""
        resp = self._unary("strata.v1.KV/ListNamespaces",
                           kv_pb2.ListNamespacesRequest(prefix=prefix), timeout)
        return [NamespaceInfo(name=n.name, quota_bytes=int(n.quota_bytes),
                              quota_keys=int(n.quota_keys),
                              approximate_keys=int(n.approximate_keys),
                              approximate_bytes=int(n.approximate_bytes))
                for n in resp.namespaces]

    def update_namespace(self, name: str, *, quota_bytes: Optional[int] = None,
                         quota_keys: Optional[int] = None,
                         timeout: Timeout = DEFAULT_TIMEOUT) -> int:
        """Sets the quotas given (0 = unlimited); a quota left as None stays
        as it is (the server keeps it atomically). NotFound if the namespace
        does not exist. Returns the revision."""
        resp = self._unary("strata.v1.KV/UpdateNamespace",
                           kv_pb2.UpdateNamespaceRequest(
                               name=name,
                               quota_bytes=int(quota_bytes or 0),
                               keep_quota_bytes=quota_bytes is None,
                               quota_keys=int(quota_keys or 0),
                               keep_quota_keys=quota_keys is None), timeout)
        return int(resp.header.revision)

    def health(self, service: str = "", *, timeout: Timeout = DEFAULT_TIMEOUT) -> bool:
        """Asks the standard health service (grpc.health.v1.Health/Check).

        service "" is the whole server; "strata.v1.KV" the KV service. Returns
        True when it is SERVING, False otherwise (NOT_SERVING once shutdown
        has begun). An unknown service raises NotFound.
        """
        resp = self._unary(_rpc.HEALTH_CHECK.full_name,
                           _rpc.HealthCheckRequest(service=service), timeout)
        return int(resp.status) == _rpc.SERVING

    # strata.v1.Cluster (docs/cluster.md): any node of a cluster answers from
    # the range map it watches in etcd (it may trail etcd briefly); a node
    # that is not clustered answers Unimplemented.

    def get_range_map(self, *, timeout: Timeout = DEFAULT_TIMEOUT) -> RangeMap:
        """The cluster's range map: its ranges (primary, replicas, in-sync
        set, epoch), the replicas' addresses and its etcd revision."""
        resp = self._unary("strata.v1.Cluster/GetRangeMap",
                           _rpc.METHODS["strata.v1.Cluster/GetRangeMap"].request(), timeout)
        return RangeMap.from_proto(resp)

    def cluster_status(self, *, timeout: Timeout = DEFAULT_TIMEOUT) -> ClusterStatus:
        """The range map plus membership, liveness, the controller and the
        cluster's configuration (what `strata cluster status` shows)."""
        resp = self._unary("strata.v1.Cluster/GetClusterStatus",
                           _rpc.METHODS["strata.v1.Cluster/GetClusterStatus"].request(), timeout)
        return ClusterStatus.from_proto(resp)

    def close(self) -> None:
        """Closes the channel (and the followed primary's); in-flight calls
        are cancelled. Idempotent."""
        self._channel.close()
        self._route.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


class _Route:
    """The primary a Client (and its in_namespace copies) follows: its
    address and the callables on a channel to it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._address: Optional[str] = None
        self._channel: Optional[grpc.Channel] = None
        self._calls: Optional[Dict[str, Any]] = None
        # Whether the next routed call first asks target for the range map:
        # "wanted" before the first call and after a forget, "done" once
        # asked, "unimplemented" (a standalone server) never again.
        self._map = "wanted"

    def take_map_turn(self) -> bool:
        """True (once) if the calling call is to ask for the range map: none
        asked since the start or the last forget, and no primary followed."""
        with self._lock:
            if self._map != "wanted" or self._calls is not None:
                return False
            self._map = "done"
            return True

    def map_unimplemented(self) -> None:
        with self._lock:
            self._map = "unimplemented"

    def follow_if_none(self, address: str, dial: Callable[[str], grpc.Channel],
                       callables: Callable[[grpc.Channel], Dict[str, Any]]) -> None:
        """Follows address unless a primary is followed already (another
        call followed a trailer meanwhile)."""
        with self._lock:
            if self._calls is None:
                self._switch_locked(address, dial, callables)

    def calls(self) -> Optional[Dict[str, Any]]:
        with self._lock:
            return self._calls

    def address(self) -> Optional[str]:
        with self._lock:
            return self._address

    def follow(self, address: str, dial: Callable[[str], grpc.Channel],
               callables: Callable[[grpc.Channel], Dict[str, Any]]) -> Dict[str, Any]:
        """Switches to address (keeps the channel if it is already the one
        followed); returns its callables."""
        with self._lock:
            if self._address == address and self._calls is not None:
                return self._calls
            return self._switch_locked(address, dial, callables)

    def _switch_locked(self, address: str, dial: Callable[[str], grpc.Channel],
                       callables: Callable[[grpc.Channel], Dict[str, Any]]) -> Dict[str, Any]:
        """Follows address (dialing is lazy: nothing blocks here) and returns
        its callables. The old channel is dropped, not closed: calls still
        running on it (another thread's) finish; gRPC closes it once
        unreferenced. REQUIRES: self._lock held."""
        self._channel = dial(address)
        self._calls = callables(self._channel)
        self._address = address
        return self._calls

    def forget(self, calls: Dict[str, Any]) -> None:
        """Stops following the primary whose callables are calls (it is gone
        or fenced), so the next call goes to target; a no-op if another call
        has followed a newer primary since. Like follow, drops the channel
        without closing it: calls still running on it finish (their
        callables keep the underlying channel alive)."""
        with self._lock:
            if self._calls is calls:
                self._channel, self._calls, self._address = None, None, None
                # A miss: the next call asks the range map again.
                if self._map == "done":
                    self._map = "wanted"

    def close(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
            self._calls, self._address = None, None
        if channel is not None:
            channel.close()


# How long routing waits for the range map before it sends the call to target.
_RANGE_MAP_TIMEOUT = 2.0


def _lost_primary(e: grpc.RpcError) -> bool:
    """Whether a call to a followed primary found it no longer (reachable as)
    the primary: Unavailable (gone or unreachable) or FailedPrecondition (a
    fenced old primary; callers first check that it names no primary)."""
    return isinstance(e, grpc.Call) and e.code() in (
        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION)


@dataclass(frozen=True)
class NamespaceInfo:
    """One namespace (list_namespaces). Quotas: 0 = unlimited."""

    name: str
    quota_bytes: int
    quota_keys: int
    approximate_keys: int
    approximate_bytes: int


def _namespace(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"namespace must be a str, not {type(name).__name__}")
    return name


__all__ = ["Client", "NamespaceInfo", "WriteBatch", "ScanIterator", "BytesLike", "WriteOp",
           "Timeout", "DEFAULT_TIMEOUT", "ChannelOptions", "Pair"]
