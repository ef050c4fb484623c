"""TLS and mutual TLS settings for a Client."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import grpc

# A PEM source: bytes are the PEM text itself; str or os.PathLike is the path
# of a PEM file, read when the Client is created.
PemSource = Union[bytes, str, "os.PathLike[str]"]


def _read_pem(source: Optional[PemSource], what: str) -> Optional[bytes]:
    if source is None:
        return None
    if isinstance(source, bytes):
        return source
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    raise TypeError(f"TLSConfig.{what} must be bytes (PEM) or a file path, "
                    f"not {type(source).__name__}")


@dataclass(frozen=True)
class TLSConfig:
    """How a Client authenticates the server, and itself, over TLS.

    Attributes:
      ca: the CA certificate(s) that signed the server's certificate (the
        server's --tls_cert). None trusts gRPC's default roots
        ($GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, else the bundle shipped with gRPC).
      cert, key: the client certificate chain and its private key, for a
        server that requires client certificates (--tls_client_ca, mutual
        TLS). Give both or neither.
      server_name: the name to check the server's certificate against instead
        of the host of the target, e.g. "localhost" when dialling 127.0.0.1
        through a tunnel. None checks the target's host.

    ca, cert and key are bytes (the PEM text) or the path of a PEM file; files
    are read once, when the Client is created (a rotated certificate needs a
    new Client). Raises ValueError for cert without key or key without cert.
    """

    ca: Optional[PemSource] = None
    cert: Optional[PemSource] = None
    key: Optional[PemSource] = None
    server_name: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("TLSConfig: cert and key go together (mutual TLS needs both)")
        if self.server_name is not None and not self.server_name:
            raise ValueError("TLSConfig: server_name must not be empty (use None)")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The grpc.ChannelCredentials for these settings (reads the files).

        Raises OSError if a file cannot be read.
        """
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.ca, "ca"),
            private_key=_read_pem(self.key, "key"),
            certificate_chain=_read_pem(self.cert, "cert"))

    def channel_options(self) -> List[Tuple[str, str]]:
        """Channel arguments these settings need (the server name override)."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]
