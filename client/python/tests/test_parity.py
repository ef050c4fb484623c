"""Every RPC of proto/strata/v1 has a method in the Python and the Node client.

The RPCs come from the proto files themselves (protoc --descriptor_set_out);
each client exposes RPC_METHODS, a table RPC full name -> client method. The
test fails when a client lacks an RPC, lists one no proto has, or maps one to
a method it does not define; for Node also when index.d.ts does not declare
it. The C++ client and CLI are not covered here. Services between the nodes
of a cluster (INTERNAL_SERVICES: strata.v1.Replication, "Not for clients")
are left out.

No server needed; Node's table is read by running node on client/node (after
npm ci there).
"""

from __future__ import annotations

import glob
import inspect
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from dataclasses import dataclass
from typing import Dict, List, Optional, Set

from google.protobuf import descriptor_pb2

from strata_client import Client

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PROTO_ROOT = os.path.join(REPO_ROOT, "proto")
NODE_PACKAGE = os.path.join(REPO_ROOT, "client", "node")
# Node-to-node services of proto/strata/v1 that no client exposes.
INTERNAL_SERVICES = frozenset({"strata.v1.Replication"})
REQUIRE_ALL = bool(os.environ.get("STRATA_TEST_REQUIRE_SERVER"))  # CI: never skip

_NODE_DUMP = r"""
const { Client } = require('./index.js');
const proto = Client.prototype;
const defined = Object.getOwnPropertyNames(proto)
  // Through the descriptor: reading a getter (Client.primary) on the prototype would run it.
  .filter((n) => n !== 'constructor' && !n.startsWith('_') &&
    typeof Object.getOwnPropertyDescriptor(proto, n).value === 'function');
process.stdout.write(JSON.stringify({ methods: Client.RPC_METHODS, defined }));
"""


@dataclass
class ClientTable:
    """One client's RPC table and the public methods it really has."""

    methods: Dict[str, str]  # RPC full name -> method name
    defined: Set[str]


def proto_rpcs(proto_root: str = PROTO_ROOT) -> Set[str]:
    """Full names ("strata.v1.KV/Get") of every client RPC in
    proto_root/strata/v1/*.proto (INTERNAL_SERVICES left out)."""
    files = sorted(os.path.relpath(p, proto_root)
                   for p in glob.glob(os.path.join(proto_root, "strata", "v1", "*.proto")))
    if not files:
        raise AssertionError(f"no .proto files in {proto_root}/strata/v1")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.binpb")
        subprocess.run(["protoc", f"-I{proto_root}", f"--descriptor_set_out={out}", *files],
                       check=True)
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    return {f"{fd.package}.{svc.name}/{m.name}"
            for fd in fds.file for svc in fd.service for m in svc.method
            if f"{fd.package}.{svc.name}" not in INTERNAL_SERVICES}


def python_table() -> ClientTable:
    defined = {name for name, fn in inspect.getmembers(Client, inspect.isfunction)
               if not name.startswith("_")}
    return ClientTable(dict(Client.RPC_METHODS), defined)


