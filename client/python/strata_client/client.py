"""A typed Python client over the strata.v1 gRPC services."""

from __future__ import annotations

import enum
from types import MappingProxyType, TracebackType
from typing import (Any, ClassVar, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple, Type, Union)

import grpc

from . import _rpc
from ._gen import kv_pb2
from .errors import from_rpc_error
from .tls import TLSConfig

# Keys and values are bytes on the wire. str is accepted as a convenience and
# encoded as UTF-8; bytes is canonical (and what get/scan return).
BytesLike = Union[bytes, bytearray, memoryview, str]

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


def _to_bytes(value: BytesLike, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


class WriteBatch:
    """An ordered list of puts and deletes that Client.write applies atomically.

    Later mutations of the same key win. Not thread-safe; build it in one thread.
    The server rejects batches over its mutation limit (10,000 by default) with
    InvalidArgument, writing nothing.
    """

    def __init__(self) -> None:
        self._mutations: List[kv_pb2.Mutation] = []

    def put(self, key: BytesLike, value: BytesLike) -> WriteBatch:
        """Appends a put of key=value. Returns self so calls can be chained."""
        self._mutations.append(kv_pb2.Mutation(
            put=kv_pb2.PutRequest(key=_to_bytes(key, "key"),
                                  value=_to_bytes(value, "value"))))
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


class ScanIterator:
    """Iterates the (key, value) pairs of one Scan call as they stream in.

    The server sends pairs in batches (messages of at most ~1 MiB); this
    iterator hides the batching. Stopping early - close(), leaving a `with`
    block, or dropping the iterator (e.g. `break` out of a for loop) - cancels
    the RPC so the server stops reading. Errors raise StrataError subclasses
    from next(). Not thread-safe.

    Attributes:
      messages: how many ScanResponse messages have been received so far.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._pending: Sequence[kv_pb2.KeyValue] = ()
        self._pos = 0
        self._done = False
        self.messages = 0

    def __iter__(self) -> ScanIterator:
        return self

    def __next__(self) -> Tuple[bytes, bytes]:
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
            self._pending = resp.pairs
            self._pos = 0
        kv = self._pending[self._pos]
        self._pos += 1
        return kv.key, kv.value

    def close(self) -> None:
        """Cancels the call if it is still running. Idempotent."""
        if not self._done:
            self._done = True
            self._call.cancel()
        self._pending = ()

    def __enter__(self) -> ScanIterator:
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
        For scan() it bounds the whole stream. Each method also takes a
        timeout= argument that overrides it for that call.
      credentials: grpc.ChannelCredentials for TLS (prefer tls=); None for
        plaintext unless tls is given.
      options: extra channel arguments, e.g. [("grpc.max_receive_message_length", n)].
      tls: a TLSConfig: TLS, or mutual TLS with a client certificate. Its files
        are read here (OSError if one cannot be). Not together with credentials.
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
    })

    def __init__(self, target: str, timeout: Optional[float] = 10.0,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 options: Optional[ChannelOptions] = None, *,
                 tls: Optional[TLSConfig] = None) -> None:
        if tls is not None and credentials is not None:
            raise ValueError("Client: pass tls= or credentials=, not both")
        self.target = target
        self.timeout = timeout
        channel_options: List[Tuple[str, Any]] = list(options or [])
        if tls is not None:
            credentials = tls.channel_credentials()
            channel_options += tls.channel_options()
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        self._calls: Dict[str, Any] = {
            m.full_name: self._callable(m)
            for m in [*_rpc.METHODS.values(), _rpc.HEALTH_CHECK]}

    def _callable(self, method: _rpc.Method) -> Any:
        factory = {
            (False, False): self._channel.unary_unary,
            (False, True): self._channel.unary_stream,
            (True, False): self._channel.stream_unary,
            (True, True): self._channel.stream_stream,
        }[(method.client_streaming, method.server_streaming)]
        return factory(method.path,
                       request_serializer=method.request.SerializeToString,
                       response_deserializer=method.response.FromString)

    def _deadline(self, timeout: Timeout) -> Optional[float]:
        return self.timeout if isinstance(timeout, _Default) else timeout

    def _unary(self, rpc: str, request: Any, timeout: Timeout) -> Any:
        """Calls a unary RPC by full name; returns its response message."""
        try:
            return self._calls[rpc](request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def _server_stream(self, rpc: str, request: Any, timeout: Timeout) -> Any:
        """Starts a server-streaming RPC; returns the call (an iterator)."""
        try:
            return self._calls[rpc](request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:  # pragma: no cover - errors normally come on read
            raise from_rpc_error(e) from e

    def get(self, key: BytesLike, *, timeout: Timeout = DEFAULT_TIMEOUT) -> Optional[bytes]:
        """Returns the value of key, or None if the key does not exist.

        An existing key with an empty value returns b"" (not None).
        """
        resp: kv_pb2.GetResponse = self._unary(
            "strata.v1.KV/Get", kv_pb2.GetRequest(key=_to_bytes(key, "key")), timeout)
        return resp.value if resp.found else None

    def put(self, key: BytesLike, value: BytesLike, *,
            timeout: Timeout = DEFAULT_TIMEOUT) -> None:
        """Sets key to value; durable when it returns. Idempotent."""
        self._unary("strata.v1.KV/Put",
                    kv_pb2.PutRequest(key=_to_bytes(key, "key"),
                                      value=_to_bytes(value, "value")), timeout)

    def delete(self, key: BytesLike, *, timeout: Timeout = DEFAULT_TIMEOUT) -> None:
        """Removes key (a missing key is fine); durable when it returns."""
        self._unary("strata.v1.KV/Delete",
                    kv_pb2.DeleteRequest(key=_to_bytes(key, "key")), timeout)

    def write(self, batch: Union[WriteBatch, Iterable[WriteOp]], *,
              timeout: Timeout = DEFAULT_TIMEOUT) -> None:
        """Applies every mutation of batch atomically, in order.

        batch is a WriteBatch, or an iterable of ("put", key, value) and
        ("delete", key) tuples (ValueError for any other shape).
        """
        if not isinstance(batch, WriteBatch):
            batch = WriteBatch.from_ops(batch)
        self._unary("strata.v1.KV/Write", batch.to_request(), timeout)

    def scan(self, start: BytesLike = b"", end: BytesLike = b"", limit: int = 0,
             keys_only: bool = False, *, timeout: Timeout = DEFAULT_TIMEOUT) -> ScanIterator:
        """Streams the (key, value) pairs with start <= key < end in key order.

        An empty end means no upper bound; limit=0 means no limit (ValueError
        outside [0, 2**32)); keys_only returns b"" for every value. All pairs
        come from one snapshot taken when the call starts. The call starts
        now; pairs arrive as you iterate.
        """
        if limit < 0 or limit > 0xFFFFFFFF:
            raise ValueError("limit must be in [0, 2**32)")
        request = kv_pb2.ScanRequest(start_key=_to_bytes(start, "start"),
                                     end_key=_to_bytes(end, "end"),
                                     limit=limit, keys_only=keys_only)
        return ScanIterator(self._server_stream("strata.v1.KV/Scan", request, timeout))

    def health(self, service: str = "", *, timeout: Timeout = DEFAULT_TIMEOUT) -> bool:
        """Asks the standard health service (grpc.health.v1.Health/Check).

        service "" is the whole server; "strata.v1.KV" the KV service. Returns
        True when it is SERVING, False otherwise (NOT_SERVING once shutdown
        has begun). An unknown service raises NotFound.
        """
        resp = self._unary(_rpc.HEALTH_CHECK.full_name,
                           _rpc.HealthCheckRequest(service=service), timeout)
        return int(resp.status) == _rpc.SERVING

    def close(self) -> None:
        """Closes the channel; in-flight calls are cancelled. Idempotent."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


__all__ = ["Client", "WriteBatch", "ScanIterator", "BytesLike", "WriteOp",
           "Timeout", "DEFAULT_TIMEOUT", "ChannelOptions"]
