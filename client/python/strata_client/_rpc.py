"""The RPC methods the client can call, read from the generated descriptors.

Every method of every service in proto/strata/v1/*.proto is described here
(full name, path, message classes, streaming), so the Client builds its gRPC
callables from one table and a new RPC needs no plumbing: only its Client
method and its line in Client.RPC_METHODS.

grpc.health.v1 lives in a private descriptor pool: a program may also import
grpcio-health-checking, whose health.proto (same file name, same symbols,
other options) would clash in protobuf's default pool.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Dict, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

try:
    from . import _gen
    from ._gen import health_descriptor
except ImportError as e:  # pragma: no cover - only when run from the source tree
    raise ImportError(
        "strata_client: its generated protobuf modules (strata_client._gen) are "
        "missing. They are made when the package is built from proto/: install "
        "it (pip install ./client/python, see docs/clients.md) instead of "
        f"importing client/python from the source tree: {e}") from e

MODULES: Tuple[ModuleType, ...] = tuple(
    importlib.import_module(f"{_gen.__name__}.{name}") for name in _gen.MODULES)


@dataclass(frozen=True)
class Method:
    """One RPC method: what the channel needs to call it."""

    full_name: str  # "strata.v1.KV/Get", as in Client.RPC_METHODS
    path: str  # "/strata.v1.KV/Get", the HTTP/2 path
    request: Any  # the request message class
    response: Any  # the response message class
    client_streaming: bool
    server_streaming: bool


def _message_class(descriptor: Any) -> Any:
    """The message class of a descriptor (any pool, any protobuf 4.x/5.x)."""
    get_message_class = getattr(message_factory, "GetMessageClass", None)
    if get_message_class is not None:  # protobuf >= 4.22
        return get_message_class(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


def _method(service: Any, method: Any) -> Method:
    full_name = f"{service.full_name}/{method.name}"
    return Method(full_name=full_name, path=f"/{full_name}",
                  request=_message_class(method.input_type),
                  response=_message_class(method.output_type),
                  client_streaming=bool(method.client_streaming),
                  server_streaming=bool(method.server_streaming))


def _strata_methods() -> Dict[str, Method]:
    methods: Dict[str, Method] = {}
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                entry = _method(service, m)
                methods[entry.full_name] = entry
    return methods


# Every RPC of proto/strata/v1, by full name ("strata.v1.KV/Get").
METHODS: Dict[str, Method] = _strata_methods()


def _health() -> Tuple[Method, Any, int]:
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(
            health_descriptor.SERIALIZED).file:
        pool.Add(file_proto)
    service = pool.FindServiceByName("grpc.health.v1.Health")
    check = _method(service, service.methods_by_name["Check"])
    serving = (pool.FindEnumTypeByName("grpc.health.v1.HealthCheckResponse.ServingStatus")
               .values_by_name["SERVING"].number)
    return check, check.request, int(serving)


# grpc.health.v1.Health/Check, its request class, and the SERVING status value.
HEALTH_CHECK, HealthCheckRequest, SERVING = _health()

