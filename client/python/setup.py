"""Build steps of strata-client that pyproject.toml cannot declare.

The protobuf modules of the package are not in git: they are generated here,
while the package is built, from the proto files of the repository
(proto/strata/v1/*.proto and proto/grpc/health/v1/health.proto), with the
protoc of the building machine. Building and installing therefore always
yields modules that match both the proto (the contract) and a protobuf runtime
of the same release as that protoc (Debian's protoc 3.21 with Debian's
python3-protobuf 4.21). The wheel's protobuf requirement is derived from the
protoc version for the same reason.

Where the protos come from:
  * a git checkout: ../../proto next to this file;
  * an sdist: proto/ inside it (the sdist command copies them there).

Needs protoc (Debian: protobuf-compiler); $PROTOC overrides its path. The
generated modules land in build_lib/strata_client/_gen/:
  <name>_pb2.py, <name>_pb2.pyi   one pair per proto/strata/v1/<name>.proto
  health_descriptor.py            grpc.health.v1 as a serialized descriptor
                                  set, loaded into a private pool at run time
                                  so it never clashes with grpcio-health-checking
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from typing import List, Optional, Tuple

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.command.sdist import sdist as _sdist

HERE = os.path.dirname(os.path.abspath(__file__))
STRATA_PROTO_DIR = os.path.join("strata", "v1")
HEALTH_PROTO = "grpc/health/v1/health.proto"
GEN_PACKAGE = os.path.join("strata_client", "_gen")


def proto_root() -> str:
    """The directory that holds strata/v1/*.proto (sdist first, then git tree)."""
    for candidate in (os.path.join(HERE, "proto"), os.path.join(HERE, "..", "..", "proto")):
        if os.path.isfile(os.path.join(candidate, STRATA_PROTO_DIR, "kv.proto")):
            return os.path.normpath(candidate)
    raise SystemExit(
        "strata-client: proto/strata/v1/kv.proto not found; build from a Strata "
        "checkout (client/python) or from the package's sdist")


def strata_protos(root: str) -> List[str]:
    """The proto/strata/v1/*.proto files, relative to root, sorted."""
    found = sorted(glob.glob(os.path.join(root, STRATA_PROTO_DIR, "*.proto")))
    return [os.path.relpath(p, root).replace(os.sep, "/") for p in found]


def protoc() -> str:
    exe = os.environ.get("PROTOC") or shutil.which("protoc")
    if not exe:
        raise SystemExit("strata-client: protoc not found; install it "
                         "(Debian: apt-get install protobuf-compiler) or set $PROTOC")
    return exe


def protoc_version(exe: str) -> Tuple[int, int, int]:
    """protoc's version: "libprotoc 3.21.12" -> (3, 21, 12); "libprotoc 25.1" -> (25, 1, 0)."""
    out = subprocess.run([exe, "--version"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not m:
        raise SystemExit(f"strata-client: cannot parse the protoc version from {out!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def gencode_release(version: Tuple[int, int, int]) -> int:
    """The protobuf release number shared by protoc and its runtimes.

    Since 3.20 protobuf numbers its language runtimes after protoc's minor
    version: protoc 3.21 pairs with Python protobuf 4.21, protoc 25.x with
    4.25, protoc 26.x with 5.26.
    """
    major, minor, _ = version
    return minor if major == 3 else major


def protobuf_requirement(release: int) -> str:
    """The oldest Python protobuf runtime that loads code from protoc `release`."""
    if release <= 20:
        return f"protobuf>=3.{release}"
    if release <= 25:
        return f"protobuf>=4.{release}"
    if release <= 29:
        return f"protobuf>=5.{release}"
    return f"protobuf>=6.{release}"


def check_runtime(release: int) -> None:
    """Fails the build if the protobuf runtime here is older than the gencode.

    The build runs without isolation (Debian's runtime), so the runtime seen
    here is the one the installed package will use.
    """
    try:
        import google.protobuf
    except ImportError:
        return  # isolated build: the dependency pin does the job
    m = re.match(r"(\d+)\.(\d+)", google.protobuf.__version__)
    if m and int(m.group(2)) < release:
        raise SystemExit(
            f"strata-client: protoc generates code for protobuf runtime release "
            f"{release}, but this environment has protobuf {google.protobuf.__version__}: "
            f"use the protoc of the same release (Debian: protobuf-compiler with "
            f"python3-protobuf)")


_ABSOLUTE_IMPORT = re.compile(r"^from strata\.v1 import (\w+_pb2)\b", re.MULTILINE)


def generate(out_dir: str) -> List[str]:
    """Writes the _gen package into out_dir; returns the files written."""
    root = proto_root()
    exe = protoc()
    version = protoc_version(exe)
    check_runtime(gencode_release(version))
    protos = strata_protos(root)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([exe, f"-I{root}", f"--python_out={tmp}", f"--pyi_out={tmp}", *protos],
                       check=True)
        health_set = os.path.join(tmp, "health.binpb")
        subprocess.run([exe, f"-I{root}", f"--descriptor_set_out={health_set}", HEALTH_PROTO],
                       check=True)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)  # no stale module of a removed proto
        os.makedirs(out_dir)
        written = []
        # protoc lays modules out by proto path (strata/v1/kv_pb2.py) and imports
        # between them absolutely; flatten them into strata_client._gen with
        # package-relative imports so nothing named "strata" must be importable.
        for proto in protos:
            stem = os.path.splitext(os.path.basename(proto))[0]
            for suffix in ("_pb2.py", "_pb2.pyi"):
                with open(os.path.join(tmp, STRATA_PROTO_DIR, stem + suffix), encoding="utf-8") as f:
                    code = _ABSOLUTE_IMPORT.sub(r"from . import \1", f.read())
                written.append(_write(out_dir, stem + suffix, code))
        with open(health_set, "rb") as f:
            serialized = f.read()
        written.append(_write(out_dir, "health_descriptor.py", (
            f'"""grpc.health.v1 ({HEALTH_PROTO}) as a serialized FileDescriptorSet."""\n\n'
            f"SERIALIZED = {serialized!r}\n")))
        modules = ", ".join(repr(os.path.splitext(os.path.basename(p))[0] + "_pb2") for p in protos)
        dotted = ".".join(map(str, version))
        written.append(_write(out_dir, "__init__.py", (
            f'"""Generated at build time from proto/ by protoc {dotted}; do not edit."""\n\n'
            f'PROTOC_VERSION = "{dotted}"\n'
            f"MODULES = ({modules},)\n")))
    return written


def _write(out_dir: str, name: str, text: str) -> str:
    path = os.path.join(out_dir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class build_py(_build_py):
    """build_py that also generates strata_client._gen from the protos."""

    def run(self) -> None:
        # Start from an empty package directory: an in-tree build/ (pip builds
        # in place) must not carry modules of an older source into the wheel.
        shutil.rmtree(os.path.join(self.build_lib, "strata_client"), ignore_errors=True)
        super().run()
        self._generated: List[str] = []
        if not self.dry_run:
            self._generated = generate(os.path.join(self.build_lib, GEN_PACKAGE))

    def get_outputs(self, include_bytecode: bool = True) -> List[str]:
        return list(super().get_outputs(include_bytecode)) + getattr(self, "_generated", [])


class sdist(_sdist):
    """sdist that carries the protos, so a wheel can be built from it alone."""

    def make_release_tree(self, base_dir: str, files: List[str]) -> None:
        super().make_release_tree(base_dir, files)
        root = proto_root()
        for rel in strata_protos(root) + [HEALTH_PROTO]:
            dest = os.path.join(base_dir, "proto", rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(os.path.join(root, rel), dest)


def requirements() -> List[str]:
    exe: Optional[str] = os.environ.get("PROTOC") or shutil.which("protoc")
    # Without protoc the build fails in build_py with a clear message; the
    # metadata step alone (e.g. `pip show` of an sdist) still works.
    release = gencode_release(protoc_version(exe)) if exe else 21
    return ["grpcio>=1.51", protobuf_requirement(release)]


setup(cmdclass={"build_py": build_py, "sdist": sdist}, install_requires=requirements())
