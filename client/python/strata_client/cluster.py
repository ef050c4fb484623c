"""What the strata.v1.Cluster service answers (proto/strata/v1/cluster.proto,
docs/cluster.md): the range map and the cluster's status, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

# The marker of a replica's "not the primary" answer (FAILED_PRECONDITION
# "...; the primary is NODE at HOST:PORT"), as the C++ client reads it.
_PRIMARY_MARKER = "; the primary is "


# The trailing metadata key in which a node that is not the primary (and did
# not forward the call) names the primary's HOST:PORT.
PRIMARY_TRAILER = "strata-primary"


def primary_trailer(metadata: Any) -> Optional[str]:
    """The HOST:PORT of a "not the primary" answer's strata-primary trailer
    (a grpc.Call's trailing_metadata()), or None. Servers before the trailer
    name the primary only in the message (named_primary)."""
    for key, value in metadata or ():
        if key == PRIMARY_TRAILER and value:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def named_primary(details: str) -> Optional[str]:
    """The HOST:PORT in a replica's "...; the primary is NODE at HOST:PORT"
    message, or None if the message is not one (the caller checks the status
    code is FAILED_PRECONDITION)."""
    at = details.rfind(_PRIMARY_MARKER)
    if at < 0:
        return None
    addr = details.find(" at ", at + len(_PRIMARY_MARKER))
    if addr < 0:
        return None
    address = details[addr + 4:]
    if not address or " " in address:
        return None
    return address


@dataclass(frozen=True)
class Range:
    """One range of stored keys: [start_key, end_key) (b"" = unbounded), its
    epoch (one more with every primary change), its primary (node id and the
    address to dial, "" if unknown), its replicas in failover order, and the
    replicas holding every acknowledged write (in_sync)."""

    id: int
    start_key: bytes
    end_key: bytes
    epoch: int
    primary: str
    primary_address: str
    replicas: List[str]
    in_sync: List[str]

    @classmethod
    def from_proto(cls, r: Any) -> Range:
        return cls(id=int(r.id), start_key=bytes(r.start_key), end_key=bytes(r.end_key),
                   epoch=int(r.epoch), primary=str(r.primary),
                   primary_address=str(r.primary_address),
                   replicas=[str(n) for n in r.replicas], in_sync=[str(n) for n in r.in_sync])


@dataclass(frozen=True)
class ClusterNode:
    """A node known to the cluster: id, the host:port to dial, whether it is
    a member (may hold data) and whether its liveness lease is alive."""

    id: str
    address: str
    member: bool
    live: bool

    @classmethod
    def from_proto(cls, n: Any) -> ClusterNode:
        return cls(id=str(n.id), address=str(n.address), member=bool(n.member),
                   live=bool(n.live))


@dataclass(frozen=True)
class RangeMap:
    """Client.get_range_map(): every range in key order (together they cover
    the key space), the address of each replica known, and the etcd revision
    the map was read at (higher = newer)."""

    etcd_revision: int
    ranges: List[Range]
    nodes: List[ClusterNode]

    @classmethod
    def from_proto(cls, resp: Any) -> RangeMap:
        return cls(etcd_revision=int(resp.etcd_revision),
                   ranges=[Range.from_proto(r) for r in resp.ranges],
                   nodes=[ClusterNode.from_proto(n) for n in resp.nodes])

    def primary_for(self, namespace: str, key: bytes) -> str:
        """The primary address of the range holding key of namespace ("" =
        the default), or "" if none. Default-namespace keys are stored as
        they are, except those starting \\xff\\xff, stored as
        \\xff\\xff\\xff key[2:] (server/keyspace.h); a named namespace's
        stored keys need its id, which a client does not know: then only a
        map of exactly one range answers."""
        if namespace:
            return self.ranges[0].primary_address if len(self.ranges) == 1 else ""
        stored = b"\xff\xff\xff" + key[2:] if key.startswith(b"\xff\xff") else key
        for r in self.ranges:
            if r.start_key <= stored and (not r.end_key or stored < r.end_key):
                return r.primary_address
        return ""


@dataclass(frozen=True)
class ReplicaProgress:
    """One replica of a range as the range's primary sees it: whether its
    stream is connected and it is in sync, the revision it acknowledged,
    its lag (revisions; seconds since it last held everything committed),
    and the free disk space it last reported with its reserve
    (disk_known False when it reported none)."""

    id: str
    connected: bool
    in_sync: bool
    acked_revision: int
    lag_revisions: int
    lag_seconds: float
    disk_known: bool
    disk_free_bytes: int
    disk_min_free_bytes: int

    @classmethod
    def from_proto(cls, p: Any) -> ReplicaProgress:
        return cls(id=str(p.id), connected=bool(p.connected), in_sync=bool(p.in_sync),
                   acked_revision=int(p.acked_revision), lag_revisions=int(p.lag_revisions),
                   lag_seconds=float(p.lag_seconds), disk_known=bool(p.disk_known),
                   disk_free_bytes=int(p.disk_free_bytes),
                   disk_min_free_bytes=int(p.disk_min_free_bytes))


@dataclass(frozen=True)
class RangeReplication:
    """A range's replication, from its primary: the revision committed,
    the one every in-sync replica holds, and each replica's progress."""

    range_id: int
    epoch: int
    primary: str
    committed_revision: int
    replicated_revision: int
    replicas: List[ReplicaProgress]

    @classmethod
    def from_proto(cls, r: Any) -> RangeReplication:
        return cls(range_id=int(r.range_id), epoch=int(r.epoch), primary=str(r.primary),
                   committed_revision=int(r.committed_revision),
                   replicated_revision=int(r.replicated_revision),
                   replicas=[ReplicaProgress.from_proto(p) for p in r.replicas])


@dataclass(frozen=True)
class ClusterStatus:
    """Client.cluster_status(): the range map, members and live nodes, the
    controller ("" = none) and its term, the cluster's configuration, and
    the replication of the ranges the answering node is the primary of
    (empty from a replica; ask each range's primary for its lag)."""

    etcd_revision: int
    ranges: List[Range]
    nodes: List[ClusterNode]
    controller: str
    controller_term: int
    replication_factor: int
    min_in_sync: int
    replication: List[RangeReplication]

    @classmethod
    def from_proto(cls, resp: Any) -> ClusterStatus:
        return cls(etcd_revision=int(resp.etcd_revision),
                   ranges=[Range.from_proto(r) for r in resp.ranges],
                   nodes=[ClusterNode.from_proto(n) for n in resp.nodes],
                   controller=str(resp.controller),
                   controller_term=int(resp.controller_term),
                   replication_factor=int(resp.replication_factor),
                   min_in_sync=int(resp.min_in_sync),
                   replication=[RangeReplication.from_proto(r) for r in resp.replication])


__all__ = ["Range", "ClusterNode", "RangeMap", "ClusterStatus", "RangeReplication",
           "ReplicaProgress", "named_primary",
           "primary_trailer", "PRIMARY_TRAILER"]
