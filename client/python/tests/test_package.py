"""The strata-client distribution: what gets installed and what gets built.

No server needed. The wheel test builds an sdist and a wheel from it with
Debian's python3-build (offline: --no-isolation), the way a packager would.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile

import google.protobuf

import strata_client
from strata_client import _gen

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_SRC = os.path.dirname(HERE)  # client/python
REPO_ROOT = os.path.abspath(os.path.join(PACKAGE_SRC, "..", ".."))
REQUIRE_ALL = bool(os.environ.get("STRATA_TEST_REQUIRE_SERVER"))  # CI: never skip


def release_of(version: str) -> int:
    """The protobuf release of a version number.

    Runtimes (3.x to 6.x) and protoc 3.x carry it as their minor version
    ("4.21.12" and "3.21.12" -> 21); protoc 21 and later as their major ("25.1").
    """
    major, minor = (int(x) for x in version.split(".")[:2])
    return minor if major < 10 else major


class InstalledPackageTest(unittest.TestCase):
    def test_imported_from_an_installation_not_the_source_tree(self):
        where = os.path.realpath(strata_client.__file__)
        self.assertFalse(where.startswith(os.path.realpath(PACKAGE_SRC) + os.sep),
                         f"strata_client was imported from the source tree ({where}); "
                         "install it (see test_client.py) and run from another directory")

    def test_generated_modules_match_the_protobuf_runtime(self):
        gencode = release_of(_gen.PROTOC_VERSION)
        runtime = release_of(google.protobuf.__version__)
        self.assertGreaterEqual(runtime, gencode,
                                f"stubs from protoc {_gen.PROTOC_VERSION} need a protobuf "
                                f"runtime of release {gencode}+, have {google.protobuf.__version__}")

    def test_ships_type_information(self):
        pkg = os.path.dirname(strata_client.__file__)
        self.assertTrue(os.path.isfile(os.path.join(pkg, "py.typed")))
        self.assertTrue(os.path.isfile(os.path.join(pkg, "_gen", "kv_pb2.pyi")))


@unittest.skipUnless(importlib.util.find_spec("build") or REQUIRE_ALL,
                     "python3-build is not installed")
class BuildTest(unittest.TestCase):
    def test_sdist_carries_the_protos_and_the_wheel_the_generated_modules(self):
        with tempfile.TemporaryDirectory(prefix="strata-pybuild-") as out:
            # sdist first, then the wheel from the unpacked sdist (build's default).
            done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                                   out, PACKAGE_SRC], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"python -m build failed:\n{done.stdout}\n{done.stderr}")
            sdists = [f for f in os.listdir(out) if f.endswith(".tar.gz")]
            wheels = [f for f in os.listdir(out) if f.endswith(".whl")]
            self.assertEqual(len(sdists), 1, os.listdir(out))
            self.assertEqual(len(wheels), 1, os.listdir(out))
            with tarfile.open(os.path.join(out, sdists[0])) as tar:
                sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
            with zipfile.ZipFile(os.path.join(out, wheels[0])) as whl:
                wheel = set(whl.namelist())
                metadata = next(whl.read(n).decode() for n in wheel
                                if n.endswith(".dist-info/METADATA"))

        protos = ["strata/v1/" + f for f in os.listdir(os.path.join(REPO_ROOT, "proto", "strata", "v1"))
                  if f.endswith(".proto")]
        for proto in protos + ["grpc/health/v1/health.proto"]:
            self.assertIn("proto/" + proto, sdist)
        self.assertFalse([n for n in sdist if "/_gen/" in n], "generated code in the sdist")
        for name in ("__init__.py", "client.py", "errors.py", "tls.py", "_rpc.py", "py.typed",
                     "_gen/__init__.py", "_gen/health_descriptor.py"):
            self.assertIn("strata_client/" + name, wheel)
        for proto in protos:
            stem = os.path.splitext(os.path.basename(proto))[0]
            self.assertIn(f"strata_client/_gen/{stem}_pb2.py", wheel)
            self.assertIn(f"strata_client/_gen/{stem}_pb2.pyi", wheel)
        self.assertFalse([n for n in wheel if n.endswith(".proto")], "protos in the wheel")
        self.assertRegex(metadata, r"Requires-Dist: grpcio")
        floor = re.search(r"Requires-Dist: protobuf \(>=(\d+\.\d+)\)", metadata)
        self.assertIsNotNone(floor, metadata)
        self.assertEqual(release_of(floor.group(1)), release_of(_gen.PROTOC_VERSION))


if __name__ == "__main__":
    unittest.main()
