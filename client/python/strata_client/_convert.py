"""Argument conversions shared by the Client and the transaction helpers."""

from __future__ import annotations

import json
from typing import Any, Union

from .results import ValueType

# Keys and values are bytes on the wire. str is accepted as a convenience and
# encoded as UTF-8; bytes is canonical (and what get/scan return).
BytesLike = Union[bytes, bytearray, memoryview, str]


def to_bytes(value: BytesLike, what: str) -> bytes:
    """value as bytes (a str as UTF-8); TypeError for anything else."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def check_revision(revision: int, what: str = "revision") -> int:
    """A revision argument: an int in [0, 2**63) (TypeError, ValueError)."""
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise TypeError(f"{what} must be an int, not {type(revision).__name__}")
    if revision < 0 or revision >= 1 << 63:
        raise ValueError(f"{what} must be in [0, 2**63)")
    return revision


def value_type_name(t: ValueType) -> str:
    """A type argument as the proto enum's name (what the message takes)."""
    if not isinstance(t, ValueType):
        raise TypeError(f"type must be a ValueType, not {type(t).__name__}")
    return t.name


def json_text(value: Any, what: str) -> bytes:
    """A patch or document for the server: bytes are JSON text as is; any
    other value is serialized with json.dumps (a str is a JSON string);
    ValueError if it cannot be."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} cannot be encoded as JSON: {e}") from e
