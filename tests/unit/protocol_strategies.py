"""Hypothesis strategies for any wire type, derived from its msgspec schema.

Built from :func:`msgspec.inspect.type_info`, so each bound (``max_length``, ``ge``...) and
each method added to ``METHODS`` later is covered without touching the tests.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

INT64 = (-(2**63), 2**63 - 1)
MAX_LIST = 4  # generated lists stay short; the bounds themselves are tested one by one


def valid(tp: Any) -> st.SearchStrategy[Any]:
    """Values of ``tp`` that its decoder accepts."""
    return _strategy(mi.type_info(tp))


def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.Metadata):
        return _strategy(t.type)
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.IntType):
        low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else INT64[0])
        high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else INT64[1])
        return st.integers(low, high)
    if isinstance(t, mi.FloatType):
        return st.floats(min_value=t.ge, max_value=t.le, allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.StrType):
        if t.pattern is not None:
            return st.from_regex(t.pattern, fullmatch=True).filter(
                lambda s: _within(len(s), t.min_length, t.max_length))
        return st.text(min_size=t.min_length or 0, max_size=t.max_length)
    if isinstance(t, mi.BytesType):
        return st.binary(min_size=t.min_length or 0, max_size=t.max_length)
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of(*(_strategy(member) for member in t.types))
    if isinstance(t, mi.ListType):
        low = t.min_length or 0
        high = max(low, min(t.max_length if t.max_length is not None else MAX_LIST, MAX_LIST))
        return st.lists(_strategy(t.item_type), min_size=low, max_size=high)
    if isinstance(t, mi.DictType):
        return st.dictionaries(_strategy(t.key_type), _strategy(t.value_type), max_size=MAX_LIST)
    if isinstance(t, mi.StructType):
        # Open enums (types.OpenEnums) are strings on the wire: mostly values of the enum,
        # sometimes ones no version has (which read as "unknown").
        open_fields = getattr(t.cls, "open_fields", {})
        required = {f.name: _field(f, open_fields) for f in t.fields if f.required}
        optional = {f.name: _field(f, open_fields) for f in t.fields if not f.required}
        return st.fixed_dictionaries(required, optional=optional).map(lambda kw: t.cls(**kw))
    if isinstance(t, mi.RawType):  # an encoded body: an update of any type, or any value
        from pigeon.protocol.updates import AnyUpdate

        return st.one_of(valid(AnyUpdate), msgpack_values).map(
            lambda v: msgspec.Raw(encode(v)))
    if isinstance(t, mi.AnyType):
        return st.none() | st.integers(*INT64) | st.text(max_size=8)
    raise NotImplementedError(f"no strategy for {t!r}: teach protocol_strategies about it")


def _field(f: mi.Field, open_fields: dict[str, str]) -> st.SearchStrategy[Any]:
    if f.name not in open_fields:
        return _strategy(f.type)
    from pigeon.protocol.versions import ENUMS

    value = st.sampled_from(sorted(ENUMS[open_fields[f.name]])) | st.text(max_size=12)
    return (value | st.none()) if isinstance(f.type, mi.UnionType) else value


def _within(n: int, low: int | None, high: int | None) -> bool:
    return (low is None or n >= low) and (high is None or n <= high)


# Arbitrary MessagePack values: the raw material of hostile frames.
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(*INT64) | st.floats() | st.text(max_size=16)
    | st.binary(max_size=16),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), children, max_size=4),
    max_leaves=12,
)


def encode(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)
