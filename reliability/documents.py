"""Bounded reading of untrusted JSON and YAML: only JSON values in, every refusal located.

Our own thin layer, because neither parser bounds anything: ``json`` recurses
until the interpreter's limit, PyYAML shares aliased nodes that grow without
limit once serialised and builds dates, sets, bytes and non-string keys that
JSON cannot hold. No maintained library bounds both, so the checks below run on
cheap, streaming views of the input (the text outside strings, YAML's event
stream) before the document itself is built.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import yaml

# A JSON string literal, unrolled so that long strings cost no backtracking.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# What no database stores in text: NUL, and a surrogate that is not half of a pair. Every
# alternative starts with the same literal (backslash, u), which the engine looks for first: a
# pattern without a common prefix is tried at every position (seconds for tens of megabytes).
_UNSTORABLE_ESCAPE = re.compile(
    r"\\u(?:0000"
    r"|[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F][0-9a-fA-F]{2})"
)
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE = "Strings may not contain NUL (\\u0000) or an unpaired surrogate."
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
MAX_INTEGER_DIGITS = 32
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_TAG + name for name in ("str", "int", "float", "bool", "null"))
_COLLECTION_TAGS = frozenset({_TAG + "map", _TAG + "seq"})
_STRING_TAG = _TAG + "str"
_YAML_TYPE_NAMES = {
    "int": "a number",
    "float": "a number",
    "timestamp": "a timestamp",
    "binary": "binary data",
    "set": "a set",
    "omap": "an ordered map",
    "pairs": "a list of pairs",
    "merge": "a merge key",
    "value": "a value key",
}


@dataclass(frozen=True)
class Bounds:
    """What one document may hold: nesting, values (containers and scalars), decoded size."""

    max_depth: int = 64
    max_values: int = 100_000
    max_bytes: int = 10 * 1024 * 1024


class DocumentRefused(Exception):
    """The input is not a bounded JSON document; ``path`` locates the offence when known."""

    def __init__(self, code: str, reason: str, path: tuple[str | int, ...] | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.path = path

    def field(self, part: str | None = None) -> str | None:
        """``part`` and the path inside it, dotted as in validation errors (``a.b.0.c``)."""
        names = [part] if part else []
        names.extend(str(step) for step in self.path or ())
        if len(names) > 12:  # a path 64 levels deep helps nobody: its ends locate it
            names = [*names[:6], "…", *names[-5:]]
        return ".".join(names) or None

    @property
    def is_unparsable(self) -> bool:
        return self.code == "unparsable"


def load_json(raw: bytes | str, bounds: Bounds) -> Any:
    """Parse JSON text within ``bounds``; NaN, Infinity and huge numbers are refused."""
    text = _decoded(raw)
    _check_json_shape(text, bounds)
    try:
        with collector_paused():
            return json.loads(
                text,
                parse_constant=_refuse_constant,
                parse_int=_bounded_int,
                parse_float=_finite_float,
            )
    except RecursionError:
        raise _too_deep(bounds) from None
    except json.JSONDecodeError as error:
        raise DocumentRefused(
            "unparsable", f"Not valid JSON (line {error.lineno}, column {error.colno})."
        ) from None


def load_json_or_yaml(raw: bytes | str, bounds: Bounds) -> Any:
    """JSON if it is JSON (fast), else YAML restricted to what JSON can hold."""
    text = _decoded(raw)
    if text.lstrip()[:1] in ("{", "["):
        try:
            return load_json(text, bounds)
        except DocumentRefused as refused:
            if not refused.is_unparsable:
                raise
    _check_yaml_events(text, bounds)
    try:
        with collector_paused():
            return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise _yaml_syntax_error(error) from None


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a block builds many objects without cycles.

    Every full collection walks all live objects: with a large document alive, parsing or
    building from it spent most of its time there. Reference counting still frees what
    the block drops; cycles made meanwhile wait for the next collection.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _decoded(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentRefused("unparsable", f"Not UTF-8 text (byte {error.start}).") from None


# -- JSON ---------------------------------------------------------------------------------------


def _check_json_shape(text: str, bounds: Bounds) -> None:
    """Count values and nesting on the text outside string literals, before parsing it."""
    if _UNSTORABLE_ESCAPE.search(text):
        raise DocumentRefused("not_storable", _UNSTORABLE)
    outside = _JSON_STRING.sub("", text)
    values = 1 + outside.count(",") + outside.count("[") + outside.count("{")
    if values > bounds.max_values:
        raise _too_many(bounds)
    brackets = _NOT_BRACKET.sub("", outside)
    if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > bounds.max_depth:
        raise _too_deep(bounds)


def _refuse_constant(name: str) -> Any:
    raise DocumentRefused("not_json", f"{name} is not a JSON value.")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _number_too_long()
    return int(digits)


def _finite_float(text: str) -> float:
    if len(text) > 2 * MAX_INTEGER_DIGITS:
        raise _number_too_long()
    value = float(text)
    if not math.isfinite(value):
        raise DocumentRefused("not_json", f"The number {text} is out of range.")
    return value


# -- YAML ---------------------------------------------------------------------------------------


@dataclass
class _Collection:
    """An open mapping or sequence of the event stream, and where its next child goes."""

    is_mapping: bool
    path: tuple[str | int, ...]
    key: str | None = None
    index: int = 0
    expects_key: bool = field(default=True)

    def child_path(self) -> tuple[str | int, ...]:
        return (*self.path, self.key if self.is_mapping else self.index)  # type: ignore[arg-type]

    def child_done(self) -> None:
        if self.is_mapping:
            self.expects_key = True
        else:
            self.index += 1


def _check_yaml_events(text: str, bounds: Bounds) -> None:
    """Walk YAML's event stream: no anchors or aliases, JSON types only, within ``bounds``.

    Nothing is built: the stream is what PyYAML composes from, one event at a time.
    """
    resolver = yaml.SafeLoader("")
    open_: list[_Collection] = []
    values = size = documents = 0
    for event in _yaml_events(text):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise DocumentRefused("multiple_documents", "Expected one YAML document.")
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            open_.pop()
            if open_:
                open_[-1].child_done()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        parent = open_[-1] if open_ else None
        if parent is not None and parent.is_mapping and parent.expects_key:
            parent.key = _mapping_key(event, resolver, parent.path)
            parent.expects_key = False
            size += len(parent.key) + 4
            continue
        path = parent.child_path() if parent is not None else ()
        if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
            raise DocumentRefused("yaml_alias", "YAML anchors and aliases are not accepted.", path)
        values += 1
        if values > bounds.max_values:
            raise _too_many(bounds, path)
        if isinstance(event, yaml.ScalarEvent):
            size += _scalar_size(event, resolver, path)
            if parent is not None:
                parent.child_done()
        else:
            _check_collection_tag(event, path)
            open_.append(_Collection(isinstance(event, yaml.MappingStartEvent), path))
            if len(open_) > bounds.max_depth:
                raise _too_deep(bounds, path)
        if size > bounds.max_bytes:
            raise DocumentRefused(
                "max_bytes", f"Larger than {bounds.max_bytes} bytes once decoded.", path
            )


def _yaml_events(text: str) -> Iterator[yaml.Event]:
    try:
        yield from yaml.parse(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise _yaml_syntax_error(error) from None


def _mapping_key(
    event: yaml.NodeEvent, resolver: yaml.SafeLoader, path: tuple[str | int, ...]
) -> str:
    if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
        raise DocumentRefused("yaml_alias", "YAML anchors and aliases are not accepted.", path)
    if isinstance(event, yaml.ScalarEvent):
        tag = _scalar_tag(event, resolver)
        if tag == _STRING_TAG and not _UNSTORABLE_CHARACTER.search(event.value):
            return event.value
        if tag == _STRING_TAG:
            raise DocumentRefused("not_storable", _UNSTORABLE, path)
        raise DocumentRefused(
            "key_type",
            f"Keys must be strings; {event.value!r} is {_type_name(tag)}: quote it.",
            (*path, event.value),
        )
    raise DocumentRefused("key_type", "Keys must be strings, not collections.", path)


def _scalar_tag(event: yaml.ScalarEvent, resolver: yaml.SafeLoader) -> str:
    if event.tag is not None and event.tag != "!":
        return event.tag
    return resolver.resolve(yaml.ScalarNode, event.value, event.implicit)


def _scalar_size(
    event: yaml.ScalarEvent, resolver: yaml.SafeLoader, path: tuple[str | int, ...]
) -> int:
    tag = _scalar_tag(event, resolver)
    if tag not in _SCALAR_TAGS:
        raise DocumentRefused(
            "not_json", f"{_type_name(tag).capitalize()} is not a JSON value.", path
        )
    if tag == _TAG + "int" and len(event.value.lstrip("+-")) > MAX_INTEGER_DIGITS:
        raise _number_too_long(path)
    if tag == _TAG + "float":
        try:
            number = resolver.construct_yaml_float(yaml.ScalarNode(tag, event.value))
        except ValueError:
            raise DocumentRefused("not_json", "Not a number.", path) from None
        if not math.isfinite(number):
            raise DocumentRefused("not_json", f"{event.value} is not a JSON number.", path)
    if _UNSTORABLE_CHARACTER.search(event.value):
        raise DocumentRefused("not_storable", _UNSTORABLE, path)
    return len(event.value) + 2


def _check_collection_tag(event: yaml.CollectionStartEvent, path: tuple[str | int, ...]) -> None:
    if event.tag is not None and event.tag != "!" and event.tag not in _COLLECTION_TAGS:
        raise DocumentRefused(
            "not_json", f"{_type_name(event.tag).capitalize()} is not a JSON value.", path
        )


def _type_name(tag: str) -> str:
    if tag.startswith(_TAG):
        name = tag.removeprefix(_TAG)
        return _YAML_TYPE_NAMES.get(name, f"a {name}")
    return f"tagged {tag!r}"


def _yaml_syntax_error(error: yaml.YAMLError) -> DocumentRefused:
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return DocumentRefused("unparsable", f"Not valid JSON or YAML{where}.")


# -- refusals -----------------------------------------------------------------------------------


def _too_deep(bounds: Bounds, path: tuple[str | int, ...] | None = None) -> DocumentRefused:
    return DocumentRefused("max_depth", f"Nested deeper than {bounds.max_depth} levels.", path)


def _too_many(bounds: Bounds, path: tuple[str | int, ...] | None = None) -> DocumentRefused:
    return DocumentRefused("max_values", f"More than {bounds.max_values} values.", path)


def _number_too_long(path: tuple[str | int, ...] | None = None) -> DocumentRefused:
    return DocumentRefused(
        "number_too_long", f"A number longer than {MAX_INTEGER_DIGITS} digits.", path
    )
