"""strata_client against a real strata-server on 127.0.0.1 (port 0).

These tests use the INSTALLED package (its protobuf modules are generated when
it is built), never client/python itself. scripts/test-clients.sh installs it
into a fresh venv and runs them; by hand:

    /usr/bin/python3 -m venv --system-site-packages /tmp/venv
    /tmp/venv/bin/pip install --no-build-isolation --no-index ./client/python
    (cd /tmp && /tmp/venv/bin/python -m unittest discover -s $PWD/client/python/tests -v)

The server binary is $STRATA_SERVER or build/server/strata-server; without it
every test is skipped (scripts/test-clients.sh refuses to run without it).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

import strata_client  # noqa: E402
from strata_client import (Client, DeadlineExceeded, InvalidArgument,  # noqa: E402
                           NotFound, PermissionDenied, StrataError, Unavailable,
                           WriteBatch)
from server_process import REPO_ROOT, ServerProcess, server_binary  # noqa: E402

MIB = 1 << 20


def setUpModule():
    if not os.path.exists(server_binary()):
        why = (f"strata-server not found at {server_binary()}: build it, or set "
               "STRATA_SERVER=/path/to/strata-server")
        if os.environ.get("STRATA_TEST_REQUIRE_SERVER"):  # set by scripts/test-clients.sh
            raise RuntimeError(why)
        raise unittest.SkipTest(why)


class ServerTestCase(unittest.TestCase):
    """Starts a fresh server (empty data directory) for every test."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="strata-pytest-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.data_dir = os.path.join(self.tmp, "data")
        os.mkdir(self.data_dir)
        self.server = ServerProcess(self.data_dir, os.path.join(self.tmp, "server.log"))
        self.addCleanup(self.server.kill)
        self.address = self.server.start()
        self.client = Client(self.address)
        self.addCleanup(self.client.close)

    def fill(self, pairs):
        """Writes pairs with a few Write calls (one fsync each, not one per key)."""
        pairs = list(pairs)
        for i in range(0, len(pairs), 1000):
            batch = WriteBatch()
            for k, v in pairs[i:i + 1000]:
                batch.put(k, v)
            self.client.write(batch)


class BasicOpsTest(ServerTestCase):
    def test_put_then_get_returns_value(self):
        self.client.put(b"hello", b"world")
        self.assertEqual(self.client.get(b"hello"), b"world")

    def test_binary_keys_and_values_round_trip(self):
        key = bytes(range(256))
        value = bytes(reversed(range(256))) * 4
        self.client.put(key, value)
        self.assertEqual(self.client.get(key), value)

    def test_get_missing_key_returns_none(self):
        self.assertIsNone(self.client.get(b"no-such-key"))

    def test_empty_value_is_found_not_none(self):
        self.client.put(b"empty", b"")
        self.assertEqual(self.client.get(b"empty"), b"")

    def test_put_overwrites(self):
        self.client.put(b"k", b"v1")
        self.client.put(b"k", b"v2")
        self.assertEqual(self.client.get(b"k"), b"v2")

    def test_delete_removes_key_and_missing_delete_is_ok(self):
        self.client.put(b"k", b"v")
        self.client.delete(b"k")
        self.assertIsNone(self.client.get(b"k"))
        self.client.delete(b"k")  # already gone: still OK
        self.client.delete(b"never-existed")

    def test_str_keys_are_utf8(self):
        self.client.put("clé", "välue")
        self.assertEqual(self.client.get("clé".encode()), "välue".encode())
        self.assertEqual(self.client.get(bytearray("clé".encode())), "välue".encode())

    def test_non_bytes_key_is_type_error(self):
        with self.assertRaises(TypeError):
            self.client.put(42, b"v")

    def test_max_size_value_round_trips(self):
        value = os.urandom(2 * MIB)
        self.client.put(b"big", value)
        self.assertEqual(self.client.get(b"big"), value)

    def test_context_manager_closes_channel(self):
        with Client(self.address) as c:
            c.put(b"cm", b"1")
        self.assertEqual(self.client.get(b"cm"), b"1")
        with self.assertRaises(ValueError):  # grpc refuses calls on a closed channel
            c.get(b"cm")


class HealthTest(ServerTestCase):
    def test_serving_for_the_server_and_the_kv_service(self):
        self.assertIs(self.client.health(), True)
        self.assertIs(self.client.health("strata.v1.KV"), True)

    def test_unknown_service_is_not_found(self):
        with self.assertRaises(NotFound) as cm:
            self.client.health("no.such.Service")
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_unreachable_server_is_unavailable(self):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with Client(f"127.0.0.1:{port}", timeout=5) as c:
            with self.assertRaises(Unavailable):
                c.health()


