"""Revisions, reads at a revision, BatchGet, DeleteRange, Compact and Watch
through strata_client, against a real strata-server (docs/revisions.md).

Run like test_client.py (scripts/test-clients.sh installs the package and runs
both). The watch-resume tests restart the server on the same data directory
behind a TcpProxy, so the client keeps one address while the server's port
changes.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from strata_client import (BatchGetResult, Client, DeadlineExceeded,  # noqa: E402
                           EventType, FailedPrecondition, InvalidArgument,
                           KeyValue, OutOfRange, ResumePolicy, StrataError,
                           Unavailable, Watch, WatchEvent, WriteBatch,
                           prefix_end, prefix_range)
from strata_client._gen import kv_pb2  # noqa: E402
from server_process import REPO_ROOT, ServerProcess, server_binary  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402
from test_client import ServerTestCase  # noqa: E402

WAIT_S = 30.0  # the longest any test waits for an event
KIB = 1 << 10

# Fast reconnects for the resume tests: gRPC's own channel backoff (1 s,
# growing to 2 min) would otherwise pace them.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100),
                  ("grpc.max_reconnect_backoff_ms", 500)]
FAST_RESUME = ResumePolicy(initial_backoff=0.05, max_backoff=0.5, give_up_after=WAIT_S)


def setUpModule():
    if not os.path.exists(server_binary()):
        why = f"strata-server not found at {server_binary()}"
        if os.environ.get("STRATA_TEST_REQUIRE_SERVER"):
            raise RuntimeError(why)
        raise unittest.SkipTest(why)


def take(watch: Watch, n: int, timeout: float = WAIT_S):
    """The next n events of watch; fails (instead of hanging) after timeout:
    a watchdog closes the watch, which makes a blocked next() return."""
    timer = threading.Timer(timeout, watch.close)
    timer.daemon = True
    timer.start()
    try:
        out = []
        for _ in range(n):
            try:
                out.append(next(watch))
            except StopIteration:
                raise AssertionError(f"only {len(out)} of {n} events within {timeout} s: "
                                     f"{[short(e) for e in out]}") from None
        return out
    finally:
        timer.cancel()


def short(e: WatchEvent):
    """(revision, type, key, value) of an event: easy to compare."""
    return (e.revision, e.type.value, e.key, e.value)


class WritesAndReadsTest(ServerTestCase):
    def test_writes_return_the_revision_they_committed_at(self):
        self.assertEqual(self.client.put(b"a", b"1"), 1)
        self.assertEqual(self.client.put(b"a", b"2"), 2)
        self.assertEqual(self.client.write(WriteBatch().put(b"b", b"1").delete(b"a")), 3)
        self.assertEqual(self.client.delete(b"missing"), 3)  # changed nothing: the current one
        self.assertEqual(self.client.write([]), 3)
        self.assertEqual(self.client.delete(b"b"), 4)

    def test_get_with_metadata_and_at_a_revision(self):
        self.client.put(b"k", b"v1")  # 1
        self.client.put(b"other", b"x")  # 2
        self.client.put(b"k", b"v2")  # 3
        r = self.client.get_with_metadata(b"k")
        self.assertEqual(r.revision, 3)
        self.assertTrue(r.found)
        self.assertEqual(r.value, b"v2")
        self.assertEqual(r.kv, KeyValue(key=b"k", value=b"v2", create_revision=1,
                                        mod_revision=3, version=2))
        self.assertEqual(self.client.get(b"k", revision=2), b"v1")
        old = self.client.get_with_metadata(b"k", revision=1)
        self.assertEqual((old.revision, old.kv.version, old.kv.mod_revision), (1, 1, 1))
        missing = self.client.get_with_metadata(b"nope")
        self.assertEqual((missing.found, missing.value, missing.kv, missing.revision),
                         (False, None, None, 3))
        self.client.delete(b"k")  # 4
        self.client.put(b"k", b"again")  # 5: re-created, version back to 1
        again = self.client.get_with_metadata(b"k").kv
        self.assertEqual((again.create_revision, again.version), (5, 1))
        self.assertIsNone(self.client.get(b"k", revision=4))

    def test_a_revision_outside_the_history_is_out_of_range(self):
        self.client.put(b"k", b"v")
        with self.assertRaises(OutOfRange) as cm:
            self.client.get(b"k", revision=99)
        self.assertEqual(cm.exception.code, grpc.StatusCode.OUT_OF_RANGE)
        self.assertIn("current revision 1", cm.exception.details)
        self.assertIsNone(cm.exception.compact_revision)
        with self.assertRaises(ValueError):
            self.client.get(b"k", revision=-1)
        with self.assertRaises(TypeError):
            self.client.get(b"k", revision="1")

    def test_compact_discards_older_revisions(self):
        for i in range(5):
            self.client.put(b"k", b"%d" % i)  # 1..5
        self.assertEqual(self.client.compact(3), 5)
        with self.assertRaises(OutOfRange) as cm:
            self.client.get(b"k", revision=2)
        self.assertIn("compacted revision 3", cm.exception.details)
        self.assertEqual(self.client.get(b"k", revision=3), b"2")
        with self.assertRaises(OutOfRange):
            list(self.client.scan(revision=2))
        with self.assertRaises(OutOfRange):  # not above the compacted revision
            self.client.compact(3)
        with self.assertRaises(OutOfRange):  # above the current revision
            self.client.compact(6)
        with self.assertRaises(InvalidArgument):
            self.client.compact(0)


class ScanAtRevisionTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        for k in (b"a", b"b", b"c", b"d"):
            self.client.put(k, b"1")  # 1..4
        self.client.put(b"b", b"2")  # 5
        self.client.delete(b"c")  # 6

    def test_scan_reports_the_revision_it_read(self):
        it = self.client.scan()
        self.assertIsNone(it.revision)  # nothing received yet
        self.assertEqual(list(it), [(b"a", b"1"), (b"b", b"2"), (b"d", b"1")])
        self.assertEqual(it.revision, 6)
        empty = self.client.scan(start=b"x")
        self.assertEqual(list(empty), [])
        self.assertEqual(empty.revision, 6)  # nothing found still says when

    def test_scan_at_a_revision(self):
        it = self.client.scan(revision=4)
        self.assertEqual(list(it), [(b"a", b"1"), (b"b", b"1"), (b"c", b"1"), (b"d", b"1")])
        self.assertEqual(it.revision, 4)
        with self.assertRaises(OutOfRange):
            list(self.client.scan(revision=99))

    def test_reverse_scan(self):
        self.assertEqual([k for k, _ in self.client.scan(reverse=True)], [b"d", b"b", b"a"])
        self.assertEqual([k for k, _ in self.client.scan(start=b"b", end=b"d", reverse=True,
                                                         revision=4)], [b"c", b"b"])
        self.assertEqual([k for k, _ in self.client.scan(limit=2, reverse=True)], [b"d", b"b"])

    def test_scan_with_metadata_and_prefix(self):
        self.client.write([("put", b"p/1", b"x"), ("put", b"p/2", b"y"), ("put", b"p0", b"z")])  # 7
        kvs = list(self.client.scan(prefix=b"p/", metadata=True))
        self.assertEqual(kvs, [KeyValue(b"p/1", b"x", 7, 7, 1), KeyValue(b"p/2", b"y", 7, 7, 1)])
        b = list(self.client.scan(start=b"b", end=b"c", metadata=True, keys_only=True))
        self.assertEqual(b, [KeyValue(b"b", b"", 2, 5, 2)])
        with self.assertRaises(ValueError):
            self.client.scan(start=b"a", prefix=b"p/")

    def test_paging_at_the_first_pages_revision_while_writes_continue(self):
        first = self.client.scan(limit=2)
        page = list(first)
        revision = first.revision
        self.client.put(b"a2", b"new")  # after the first page: must not show
        self.client.delete(b"d")
        page += list(self.client.scan(start=page[-1][0] + b"\x00", limit=2, revision=revision))
        self.assertEqual(page, [(b"a", b"1"), (b"b", b"2"), (b"d", b"1")])

    def test_prefix_helpers(self):
        self.assertEqual(prefix_end(b"cfg/"), b"cfg0")
        self.assertEqual(prefix_end(b"a\xff\xff"), b"b")
        self.assertEqual(prefix_end(b"\xff"), b"")
        self.assertEqual(prefix_end(b""), b"")
        self.assertEqual(prefix_range(b"x/"), (b"x/", b"x0"))


class BatchGetAndDeleteRangeTest(ServerTestCase):
    def test_batch_get_reads_every_key_at_one_revision(self):
        self.client.put(b"a", b"1")  # 1
        self.client.put(b"b", b"1")  # 2
        self.client.put(b"a", b"2")  # 3
        r = self.client.batch_get([b"b", b"missing", "a"], revision=2)
        self.assertIsInstance(r, BatchGetResult)
        self.assertEqual(r.revision, 2)
        self.assertEqual(r.values, [b"1", None, b"1"])
        self.assertEqual(r.kvs[2], KeyValue(b"a", b"1", 1, 1, 1))
        latest = self.client.batch_get([b"a", b"a"])
        self.assertEqual((latest.revision, latest.values), (3, [b"2", b"2"]))
        with self.assertRaises(InvalidArgument):
            self.client.batch_get([])
        with self.assertRaises(InvalidArgument):
            self.client.batch_get([b"k"] * 10001)

    def test_delete_range_with_prev_kv(self):
        for k in (b"a", b"b1", b"b2", b"b3", b"c"):
            self.client.put(k, b"v-" + k)  # 1..5
        r = self.client.delete_range(b"b", b"c", prev_kv=True)
        self.assertEqual((r.revision, r.deleted), (6, 3))
        self.assertEqual(r.prev_kvs, [KeyValue(b"b1", b"v-b1", 2, 2, 1),
                                      KeyValue(b"b2", b"v-b2", 3, 3, 1),
                                      KeyValue(b"b3", b"v-b3", 4, 4, 1)])
        self.assertEqual(list(self.client.scan()), [(b"a", b"v-a"), (b"c", b"v-c")])
        # Nothing in the range: no revision taken.
        again = self.client.delete_range(b"b", b"c", prev_kv=True)
        self.assertEqual((again.revision, again.deleted, again.prev_kvs), (6, 0, []))
        # Without prev_kv, only the count; every key deleted at one revision.
        r = self.client.delete_range(*prefix_range(b""))
        self.assertEqual((r.revision, r.deleted, r.prev_kvs), (7, 2, []))
        self.assertEqual(list(self.client.scan()), [])
        self.assertEqual(self.client.get(b"a", revision=6), b"v-a")


class DeleteRangeLimitTest(unittest.TestCase):
    def test_prev_kv_over_the_mutation_limit_deletes_nothing(self):
        tmp = tempfile.mkdtemp(prefix="strata-pytest-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        os.mkdir(os.path.join(tmp, "data"))
        server = ServerProcess(os.path.join(tmp, "data"), os.path.join(tmp, "server.log"),
                               extra_args=["--max_batch_mutations=2"])
        self.addCleanup(server.kill)
        with Client(server.start()) as db:
            db.write([("put", b"a", b"v"), ("put", b"b", b"v")])
            db.put(b"c", b"v")
            with self.assertRaises(FailedPrecondition):
                db.delete_range(b"", b"", prev_kv=True)
            self.assertEqual([k for k, _ in db.scan()], [b"a", b"b", b"c"])


class WatchTest(ServerTestCase):
    def watch(self, *args, **kw) -> Watch:
        w = self.client.watch(*args, **kw)
        self.addCleanup(w.close)
        return w

    def test_events_arrive_in_order_while_another_client_writes(self):
        w = self.watch(prefix=b"w/")
        self.assertEqual(w.revision, 0)  # opened at the current revision
        expected = []
        failures = []

        def writer():
            try:
                write_all()
            except Exception as e:  # reported by the main thread
                failures.append(e)
                w.close()  # ends the main thread's wait

        def write_all():
            live = set()
            with Client(self.address) as c:
                for i in range(150):
                    key = b"w/%d" % (i % 7)
                    if i % 5 == 3:
                        rev = c.delete(key)
                        if key in live:  # deleting a missing key is no change
                            expected.append((rev, "DELETE", key, b""))
                        live.discard(key)
                    elif i % 5 == 4:
                        rev = c.write([("put", b"w/batch", b"%d" % i), ("put", b"w/x", b"%d" % i),
                                       ("put", b"other", b"not watched")])
                        expected.extend([(rev, "PUT", b"w/batch", b"%d" % i),
                                         (rev, "PUT", b"w/x", b"%d" % i)])
                        live.update((b"w/batch", b"w/x"))
                    else:
                        rev = c.put(key, b"%d" % i)
                        c.put(b"other", b"%d" % i)  # a change outside the range
                        expected.append((rev, "PUT", key, b"%d" % i))
                        live.add(key)
                expected.append((c.put(b"w/end", b"end"), "PUT", b"w/end", b"end"))  # the last

        t = threading.Thread(target=writer)
        t.start()
        got = []
        deadline = time.monotonic() + WAIT_S
        while not got or got[-1][2] != b"w/end":
            self.assertEqual(failures, [])
            self.assertLess(time.monotonic(), deadline, "watch fell behind the writer")
            try:
                got += [short(e) for e in take(w, 1)]
            except AssertionError:
                self.assertEqual(failures, [])  # the writer's error, if it failed
                raise
        t.join()
        self.assertEqual(failures, [])
        revisions = [g[0] for g in got]
        self.assertEqual(revisions, sorted(revisions), "events out of revision order")
        # Within one revision the order of keys is the server's: compare sorted.
        self.assertEqual(sorted(got), sorted(expected))
        self.assertEqual(w.revision, expected[-1][0])

    def test_from_a_past_revision_with_prev_kv(self):
        self.client.put(b"cfg/a", b"1")  # 1
        self.client.put(b"zzz", b"x")  # 2
        self.client.put(b"cfg/a", b"2")  # 3
        self.client.delete(b"cfg/a")  # 4
        w = self.watch(prefix=b"cfg/", start_revision=1, prev_kv=True)
        events = take(w, 3)
        self.assertEqual([short(e) for e in events],
                         [(1, "PUT", b"cfg/a", b"1"), (3, "PUT", b"cfg/a", b"2"),
                          (4, "DELETE", b"cfg/a", b"")])
        self.assertIsNone(events[0].prev_kv)
        self.assertEqual(events[1].prev_kv, KeyValue(b"cfg/a", b"1", 1, 1, 1))
        self.assertEqual(events[2].prev_kv, KeyValue(b"cfg/a", b"2", 1, 3, 2))
        self.assertEqual(events[1].kv, KeyValue(b"cfg/a", b"2", 1, 3, 2))
        self.assertEqual((events[2].type, events[2].mod_revision), (EventType.DELETE, 4))
        self.assertEqual(w.revision, 4)

    def test_one_key_and_a_key_range(self):
        one = self.watch(b"k")
        rng = self.watch(b"b", range_end=b"d")
        for k in (b"a", b"b", b"k", b"c", b"d", b"kk"):
            self.client.put(k, b"v")
        self.assertEqual([e.key for e in take(one, 1)], [b"k"])
        self.assertEqual([e.key for e in take(rng, 2)], [b"b", b"c"])
        self.client.put(b"k", b"last")  # 7: the next event of each, nothing in between
        self.client.put(b"c", b"last")  # 8
        self.assertEqual(short(take(one, 1)[0]), (7, "PUT", b"k", b"last"))
        self.assertEqual(short(take(rng, 1)[0]), (8, "PUT", b"c", b"last"))

    def test_every_key(self):
        w = self.watch(prefix=b"")
        self.client.put(b"\x00", b"1")
        self.client.put(b"\xff\xff", b"2")
        self.assertEqual([e.key for e in take(w, 2)], [b"\x00", b"\xff\xff"])

    def test_close_cancels_the_stream_and_unblocks_next(self):
        w = self.watch(b"k")
        got_one = threading.Event()
        ended = threading.Event()

        def reader():
            for _ in w:  # after the first event, blocks: nothing more is written
                got_one.set()
            ended.set()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        self.client.put(b"k", b"0")
        self.assertTrue(got_one.wait(WAIT_S))
        w.close()  # the reader is in (or about to enter) next(): both must end
        self.assertTrue(ended.wait(10), "close() did not end the blocked iteration")
        self.assertEqual(w._call.code(), grpc.StatusCode.CANCELLED)
        self.assertTrue(w.closed)
        with self.assertRaises(StopIteration):
            next(w)
        w.close()  # idempotent
        # A with block closes too; the server keeps serving.
        with self.client.watch(b"k") as w2:
            self.client.put(b"k", b"1")
            self.assertEqual(take(w2, 1)[0].value, b"1")
        self.assertEqual(w2._call.code(), grpc.StatusCode.CANCELLED)
        self.assertTrue(self.client.health())

    def test_compacted_start_raises_out_of_range_with_the_compacted_revision(self):
        for i in range(5):
            self.client.put(b"k", b"%d" % i)  # 1..5
        self.client.compact(4)
        with self.assertRaises(OutOfRange) as cm:
            self.client.watch(b"k", start_revision=2)
        self.assertEqual(cm.exception.compact_revision, 4)
        self.assertEqual(cm.exception.code, grpc.StatusCode.OUT_OF_RANGE)
        # The documented recovery: read at the compacted revision, watch on.
        self.assertEqual(self.client.get(b"k", revision=4), b"3")
        w = self.watch(b"k", start_revision=5)
        self.assertEqual(short(take(w, 1)[0]), (5, "PUT", b"k", b"4"))

    def test_progress_notifications(self):
        server = ServerProcess(os.path.join(self.tmp, "data2"), os.path.join(self.tmp, "s2.log"),
                               extra_args=["--watch_progress_interval=100ms"])
        os.mkdir(server.data_dir)
        self.addCleanup(server.kill)
        with Client(server.start()) as db:
            w = db.watch(b"quiet", progress_notify=True)
            self.addCleanup(w.close)
            rev = db.put(b"elsewhere", b"x")
            deadline = time.monotonic() + WAIT_S
            while True:
                e = take(w, 1)[0]
                self.assertEqual(e.type, EventType.PROGRESS)
                self.assertEqual(e.key, b"")
                if e.revision >= rev:
                    break
                self.assertLess(time.monotonic(), deadline)
            self.assertEqual(w.revision, e.revision)
            rev = db.put(b"quiet", b"now")
            while True:  # progress events may come first; then the change
                e = take(w, 1)[0]
                if e.type is not EventType.PROGRESS:
                    break
            self.assertEqual(short(e), (rev, "PUT", b"quiet", b"now"))

    def test_a_revision_larger_than_a_message_arrives_whole(self):
        w = self.watch(prefix=b"big/")
        big = b"x" * (600 * KIB)  # three of them: more than one ~1 MiB message
        rev = self.client.write([("put", b"big/%d" % i, big) for i in range(3)])
        rev2 = self.client.put(b"big/after", b"1")
        events = take(w, 4)
        self.assertEqual(sorted(e.key for e in events[:3]), [b"big/0", b"big/1", b"big/2"])
        self.assertTrue(all(e.revision == rev and e.value == big for e in events[:3]))
        self.assertEqual(short(events[3]), (rev2, "PUT", b"big/after", b"1"))

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            self.client.watch()
        with self.assertRaises(ValueError):
            self.client.watch(b"k", prefix=b"p")
        with self.assertRaises(ValueError):
            self.client.watch(b"k", start_revision=-1)
        with self.assertRaises(InvalidArgument):
            self.client.watch(b"b", range_end=b"a")
        with self.assertRaises(DeadlineExceeded):
            self.client.watch(b"k", timeout=-1)
        with self.assertRaises(ValueError):
            ResumePolicy(initial_backoff=0)


class DocExampleTest(ServerTestCase):
    """The revisions example in docs/clients.md runs as written."""

    def test_doc_example_runs(self):
        path = os.path.join(REPO_ROOT, "docs", "clients.md")
        with open(path, encoding="utf-8") as f:
            section = f.read().split("\n## Python", 1)[1].split("\n## ", 1)[0]
        blocks = [b.split("\n```", 1)[0] for b in section.split("```python\n")[1:]]
        watch_blocks = [b for b in blocks if "db.watch(" in b]
        self.assertEqual(len(watch_blocks), 1, "docs/clients.md: one Python watch example")
        code = watch_blocks[0].replace("127.0.0.1:50051", self.address)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{path}:python-watch-example", "exec"), {"__name__": "doc_example"})
        self.assertEqual(out.getvalue().splitlines(), ["b'1'", "2 1 2 2", "{b'cfg/b': b'x'}"])


class RevisionsDocExampleTest(ServerTestCase):
    """The follow() example of docs/revisions.md ("Resuming after a
    disconnect") runs as written: it lists, applies changes, and lists again
    when the history it needs was compacted while the server was away."""

    class Stop(Exception):
        pass

    def test_follow_lists_applies_and_relists_after_compaction(self):
        with open(os.path.join(REPO_ROOT, "docs", "revisions.md"), encoding="utf-8") as f:
            section = f.read().split("### Resuming after a disconnect", 1)[1]
        code = section.split("```python\n", 1)[1].split("\n```", 1)[0]
        scope = {"__name__": "doc_example"}
        exec(compile(code, "docs/revisions.md:follow", "exec"), scope)

        proxy = TcpProxy(self.address)
        self.addCleanup(proxy.close)
        follower = Client(proxy.address, options=FAST_RECONNECT)
        self.addCleanup(follower.close)
        seen: "queue.Queue[tuple]" = queue.Queue()
        stop = threading.Event()

        def reset(state):
            seen.put(("reset", sorted(state.items())))

        def apply(event):
            if stop.is_set():
                raise self.Stop
            seen.put(("apply", event.key, event.value))

        out = io.StringIO()
        result = []

        def run():
            try:
                with contextlib.redirect_stdout(out):
                    scope["follow"](follower, b"cfg/", reset, apply)
            except BaseException as e:  # Stop, or a failure reported below
                result.append(e)

        self.client.put(b"cfg/a", b"1")
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.assertEqual(seen.get(timeout=WAIT_S), ("reset", [(b"cfg/a", b"1")]))
        self.client.put(b"cfg/b", b"2")
        self.assertEqual(seen.get(timeout=WAIT_S), ("apply", b"cfg/b", b"2"))
        # Away while the history it needs is compacted.
        self.client.close()
        self.server.kill()
        with Client(self.server.start()) as c:
            c.compact(c.put(b"cfg/c", b"3"))
            proxy.set_backend(self.server.address)
            self.assertEqual(seen.get(timeout=WAIT_S),
                             ("reset", [(b"cfg/a", b"1"), (b"cfg/b", b"2"), (b"cfg/c", b"3")]))
            stop.set()
            c.put(b"cfg/d", b"4")
        t.join(WAIT_S)
        self.assertFalse(t.is_alive())
        self.assertEqual([type(e) for e in result], [self.Stop])
        self.assertIn("re-reading after compaction at", out.getvalue())


class WatchResumeTest(ServerTestCase):
    """Watches through a TcpProxy; the server is SIGKILLed and restarted on
    the same data directory (and a new port) behind it."""

    def setUp(self):
        super().setUp()
        self.proxy = TcpProxy(self.address)
        self.addCleanup(self.proxy.close)
        self.watcher = Client(self.proxy.address, options=FAST_RECONNECT)
        self.addCleanup(self.watcher.close)

    def restart_server(self) -> str:
        """SIGKILL, then start again on the same data directory; returns the
        new address (the proxy still forwards to the dead one)."""
        self.client.close()
        self.server.kill()
        return self.server.start()

    def test_resumes_across_a_server_restart_without_gaps_or_duplicates(self):
        w = self.watcher.watch(prefix=b"r/", resume=FAST_RESUME)
        self.addCleanup(w.close)
        expected = [(self.client.put(b"r/%d" % i, b"v%d" % i), "PUT", b"r/%d" % i, b"v%d" % i)
                    for i in range(5)]
        got = [short(e) for e in take(w, 3)]
        address = self.restart_server()
        # Changes made while the watcher cannot reach the server.
        with Client(address) as c:
            for i in range(5, 10):
                expected.append((c.put(b"r/%d" % i, b"v%d" % i), "PUT", b"r/%d" % i, b"v%d" % i))
            expected.append((c.delete(b"r/0"), "DELETE", b"r/0", b""))
            rev = c.write([("put", b"r/a", b"1"), ("put", b"r/b", b"2")])
            expected += [(rev, "PUT", b"r/a", b"1"), (rev, "PUT", b"r/b", b"2")]
            self.proxy.set_backend(address)
            got += [short(e) for e in take(w, len(expected) - 3)]
            self.assertEqual(got, expected)
            self.assertGreaterEqual(w.resumes, 1)
            self.assertEqual(w.revision, rev)
            # Nothing more was buffered: the next event is the next change.
            last = c.put(b"r/z", b"end")
            self.assertEqual(short(take(w, 1)[0]), (last, "PUT", b"r/z", b"end"))

    def test_resuming_into_compacted_history_raises_out_of_range(self):
        w = self.watcher.watch(prefix=b"r/", resume=FAST_RESUME)
        self.addCleanup(w.close)
        first = self.client.put(b"r/1", b"1")
        self.assertEqual(take(w, 1)[0].revision, first)
        address = self.restart_server()
        with Client(address) as c:
            c.put(b"r/2", b"2")
            current = c.put(b"r/3", b"3")
            c.compact(current)
        self.proxy.set_backend(address)
        with self.assertRaises(OutOfRange) as cm:
            take(w, 1)
        self.assertEqual(cm.exception.compact_revision, current)
        self.assertEqual(w.compact_revision, current)

    def test_without_resume_a_restart_raises_unavailable(self):
        w = self.watcher.watch(prefix=b"r/", resume=False)
        self.addCleanup(w.close)
        self.client.put(b"r/1", b"1")
        take(w, 1)
        self.restart_server()
        with self.assertRaises(Unavailable):
            take(w, 1)

    def test_close_while_resuming_ends_the_iteration(self):
        w = self.watcher.watch(prefix=b"r/")  # the default policy: keeps trying
        before = self.proxy.connections
        self.client.close()
        self.server.kill()  # and never back
        ended = threading.Event()
        failures = []

        def reader():
            try:
                self.assertEqual(list(w), [])
            except BaseException as e:
                failures.append(e)
            ended.set()

        threading.Thread(target=reader, daemon=True).start()
        # A reconnection reached the proxy: the reader is resuming (or about to).
        self.assertTrue(self.proxy.wait_connections(before + 1, WAIT_S))
        w.close()
        self.assertTrue(ended.wait(WAIT_S), "close() did not end a resuming watch")
        self.assertEqual(failures, [])

    def test_gives_up_after_give_up_after(self):
        w = self.watcher.watch(prefix=b"r/", resume=ResumePolicy(
            initial_backoff=0.05, max_backoff=0.2, give_up_after=1.0))
        self.addCleanup(w.close)
        self.client.close()
        self.server.kill()  # and never back
        start = time.monotonic()
        with self.assertRaises(Unavailable):
            take(w, 1)
        self.assertLess(time.monotonic() - start, WAIT_S)


# ---- Watch against scripted streams: the resume bookkeeping -----------------


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details=""):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class FakeCall:
    """A Watch call that plays a script of WatchResponses and errors."""

    def __init__(self, script):
        self._script = list(script)
        self.cancelled = False

    def __next__(self):
        if self.cancelled:
            raise FakeRpcError(grpc.StatusCode.CANCELLED)
        if not self._script:
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "script ended")
        item = self._script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def cancel(self):
        self.cancelled = True


def msg(header, *events, compact=0):
    resp = kv_pb2.WatchResponse(compact_revision=compact)
    resp.header.revision = header
    for rev, key in events:
        e = resp.events.add()
        e.type = kv_pb2.Event.PUT
        e.kv.key, e.kv.value, e.kv.mod_revision = key, b"v", rev
    return resp


class ScriptedWatchTest(unittest.TestCase):
    """Watch's bookkeeping against scripted streams (no server): which
    revision it resumes from, and that nothing is delivered twice."""

    def run_script(self, streams, start=0, progress_notify=False):
        requests = []
        calls = [FakeCall(s) for s in streams]

        def open_call(request, wait_for_ready):
            self.assertEqual(wait_for_ready, bool(requests))  # resumes wait for the channel
            requests.append(request.start_revision)
            return calls[len(requests) - 1]

        w = Watch(open_call, kv_pb2.WatchRequest(key=b"k", start_revision=start),
                  progress_notify=progress_notify, timeout=None,
                  resume=ResumePolicy(initial_backoff=0.001, max_backoff=0.001,
                                      give_up_after=10))
        return w, requests

    def test_a_split_revision_cut_by_a_break_is_not_delivered_twice(self):
        unavailable = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "server shutting down")
        w, requests = self.run_script([
            [msg(0), msg(1, (1, b"a")), msg(1, (2, b"x"), (2, b"y")), unavailable],
            # The server sends revision 2 whole (in a new order), then more.
            [msg(1), msg(2, (2, b"z"), (2, b"y"), (2, b"x")), msg(3, (3, b"a"))],
        ], start=1)
        got = [(e.revision, e.key) for e in (next(w) for _ in range(5))]
        self.assertEqual(got, [(1, b"a"), (2, b"x"), (2, b"y"), (2, b"z"), (3, b"a")])
        self.assertEqual(requests, [1, 2])  # resumed from the last complete revision + 1
        self.assertEqual((w.revision, w.resumes), (3, 1))

    def test_resumes_after_progress_and_drops_what_it_already_has(self):
        unavailable = FakeRpcError(grpc.StatusCode.UNAVAILABLE)
        w, requests = self.run_script([
            [msg(4), msg(5, (5, b"a")), msg(9), unavailable],
            [msg(9), msg(9, (9, b"old")), msg(10, (10, b"b"))],  # 9 again: dropped
        ], progress_notify=True)
        got = [(e.type.value, e.revision, e.key) for e in (next(w) for _ in range(3))]
        self.assertEqual(got, [("PUT", 5, b"a"), ("PROGRESS", 9, b""), ("PUT", 10, b"b")])
        self.assertEqual(requests, [0, 10])

    def test_revision_counts_only_what_next_returned(self):
        w, _ = self.run_script([[msg(0), msg(2, (1, b"a"), (2, b"b"), (2, b"c")),
                                 msg(3, (3, b"x"), (3, b"y"))]], start=1)
        self.assertEqual(w.revision, 0)
        self.assertEqual([w.revision for _ in range(5) if next(w)], [1, 1, 2, 2, 3])

    def test_compaction_message_is_not_progress(self):
        w, requests = self.run_script([
            [msg(0), msg(1, (1, b"a")), msg(7, compact=7),
             FakeRpcError(grpc.StatusCode.OUT_OF_RANGE, "compacted")],
        ], start=1)
        self.assertEqual(next(w).revision, 1)
        with self.assertRaises(OutOfRange) as cm:
            next(w)
        self.assertEqual(cm.exception.compact_revision, 7)
        self.assertEqual(w.revision, 1)
        self.assertEqual(requests, [1])

    def test_other_errors_are_not_resumed(self):
        w, requests = self.run_script([
            [msg(0), FakeRpcError(grpc.StatusCode.INTERNAL, "bug")]])
        with self.assertRaises(StrataError) as cm:
            next(w)
        self.assertEqual(cm.exception.code, grpc.StatusCode.INTERNAL)
        self.assertEqual(requests, [0])


if __name__ == "__main__":
    unittest.main()


def _read_backup(path):
    """The (version, [BackupResponse]) of a backup file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"STRATABK", data[:8]
    version = int.from_bytes(data[8:12], "little")
    pos, messages = 12, []
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "little")
        m = kv_pb2.BackupResponse()
        m.ParseFromString(data[pos + 4:pos + 4 + n])
        messages.append(m)
        pos += 4 + n
    return version, messages


