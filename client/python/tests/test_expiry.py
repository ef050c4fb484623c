"""Per-key TTLs and leases through strata_client, against a real strata-server
(docs/expiry.md). Run like test_client.py (scripts/test-clients.sh).

Nothing sleeps to wait for an expiry: each test watches for the DELETE event
the server's expirer writes (bounded by a watchdog).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from strata_client import (EventType, InvalidArgument, LeaseKeeper,  # noqa: E402
                           NotFound, WriteBatch)
from server_process import server_binary  # noqa: E402
from test_client import ServerTestCase  # noqa: E402
from test_revisions import take  # noqa: E402


def setUpModule():
    if not os.path.exists(server_binary()):
        why = f"strata-server not found at {server_binary()}"
        if os.environ.get("STRATA_TEST_REQUIRE_SERVER"):
            raise RuntimeError(why)
        raise unittest.SkipTest(why)


class TtlTest(ServerTestCase):
    def test_a_key_with_a_ttl_disappears_with_a_delete_event(self):
        with self.client.watch(b"session") as w:
            put_rev = self.client.put(b"session", b"token", ttl_ms=300)
            self.client.put(b"other", b"stays")
            put, deleted = take(w, 2)
        self.assertEqual((put.type, put.revision), (EventType.PUT, put_rev))
        self.assertEqual(deleted.type, EventType.DELETE)
        self.assertGreater(deleted.revision, put_rev)
        self.assertIsNone(self.client.get(b"session"))
        self.assertEqual(self.client.get(b"other"), b"stays")

    def test_bad_ttl_is_invalid_argument(self):
        with self.assertRaises(InvalidArgument):
            self.client.put(b"k", b"v", ttl_ms=-1)
        self.assertIsNone(self.client.get(b"k"))


class LeaseTest(ServerTestCase):
    def test_grant_attach_time_to_live_and_revoke(self):
        lease = self.client.lease_grant(60)
        self.assertGreater(lease.id, 0)
        self.assertEqual(lease.ttl_seconds, 60)
        self.client.put(b"svc/a", b"1", lease=lease.id)
        self.client.write(WriteBatch().put(b"svc/b", b"2", lease=lease.id))
        self.assertEqual(self.client.lease_leases(), [lease.id])
        ttl = self.client.lease_time_to_live(lease.id, keys=True)
        self.assertEqual(ttl.granted_ttl, 60)
        self.assertTrue(0 < ttl.ttl_seconds <= 60)
        self.assertEqual(ttl.keys, [b"svc/a", b"svc/b"])
        self.assertEqual(self.client.lease_keep_alive(lease.id), 60)
        with self.client.watch(prefix=b"svc/") as w:
            rev = self.client.lease_revoke(lease.id)
            events = take(w, 2)
        self.assertEqual([(e.type, e.revision) for e in events],
                         [(EventType.DELETE, rev)] * 2)
        self.assertEqual(list(self.client.scan()), [])
        with self.assertRaises(NotFound):
            self.client.lease_revoke(lease.id)
        with self.assertRaises(NotFound):
            self.client.put(b"svc/c", b"3", lease=lease.id)
        self.assertIsNone(self.client.get(b"svc/c"))

    def test_keep_alive_helper_keeps_the_keys_and_stopping_lets_them_expire(self):
        lease = self.client.lease_grant(1)
        self.client.put(b"lock", b"me", lease=lease.id)
        with self.client.keep_alive(lease.id, interval=0.2) as keeper:
            self.assertIsInstance(keeper, LeaseKeeper)
            # Renewed for longer than the TTL (bounded wait, 20 s at most).
            start = time.monotonic()
            while time.monotonic() - start < 1.5 and time.monotonic() - start < 20:
                self.assertTrue(keeper.alive, keeper.error)
                threading.Event().wait(0.1)
            self.assertEqual(self.client.get(b"lock"), b"me")
            self.assertGreaterEqual(keeper.renewals, 2)
        self.assertIsNone(keeper.error)
        with self.client.watch(b"lock") as w:
            (deleted,) = take(w, 1)
        self.assertEqual(deleted.type, EventType.DELETE)
        with self.assertRaises(NotFound):
            self.client.lease_keep_alive(lease.id)


if __name__ == "__main__":
    unittest.main()
