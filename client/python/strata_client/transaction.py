"""Optimistic read-write transactions over a Client (docs/transactions.md).

FoundationDB's model, as the C++ client's strata::Transaction:

  - the first read pins a revision (the latest one then); every later read is
    made at it, so the transaction sees one snapshot;
  - writes are buffered in the transaction, and its reads see them;
  - commit() sends the buffered writes with what was read (keys and scanned
    ranges); the server applies them at a new revision only if nothing read
    changed after the pinned revision, else it raises Aborted (nothing
    written) and the transaction must run again from the start.

Committed read-write transactions are serializable; a transaction that only
reads is a snapshot read and never calls the server to commit.

    with db.transaction() as tx:                 # commits when the block ends
        tx.put("n", str(int(tx.get("n") or 0) + 1))

    def transfer(tx):                            # may run several times
        a, b = int(tx.get("a")), int(tx.get("b"))
        tx.put("a", str(a - 10)); tx.put("b", str(b + 10))
    db.run_transaction(transfer)                 # retries on Aborted
"""

from __future__ import annotations

import random
import time
from types import TracebackType
from typing import (TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Type,
                    TypeVar)

import grpc

from ._convert import BytesLike, to_bytes, value_type_name
from ._gen import kv_pb2
from .errors import Aborted
from .results import ValueType, prefix_end

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

R = TypeVar("R")

# A buffered write: (value, type) for a put, None for a delete.
_Write = Optional[Tuple[bytes, ValueType]]


