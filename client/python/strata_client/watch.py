"""Client.watch: the changes to a key or range, as an iterator that survives
disconnects and server restarts (docs/revisions.md, "Watch").

The server's guarantees (events in revision order, each exactly once, all of a
revision in one message unless it is over 1 MiB) hold for one stream. Watch
keeps them across streams: it remembers how far the stream is complete (every
message's header.revision says so) and, when the stream breaks with
UNAVAILABLE, opens a new one from that revision + 1. The events of a revision
split across messages that arrived before the break are remembered by key (a
revision changes each key at most once) and not delivered again.
"""

from __future__ import annotations

import collections
import enum
import random
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, Deque, Optional, Set, Type

import grpc

from ._gen import kv_pb2
from .errors import DeadlineExceeded, OutOfRange, Unavailable, from_rpc_error
from .results import KeyValue, ValueType, decode_value, value_type


class EventType(str, enum.Enum):
    """What a WatchEvent reports. A str, so `event.type == "PUT"` works too."""

    PUT = "PUT"  # the key was set: key, value and metadata are its new state
    DELETE = "DELETE"  # the key was deleted at `revision`
    PROGRESS = "PROGRESS"  # only with progress_notify: nothing changed up to `revision`


@dataclass(frozen=True)
class WatchEvent:
    """One change (or, with progress_notify, a progress notification).

    Attributes:
      type: EventType.PUT, DELETE or PROGRESS.
      revision: PUT and DELETE: the revision of the change (the key's
        mod_revision). PROGRESS: every change in the range up to this
        revision has been delivered.
      key: the key (b"" for PROGRESS).
      value: PUT: the new value; b"" otherwise.
      create_revision, version: PUT: the key's metadata after the put (as
        KeyValue); 0 otherwise.
      value_type: PUT: the value's ValueType; BYTES otherwise.
      prev_kv: with watch(prev_kv=True), the key's state before the change;
        None if it did not exist (and always None without prev_kv).
    """

    type: EventType
    revision: int
    key: bytes = b""
    value: bytes = b""
    create_revision: int = 0
    version: int = 0
    prev_kv: Optional[KeyValue] = None
    value_type: ValueType = ValueType.BYTES

    @property
    def mod_revision(self) -> int:
        """The same as revision (etcd's name for it)."""
        return self.revision

    @property
    def kv(self) -> KeyValue:
        """The key's new state as a KeyValue (DELETE: value b"", version 0)."""
        return KeyValue(key=self.key, value=self.value, create_revision=self.create_revision,
                        mod_revision=self.revision, version=self.version, type=self.value_type)

    def decoded(self) -> Any:
        """PUT: the new value as a Python object by its type (decode_value)."""
        return decode_value(self.value, self.value_type)

    @classmethod
    def from_proto(cls, event: Any) -> WatchEvent:
        """From a strata.v1.Event."""
        kv = event.kv
        return cls(type=EventType.DELETE if event.type == kv_pb2.Event.DELETE else EventType.PUT,
                   revision=int(kv.mod_revision), key=kv.key, value=kv.value,
                   create_revision=int(kv.create_revision), version=int(kv.version),
                   prev_kv=KeyValue.from_proto(event.prev_kv) if event.HasField("prev_kv") else None,
                   value_type=value_type(int(kv.type)))


