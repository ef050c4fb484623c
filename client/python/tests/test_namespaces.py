"""Namespaces through strata_client, against a real strata-server
(docs/namespaces.md): the admin calls, the client's namespace and
in_namespace(), isolation of the same key, NotFound for an unknown namespace.

Run like test_client.py (scripts/test-clients.sh installs the package and runs
it).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from strata_client import (Client, InvalidArgument, NamespaceInfo,  # noqa: E402
                           NotFound, StrataError, Unimplemented, WriteBatch)
from server_process import server_binary  # noqa: E402
from test_client import ServerTestCase, setUpModule  # noqa: E402,F401


class NamespacesTest(ServerTestCase):
    def test_admin_calls(self):
        db = self.client
        self.assertGreater(db.create_namespace("team/a", quota_bytes=100, quota_keys=5), 0)
        db.create_namespace("team/b")
        with self.assertRaises(StrataError) as cm:
            db.create_namespace("team/a")
        self.assertEqual(cm.exception.code, grpc.StatusCode.ALREADY_EXISTS)
        with self.assertRaises(InvalidArgument):
            db.create_namespace("bad name")
        db.update_namespace("team/b", quota_keys=9)
        self.assertEqual(db.list_namespaces("team/"), [
            NamespaceInfo("team/a", 100, 5, 0, 0), NamespaceInfo("team/b", 0, 9, 0, 0)])
        # Only the quota given changes; the other stays.
        db.update_namespace("team/a", quota_keys=6)
        self.assertEqual(db.list_namespaces("team/a"), [NamespaceInfo("team/a", 100, 6, 0, 0)])
        db.update_namespace("team/a", quota_bytes=0)
        self.assertEqual(db.list_namespaces("team/a"), [NamespaceInfo("team/a", 0, 6, 0, 0)])
        db.delete_namespace("team/a")
        with self.assertRaises(NotFound):
            db.delete_namespace("team/a")
        self.assertEqual([n.name for n in db.list_namespaces()], ["team/b"])

    def test_the_same_key_in_two_namespaces_never_crosses(self):
        db = self.client
        db.create_namespace("a")
        db.create_namespace("b")
        a = Client(self.address, namespace="a")
        self.addCleanup(a.close)
        b = a.in_namespace("b")
        db.put("k", "default")
        a.put("k", "A")
        b.write(WriteBatch().put("k", "B").put("only-b", "1"))
        self.assertEqual(db.get("k"), b"default")
        self.assertEqual(a.get("k"), b"A")
        self.assertEqual(b.get("k"), b"B")
        self.assertEqual([k for k, _ in a.scan()], [b"k"])
        self.assertEqual([k for k, _ in b.scan()], [b"k", b"only-b"])
        self.assertEqual(a.incr("n", 2), 2)
        self.assertEqual(db.incr("n", 5, namespace="b"), 5)
        self.assertIsNone(db.get("n"))
        db.delete_namespace("a")
        with self.assertRaises(NotFound):
            a.get("k")
        with self.assertRaises(NotFound):
            Client(self.address, namespace="nope").put("k", "v")

    def test_backup_of_one_namespace(self):
        db = self.client
        db.create_namespace("a", quota_keys=10)
        db.create_namespace("b")
        a = Client(self.address, namespace="a")
        self.addCleanup(a.close)
        a.put("k", "A")
        a.in_namespace("b").put("k", "B")
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        # The client's namespace, or namespace= on a client without one.
        for client, kwargs in ((a, {}), (db, {"namespace": "a"})):
            path = os.path.join(tmp, "a.backup")
            revision = client.backup_to_file(path, **kwargs)
            self.assertGreater(revision, 0)
            with open(path, "rb") as f:
                self.assertEqual(f.read(12), b"STRATABK\x03\x00\x00\x00")
            messages = list(client.backup(**kwargs))
            self.assertEqual(messages[0].begin.namespace, "a")
            self.assertEqual(messages[-1].manifest.namespace, "a")
            self.assertTrue(all(m.HasField("keys") for m in messages[1:-1]))
        with self.assertRaises(NotFound):
            db.backup_to_file(os.path.join(tmp, "n.backup"), namespace="nope")
        self.assertFalse(os.path.exists(os.path.join(tmp, "n.backup")))
        with self.assertRaises(Unimplemented):
            list(a.backup(since_revision=1))


if __name__ == "__main__":
    unittest.main()