class Transaction:
    """One optimistic read-write transaction on a Client (Client.transaction).

    Use it as a context manager (commits when the block ends without an
    exception; an exception discards it, nothing is sent) or call commit().
    Client.run_transaction runs a function in one and retries it on Aborted.
    Keys and values are bytes (str is encoded as UTF-8). Reads raise the
    errors of Client.get and Client.scan (OutOfRange once the pinned revision
    has been compacted). Not thread-safe: one thread at a time.

    Attributes:
      attempt: 1 for the first attempt of run_transaction, 2 for its first
        retry, ...
      revision: after a commit, the revision it committed at (for a
        read-only transaction: its read revision); None before.
    """

    def __init__(self, client: Client, attempt: int = 1) -> None:
        self._client = client
        self.attempt = attempt
        self.revision: Optional[int] = None
        self._read_revision: Optional[int] = None
        self._read_keys: Dict[bytes, None] = {}  # an ordered set
        self._read_ranges: List[Tuple[bytes, bytes]] = []
        self._writes: Dict[bytes, _Write] = {}
        self._finished = False

    @property
    def read_revision(self) -> Optional[int]:
        """The pinned revision every read is made at; None before the first read."""
        return self._read_revision

    @property
    def read_keys(self) -> List[bytes]:
        """The keys read so far, in first-read order (what commit sends)."""
        return list(self._read_keys)

    @property
    def read_ranges(self) -> List[Tuple[bytes, bytes]]:
        """The ranges scanned so far as (start, end), end b"" = no upper bound."""
        return list(self._read_ranges)

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("the transaction has already committed or been discarded")

    def _pin(self, revision: int) -> None:
        if self._read_revision is None:
            self._read_revision = revision

    def _snapshot_is_empty(self) -> bool:
        # Revision 0 is the store before its first write: nothing exists in it.
        # Asking the server "at revision 0" would mean "the latest", which is
        # not this snapshot, so such reads are answered here.
        return self._read_revision == 0

    def get(self, key: BytesLike) -> Optional[bytes]:
        """The value of key in the transaction's snapshot, with its own
        writes applied; None if it does not exist. The first read pins the
        snapshot. The key is recorded as read (unless this transaction wrote
        it: then nothing is read from the server)."""
        self._check_open()
        k = to_bytes(key, "key")
        if k in self._writes:
            w = self._writes[k]
            return None if w is None else w[0]
        value: Optional[bytes] = None
        if not self._snapshot_is_empty():
            r = self._client.get_with_metadata(k, revision=self._read_revision or 0)
            self._pin(r.revision)
            value = r.value
        self._read_keys[k] = None
        return value

    def scan(self, start: BytesLike = b"", end: BytesLike = b"", limit: int = 0, *,
             prefix: Optional[BytesLike] = None) -> List[Tuple[bytes, bytes]]:
        """The (key, value) pairs with start <= key < end (end b"": no upper
        bound; or every key starting with prefix) in key order, at most limit
        (0 = all), in the snapshot with the transaction's own writes applied.

        The range is recorded as read (up to the last pair returned when the
        limit cut it short), so a key another writer creates, changes or
        deletes in it makes the commit abort (no phantoms).
        """
        self._check_open()
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 0xFFFFFFFF:
            raise ValueError("limit must be an int in [0, 2**32)")
        if prefix is not None:
            if start != b"" or end != b"":
                raise ValueError("scan: pass prefix or start/end, not both")
            s = to_bytes(prefix, "prefix")
            e = prefix_end(s)
        else:
            s, e = to_bytes(start, "start"), to_bytes(end, "end")
        if e and e <= s:
            return []
        writes = sorted((k, w) for k, w in self._writes.items() if s <= k and (not e or k < e))
        base: List[Tuple[bytes, bytes]] = []
        if not self._snapshot_is_empty():
            # Buffered deletes may hide pairs the server returns: ask for as
            # many more, so a limited scan still fills its limit.
            deletes = sum(1 for _, w in writes if w is None)
            server_limit = 0 if limit == 0 else min(limit + deletes, 0xFFFFFFFF)
            it = self._client.scan(s, e, server_limit, revision=self._read_revision or 0)
            with it:
                base = list(it)
            if it.revision is None:  # pragma: no cover - the server always sends a header
                raise RuntimeError("the server's Scan sent no header (no revision to pin)")
            self._pin(it.revision)
        out = _merge(base, writes, limit)
        # What the result depends on: the whole range, or up to the last pair
        # returned when the limit cut it.
        read_end = e
        if limit and len(out) >= limit:
            read_end = out[-1][0] + b"\x00"
        self._read_ranges.append((s, read_end))
        return out

    def put(self, key: BytesLike, value: BytesLike, *,
            type: ValueType = ValueType.BYTES) -> None:
        """Buffers a put (of a typed value with type=); later writes of the
        same key win. Nothing is sent before commit."""
        self._check_open()
        value_type_name(type)  # TypeError now, not at commit
        self._writes[to_bytes(key, "key")] = (to_bytes(value, "value"), type)

    def delete(self, key: BytesLike) -> None:
        """Buffers a delete of key; nothing is sent before commit."""
        self._check_open()
        self._writes[to_bytes(key, "key")] = None

    def commit(self) -> int:
        """Commits, once; returns the revision.

        A transaction that wrote something sends one Commit with its read set
        and returns the revision it committed at; Aborted if something it
        read changed after its read revision (nothing written: run it again
        from the start), FailedPrecondition if its snapshot is too old. A
        transaction that only read returns its read revision (0 if it read
        nothing) without calling the server: its reads were one snapshot.
        """
        self._check_open()
        self._finished = True
        if not self._writes:
            self.revision = self._read_revision or 0
            return self.revision
        mutations = []
        for k, w in sorted(self._writes.items()):
            if w is None:
                mutations.append(kv_pb2.Mutation(delete=kv_pb2.DeleteRequest(key=k)))
            else:
                mutations.append(kv_pb2.Mutation(put=kv_pb2.PutRequest(
                    key=k, value=w[0], type=value_type_name(w[1]))))
        self.revision = self._client._commit_mutations(
            self._read_revision or 0, list(self._read_keys), self._read_ranges, mutations)
        return self.revision

    def discard(self) -> None:
        """Drops the buffered writes without committing (nothing is sent)."""
        self._finished = True

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if self._finished:
            return
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _merge(base: List[Tuple[bytes, bytes]], writes: List[Tuple[bytes, _Write]],
           limit: int) -> List[Tuple[bytes, bytes]]:
    """The server's pairs with the buffered writes of the range applied (they
    win), in key order, at most limit (0 = all). When the server's answer was
    cut by its limit, the merge reaches limit at or before its last pair (at
    most as many pairs are hidden as there are buffered deletes)."""
    out: List[Tuple[bytes, bytes]] = []
    i = j = 0
    while (limit == 0 or len(out) < limit) and (i < len(base) or j < len(writes)):
        if j == len(writes) or (i < len(base) and base[i][0] < writes[j][0]):
            out.append(base[i])
            i += 1
            continue
        if i < len(base) and base[i][0] == writes[j][0]:
            i += 1
        key, w = writes[j]
        if w is not None:
            out.append((key, w[0]))
        j += 1
    return out


def run_transaction(client: Client, fn: Callable[[Transaction], R], *, max_attempts: int,
                    initial_backoff: float, max_backoff: float,
                    on_retry: Optional[Callable[[int, Aborted], None]]) -> R:
    """Client.run_transaction (see there)."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError("max_attempts must be an int >= 1")
    if not 0 <= initial_backoff <= max_backoff:
        raise ValueError("need 0 <= initial_backoff <= max_backoff (seconds)")
    backoff = initial_backoff
    last: Optional[Aborted] = None
    for attempt in range(1, max_attempts + 1):
        tx = Transaction(client, attempt)
        try:
            result = fn(tx)
            if not tx._finished:
                tx.commit()
            return result
        except Aborted as e:
            last = e
        finally:
            tx._finished = True
        if attempt == max_attempts:
            break
        if on_retry is not None:
            on_retry(attempt, last)
        # Exponential backoff with jitter: clients that conflicted do not
        # collide again in step.
        time.sleep(backoff * random.uniform(0.5, 1.0))
        backoff = min(backoff * 2, max_backoff)
    assert last is not None
    raise Aborted(grpc.StatusCode.ABORTED,
                  f"transaction gave up after {max_attempts} attempts; the last: "
                  f"{last.details}") from last


__all__ = ["Transaction"]
