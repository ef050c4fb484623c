"""strata_client against fake cluster nodes (no etcd, no strata-server).

Fake gRPC servers on 127.0.0.1 port 0 stand in for a replica, which answers
FAILED_PRECONDITION "...; the primary is n2 at HOST:PORT" like a real one
(docs/cluster.md), and for the primary; they check that the client follows
the named primary once (from the strata-primary trailer, else the message)
and then sticks to it until it is gone or fenced, that follow_primary=False
surfaces the error, and that get_range_map()/cluster_status() decode
strata.v1.Cluster's answers.
"""

from __future__ import annotations

import threading
import unittest
from concurrent import futures
from typing import Any, Callable, Dict, List

import grpc

from strata_client import (Client, FailedPrecondition, RangeMap, Unavailable,
                           Unimplemented)
from strata_client._gen import cluster_pb2, kv_pb2


class FakeNode:
    """A gRPC server answering the given unary methods ("strata.v1.KV/Put" ->
    handler(request) returning a response, or raising via context) and
    recording the full name of every call it receives."""

    def __init__(self, handlers: Dict[str, tuple]) -> None:
        self.calls: List[str] = []
        self._lock = threading.Lock()
        by_service: Dict[str, Dict[str, Any]] = {}
        for full_name, (req_cls, resp_cls, fn) in handlers.items():
            service, method = full_name.split("/")
            by_service.setdefault(service, {})[method] = grpc.unary_unary_rpc_method_handler(
                self._recording(full_name, fn), request_deserializer=req_cls.FromString,
                response_serializer=resp_cls.SerializeToString)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        for service, methods in by_service.items():
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, methods),))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self.server.start()

    def _recording(self, full_name: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def handle(request: Any, context: Any) -> Any:
            with self._lock:
                self.calls.append(full_name)
            return fn(request, context)
        return handle

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)


def _header(revision: int) -> kv_pb2.ResponseHeader:
    return kv_pb2.ResponseHeader(revision=revision)