class IncrementalBackupTest(ServerTestCase):
    def test_full_then_incremental_files(self):
        for i in range(20):
            self.client.put(b"k%02d" % i, b"v")
        full = os.path.join(self.tmp, "full.backup")
        since = self.client.backup_to_file(full)
        self.assertEqual(_read_backup(full)[0], 1)
        self.client.put(b"k00", b"w")
        self.client.delete(b"k01")
        incr = os.path.join(self.tmp, "incr.backup")
        last = self.client.backup_to_file(incr, since_revision=since)
        self.assertEqual(last, since + 2)
        version, messages = _read_backup(incr)
        self.assertEqual(version, 2)
        self.assertEqual(messages[0].begin.from_revision, since)
        self.assertTrue(any(m.HasField("changes") for m in messages))
        manifest = messages[-1].manifest
        self.assertEqual((manifest.batches, manifest.changes), (2, 2))
        batches = kv_pb2.BackupChangeBatches()
        batches.ParseFromString(messages[1].changes.data)
        self.assertEqual([b.revision for b in batches.batches], [since + 1, since + 2])
        self.assertTrue(batches.batches[1].changes[0].deleted)
        # One batch of 6 MB travels as one chunk: above gRPC's default 4 MiB
        # receive limit, which the client lifts (as the C++ client does).
        big = WriteBatch()
        for i in range(3):
            big.put(b"big%d" % i, os.urandom(2_000_000))
        self.client.write(big)
        self.assertEqual(
            self.client.backup_to_file(os.path.join(self.tmp, "big.backup"),
                                       since_revision=last),
            last + 1)
        os.remove(os.path.join(self.tmp, "big.backup"))
        # Above the current revision: OutOfRange, and no file is left.
        with self.assertRaises(OutOfRange):
            self.client.backup_to_file(os.path.join(self.tmp, "f"), since_revision=last + 10)
        self.assertEqual(sorted(os.listdir(self.tmp)),
                         sorted(["data", "server.log", "full.backup", "incr.backup"]))
