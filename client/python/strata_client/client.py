"""An idiomatic Python wrapper over the generated strata.v1.KV stubs."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Tuple, Union

import grpc

from .errors import StrataError, from_rpc_error

try:
    from .gen import kv_pb2, kv_pb2_grpc
except ImportError as e:  # pragma: no cover - only without generated stubs
    raise ImportError(
        "strata_client: generated stubs are missing; run client/python/generate.sh "
        f"(needs protoc and grpc_python_plugin): {e}") from e

# Keys and values are bytes on the wire. str is accepted as a convenience and
# encoded as UTF-8; bytes is canonical (and what get/scan return).
BytesLike = Union[bytes, bytearray, memoryview, str]

# Marker for "use the Client's default timeout" (None means "no deadline").
_DEFAULT = object()


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
        self._mutations: list = []

    def put(self, key: BytesLike, value: BytesLike) -> "WriteBatch":
        """Appends a put of key=value. Returns self so calls can be chained."""
        self._mutations.append(kv_pb2.Mutation(
            put=kv_pb2.PutRequest(key=_to_bytes(key, "key"),
                                  value=_to_bytes(value, "value"))))
        return self

    def delete(self, key: BytesLike) -> "WriteBatch":
        """Appends a delete of key. Returns self so calls can be chained."""
        self._mutations.append(kv_pb2.Mutation(
            delete=kv_pb2.DeleteRequest(key=_to_bytes(key, "key"))))
        return self

    def clear(self) -> None:
        """Removes every mutation."""
        self._mutations.clear()

    def __len__(self) -> int:
        return len(self._mutations)

    def to_request(self) -> "kv_pb2.WriteRequest":
        """The WriteRequest message for this batch."""
        return kv_pb2.WriteRequest(mutations=self._mutations)

    @classmethod
    def from_ops(cls, ops: Iterable[tuple]) -> "WriteBatch":
        """Builds a batch from ("put", key, value) and ("delete", key) tuples."""
        batch = cls()
        for op in ops:
            if not isinstance(op, (tuple, list)) or not op:
                raise ValueError(f"bad write op {op!r}")
            if op[0] == "put" and len(op) == 3:
                batch.put(op[1], op[2])
            elif op[0] == "delete" and len(op) == 2:
                batch.delete(op[1])
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

    def __init__(self, call) -> None:
        self._call = call
        self._pending: list = []
        self._pos = 0
        self._done = False
        self.messages = 0

    def __iter__(self) -> "ScanIterator":
        return self

    def __next__(self) -> Tuple[bytes, bytes]:
        while self._pos >= len(self._pending):
            if self._done:
                raise StopIteration
            try:
                resp = next(self._call)
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
        self._pending = []

    def __enter__(self) -> "ScanIterator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown; nothing useful to do
            pass


class Client:
    """A connection to one Strata server (service strata.v1.KV).

    Thread-safe: one Client (one gRPC channel) may be shared by many threads.
    Every method raises a StrataError subclass on failure (see errors.py).

    Args:
      target: "host:port", e.g. "127.0.0.1:50051" (any gRPC target string).
      timeout: default deadline in seconds for each call; None for no deadline.
        For scan() it bounds the whole stream. Each method also takes a
        timeout= argument that overrides it for that call.
      credentials: grpc.ChannelCredentials for TLS; None for plaintext.
      options: extra channel arguments, e.g. [("grpc.max_receive_message_length", n)].
    """

    def __init__(self, target: str, timeout: Optional[float] = 10.0,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 options: Optional[list] = None) -> None:
        self.target = target
        self.timeout = timeout
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = kv_pb2_grpc.KVStub(self._channel)

    def _timeout(self, timeout) -> Optional[float]:
        return self.timeout if timeout is _DEFAULT else timeout

    def _unary(self, method, request, timeout):
        try:
            return method(request, timeout=self._timeout(timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def get(self, key: BytesLike, *, timeout=_DEFAULT) -> Optional[bytes]:
        """Returns the value of key, or None if the key does not exist.

        An existing key with an empty value returns b"" (not None).
        """
        resp = self._unary(self._stub.Get,
                           kv_pb2.GetRequest(key=_to_bytes(key, "key")), timeout)
        return resp.value if resp.found else None

    def put(self, key: BytesLike, value: BytesLike, *, timeout=_DEFAULT) -> None:
        """Sets key to value; durable when it returns. Idempotent."""
        self._unary(self._stub.Put,
                    kv_pb2.PutRequest(key=_to_bytes(key, "key"),
                                      value=_to_bytes(value, "value")), timeout)

    def delete(self, key: BytesLike, *, timeout=_DEFAULT) -> None:
        """Removes key (a missing key is fine); durable when it returns."""
        self._unary(self._stub.Delete,
                    kv_pb2.DeleteRequest(key=_to_bytes(key, "key")), timeout)

    def write(self, batch: Union[WriteBatch, Iterable[tuple]], *,
              timeout=_DEFAULT) -> None:
        """Applies every mutation of batch atomically, in order.

        batch is a WriteBatch, or an iterable of ("put", key, value) and
        ("delete", key) tuples.
        """
        if not isinstance(batch, WriteBatch):
            batch = WriteBatch.from_ops(batch)
        self._unary(self._stub.Write, batch.to_request(), timeout)

    def scan(self, start: BytesLike = b"", end: BytesLike = b"", limit: int = 0,
             keys_only: bool = False, *, timeout=_DEFAULT) -> ScanIterator:
        """Streams the (key, value) pairs with start <= key < end in key order.

        An empty end means no upper bound; limit=0 means no limit; keys_only
        returns b"" for every value. All pairs come from one snapshot taken when
        the call starts. The call starts now; pairs arrive as you iterate.
        """
        if limit < 0 or limit > 0xFFFFFFFF:
            raise ValueError("limit must be in [0, 2**32)")
        request = kv_pb2.ScanRequest(start_key=_to_bytes(start, "start"),
                                     end_key=_to_bytes(end, "end"),
                                     limit=limit, keys_only=keys_only)
        try:
            call = self._stub.Scan(request, timeout=self._timeout(timeout))
        except grpc.RpcError as e:  # pragma: no cover - errors normally come on read
            raise from_rpc_error(e) from e
        return ScanIterator(call)

    def close(self) -> None:
        """Closes the channel; in-flight calls are cancelled. Idempotent."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Client", "WriteBatch", "ScanIterator", "StrataError"]