class FollowPrimaryTest(unittest.TestCase):
    def setUp(self) -> None:
        self.primary = FakeNode({
            "strata.v1.KV/Put": (kv_pb2.PutRequest, kv_pb2.PutResponse,
                                 lambda req, ctx: kv_pb2.PutResponse(header=_header(7))),
            "strata.v1.KV/Get": (kv_pb2.GetRequest, kv_pb2.GetResponse,
                                 lambda req, ctx: kv_pb2.GetResponse(
                                     header=_header(7), found=True, value=b"v:" + req.key)),
            "strata.v1.KV/Delete": (kv_pb2.DeleteRequest, kv_pb2.DeleteResponse,
                                    lambda req, ctx: kv_pb2.DeleteResponse(header=_header(8))),
        })
        self.addCleanup(self.primary.stop)
        self.not_primary = ("not the primary of range 0 (epoch 2); the primary is n2 at "
                            + self.primary.address)

        def refuse(req: Any, ctx: Any) -> Any:
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, self.not_primary)

        self.replica = FakeNode({
            "strata.v1.KV/Put": (kv_pb2.PutRequest, kv_pb2.PutResponse, refuse),
            "strata.v1.KV/Get": (kv_pb2.GetRequest, kv_pb2.GetResponse, refuse),
            "strata.v1.KV/Delete": (kv_pb2.DeleteRequest, kv_pb2.DeleteResponse, refuse),
        })
        self.addCleanup(self.replica.stop)

    def test_put_follows_the_named_primary_once_then_sticks_to_it(self) -> None:
        with Client(self.replica.address, timeout=5) as db:
            self.assertIsNone(db.primary)
            self.assertEqual(db.put(b"k", b"v"), 7)
            self.assertEqual(db.primary, self.primary.address)
            self.assertEqual(db.get(b"k"), b"v:k")
            self.assertEqual(db.delete(b"k"), 8)
            self.assertEqual(db.put(b"k2", b"v"), 7)
        # The replica saw only the first Put; everything after went to the primary.
        self.assertEqual(self.replica.calls, ["strata.v1.KV/Put"])
        self.assertEqual(self.primary.calls, ["strata.v1.KV/Put", "strata.v1.KV/Get",
                                              "strata.v1.KV/Delete", "strata.v1.KV/Put"])

    def test_a_namespace_copy_shares_the_followed_primary(self) -> None:
        with Client(self.replica.address, timeout=5) as db:
            db.put(b"k", b"v")
            self.assertEqual(db.in_namespace("other").get(b"k"), b"v:k")
        self.assertEqual(self.replica.calls, ["strata.v1.KV/Put"])

    def test_follow_primary_false_surfaces_the_replicas_answer(self) -> None:
        with Client(self.replica.address, timeout=5, follow_primary=False) as db:
            with self.assertRaises(FailedPrecondition) as cm:
                db.put(b"k", b"v")
            self.assertIn("the primary is n2 at", cm.exception.details)
            self.assertIsNone(db.primary)
        self.assertEqual(self.primary.calls, [])

    def test_follows_the_strata_primary_trailer_over_the_message(self) -> None:
        # The message names a node that is down; the trailer the primary.
        down = FakeNode({})
        down_address = down.address
        down.stop()

        def refuse(req: Any, ctx: Any) -> Any:
            ctx.set_trailing_metadata((("strata-primary", self.primary.address),))
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      "not the primary of range 0 (epoch 2); the primary is n2 at "
                      + down_address)

        replica = FakeNode({"strata.v1.KV/Put": (kv_pb2.PutRequest, kv_pb2.PutResponse, refuse)})
        self.addCleanup(replica.stop)
        with Client(replica.address, timeout=5) as db:
            self.assertEqual(db.put(b"k", b"v"), 7)
            self.assertEqual(db.primary, self.primary.address)
        self.assertEqual(self.primary.calls, ["strata.v1.KV/Put"])

    def test_follows_only_once_per_call(self) -> None:
        # A "primary" that itself names another node: the call fails with its
        # answer instead of hopping on.
        second = FakeNode({"strata.v1.KV/Put": (
            kv_pb2.PutRequest, kv_pb2.PutResponse,
            lambda req, ctx: ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                       "not the primary; the primary is n3 at "
                                       + self.primary.address))})
        self.addCleanup(second.stop)
        replica = FakeNode({"strata.v1.KV/Put": (
            kv_pb2.PutRequest, kv_pb2.PutResponse,
            lambda req, ctx: ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                       "not the primary; the primary is n2 at " + second.address))})
        self.addCleanup(replica.stop)
        with Client(replica.address, timeout=5) as db:
            with self.assertRaises(FailedPrecondition) as cm:
                db.put(b"k", b"v")
            self.assertIn("n3 at", cm.exception.details)
        self.assertEqual(second.calls, ["strata.v1.KV/Put"])
        self.assertEqual(self.primary.calls, [])

    def test_other_failed_preconditions_are_not_followed(self) -> None:
        node = FakeNode({"strata.v1.KV/Put": (
            kv_pb2.PutRequest, kv_pb2.PutResponse,
            lambda req, ctx: ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                       "value is not an INT64"))})
        self.addCleanup(node.stop)
        with Client(node.address, timeout=5) as db:
            with self.assertRaises(FailedPrecondition):
                db.put(b"k", b"v")
            self.assertIsNone(db.primary)


class ScriptedPut:
    """A Put handler the test switches between answering OK (revision 7),
    FailedPrecondition naming a primary in the strata-primary trailer, and
    FailedPrecondition naming none (a fenced old primary)."""

    def __init__(self) -> None:
        self.primary = ""
        self.fenced = False

    def __call__(self, req: Any, ctx: Any) -> Any:
        if self.primary:
            ctx.set_trailing_metadata((("strata-primary", self.primary),))
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the primary of range 0 (epoch 2)")
        if self.fenced:
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the primary of range 0 any more")
        return kv_pb2.PutResponse(header=_header(7))


def _scripted_node(test: unittest.TestCase, put: ScriptedPut) -> FakeNode:
    node = FakeNode({"strata.v1.KV/Put": (kv_pb2.PutRequest, kv_pb2.PutResponse, put)})
    test.addCleanup(node.stop)
    return node


