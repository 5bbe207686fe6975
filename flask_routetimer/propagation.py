"""A caller's trace context, read from propagation headers straight out of the WSGI environ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter, TextMapPropagator

from .wsgi import environ_key, header_name


class EnvironGetter(Getter[Mapping[str, Any]]):
    """Reads propagation headers (``traceparent``, ``baggage``, ...) straight from the environ."""

    def get(self, carrier: Mapping[str, Any], key: str) -> Optional[list[str]]:
        value = carrier.get(environ_key(key))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [name for name in map(header_name, carrier) if name is not None]


ENVIRON_GETTER = EnvironGetter()
_propagation_keys: dict[int, tuple[object, tuple[str, ...]]] = {}


def propagation_keys(propagator: TextMapPropagator) -> tuple[str, ...]:
    """Environ keys of the headers the propagator reads, computed once per propagator."""
    cached = _propagation_keys.get(id(propagator))
    if cached is None or cached[0] is not propagator:
        keys = tuple(sorted({environ_key(name) for name in propagator.fields}))
        cached = _propagation_keys[id(propagator)] = (propagator, keys)
    return cached[1]


def extract_parent(environ: Mapping[str, Any]) -> Optional[otel_context.Context]:
    """The remote parent from propagation headers; None (no parsing) when there are none."""
    propagator = propagate.get_global_textmap()
    cached = _propagation_keys.get(id(propagator))  # propagation_keys(), without the call
    keys = cached[1] if cached is not None and cached[0] is propagator else None
    for key in keys or propagation_keys(propagator):
        if key in environ:
            return propagator.extract(environ, getter=ENVIRON_GETTER)
    return None