class ErrorMappingTest(ServerTestCase):
    def assertInvalidArgument(self, fn, *args):
        with self.assertRaises(InvalidArgument) as cm:
            fn(*args)
        self.assertIsInstance(cm.exception, StrataError)
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(cm.exception.details, "the server should say which limit")
        self.assertIsInstance(cm.exception.__cause__, grpc.RpcError)
        return cm.exception

    def test_empty_key_is_invalid_argument(self):
        self.assertInvalidArgument(self.client.put, b"", b"v")
        self.assertInvalidArgument(self.client.get, b"")
        self.assertInvalidArgument(self.client.delete, b"")

    def test_key_over_limit_is_invalid_argument(self):
        self.client.put(b"k" * 8192, b"ok")  # the limit itself is fine
        self.assertInvalidArgument(self.client.put, b"k" * 8193, b"v")
        self.assertIsNone(self.client.get(b"k" * 8191))

    def test_value_over_limit_is_invalid_argument(self):
        self.assertInvalidArgument(self.client.put, b"k", b"x" * (2 * MIB + 1))
        self.assertIsNone(self.client.get(b"k"))

    def test_too_many_mutations_is_invalid_argument_and_writes_nothing(self):
        batch = WriteBatch()
        for i in range(10001):
            batch.put(b"m%05d" % i, b"v")
        self.assertInvalidArgument(self.client.write, batch)
        self.assertIsNone(self.client.get(b"m00000"))
        self.assertEqual(list(self.client.scan()), [])

    def test_deadline_exceeded(self):
        # A deadline that has passed before the call leaves the client. (Not
        # a tiny positive timeout: gRPC rounds deadlines up to whole
        # milliseconds, so a fast server can answer OK before it fires.)
        with self.assertRaises(DeadlineExceeded) as cm:
            self.client.get(b"k", timeout=-1)
        self.assertEqual(cm.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        with Client(self.address, timeout=-1) as c:  # the client default applies too
            with self.assertRaises(DeadlineExceeded):
                c.put(b"k", b"v")
            with self.assertRaises(DeadlineExceeded):
                list(c.scan())

    def test_unreachable_server_is_unavailable(self):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with Client(f"127.0.0.1:{port}", timeout=5) as c:
            with self.assertRaises(Unavailable) as cm:
                c.get(b"k")
        self.assertEqual(cm.exception.code, grpc.StatusCode.UNAVAILABLE)

    def test_from_rpc_error_picks_the_subclass_of_the_code(self):
        class FakeError(grpc.RpcError):
            def __init__(self, code):
                self._code = code

            def code(self):
                return self._code

            def details(self):
                return "nope"

        err = strata_client.from_rpc_error(FakeError(grpc.StatusCode.PERMISSION_DENIED))
        self.assertIs(type(err), PermissionDenied)
        self.assertEqual(err.code, grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("nope", str(err))
        err = strata_client.from_rpc_error(FakeError(grpc.StatusCode.OUT_OF_RANGE))
        self.assertIs(type(err), strata_client.OutOfRange)
        self.assertIsNone(err.compact_revision)
        # A code without a subclass of its own is a plain StrataError.
        err = strata_client.from_rpc_error(FakeError(grpc.StatusCode.ALREADY_EXISTS))
        self.assertIs(type(err), StrataError)
        self.assertEqual(err.code, grpc.StatusCode.ALREADY_EXISTS)


class ScanTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.keys = [b"a", b"b", b"b\x00", b"ba", b"c", b"d", b"\xff"]
        self.fill((k, b"v-" + k) for k in self.keys)

    def scan_keys(self, **kw):
        return [k for k, _ in self.client.scan(**kw)]

    def test_full_scan_is_sorted_with_values(self):
        self.assertEqual(list(self.client.scan()), [(k, b"v-" + k) for k in self.keys])

    def test_start_inclusive_end_exclusive(self):
        self.assertEqual(self.scan_keys(start=b"b", end=b"c"), [b"b", b"b\x00", b"ba"])
        self.assertEqual(self.scan_keys(start=b"b\x00", end=b"d"), [b"b\x00", b"ba", b"c"])

    def test_empty_end_means_unbounded(self):
        self.assertEqual(self.scan_keys(start=b"d"), [b"d", b"\xff"])

    def test_empty_range(self):
        self.assertEqual(self.scan_keys(start=b"c", end=b"c"), [])
        self.assertEqual(self.scan_keys(start=b"e", end=b"f"), [])
        self.assertEqual(self.scan_keys(start=b"\xff\x00"), [])

    def test_limit(self):
        self.assertEqual(self.scan_keys(limit=2), [b"a", b"b"])
        self.assertEqual(self.scan_keys(start=b"ba", limit=3), [b"ba", b"c", b"d"])
        self.assertEqual(self.scan_keys(limit=100), self.keys)

    def test_keys_only_returns_empty_values(self):
        pairs = list(self.client.scan(keys_only=True))
        self.assertEqual([k for k, _ in pairs], self.keys)
        self.assertTrue(all(v == b"" for _, v in pairs))

    def test_deleted_keys_are_not_scanned(self):
        self.client.delete(b"b")
        self.assertEqual(self.scan_keys(end=b"c"), [b"a", b"b\x00", b"ba"])

    def test_negative_limit_is_value_error(self):
        with self.assertRaises(ValueError):
            self.client.scan(limit=-1)


class LargeScanTest(ServerTestCase):
    def test_large_scan_streams_across_batches(self):
        n, value = 4000, b"x" * 1024  # ~4 MiB: several ~1 MiB messages
        self.fill((b"key%06d" % i, value) for i in range(n))
        it = self.client.scan()
        got = [k for k, v in it if v == value]
        self.assertEqual(got, [b"key%06d" % i for i in range(n)])
        self.assertGreaterEqual(it.messages, 4, "expected the stream to be batched")

    def test_value_larger_than_batch_travels_alone(self):
        big = os.urandom(2 * MIB)
        self.fill([(b"a", b"1"), (b"b", big), (b"c", b"3")])
        self.assertEqual(list(self.client.scan()), [(b"a", b"1"), (b"b", big), (b"c", b"3")])

    def test_early_stop_cancels_the_call(self):
        self.fill((b"key%06d" % i, b"y" * 4096) for i in range(3000))  # ~12 MiB
        it = self.client.scan()
        first = next(it)
        self.assertEqual(first[0], b"key000000")
        it.close()
        self.assertEqual(it._call.code(), grpc.StatusCode.CANCELLED)
        self.assertEqual(list(it), [])  # closed: nothing more
        # Leaving a with block cancels too, and the server keeps serving.
        with self.client.scan(start=b"key001000") as it2:
            self.assertEqual(next(it2)[0], b"key001000")
        self.assertEqual(it2._call.code(), grpc.StatusCode.CANCELLED)
        self.assertEqual(self.client.get(b"key002999"), b"y" * 4096)

    def test_scan_deadline_is_for_the_whole_stream(self):
        self.fill((b"key%06d" % i, b"z" * 1024) for i in range(100))
        with self.assertRaises(DeadlineExceeded):
            list(self.client.scan(timeout=-1))
        self.assertEqual(len(list(self.client.scan(timeout=None))), 100)


class WriteTest(ServerTestCase):
    def test_write_batch_applies_in_order(self):
        self.client.put(b"old", b"1")
        batch = WriteBatch().put(b"a", b"1").put(b"b", b"2").delete(b"old").put(b"a", b"3")
        self.assertEqual(len(batch), 4)
        self.client.write(batch)
        self.assertEqual(list(self.client.scan()), [(b"a", b"3"), (b"b", b"2")])

    def test_write_accepts_list_of_ops(self):
        self.client.write([("put", "x", "1"), ("put", b"y", b"2"), ("delete", b"x")])
        self.assertIsNone(self.client.get(b"x"))
        self.assertEqual(self.client.get(b"y"), b"2")

    def test_bad_op_is_value_error(self):
        with self.assertRaises(ValueError):
            self.client.write([("upsert", b"k", b"v")])
        with self.assertRaises(ValueError):
            self.client.write([("delete", b"k", b"v")])

    def test_empty_write_is_ok(self):
        self.client.write(WriteBatch())
        self.client.write([])

    def test_write_with_one_bad_mutation_writes_nothing(self):
        batch = WriteBatch().put(b"good1", b"1").put(b"", b"bad").put(b"good2", b"2")
        with self.assertRaises(InvalidArgument):
            self.client.write(batch)
        self.assertIsNone(self.client.get(b"good1"))
        self.assertIsNone(self.client.get(b"good2"))


class RestartTest(ServerTestCase):
    def test_acknowledged_writes_survive_restart(self):
        self.client.put(b"p", b"1")
        self.client.write(WriteBatch().put(b"w1", b"a").put(b"w2", b"b").delete(b"p"))
        self.client.put(b"q", b"2")
        self.client.delete(b"q")
        self.client.put(b"r", b"3")
        self.client.close()
        self.assertEqual(self.server.stop(), 0, "SIGTERM must exit cleanly")

        address = self.server.start()
        with Client(address) as c:
            self.assertEqual(list(c.scan()), [(b"r", b"3"), (b"w1", b"a"), (b"w2", b"b")])
            self.assertIsNone(c.get(b"p"))
            self.assertIsNone(c.get(b"q"))
        self.assertEqual(self.server.stop(), 0)


class DocExampleTest(ServerTestCase):
    """The Python example in docs/clients.md runs as written."""

    def test_doc_example_runs(self):
        path = os.path.join(REPO_ROOT, "docs", "clients.md")
        with open(path, encoding="utf-8") as f:
            doc = f.read()
        section = doc.split("\n## Python", 1)[1]
        block = section.split("```python\n", 1)[1].split("\n```", 1)[0]
        self.assertIn("127.0.0.1:50051", block)
        code = block.replace("127.0.0.1:50051", self.address)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{path}:python-example", "exec"), {"__name__": "doc_example"})
        self.assertIn("b'fruit/apple' b'red'", out.getvalue())
        self.assertIn("StatusCode.INVALID_ARGUMENT", out.getvalue())
        self.assertIsNone(self.client.get(b"hello"))  # deleted by the batch


if __name__ == "__main__":
    unittest.main()