class UnfollowTest(unittest.TestCase):
    """Issue 18: a followed primary that dies or is fenced after a failover is
    forgotten; the next call goes to the address the client was given."""

    def test_a_followed_primary_that_is_gone_is_forgotten(self) -> None:
        replica_put, primary_put = ScriptedPut(), ScriptedPut()
        replica = _scripted_node(self, replica_put)
        primary = _scripted_node(self, primary_put)
        replica_put.primary = primary.address
        with Client(replica.address, timeout=5) as db:
            self.assertEqual(db.put(b"k", b"1"), 7)  # followed
            self.assertEqual(db.put(b"k", b"2"), 7)  # straight to the primary
            self.assertEqual(db.primary, primary.address)
            primary.stop()
            replica_put.primary = ""  # the failover made the replica the primary
            with self.assertRaises(Unavailable):
                db.put(b"k", b"3")
            self.assertIsNone(db.primary)
            self.assertEqual(len(replica.calls), 1)  # the failed call was not retried
            self.assertEqual(db.put(b"k", b"4"), 7)
        self.assertEqual(len(replica.calls), 2)
        self.assertEqual(len(primary.calls), 2)

    def test_a_fenced_primary_is_forgotten_and_the_new_one_followed(self) -> None:
        replica_put, old_put, new_put = ScriptedPut(), ScriptedPut(), ScriptedPut()
        replica = _scripted_node(self, replica_put)
        old = _scripted_node(self, old_put)
        new = _scripted_node(self, new_put)
        replica_put.primary = old.address
        with Client(replica.address, timeout=5) as db:
            self.assertEqual(db.put(b"k", b"1"), 7)
            old_put.fenced = True
            replica_put.primary = new.address
            with self.assertRaises(FailedPrecondition):
                db.put(b"k", b"2")
            self.assertIsNone(db.primary)
            self.assertEqual(new.calls, [])  # not retried
            self.assertEqual(db.put(b"k", b"3"), 7)  # given address -> new primary
            self.assertEqual(db.primary, new.address)
            self.assertEqual(db.put(b"k", b"4"), 7)
        self.assertEqual((len(replica.calls), len(old.calls), len(new.calls)), (2, 2, 2))

    def test_a_newer_followed_primary_is_kept(self) -> None:
        # forget() of a primary another call has already moved away from
        # leaves the newer one alone.
        replica_put, old_put, new_put = ScriptedPut(), ScriptedPut(), ScriptedPut()
        replica = _scripted_node(self, replica_put)
        old = _scripted_node(self, old_put)
        new = _scripted_node(self, new_put)
        replica_put.primary = old.address
        with Client(replica.address, timeout=5) as db:
            db.put(b"k", b"1")
            stale = db._route.calls()
            assert stale is not None
            old_put.primary = new.address
            db.put(b"k", b"2")  # the old primary names the new one: followed
            self.assertEqual(db.primary, new.address)
            db._route.forget(stale)
            self.assertEqual(db.primary, new.address)


class MapNode(FakeNode):
    """A fake node answering Put (revision 7) and GetRangeMap with what
    self.answer returns (a GetRangeMapResponse, or aborts via context)."""

    def __init__(self) -> None:
        self.answer: Callable[[Any], Any] = lambda ctx: cluster_pb2.GetRangeMapResponse()
        super().__init__({
            "strata.v1.KV/Put": (kv_pb2.PutRequest, kv_pb2.PutResponse,
                                 lambda req, ctx: kv_pb2.PutResponse(header=_header(7))),
            "strata.v1.Cluster/GetRangeMap": (
                cluster_pb2.GetRangeMapRequest, cluster_pb2.GetRangeMapResponse,
                lambda req, ctx: self.answer(ctx)),
        })

    def count(self, name: str) -> int:
        with self._lock:
            return self.calls.count(name)

    def name_ranges(self, *ranges: tuple) -> None:
        """One (start_key, end_key, primary_address) per range."""
        msg = cluster_pb2.GetRangeMapResponse(etcd_revision=5, ranges=[
            cluster_pb2.Range(id=i, start_key=start, end_key=end, epoch=2, primary=f"n{i}",
                              primary_address=address)
            for i, (start, end, address) in enumerate(ranges)])
        self.answer = lambda ctx: msg


_PUT = "strata.v1.KV/Put"
_MAP = "strata.v1.Cluster/GetRangeMap"


