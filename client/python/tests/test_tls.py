"""strata_client over TLS and mutual TLS against a real strata-server.

One server for the whole class, started with --tls_cert/--tls_key and
--tls_client_ca (client certificates required), on certificates made by
scripts/gen-test-certs.sh in a temporary directory. Like test_client.py this
uses the installed package (see there for how to run it).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from strata_client import Client, TLSConfig, Unavailable, WriteBatch  # noqa: E402
from server_process import (REPO_ROOT, ServerProcess, gen_test_certs,  # noqa: E402
                            mtls_flags, server_binary)


def setUpModule():
    if not os.path.exists(server_binary()):
        why = (f"strata-server not found at {server_binary()}: build it, or set "
               "STRATA_SERVER=/path/to/strata-server")
        if os.environ.get("STRATA_TEST_REQUIRE_SERVER"):  # set by scripts/test-clients.sh
            raise RuntimeError(why)
        raise unittest.SkipTest(why)


class MutualTLSTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="strata-pytls-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.pki = gen_test_certs(os.path.join(cls.tmp, "pki"))
        data_dir = os.path.join(cls.tmp, "data")
        os.mkdir(data_dir)
        cls.server = ServerProcess(data_dir, os.path.join(cls.tmp, "server.log"),
                                   extra_args=mtls_flags(cls.pki))
        cls.addClassCleanup(cls.server.kill)
        cls.address = cls.server.start()

    def pem(self, name):
        return os.path.join(self.pki, name)

    def mtls(self, **overrides):
        kw = dict(ca=self.pem("ca.crt"), cert=self.pem("client.crt"), key=self.pem("client.key"))
        kw.update(overrides)
        return TLSConfig(**kw)

    def assertRefused(self, tls, why=""):
        """A call with these settings fails with UNAVAILABLE (no connection)."""
        with Client(self.address, timeout=10, tls=tls) as c:
            with self.assertRaises(Unavailable) as cm:
                c.put(b"refused", b"x")
        self.assertEqual(cm.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn(why, cm.exception.details)
        return cm.exception

    def test_every_call_works_over_mutual_tls(self):
        with Client(self.address, tls=self.mtls()) as db:
            db.put(b"m/a", b"1")
            db.write(WriteBatch().put(b"m/b", b"2").put(b"m/c", b"3").delete(b"m/a"))
            self.assertIsNone(db.get(b"m/a"))
            self.assertEqual(db.get(b"m/b"), b"2")
            self.assertEqual(list(db.scan(start=b"m/", end=b"m0")), [(b"m/b", b"2"), (b"m/c", b"3")])
            db.delete(b"m/b")
            self.assertIs(db.health(), True)

    def test_pem_bytes_work_like_paths(self):
        def read(name):
            with open(self.pem(name), "rb") as f:
                return f.read()
        tls = TLSConfig(ca=read("ca.crt"), cert=read("client.crt"), key=read("client.key"))
        with Client(self.address, tls=tls) as db:
            db.put(b"bytes", b"ok")
            self.assertEqual(db.get(b"bytes"), b"ok")

    def test_server_name_overrides_the_checked_name(self):
        # The certificate names localhost and 127.0.0.1; we dial 127.0.0.1.
        with Client(self.address, tls=self.mtls(server_name="localhost")) as db:
            self.assertIs(db.health(), True)
        self.assertRefused(self.mtls(server_name="wrong.example"), "wrong.example")

    def test_server_refuses_a_client_without_certificate(self):
        self.assertRefused(TLSConfig(ca=self.pem("ca.crt")))

    def test_server_refuses_a_certificate_from_another_ca(self):
        self.assertRefused(self.mtls(cert=self.pem("other-client.crt"),
                                     key=self.pem("other-client.key")))

    def test_client_refuses_a_server_it_does_not_trust(self):
        self.assertRefused(self.mtls(ca=self.pem("other-ca.crt")))

    def test_plaintext_client_cannot_talk_to_a_tls_server(self):
        with Client(self.address, timeout=10) as c:
            with self.assertRaises(Unavailable):
                c.get(b"k")

    def test_bad_settings_fail_before_connecting(self):
        with self.assertRaises(ValueError):
            TLSConfig(ca=self.pem("ca.crt"), cert=self.pem("client.crt"))  # no key
        with self.assertRaises(ValueError):
            TLSConfig(key=self.pem("client.key"))  # no cert
        with self.assertRaises(ValueError):
            TLSConfig(server_name="")
        with self.assertRaises(FileNotFoundError):
            Client(self.address, tls=TLSConfig(ca=os.path.join(self.tmp, "missing.crt")))
        with self.assertRaises(TypeError):
            Client(self.address, tls=TLSConfig(ca=42))  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            Client(self.address, tls=self.mtls(), credentials=grpc.ssl_channel_credentials())

    def test_doc_tls_example_runs(self):
        """The Python TLS example in docs/clients.md runs as written."""
        path = os.path.join(REPO_ROOT, "docs", "clients.md")
        with open(path, encoding="utf-8") as f:
            section = f.read().split("\n## Python", 1)[1].split("\n## ", 1)[0]
        blocks = [b.split("\n```", 1)[0] for b in section.split("```python\n")[1:]]
        tls_blocks = [b for b in blocks if "TLSConfig(" in b]
        self.assertEqual(len(tls_blocks), 1, "docs/clients.md: one Python TLS example")
        code = tls_blocks[0]
        for needle in ("127.0.0.1:50051", "/etc/strata/pki/"):
            self.assertIn(needle, code)
        code = code.replace("127.0.0.1:50051", self.address).replace(
            "/etc/strata/pki/", self.pki + "/")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{path}:python-tls-example", "exec"), {"__name__": "doc_example"})
        self.assertIn("b'over mutual TLS' True", out.getvalue())


if __name__ == "__main__":
    unittest.main()