@dataclass(frozen=True)
class ResumePolicy:
    """How a Watch reopens its stream after it broke with UNAVAILABLE (the
    server stopped, restarted or could not be reached).

    Attempts wait initial_backoff seconds, then multiplier times longer each
    time up to max_backoff (each wait drawn between half and all of it, so
    many watchers do not reconnect in lockstep); a stream that opens resets
    the wait. give_up_after: seconds of failed attempts after which the
    watch raises the last error (Unavailable); None keeps trying until the
    watch is closed.
    """

    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    give_up_after: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("ResumePolicy: need 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("ResumePolicy: multiplier must be >= 1")
        if self.give_up_after is not None and self.give_up_after < 0:
            raise ValueError("ResumePolicy: give_up_after must be >= 0 or None")


# Opens a Watch call for a request: returns the gRPC call (an iterator of
# WatchResponse messages, with cancel()). With wait_for_ready the call waits
# for the channel to connect instead of failing at once while it cannot.
OpenCall = Callable[[kv_pb2.WatchRequest, bool], Any]


class Watch:
    """The changes to a key or range, in revision order, each exactly once.

    Made by Client.watch, which returns once the server has opened the stream
    (so every write that commits after it returns is delivered). Iterate it
    for WatchEvents; it never ends on its own. close() (or leaving a `with`
    block, or dropping the object) cancels the stream; close() may be called
    from any thread, e.g. to stop another thread blocked in next(), which
    then raises StopIteration. Iterate from one thread at a time.

    With a ResumePolicy (the default), a stream that breaks with UNAVAILABLE
    is reopened from the last revision received + 1, after a backoff, without
    duplicating or skipping an event. Errors raise from next(): OutOfRange
    with compact_revision set when the changes the watch needs were
    compacted; Unavailable when resuming is off or gave up; any other
    StrataError as is. An error ends the watch (next() then raises
    StopIteration).

    Attributes:
      revision: every change in the range up to this revision has been
        returned by next() (progress notifications move it too). Watch again
        from revision + 1 to continue where this watch stopped.
      compact_revision: set when the watch ended by compaction (as the
        OutOfRange error's).
      resumes: how many times the stream was reopened.
    """

    def __init__(self, open_call: OpenCall, request: kv_pb2.WatchRequest, *,
                 progress_notify: bool, resume: Optional[ResumePolicy],
                 timeout: Optional[float]) -> None:
        self._open_call = open_call
        self._request = request
        self._progress_notify = progress_notify
        self._policy = resume
        self._lock = threading.Lock()  # guards _closed and _call
        self._wake = threading.Event()  # set by close() (or giving up): ends a backoff wait
        self._closed = False
        self._call: Any = None
        self._first_of_stream = True
        self._pending: Deque[WatchEvent] = collections.deque()
        # Every change up to _through has been received (returned, or in
        # _pending); every change up to _delivered has been returned.
        start = int(request.start_revision)
        self._through = max(start - 1, 0)
        self._delivered = self._through
        # Events received of a revision split across messages, not yet
        # complete (its later part has not arrived): the revision and keys.
        self._partial_revision = 0
        self._partial_keys: Set[bytes] = set()
        self._compacted: Optional[int] = None
        self.compact_revision: Optional[int] = None
        self.resumes = 0
        self._establish(start, timeout)

    @property
    def revision(self) -> int:
        return self._delivered

    def _establish(self, start: int, timeout: Optional[float]) -> None:
        """Opens the first stream and reads its first message (the server
        sends it when the watch is registered). Raises on failure."""
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   "watch: the deadline expired before the call")
        call = self._start_call(start, wait_for_ready=False)
        opened = threading.Event()
        expired = threading.Event()

        def expire() -> None:
            with self._lock:
                if opened.is_set():
                    return
                expired.set()
            call.cancel()

        timer = threading.Timer(timeout, expire) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            resp = next(call)
        except StopIteration:
            resp = None
        except grpc.RpcError as e:
            if expired.is_set():
                raise DeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED,
                                       f"watch not opened within {timeout} s") from e
            raise self._error(e) from e
        finally:
            with self._lock:
                opened.set()
            if timer is not None:
                timer.cancel()
        if expired.is_set():  # the timer cancelled the call just after it opened
            raise DeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   f"watch not opened within {timeout} s")
        if resp is None:
            raise Unavailable(grpc.StatusCode.UNAVAILABLE, "watch stream ended before it opened")
        self._absorb(resp)
        if self._compacted is not None:
            self._fill()  # the status that follows: raises OutOfRange

    def _start_call(self, start: int, wait_for_ready: bool) -> Any:
        request = kv_pb2.WatchRequest()
        request.CopyFrom(self._request)
        request.start_revision = start
        call = self._open_call(request, wait_for_ready)
        with self._lock:
            closed = self._closed
            if not closed:
                self._call = call
        if closed:
            call.cancel()
            raise StopIteration
        self._first_of_stream = True
        return call

    def _error(self, err: grpc.RpcError) -> Exception:
        """The StrataError for a failed stream (OutOfRange with the
        compacted revision when a compaction message preceded it)."""
        mapped = from_rpc_error(err)
        if isinstance(mapped, OutOfRange):
            mapped.compact_revision = self._compacted
            self.compact_revision = self._compacted
        return mapped

    def _absorb(self, resp: Any) -> None:
        """Queues the new events of a message and notes how far it is complete."""
        first = self._first_of_stream
        self._first_of_stream = False
        header = int(resp.header.revision)
        compaction = resp.compact_revision > 0
        if compaction:
            self._compacted = int(resp.compact_revision)
        for e in resp.events:
            event = WatchEvent.from_proto(e)
            r = event.revision
            if r <= self._through:
                continue  # delivered before the stream was reopened
            if r == self._partial_revision and event.key in self._partial_keys:
                continue  # the part of a split revision received before a break
            if r > header and not compaction:  # more of revision r follows
                if r != self._partial_revision:
                    self._partial_revision, self._partial_keys = r, set()
                self._partial_keys.add(event.key)
            self._pending.append(event)
        if compaction:
            return  # its header is the compacted revision, not progress
        if not resp.events and not first and self._progress_notify:
            self._pending.append(WatchEvent(type=EventType.PROGRESS,
                                            revision=max(header, self._through)))
        self._through = max(self._through, header)
        if self._partial_revision and self._partial_revision <= self._through:
            self._partial_revision, self._partial_keys = 0, set()
        if not self._pending:
            self._delivered = self._through

    def _fill(self) -> None:
        """Reads the next message (it may add no event: a progress message
        without progress_notify); on a break, resumes or raises."""
        err: Optional[grpc.RpcError] = None
        try:
            resp = next(self._call)
        except StopIteration:
            pass  # ended with OK: not in the contract; treated as a break
        except grpc.RpcError as e:
            err = e
        else:
            self._absorb(resp)
            return
        if self._closed:
            raise StopIteration
        code = err.code() if err is not None else None
        if err is not None and (code == grpc.StatusCode.OUT_OF_RANGE or self._policy is None
                                or code != grpc.StatusCode.UNAVAILABLE):
            raise self._error(err) from err
        if self._policy is None:
            raise StopIteration
        self._resume(self._policy, err)

    def _resume(self, policy: ResumePolicy, err: Optional[grpc.RpcError]) -> None:
        """Reopens the stream from _through + 1 after a backoff; returns once a
        new stream delivered its first message.

        Each attempt waits for the channel to connect (wait_for_ready): it
        then proceeds as soon as the server is back, where a failing-fast
        call would leave the reconnection to gRPC's slow background polling.
        The backoff paces attempts the server itself refuses (UNAVAILABLE
        while shutting down); give_up_after cancels a waiting attempt.
        """
        give_up_at = (None if policy.give_up_after is None
                      else time.monotonic() + policy.give_up_after)
        gave_up = threading.Event()
        resuming = [True]  # under _lock: the timer may still cancel an attempt

        def expire() -> None:
            with self._lock:
                if not resuming[0]:
                    return
                gave_up.set()
                call = self._call
            self._wake.set()
            if call is not None:
                call.cancel()

        timer = None
        if policy.give_up_after is not None:
            timer = threading.Timer(policy.give_up_after, expire)
            timer.daemon = True
            timer.start()
        try:
            self._attempt(policy, err, gave_up, give_up_at)
        finally:
            with self._lock:
                resuming[0] = False
            if timer is not None:
                timer.cancel()

    def _attempt(self, policy: ResumePolicy, err: Optional[grpc.RpcError],
                 gave_up: threading.Event, give_up_at: Optional[float]) -> None:
        """The attempts of _resume (see there)."""
        def give_up() -> Exception:
            if err is not None:
                return self._error(err)
            return Unavailable(grpc.StatusCode.UNAVAILABLE, "watch stream ended")

        delay = policy.initial_backoff
        while True:
            pause = delay * random.uniform(0.5, 1.0)
            if give_up_at is not None:
                pause = min(pause, max(give_up_at - time.monotonic(), 0))
            self._wake.wait(pause)
            if self._closed:
                raise StopIteration
            if gave_up.is_set() or (give_up_at is not None and time.monotonic() >= give_up_at):
                raise give_up()
            call = self._start_call(self._through + 1, wait_for_ready=True)
            try:
                resp = next(call)
            except StopIteration:
                err = None
            except grpc.RpcError as e:
                if self._closed:
                    raise StopIteration
                if gave_up.is_set():
                    raise give_up() from e
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise self._error(e) from e
                err = e
            else:
                self.resumes += 1
                self._absorb(resp)
                return
            delay = min(delay * policy.multiplier, policy.max_backoff)

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchEvent:
        while not self._pending:
            if self._closed:
                raise StopIteration
            try:
                self._fill()
            except StopIteration:
                raise
            except BaseException:
                self.close()  # an error ends the watch: later next() calls stop
                raise
        if self._closed:
            raise StopIteration
        event = self._pending.popleft()
        if not self._pending:
            self._delivered = self._through
        elif self._pending[0].type is EventType.PROGRESS:
            # Queued in order and a progress message follows only whole
            # revisions: all of event.revision has been returned.
            self._delivered = max(self._delivered, event.revision)
        else:  # all before the next queued event's revision has been returned
            self._delivered = max(self._delivered, self._pending[0].revision - 1)
        return event

    def close(self) -> None:
        """Cancels the stream; next() raises StopIteration from now on.
        Idempotent; safe from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            call = self._call
        self._wake.set()
        if call is not None:
            call.cancel()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown; nothing useful to do
            pass


__all__ = ["Watch", "WatchEvent", "EventType", "ResumePolicy"]