class RangeMapRoutingTest(unittest.TestCase):
    """Issue 18: before its first get/put/delete (and after forgetting a
    primary) a client asks the node it was given for the range map and
    follows the primary of the key's range, skipping a replica's forwarding
    hop."""

    def node(self) -> MapNode:
        n = MapNode()
        self.addCleanup(n.stop)
        return n

    def test_the_first_put_goes_straight_to_the_keys_primary(self) -> None:
        replica, low, high = self.node(), self.node(), self.node()
        replica.name_ranges((b"", b"m", low.address), (b"m", b"", high.address))
        with Client(replica.address, timeout=5) as db:
            self.assertEqual(db.put(b"zebra", b"1"), 7)
            self.assertEqual(db.primary, high.address)
            self.assertEqual(db.in_namespace("other").put(b"apple", b"2"), 7)  # shared
        self.assertEqual(replica.calls, [_MAP])
        self.assertEqual((high.count(_PUT), low.count(_PUT)), (2, 0))

    def test_a_standalone_server_is_asked_once(self) -> None:
        node = self.node()
        node.answer = lambda ctx: ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "no cluster")
        with Client(node.address, timeout=5) as db:
            db.put(b"k", b"1")
            db.put(b"k", b"2")
            self.assertIsNone(db.primary)
        self.assertEqual(node.calls, [_MAP, _PUT, _PUT])

    def test_the_map_is_asked_again_after_the_primary_is_forgotten(self) -> None:
        replica, old, new = self.node(), self.node(), self.node()
        replica.name_ranges((b"", b"", old.address))
        with Client(replica.address, timeout=5) as db:
            db.put(b"k", b"1")
            self.assertEqual(db.primary, old.address)
            old.stop()
            replica.name_ranges((b"", b"", new.address))
            with self.assertRaises(Unavailable):
                db.put(b"k", b"2")  # not retried
            self.assertEqual(replica.count(_MAP), 1)
            db.put(b"k", b"3")
            self.assertEqual(db.primary, new.address)
            db.put(b"k", b"4")
        self.assertEqual((replica.count(_MAP), replica.count(_PUT), new.count(_PUT)), (2, 0, 2))

    def test_a_namespace_client_uses_only_a_map_of_one_range(self) -> None:
        replica, primary = self.node(), self.node()
        replica.name_ranges((b"", b"m", primary.address), (b"m", b"", primary.address))
        with Client(replica.address, timeout=5, namespace="tenant") as db:
            db.put(b"k", b"1")
            self.assertIsNone(db.primary)
        replica.name_ranges((b"", b"", primary.address))
        with Client(replica.address, timeout=5, namespace="tenant") as db:
            db.put(b"k", b"1")
            self.assertEqual(db.primary, primary.address)
        with Client(replica.address, timeout=5, follow_primary=False) as db:
            db.put(b"k", b"1")
        self.assertEqual((replica.count(_MAP), replica.count(_PUT), primary.count(_PUT)),
                         (2, 2, 1))

    def test_a_map_naming_the_target_keeps_the_calls(self) -> None:
        node = self.node()
        node.name_ranges((b"", b"", node.address))
        with Client(node.address, timeout=5) as db:
            db.put(b"k", b"1")
            db.put(b"k", b"2")
            self.assertIsNone(db.primary)
        self.assertEqual(node.calls, [_MAP, _PUT, _PUT])

    def test_default_namespace_keys_are_routed_by_their_stored_key(self) -> None:
        m = RangeMap.from_proto(cluster_pb2.GetRangeMapResponse(ranges=[
            cluster_pb2.Range(start_key=b"", end_key=b"\xff\xff\x00", primary_address="a"),
            cluster_pb2.Range(start_key=b"\xff\xff\x00", end_key=b"\xff\xff\xff",
                              primary_address="b"),
            cluster_pb2.Range(start_key=b"\xff\xff\xff", end_key=b"", primary_address="c")]))
        self.assertEqual(m.primary_for("", b"k"), "a")
        self.assertEqual(m.primary_for("", b"\xff"), "a")
        self.assertEqual(m.primary_for("", b"\xff\xff\x00k"), "c")  # escaped above
        self.assertEqual(m.primary_for("ns", b"k"), "")