def node_tables() -> Optional[Dict[str, ClientTable]]:
    """Node's table ("node") and its declarations ("node index.d.ts"); None without node."""
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(NODE_PACKAGE, "node_modules")):
        return None
    out = subprocess.run([node, "-e", _NODE_DUMP], cwd=NODE_PACKAGE, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    dump = json.loads(out)
    methods = dict(dump["methods"])
    return {"node": ClientTable(methods, set(dump["defined"])),
            "node index.d.ts": ClientTable(methods, declared_client_methods())}


def declared_client_methods() -> Set[str]:
    """Method names declared in `export class Client { ... }` of index.d.ts."""
    with open(os.path.join(NODE_PACKAGE, "index.d.ts"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^export class Client \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    if not m:
        raise AssertionError("index.d.ts has no `export class Client {`")
    return set(re.findall(r"^\s+(\w+)\(", m.group(1), re.MULTILINE)) - {"constructor"}


def parity_problems(rpcs: Set[str], clients: Dict[str, ClientTable]) -> List[str]:
    """What keeps the clients from matching the proto; [] when they all do."""
    problems = []
    for name, table in sorted(clients.items()):
        for rpc in sorted(rpcs - table.methods.keys()):
            problems.append(f"{name}: no method for RPC {rpc} (add one and its RPC_METHODS line)")
        for rpc in sorted(table.methods.keys() - rpcs):
            problems.append(f"{name}: RPC_METHODS lists {rpc}, which no proto/strata/v1 service has")
        for rpc, method in sorted(table.methods.items()):
            if method not in table.defined:
                problems.append(f"{name}: RPC_METHODS maps {rpc} to {method}(), "
                                "which is not defined (or declared) there")
    return problems


class ParityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rpcs = proto_rpcs()
        cls.clients = {"python": python_table()}
        node = node_tables()
        if node is None:
            if REQUIRE_ALL:
                raise AssertionError("node, or client/node/node_modules (npm ci), is missing")
        else:
            cls.clients.update(node)

    def test_every_client_has_every_rpc_of_the_proto_and_nothing_else(self):
        self.assertEqual(parity_problems(self.rpcs, self.clients), [])

    def test_the_proto_reader_sees_the_known_rpcs(self):
        for rpc in ("Get", "Put", "Delete", "Scan", "Write", "Watch", "Compact", "BatchGet",
                    "DeleteRange", "Txn", "Commit"):
            self.assertIn(f"strata.v1.KV/{rpc}", self.rpcs)

    def test_the_cluster_rpcs_are_client_rpcs_and_replication_is_not(self):
        self.assertIn("strata.v1.Cluster/GetRangeMap", self.rpcs)
        self.assertIn("strata.v1.Cluster/GetClusterStatus", self.rpcs)
        self.assertFalse([r for r in self.rpcs if r.startswith("strata.v1.Replication/")])

    def test_the_transaction_rpcs_have_their_documented_method_names(self):
        # The names the READMEs show; transaction() and run_transaction() call them.
        expected = {"python": {"strata.v1.KV/Txn": "txn", "strata.v1.KV/Commit": "commit"},
                    "node": {"strata.v1.KV/Txn": "txn", "strata.v1.KV/Commit": "commit"}}
        for name, table in self.clients.items():
            want = expected[name.split()[0]]
            self.assertEqual({rpc: table.methods.get(rpc) for rpc in want}, want, name)

    def test_an_rpc_no_client_has_fails_for_every_client(self):
        # A new service in a new proto file, read back through protoc.
        with tempfile.TemporaryDirectory() as root:
            shutil.copytree(os.path.join(PROTO_ROOT, "strata"), os.path.join(root, "strata"))
            with open(os.path.join(root, "strata", "v1", "fake_extra.proto"), "w") as f:
                f.write('syntax = "proto3";\npackage strata.v1;\n'
                        "message FrobnicateRequest {}\nmessage FrobnicateResponse {}\n"
                        "service FakeExtra {\n"
                        "  rpc Frobnicate(FrobnicateRequest) returns (FrobnicateResponse);\n}\n")
            rpcs = proto_rpcs(root)
        self.assertIn("strata.v1.FakeExtra/Frobnicate", rpcs)
        problems = parity_problems(rpcs, self.clients)
        self.assertEqual(len(problems), len(self.clients), problems)
        for name in self.clients:
            self.assertIn(f"{name}: no method for RPC strata.v1.FakeExtra/Frobnicate", "\n".join(problems))

    def test_a_table_line_without_rpc_fails(self):
        rpcs = self.rpcs - {"strata.v1.KV/Write"}
        problems = parity_problems(rpcs, self.clients)
        self.assertIn("python: RPC_METHODS lists strata.v1.KV/Write, which no proto/strata/v1 "
                      "service has", problems)
        self.assertEqual(len(problems), len(self.clients), problems)

    def test_a_table_line_naming_a_missing_method_fails(self):
        table = python_table()
        table.methods["strata.v1.KV/Get"] = "fetch"
        problems = parity_problems(self.rpcs, {"python": table})
        self.assertEqual(problems, ["python: RPC_METHODS maps strata.v1.KV/Get to fetch(), "
                                    "which is not defined (or declared) there"])


if __name__ == "__main__":
    unittest.main()
