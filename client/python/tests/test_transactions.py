"""Txn, Commit and the transaction helpers of strata_client against a real
strata-server (docs/transactions.md): compare -> then/else with every target,
missing keys and ranges; optimistic transactions that pin a snapshot, read
their own writes, abort on a changed read or a phantom in a scanned range and
never commit when they only read; and no lost update when many threads
increment one counter through txn or run_transaction.

Run like test_client.py (scripts/test-clients.sh installs the package and runs
it). Concurrency tests are bounded in attempts and in time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import unittest
from typing import Callable, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from strata_client import (Aborted, Client, Compare, CompareTarget,  # noqa: E402
                           FailedPrecondition, InvalidArgument, NotFound, OutOfRange,
                           Transaction, TxnOp, TxnResult, ValueType, WriteBatch)
from server_process import server_binary  # noqa: E402
from test_client import ServerTestCase  # noqa: E402

# The counter tests: WORKERS threads x INCREMENTS increments each.
WORKERS = 8
INCREMENTS = 40
TIME_LIMIT_S = 120.0  # for the whole of one counter test


def setUpModule():
    if not os.path.exists(server_binary()):
        why = f"strata-server not found at {server_binary()}"
        if os.environ.get("STRATA_TEST_REQUIRE_SERVER"):
            raise RuntimeError(why)
        raise unittest.SkipTest(why)


class TxnBuildersTest(unittest.TestCase):
    """Argument checks of Compare and TxnOp (no server needed)."""

    def test_compares_build_the_wire_message(self):
        c = Compare.version("k", "==", 0)
        self.assertEqual((c.key, c.target, c.op, c.constant), (b"k", CompareTarget.VERSION, "==", 0))
        m = c.to_proto()
        self.assertEqual((m.key, m.WhichOneof("target_union"), m.version), (b"k", "version", 0))
        m = Compare.value("a/", "!=", b"x").in_prefix().to_proto()
        self.assertEqual((m.range_end, m.value), (b"a0", b"x"))
        self.assertEqual(Compare.mod_revision(b"\xff", ">", 3).in_prefix().range_end, b"\x00")
        self.assertEqual(Compare.create_revision("k", "<", 9, range_end="m").to_proto().range_end,
                         b"m")

    def test_typed_ops_and_the_int64_compare_build_the_wire_message(self):
        m = Compare.int64_value("n", ">", -3, range_end="o").to_proto()
        self.assertEqual((m.target, m.WhichOneof("target_union"), m.int64_value, m.range_end),
                         (5, "int64_value", -3, b"o"))
        inc = TxnOp.increment("c", -2, must_exist=True)
        self.assertEqual((inc.kind, inc.key), ("increment", b"c"))
        self.assertEqual((inc.message.increment.delta, inc.message.increment.must_exist),
                         (-2, True))
        self.assertEqual(TxnOp.increment("c").message.increment.delta, 1)
        get = TxnOp.json_get(b"d", "/a/0")
        self.assertEqual((get.kind, get.message.json_get.pointer), ("json_get", "/a/0"))
        # Python objects are serialized; bytes are sent as JSON text as they are.
        merge = TxnOp.json_merge_patch("d", {"b": None, "a": [1]})
        self.assertEqual(merge.kind, "json_update")
        self.assertEqual(merge.message.json_update.WhichOneof("patch"), "merge_patch")
        self.assertEqual(merge.message.json_update.merge_patch, b'{"b":null,"a":[1]}')
        patch = TxnOp.json_patch("d", b'[{"op":"remove","path":"/a"}]')
        self.assertEqual(patch.message.json_update.json_patch, b'[{"op":"remove","path":"/a"}]')
        self.assertEqual(TxnOp.json_patch("d", "x").message.json_update.json_patch, b'"x"')
        with self.assertRaises(TypeError):
            Compare.int64_value("n", "==", "1")  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            TxnOp.increment("c", 1 << 63)
        with self.assertRaises(TypeError):
            TxnOp.increment("c", True)
        with self.assertRaises(TypeError):
            TxnOp.json_get("d", b"/a")  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            TxnOp.json_merge_patch("d", {"x": float("nan")})

    def test_bad_arguments_raise_before_anything_is_sent(self):
        with self.assertRaises(ValueError):
            Compare.version("k", "=", 0)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            Compare.version("k", "==", "0")  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            Compare.mod_revision("k", "<", 1 << 63)
        with self.assertRaises(TypeError):
            TxnOp.put("k", 1)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            TxnOp.put("k", "1", type=2)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            TxnOp.scan(limit=-1)
        with self.assertRaises(ValueError):
            TxnOp.scan("a", prefix="b")
        db = Client("127.0.0.1:1")
        self.addCleanup(db.close)
        with self.assertRaises(TypeError):
            db.txn(compare=[TxnOp.get("k")])  # type: ignore[list-item]
        with self.assertRaises(TypeError):
            db.txn(success=[Compare.version("k", "==", 0)])  # type: ignore[list-item]
        with self.assertRaises(ValueError):
            db.run_transaction(lambda tx: None, max_attempts=0)


class TxnTest(ServerTestCase):
    def test_missing_key_compares_as_version_zero_and_each_branch_runs(self):
        db = self.client
        create = dict(compare=[Compare.version("lock", "==", 0)],
                      success=[TxnOp.put("lock", "me"), TxnOp.get("lock")],
                      failure=[TxnOp.get("lock")])
        first = db.txn(**create)
        self.assertIsInstance(first, TxnResult)
        self.assertTrue(first.succeeded)
        self.assertEqual([r.kind for r in first.results], ["put", "get"])
        # The branch's get sees its own put, with the metadata it commits with.
        kv = first.results[1].kv
        assert kv is not None
        self.assertEqual((kv.key, kv.value, kv.version, kv.mod_revision),
                         (b"lock", b"me", 1, first.revision))
        second = db.txn(**create)
        self.assertFalse(second.succeeded)
        self.assertEqual(second.results[0].value, b"me")
        self.assertEqual(second.revision, first.revision)  # it wrote nothing
        self.assertEqual(db.get("lock"), b"me")

    def test_every_target_and_result(self):
        db = self.client
        rev1 = db.put("k", "b")
        rev2 = db.put("k", "c")  # version 2, created at rev1, modified at rev2
        db.put("other", "x")
        cases = [
            (Compare.version("k", "==", 2), True), (Compare.version("k", "!=", 2), False),
            (Compare.version("k", ">", 1), True), (Compare.version("k", "<", 2), False),
            (Compare.create_revision("k", "==", rev1), True),
            (Compare.create_revision("k", ">", rev1), False),
            (Compare.mod_revision("k", "==", rev2), True),
            (Compare.mod_revision("k", "<", rev2), False),
            (Compare.value("k", "==", "c"), True), (Compare.value("k", ">", "b"), True),
            (Compare.value("k", "<", "c"), False), (Compare.value("k", "!=", "c"), False),
            # A missing key: version and revisions 0; a value compare is false.
            (Compare.version("missing", "==", 0), True),
            (Compare.mod_revision("missing", "<", 1), True),
            (Compare.create_revision("missing", ">", 0), False),
            (Compare.value("missing", "==", ""), False),
            (Compare.value("missing", "!=", "x"), False),
        ]
        for compare, holds in cases:
            with self.subTest(compare=compare):
                r = db.txn([compare], [TxnOp.get("k")], [TxnOp.get("other")])
                self.assertEqual(r.succeeded, holds)
                self.assertEqual(r.results[0].value, b"c" if holds else b"x")
        # All compares must hold.
        self.assertFalse(db.txn([Compare.version("k", "==", 2),
                                 Compare.version("other", "==", 2)]).succeeded)
        self.assertTrue(db.txn().succeeded)  # no compares: success

    def test_range_compares_need_every_key_of_the_range(self):
        db = self.client
        db.write(WriteBatch().put("cfg/a", "1").put("cfg/b", "1"))
        self.assertTrue(db.txn([Compare.value("cfg/", "==", "1").in_prefix()]).succeeded)
        db.put("cfg/b", "2")
        self.assertFalse(db.txn([Compare.value("cfg/", "==", "1").in_prefix()]).succeeded)
        self.assertTrue(db.txn([Compare.version("cfg/a", ">", 0, range_end="cfg/b")]).succeeded)
        # An empty range compares as one missing key.
        self.assertTrue(db.txn([Compare.version("none/", "==", 0).in_prefix()]).succeeded)
        self.assertFalse(db.txn([Compare.value("none/", "==", "").in_prefix()]).succeeded)
        # b"\x00": every key >= key.
        self.assertTrue(db.txn([Compare.version("cfg/a", ">", 0).in_range(b"\x00")]).succeeded)

    def test_branch_scans_and_deletes_see_the_branch_writes(self):
        db = self.client
        db.write(WriteBatch().put("s/a", "1").put("s/b", "2"))
        r = db.txn(success=[TxnOp.delete("s/a"), TxnOp.put("s/c", "3"),
                            TxnOp.scan(prefix="s/"), TxnOp.scan(prefix="s/", reverse=True, limit=1),
                            TxnOp.get("s/a")])
        self.assertEqual([r.kind for r in r.results], ["delete", "put", "scan", "scan", "get"])
        self.assertEqual([(kv.key, kv.value) for kv in r.results[2].kvs],
                         [(b"s/b", b"2"), (b"s/c", b"3")])
        self.assertEqual([kv.key for kv in r.results[3].kvs], [b"s/c"])
        self.assertIsNone(r.results[4].kv)
        self.assertEqual(list(db.scan(prefix="s/")), [(b"s/b", b"2"), (b"s/c", b"3")])

    def test_a_typed_put_is_checked_and_a_double_write_is_invalid(self):
        db = self.client
        db.txn(success=[TxnOp.put("n", "5", ValueType.INT64)])
        self.assertEqual(db.incr("n"), 6)
        with self.assertRaises(InvalidArgument):
            db.txn(success=[TxnOp.put("n", "x", ValueType.INT64)])
        with self.assertRaises(InvalidArgument) as cm:
            db.txn(success=[TxnOp.put("a", "1"), TxnOp.delete("a")])
        self.assertIn("second time", cm.exception.details)
        self.assertIsNone(db.get("a"))
        self.assertEqual(db.get("n"), b"6")


    def test_typed_ops_run_at_one_revision_guarded_by_a_numeric_compare(self):
        db = self.client
        db.put("stock", "10", type=ValueType.INT64)
        db.put_json("order/1", {"qty": 1, "note": "x"})
        # As numbers 10 > 9; as bytes b"10" < b"9".
        sell = dict(compare=[Compare.int64_value("stock", ">", 9),
                             Compare.value("stock", "<", "9")],
                    success=[TxnOp.increment("stock", -1), TxnOp.increment("sold"),
                             TxnOp.json_merge_patch("order/1", {"note": None, "paid": True}),
                             TxnOp.json_get("order/1", "/paid"), TxnOp.get("sold")],
                    failure=[TxnOp.json_patch("order/1", [{"op": "replace", "path": "/qty",
                                                           "value": 0}]),
                             TxnOp.json_get("order/1")])
        r = db.txn(**sell)
        self.assertTrue(r.succeeded)
        self.assertEqual([x.kind for x in r.results],
                         ["increment", "increment", "json_update", "json_get", "get"])
        self.assertEqual((r.results[0].counter, r.results[1].counter), (9, 1))
        self.assertEqual(r.results[2].json, b'{"paid":true,"qty":1}')
        self.assertEqual(r.results[2].document, {"paid": True, "qty": 1})
        self.assertIs(r.results[3].document, True)  # sees the branch's patch
        kv = r.results[4].kv
        assert kv is not None
        self.assertEqual((kv.value, kv.type), (b"1", ValueType.INT64))
        self.assertIsNone(r.results[4].counter)
        for key in ("stock", "sold", "order/1"):
            got = db.get_with_metadata(key).kv
            assert got is not None
            self.assertEqual(got.mod_revision, r.revision, key)
        # Stock is 9 now: the compare fails and the else branch's JSON Patch runs.
        r = db.txn(**sell)
        self.assertFalse(r.succeeded)
        self.assertEqual(r.results[0].document, {"paid": True, "qty": 0})
        self.assertEqual(r.results[1].json, b'{"paid":true,"qty":0}')
        self.assertEqual(db.get("stock"), b"9")

    def test_a_failing_typed_op_fails_the_whole_txn(self):
        db = self.client
        db.put("text", "not a number")
        db.put_json("doc", {})
        before = db.put("n", "1", type=ValueType.INT64)
        cases = [
            ([], [TxnOp.put("a", "1"), TxnOp.increment("none", must_exist=True)],
             NotFound, "success op 1: "),
            ([], [TxnOp.increment("text")], FailedPrecondition, "success op 0: "),
            ([], [TxnOp.increment("n", (1 << 63) - 1)], OutOfRange, "success op 0: "),
            ([], [TxnOp.put("a", "1"), TxnOp.json_get("doc", "/missing")],
             NotFound, "success op 1: "),
            ([], [TxnOp.json_patch("doc", [{"op": "test", "path": "/a", "value": 1}])],
             FailedPrecondition, "success op 0: "),
            ([], [TxnOp.json_merge_patch("doc", b"{")], InvalidArgument, "success op 0: "),
            ([Compare.int64_value("text", "==", 1)], [TxnOp.put("a", "1")],
             FailedPrecondition, '"text"'),
        ]
        for compares, ops, error, message in cases:
            with self.subTest(message=message, error=error.__name__):
                with self.assertRaises(error) as cm:
                    db.txn(compares, ops)
                self.assertIn(message, cm.exception.details)
        # Nothing was written.
        self.assertEqual(db.get_with_metadata("any").revision, before)
        self.assertIsNone(db.get("a"))


class CommitTest(ServerTestCase):
    def test_commit_applies_only_if_nothing_read_changed(self):
        db = self.client
        rev = db.put("x", "1")
        committed = db.commit(rev, [b"x"], [], [("put", "x", "2"), ("put", "y", "2")])
        self.assertGreater(committed, rev)
        self.assertEqual(db.get("y"), b"2")
        # Read at rev (before the commit above changed x): aborted, nothing written.
        with self.assertRaises(Aborted) as cm:
            db.commit(rev, ["x"], mutations=WriteBatch().put("z", "3"))
        self.assertIn('"x"', cm.exception.details)
        self.assertIsNone(db.get("z"))
        # A key created in a read range after the read revision: a phantom.
        with self.assertRaises(Aborted):
            db.commit(rev, read_ranges=[("y", "")], mutations=[("put", "z", "3")])
        self.assertIsNone(db.get("z"))
        # A blind write (no reads) commits unconditionally.
        self.assertGreater(db.commit(0, mutations=[("delete", "x")]), committed)
        self.assertIsNone(db.get("x"))

    def test_a_read_revision_below_the_compacted_one_is_too_old(self):
        db = self.client
        rev = db.put("k", "1")
        db.put("k", "2")
        db.compact(db.put("other", "x"))
        with self.assertRaises(FailedPrecondition) as cm:
            db.commit(rev, ["k"], mutations=[("put", "k", "3")])
        self.assertIn("too old", cm.exception.details)
        self.assertEqual(db.get("k"), b"2")


class TransactionTest(ServerTestCase):
    def test_reads_see_one_snapshot_and_the_own_writes(self):
        db = self.client
        db.write(WriteBatch().put("a", "1").put("b", "2").put("c", "3"))
        with db.transaction() as tx:
            self.assertIsNone(tx.read_revision)
            self.assertEqual(tx.get("a"), b"1")
            pinned = tx.read_revision
            db.put("b", "changed")  # after the snapshot: not seen
            self.assertEqual(tx.get("b"), b"2")
            self.assertEqual(tx.read_revision, pinned)
            tx.put("a", "10")
            tx.delete("b")
            tx.put("d", "4")
            self.assertEqual(tx.get("a"), b"10")
            self.assertIsNone(tx.get("b"))
            self.assertEqual(tx.scan(), [(b"a", b"10"), (b"c", b"3"), (b"d", b"4")])
            # A limit counts the merged pairs; the read range stops at the last one.
            self.assertEqual(tx.scan("a", "z", limit=2), [(b"a", b"10"), (b"c", b"3")])
            self.assertEqual(tx.read_ranges[-1], (b"a", b"c\x00"))
            self.assertEqual(tx.read_keys, [b"a", b"b"])
            tx.discard()  # b changed since the snapshot: a commit would abort
        self.assertEqual(db.get("a"), b"1")
        with self.assertRaises(RuntimeError):
            tx.commit()

    def test_a_transaction_commits_at_the_end_of_the_block(self):
        db = self.client
        db.put("n", "41")
        with db.transaction() as tx:
            tx.put("n", str(int(tx.get("n") or 0) + 1))
        self.assertEqual(db.get("n"), b"42")
        assert tx.revision is not None
        self.assertEqual(db.get_with_metadata("n").revision, tx.revision)
        with self.assertRaises(RuntimeError):
            tx.put("n", "0")

    def test_an_exception_in_the_block_writes_nothing(self):
        db = self.client
        with self.assertRaises(KeyError):
            with db.transaction() as tx:
                tx.put("k", "v")
                raise KeyError("boom")
        self.assertIsNone(db.get("k"))
        self.assertIsNone(tx.revision)

    def test_a_changed_read_aborts_the_commit(self):
        db = self.client
        db.put("k", "1")
        with self.assertRaises(Aborted):
            with db.transaction() as tx:
                tx.get("k")
                db.put("k", "2")
                tx.put("k", "3")
        self.assertEqual(db.get("k"), b"2")

    def test_a_phantom_in_a_scanned_empty_range_aborts(self):
        db = self.client
        db.put("unrelated", "x")
        tx = db.transaction()
        self.assertEqual(tx.scan(prefix="jobs/"), [])
        db.put("jobs/1", "new")  # another writer creates a key in the range
        tx.put("jobs/count", "0")
        with self.assertRaises(Aborted) as cm:
            tx.commit()
        self.assertIn("jobs/1", cm.exception.details)
        self.assertIsNone(db.get("jobs/count"))

    def test_a_read_only_transaction_never_commits(self):
        db = self.client
        db.put("k", "1")
        rev = db.put("j", "1")
        with db.transaction() as tx:
            self.assertEqual(tx.get("k"), b"1")
            self.assertEqual(tx.scan(prefix="j"), [(b"j", b"1")])
        self.assertEqual(tx.revision, rev)
        self.assertEqual(db.get_with_metadata("k").revision, rev)  # nothing moved
        # Its reads are stale before it ends; a Commit would be Aborted, so
        # only not calling the server lets it succeed.
        tx = db.transaction()
        self.assertEqual(tx.get("k"), b"1")
        changed = db.put("k", "2")
        self.assertEqual(tx.commit(), rev)
        self.assertEqual(db.get_with_metadata("k").revision, changed)

    def test_a_snapshot_of_the_empty_store_stays_empty(self):
        db = self.client
        tx = db.transaction()
        self.assertIsNone(tx.get("a"))
        self.assertEqual(tx.read_revision, 0)
        db.put("b", "1")
        self.assertIsNone(tx.get("b"))  # revision 0: nothing exists yet
        self.assertEqual(tx.scan(), [])
        tx.put("c", "1")
        with self.assertRaises(Aborted):
            tx.commit()
        self.assertIsNone(db.get("c"))

    def test_run_transaction_retries_an_aborted_transaction(self):
        db = self.client
        db.put("k", "1")
        attempts: List[int] = []
        retried: List[int] = []

        def fn(tx: Transaction) -> bytes:
            attempts.append(tx.attempt)
            v = tx.get("k")
            assert v is not None
            if tx.attempt == 1:
                db.put("k", "5")  # conflicts with this attempt only
            tx.put("k", str(int(v) + 1))
            return v

        seen = db.run_transaction(fn, initial_backoff=0.001,
                                  on_retry=lambda n, e: retried.append(n))
        self.assertEqual(seen, b"5")
        self.assertEqual(attempts, [1, 2])
        self.assertEqual(retried, [1])
        self.assertEqual(db.get("k"), b"6")

    def test_run_transaction_gives_up_after_max_attempts(self):
        db = self.client
        db.put("k", "1")

        def always_conflicts(tx: Transaction) -> None:
            tx.get("k")
            db.put("k", str(tx.attempt))
            tx.put("k", "never")

        with self.assertRaises(Aborted) as cm:
            db.run_transaction(always_conflicts, max_attempts=3, initial_backoff=0.001)
        self.assertIn("gave up after 3 attempts", cm.exception.details)
        self.assertEqual(db.get("k"), b"3")

    def test_run_transaction_does_not_retry_other_errors(self):
        db = self.client
        calls: List[int] = []

        def fails(tx: Transaction) -> None:
            calls.append(tx.attempt)
            tx.put("k", "1")
            raise ValueError("no")

        with self.assertRaises(ValueError):
            db.run_transaction(fails)
        self.assertEqual(calls, [1])
        self.assertIsNone(db.get("k"))


class NoLostUpdateTest(ServerTestCase):
    """WORKERS threads, each INCREMENTS compare-and-swap increments of one
    counter: the final value is exactly WORKERS * INCREMENTS, and there was
    contention (conflicts were retried)."""

    def run_workers(self, increment: Callable[[Client, float], int]) -> int:
        """Runs increment(client, deadline) INCREMENTS times in each of WORKERS
        threads (each with its own Client), all started together; returns the
        retries they counted. Fails on any error or past the time limit."""
        deadline = time.monotonic() + TIME_LIMIT_S
        start = threading.Barrier(WORKERS)
        retries = [0] * WORKERS
        errors: List[BaseException] = []

        def worker(i: int) -> None:
            try:
                with Client(self.address) as db:
                    start.wait(timeout=TIME_LIMIT_S)
                    for _ in range(INCREMENTS):
                        retries[i] += increment(db, deadline)
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
        self.assertFalse(any(t.is_alive() for t in threads), "workers past the time limit")
        self.assertEqual(errors, [])
        self.assertEqual(self.client.get("counter"), str(WORKERS * INCREMENTS).encode())
        return sum(retries)

    def test_txn_compare_and_swap(self):
        def increment(db: Client, deadline: float) -> int:
            failed = 0
            while time.monotonic() < deadline:
                kv = db.get_with_metadata("counter").kv
                old = kv.value if kv else None
                guard = (Compare.value("counter", "==", old) if old is not None
                         else Compare.version("counter", "==", 0))
                new = str(int(old or 0) + 1)
                if db.txn([guard], [TxnOp.put("counter", new)]).succeeded:
                    return failed
                failed += 1
            raise AssertionError("time limit reached")

        retries = self.run_workers(increment)
        self.assertGreater(retries, 0, "no compare ever failed: no contention")

    def test_run_transaction(self):
        def increment(db: Client, deadline: float) -> int:
            aborted: List[int] = []

            def fn(tx: Transaction) -> None:
                if time.monotonic() > deadline:
                    raise AssertionError("time limit reached")
                tx.put("counter", str(int(tx.get("counter") or 0) + 1))

            db.run_transaction(fn, max_attempts=10_000, initial_backoff=0.001, max_backoff=0.05,
                               on_retry=lambda n, e: aborted.append(n))
            return len(aborted)

        retries = self.run_workers(increment)
        self.assertGreater(retries, 0, "no commit was ever aborted: no contention")


if __name__ == "__main__":
    unittest.main()