def _range_map() -> cluster_pb2.GetRangeMapResponse:
    return cluster_pb2.GetRangeMapResponse(
        etcd_revision=42,
        ranges=[cluster_pb2.Range(id=0, start_key=b"", end_key=b"m", epoch=3, primary="n2",
                                  primary_address="10.0.0.2:50051",
                                  replicas=["n2", "n1", "n3"], in_sync=["n2", "n1"]),
                cluster_pb2.Range(id=1, start_key=b"m", end_key=b"", epoch=1, primary="n1",
                                  primary_address="10.0.0.1:50051",
                                  replicas=["n1", "n2", "n3"], in_sync=["n1", "n2", "n3"])],
        nodes=[cluster_pb2.ClusterNode(id="n1", address="10.0.0.1:50051", member=True, live=True),
               cluster_pb2.ClusterNode(id="n3", address="10.0.0.3:50051", member=True, live=False)])


class ClusterServiceTest(unittest.TestCase):
    def test_get_range_map_decodes_every_field(self) -> None:
        node = FakeNode({"strata.v1.Cluster/GetRangeMap": (
            cluster_pb2.GetRangeMapRequest, cluster_pb2.GetRangeMapResponse,
            lambda req, ctx: _range_map())})
        self.addCleanup(node.stop)
        with Client(node.address, timeout=5) as db:
            m = db.get_range_map()
        self.assertIsInstance(m, RangeMap)
        self.assertEqual(m.etcd_revision, 42)
        self.assertEqual([r.id for r in m.ranges], [0, 1])
        r0 = m.ranges[0]
        self.assertEqual((r0.start_key, r0.end_key, r0.epoch), (b"", b"m", 3))
        self.assertEqual((r0.primary, r0.primary_address), ("n2", "10.0.0.2:50051"))
        self.assertEqual(r0.replicas, ["n2", "n1", "n3"])
        self.assertEqual(r0.in_sync, ["n2", "n1"])
        self.assertEqual(m.ranges[1].start_key, b"m")
        self.assertEqual([(n.id, n.address, n.member, n.live) for n in m.nodes],
                         [("n1", "10.0.0.1:50051", True, True),
                          ("n3", "10.0.0.3:50051", True, False)])

    def test_cluster_status_decodes_the_controller_and_configuration(self) -> None:
        def status(req: Any, ctx: Any) -> Any:
            m = _range_map()
            return cluster_pb2.GetClusterStatusResponse(
                etcd_revision=m.etcd_revision, ranges=m.ranges, nodes=m.nodes,
                controller="n1", controller_term=17, replication_factor=3, min_in_sync=2,
                replication=[cluster_pb2.RangeReplication(
                    range_id=0, epoch=4, primary="n1", committed_revision=90,
                    replicated_revision=88, replicas=[cluster_pb2.ReplicaProgress(
                        id="n3", connected=True, in_sync=True, acked_revision=88,
                        lag_revisions=2, lag_seconds=0.25, disk_known=True,
                        disk_free_bytes=1000, disk_min_free_bytes=4000)])])
        node = FakeNode({"strata.v1.Cluster/GetClusterStatus": (
            cluster_pb2.GetClusterStatusRequest, cluster_pb2.GetClusterStatusResponse, status)})
        self.addCleanup(node.stop)
        with Client(node.address, timeout=5) as db:
            s = db.cluster_status()
        self.assertEqual((s.controller, s.controller_term), ("n1", 17))
        self.assertEqual((s.replication_factor, s.min_in_sync), (3, 2))
        self.assertEqual(s.etcd_revision, 42)
        self.assertEqual(len(s.ranges), 2)
        self.assertEqual(s.nodes[1].live, False)
        self.assertEqual(len(s.replication), 1)
        r = s.replication[0]
        self.assertEqual((r.range_id, r.epoch, r.primary), (0, 4, "n1"))
        self.assertEqual((r.committed_revision, r.replicated_revision), (90, 88))
        p = r.replicas[0]
        self.assertEqual((p.id, p.acked_revision, p.lag_revisions, p.lag_seconds),
                         ("n3", 88, 2, 0.25))
        self.assertEqual((p.disk_known, p.disk_free_bytes, p.disk_min_free_bytes),
                         (True, 1000, 4000))

    def test_a_node_without_the_service_is_unimplemented(self) -> None:
        node = FakeNode({})
        self.addCleanup(node.stop)
        with Client(node.address, timeout=5) as db:
            with self.assertRaises(Unimplemented):
                db.get_range_map()


if __name__ == "__main__":
    unittest.main()
