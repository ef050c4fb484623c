"""Typed values through strata_client, against a real strata-server
(docs/values.md): typed puts and their checks, values decoded to Python
types, incr (also from many threads at once), json_get and json_update.

Run like test_client.py (scripts/test-clients.sh installs the package and runs
it).
"""

from __future__ import annotations

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from strata_client import (Client, FailedPrecondition, InvalidArgument,  # noqa: E402
                           NotFound, OutOfRange, ValueType, WriteBatch,
                           decode_value)
from server_process import server_binary  # noqa: E402
from test_client import ServerTestCase  # noqa: E402

INT64_MAX = (1 << 63) - 1


def setUpModule():
    if not os.path.exists(server_binary()):
        why = f"strata-server not found at {server_binary()}"
        if os.environ.get("STRATA_TEST_REQUIRE_SERVER"):
            raise RuntimeError(why)
        raise unittest.SkipTest(why)


class TypedValuesTest(ServerTestCase):
    def test_typed_puts_come_back_with_their_type_and_decode(self):
        db = self.client
        db.put("t", "café", type=ValueType.TEXT)
        db.put("i", b"-42", type=ValueType.INT64)
        db.put_json("j", {"b": [1, 2.5, None], "a": "x"})
        db.put("b", b"\xff")
        kv = db.get_with_metadata("j").kv
        assert kv is not None
        self.assertEqual(kv.type, ValueType.JSON)
        self.assertEqual(kv.value, b'{"a":"x","b":[1,2.5,null]}')  # normalized
        self.assertEqual(kv.decoded(), {"a": "x", "b": [1, 2.5, None]})
        self.assertEqual(db.get_typed("t"), "café")
        self.assertEqual(db.get_typed("i"), -42)
        self.assertEqual(db.get_typed("b"), b"\xff")
        self.assertIsNone(db.get_typed("missing"))
        self.assertEqual(db.get_typed("missing", default=0), 0)
        pairs = {kv.key: kv.type for kv in db.scan(metadata=True)}
        self.assertEqual(pairs, {b"b": ValueType.BYTES, b"i": ValueType.INT64,
                                 b"j": ValueType.JSON, b"t": ValueType.TEXT})
        self.assertEqual(decode_value(b"7", ValueType.INT64), 7)

    def test_a_value_not_of_its_type_is_invalid_argument_and_not_written(self):
        db = self.client
        cases = [(b"9223372036854775808", ValueType.INT64, "not an INT64"),
                 (b"\xc0\xaf", ValueType.TEXT, "not valid UTF-8"),
                 (b'{"a":1,"a":2}', ValueType.JSON, "duplicate member name"),
                 (b"[" * 200 + b"]" * 200, ValueType.JSON, "nests more than 128 levels")]
        for value, t, message in cases:
            with self.subTest(t=t, message=message):
                with self.assertRaises(InvalidArgument) as cm:
                    db.put("k", value, type=t)
                self.assertIn(message, cm.exception.details)
        self.assertIsNone(db.get("k"))
        with self.assertRaises(TypeError):
            db.put("k", "1", type=2)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            db.put_json("k", float("nan"))

    def test_write_batch_puts_typed_values(self):
        db = self.client
        db.write(WriteBatch().put("n", "5", ValueType.INT64).put("d", "[]", ValueType.JSON))
        self.assertEqual(db.incr("n", 2), 7)
        self.assertEqual(db.json_update("d", json_patch=[{"op": "add", "path": "/-", "value": 1}]),
                         [1])

    def test_incr_counts_and_reports_errors(self):
        db = self.client
        self.assertEqual(db.incr("hits"), 1)
        self.assertEqual(db.incr("hits", 41), 42)
        self.assertEqual(db.incr("hits", -50), -8)
        kv = db.get_with_metadata("hits").kv
        assert kv is not None
        self.assertEqual((kv.value, kv.type, kv.version), (b"-8", ValueType.INT64, 3))
        with self.assertRaises(NotFound):
            db.incr("absent", must_exist=True)
        db.put("max", str(INT64_MAX), type=ValueType.INT64)
        with self.assertRaises(OutOfRange):
            db.incr("max")
        db.put("text", "1", type=ValueType.TEXT)
        with self.assertRaises(FailedPrecondition) as cm:
            db.incr("text")
        self.assertIn("holds a TEXT value, not INT64", cm.exception.details)
        with self.assertRaises(NotFound) as cm2:
            db.incr("x", namespace="tenant")
        self.assertIn('namespace "tenant" does not exist', cm2.exception.details)
        with self.assertRaises(ValueError):
            db.incr("x", 1 << 63)
        with self.assertRaises(TypeError):
            db.incr("x", 1.5)  # type: ignore[arg-type]

    def test_incr_from_many_threads_loses_nothing(self):
        threads, per_thread = 8, 100
        seen = []
        lock = threading.Lock()

        def run():
            with Client(self.address) as db:
                got = [db.incr("hot") for _ in range(per_thread)]
            with lock:
                seen.extend(got)

        workers = [threading.Thread(target=run) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        self.assertEqual(sorted(seen), list(range(1, threads * per_thread + 1)))
        self.assertEqual(self.client.get_typed("hot"), threads * per_thread)

    def test_json_get_and_update(self):
        db = self.client
        db.put_json("doc", {"a": {"b": [10, 20]}, "x/y": 1, "big": 2 ** 64 - 1})
        self.assertEqual(db.json_get("doc", "/a/b/1"), 20)
        self.assertEqual(db.json_get("doc", "/x~1y"), 1)
        self.assertEqual(db.json_get("doc", "/big"), 2 ** 64 - 1)
        doc = db.json_update("doc", merge_patch={"a": None, "c": "new"})
        self.assertEqual(doc, {"big": 2 ** 64 - 1, "c": "new", "x/y": 1})
        doc = db.json_update("doc", json_patch=b'[{"op":"remove","path":"/big"}]')
        self.assertEqual(doc, {"c": "new", "x/y": 1})
        # A merge patch of null replaces the document with null.
        self.assertIsNone(db.json_update("doc", merge_patch=None))
        self.assertIsNone(db.json_get("doc"))

    def test_json_errors(self):
        db = self.client
        db.put_json("doc", {"a": 1})
        with self.assertRaises(NotFound) as cm:
            db.json_get("missing")
        self.assertEqual(cm.exception.details, "key not found")
        with self.assertRaises(NotFound) as cm:
            db.json_get("doc", "/zz")
        self.assertIn('pointer "/zz" does not resolve', cm.exception.details)
        with self.assertRaises(InvalidArgument):
            db.json_get("doc", "zz")
        with self.assertRaises(FailedPrecondition) as cm2:
            db.json_update("doc", json_patch=[{"op": "test", "path": "/a", "value": 2}])
        self.assertIn("test failed", cm2.exception.details)
        with self.assertRaises(InvalidArgument):
            db.json_update("doc", json_patch=b"[{")
        with self.assertRaises(ValueError):
            db.json_update("doc")
        with self.assertRaises(ValueError):
            db.json_update("doc", merge_patch={}, json_patch=[])
        self.assertEqual(db.json_get("doc"), {"a": 1})

    def test_watch_events_carry_the_type(self):
        db = self.client
        start = db.put("w", "1", type=ValueType.INT64)
        db.incr("w")
        with db.watch("w", start_revision=start) as changes:
            events = [next(changes), next(changes)]
        self.assertEqual([(e.value_type, e.decoded()) for e in events],
                         [(ValueType.INT64, 1), (ValueType.INT64, 2)])
        self.assertEqual(events[1].kv.type, ValueType.INT64)


if __name__ == "__main__":
    unittest.main()
