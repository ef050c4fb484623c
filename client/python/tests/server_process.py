"""Starts and stops a real strata-server process for the client tests.

The binary is $STRATA_SERVER, or build/server/strata-server under the repository
root. The server listens on 127.0.0.1 port 0 and announces its port with one
stdout line "strata-server listening on 127.0.0.1:PORT". gen_test_certs() makes
a test PKI with scripts/gen-test-certs.sh for TLS servers.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import threading
import time

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_LISTENING = re.compile(rb"strata-server listening on (\S+):(\d+)")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def server_binary() -> str:
    """The strata-server path the tests use (it may not exist)."""
    return os.environ.get("STRATA_SERVER") or os.path.join(
        REPO_ROOT, "build", "server", "strata-server")


class ServerProcess:
    """One strata-server child process on a data directory.

    start() returns once the server has printed its listening line; stop()
    sends SIGTERM and requires a clean exit (status 0).
    """

    def __init__(self, data_dir: str, log_path: str, binary: str | None = None,
                 extra_args: list[str] | None = None):
        self.binary = binary or server_binary()
        self.extra_args = list(extra_args or [])  # e.g. the --tls_* flags
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.address: str | None = None
        self._drain: threading.Thread | None = None

    def start(self) -> str:
        """Starts the server; returns its "127.0.0.1:PORT" address."""
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                # Metrics on a free port: the default 127.0.0.1:9090 may be
                # taken (another server, a Prometheus).
                [self.binary, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
                 f"--data_dir={self.data_dir}", *self.extra_args],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        line = self._read_listening_line()
        m = _LISTENING.search(line)
        if not m:
            self.kill()
            raise RuntimeError(f"strata-server did not announce its port; "
                               f"stdout={line!r}; log:\n{self.log()}")
        self.address = f"{m.group(1).decode()}:{m.group(2).decode()}"
        # Keep reading stdout so a chatty server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        return self.address

    def _read_listening_line(self) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    break
                chunk = os.read(fd, 4096)
                if not chunk:  # the server exited
                    break
                buf += chunk
        return buf.split(b"\n", 1)[0]

    def _drain_stdout(self) -> None:
        try:
            while self.proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    def stop(self) -> int:
        """SIGTERMs the server and waits for it; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"strata-server did not exit within {STOP_TIMEOUT_S}s "
                               f"of SIGTERM; log:\n{self.log()}")
        self._finish()
        return code

    def kill(self) -> None:
        """SIGKILLs the server (cleanup after a failure)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._finish()

    def _finish(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            if self._drain is not None:
                self._drain.join(timeout=5)
            self.proc.stdout.close()
        self.proc = None
        self._drain = None

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-8192:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"


def gen_test_certs(out_dir: str) -> str:
    """Writes a test CA, server and client certificates into out_dir.

    Runs scripts/gen-test-certs.sh (openssl); the server certificate is for
    localhost and 127.0.0.1. Returns out_dir. Raises CalledProcessError.
    """
    subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "gen-test-certs.sh"), out_dir],
                   check=True, stdout=subprocess.DEVNULL)
    return out_dir


def mtls_flags(pki: str) -> list[str]:
    """Server flags for TLS that requires client certificates signed by pki's CA."""
    return [f"--tls_cert={pki}/server.crt", f"--tls_key={pki}/server.key",
            f"--tls_client_ca={pki}/ca.crt"]
