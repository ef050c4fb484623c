"""The keep-alive helper of Client.keep_alive (docs/expiry.md)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Optional, Type

from .errors import StrataError

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client


class LeaseKeeper:
    """Renews a lease from a daemon thread until stop() (or the lease is lost).

    The first renewal happens at once (so a lease whose TTL is unknown gets
    its interval from the reply); then every interval seconds, by default a
    third of the lease's TTL, so two renewals may fail before it expires.
    A renewal that fails with NotFound (the lease expired or was revoked)
    ends the keeper; .error holds that exception. Other errors (the server
    is briefly unreachable) are retried at the next tick and the last one is
    kept in .last_error.
    """

    def __init__(self, client: Client, lease: int, interval: Optional[float]) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.lease = lease
        self.error: Optional[StrataError] = None
        self.last_error: Optional[StrataError] = None
        self.renewals = 0
        self._client = client
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"strata-lease-{lease}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from .errors import NotFound
        interval = self._interval
        while not self._stop.is_set():
            try:
                ttl = self._client.lease_keep_alive(self.lease)
                self.renewals += 1
                if interval is None:
                    interval = max(ttl / 3.0, 0.1)
            except NotFound as e:
                self.error = e
                return
            except StrataError as e:
                self.last_error = e
            self._stop.wait(interval if interval is not None else 1.0)

    @property
    def alive(self) -> bool:
        """True while the keeper is renewing (not stopped, lease not lost)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stops renewing (the lease then expires after its TTL) and waits."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()
