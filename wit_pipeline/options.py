"""Options dataclasses are the one place a flag, its default and its help live.

A stage's options class declares each flag once::

    @dataclass
    class DownloadOptions:
        input: str = option(help="parquet/CSV/TSV/JSONL file(s) or directory", metavar="PATH_OR_DIR")
        image_size: int = option(256, help="output side in pixels", minimum=1)
        resize_mode: str = option("border", help="img2dataset's resize modes", choices=RESIZE_MODES)

and its command adds them with ``add_options(parser, DownloadOptions)`` and builds the instance with
``from_args(DownloadOptions, args)``. The flag is ``--`` plus the field name with ``-`` for ``_``;
its argparse type follows the annotation (``bool`` is a bare flag, ``list[str]`` takes one or more
values, ``X | None`` is optional); anything else argparse accepts (``choices``, ``nargs``, ``type``,
``action``, ``metavar``, ``const``) passes through. A field without a default is a required flag.

``minimum`` / ``maximum`` (inclusive) and ``above`` / ``below`` (exclusive: ``--timeout`` above 0, a beta
below 1) are checked where the flag is parsed, and so are non-finite floats, so a bad value is a one-line
usage error; ``check_values(options)`` makes the same checks (and ``choices``)
for a library caller's instance. ``convert`` turns the parsed value into the field's value
(``parse_lang``, a comma list into a tuple, ...), for the command line only. Inner configs
(``FetchOptions``, ``FilterConfig``) have no defaults of their own: they are built from these.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import MISSING
from typing import Any, Callable

from .errors import UserError

_PASSTHROUGH = ("choices", "nargs", "type", "action", "metavar", "const", "dest")


def option(default: Any = MISSING, *, help: str = "", flag: str | None = None, group: str | None = None,
           minimum: float | None = None, maximum: float | None = None, above: float | None = None,
           below: float | None = None, convert: Callable | None = None, cli: bool = True,
           default_factory: Callable | None = None, **argparse_kwargs) -> Any:
    """A dataclass field that is also a command-line flag (see the module docstring).

    ``cli=False`` keeps a field out of the command line (set by library callers only). A mutable
    default (list, dict, set) is copied per instance.
    """
    unknown = set(argparse_kwargs) - set(_PASSTHROUGH)
    if unknown:
        raise TypeError(f"option(): unknown argparse keyword(s) {sorted(unknown)}")
    metadata = {"help": help, "flag": flag, "group": group, "minimum": minimum, "maximum": maximum,
                "above": above, "below": below, "convert": convert, "cli": cli, "argparse": argparse_kwargs}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _cli_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("cli", False)]


def _base_type(annotation) -> tuple[Any, bool]:
    """``(type, optional)`` of an annotation: ``int | None`` -> ``(int, True)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _bounds(meta) -> dict[str, float]:
    """A field's declared bounds: ``{"minimum": 1, "above": 0, ...}`` (only those given)."""
    return {kind: meta[kind] for kind in ("minimum", "maximum", "above", "below") if meta.get(kind) is not None}


def _number(bound: float) -> str:
    """A bound as a user writes it: ``16777216``, not ``1.67772e+07``."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def range_problem(flag: str, value, bounds: dict[str, float], shown=None) -> str | None:
    """Why ``value`` is not a valid ``flag`` (not finite, or outside ``bounds``), or ``None`` when it is."""
    shown = repr(shown) if shown is not None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{flag} must be a finite number, not {shown}"
    tests = {"minimum": (lambda b: value >= b, "at least"), "maximum": (lambda b: value <= b, "at most"),
             "above": (lambda b: value > b, "greater than"), "below": (lambda b: value < b, "less than")}
    for kind, bound in bounds.items():
        holds, words = tests[kind]
        if not holds(bound):
            return f"{flag} must be {words} {_number(bound)}, not {shown}"
    return None


def named_paths(flag: str) -> Callable[[list[str]], dict[str, str]]:
    """A converter for a repeated ``NAME=PATH`` flag (``--eval``, ``--image-cluster-eval``): ``{name: path}``;
    a value without a name or a path, or a name given twice, is a ``UserError`` naming ``flag``."""
    def convert(values: list[str]) -> dict[str, str]:
        named: dict[str, str] = {}
        for value in values:
            name, sep, path = value.partition("=")
            if not sep or not name or not path:
                raise UserError(f"{flag} {value!r}: expected NAME=PATH")
            if name in named:
                raise UserError(f"{flag} {name} given twice")
            named[name] = path
        return named
    return convert


def checked_type(parse: Callable, name: str, **bounds: float) -> Callable:
    """An argparse ``type`` that also refuses NaN/inf and values out of ``bounds`` (``minimum=0``, ``above=0``,
    ...), in one line; for flags declared by hand outside an options class too."""

    def check(text: str):
        value = parse(text)
        problem = range_problem(name, value, bounds, shown=text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    check.__name__ = getattr(parse, "__name__", "value")   # argparse names the type in its messages
    return check


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None


def _argparse_kwargs(field: dataclasses.Field, annotation) -> dict:
    meta = field.metadata
    kwargs = {"help": meta.get("help") or None, **meta.get("argparse", {})}
    required = field.default is MISSING and field.default_factory is MISSING
    base, _optional = _base_type(annotation)
    origin = typing.get_origin(base)
    if base is bool and "action" not in kwargs:
        kwargs["action"] = "store_false" if _default_of(field) is True else "store_true"
        return kwargs
    if origin in (list, tuple) and "nargs" not in kwargs and "action" not in kwargs:
        kwargs["nargs"] = "+"
        base = (typing.get_args(base) or (str,))[0]
    if "type" not in kwargs and "action" not in kwargs and base in (int, float, str):
        kwargs["type"] = base
    bounds = _bounds(meta)
    if "type" in kwargs and (bounds or kwargs["type"] is float):
        kwargs["type"] = checked_type(kwargs["type"], flag_name(field), **bounds)
    if required:
        kwargs["required"] = True
    elif kwargs.get("action") not in ("append", "extend"):
        kwargs["default"] = _default_of(field)
    else:
        kwargs["default"] = None   # argparse appends to its default in place: start from nothing
    return kwargs


def add_options(parser: argparse.ArgumentParser, cls, *, exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per command-line field of the dataclass ``cls`` (in declaration order).

    Fields with ``group=`` go under that argument group's heading in ``--help``.
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for field in _cli_fields(cls):
        if field.name in exclude:
            continue
        group_name = field.metadata.get("group")
        target = parser
        if group_name:
            if group_name not in groups:
                groups[group_name] = parser.add_argument_group(group_name)
            target = groups[group_name]
        kwargs = _argparse_kwargs(field, hints[field.name])
        kwargs.setdefault("dest", field.name)
        target.add_argument(flag_name(field), **kwargs)


def from_args(cls, args: argparse.Namespace, **overrides):
    """An instance of ``cls`` from parsed flags (``convert`` applied), with ``overrides`` on top.

    A flag that was not given keeps the dataclass default: ``append``/``extend`` flags start from
    nothing in argparse, so their absence is read as the field's default.
    """
    values = {}
    for field in _cli_fields(cls):
        if field.name in overrides or not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if value is None and field.metadata.get("argparse", {}).get("action") in ("append", "extend"):
            continue
        convert = field.metadata.get("convert")
        values[field.name] = convert(value) if convert is not None and value is not None else value
    return cls(**values, **overrides)


def check_values(options) -> None:
    """The checks the command line makes as it parses (declared ``choices``, bounds, finite floats), for
    library callers who build an options instance themselves: a ``UserError`` naming the flag.

    Lists and ``None`` are not checked (``None`` is "not given"); a field's ``convert`` output is checked as is.
    """
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if value is None or isinstance(value, (bool, list, tuple, dict, set, frozenset)):
            continue
        meta, flag = field.metadata, flag_name(field)
        choices = meta.get("argparse", {}).get("choices")
        if choices and value not in choices:
            raise UserError(f"{flag} {value!r}: choose from {', '.join(map(str, choices))}")
        if isinstance(value, (int, float)):
            problem = range_problem(flag, value, _bounds(meta))
            if problem:
                raise UserError(problem)


def defaults(cls) -> dict[str, Any]:
    """Every field's default (``None`` for required ones): the values a config file starts from."""
    return {f.name: _default_of(f) for f in dataclasses.fields(cls) if f.init}


def negatable_names(cls) -> frozenset[str]:
    """Fields whose flag has a ``--no-`` form (``argparse.BooleanOptionalAction``): on/off switches."""
    return frozenset(f.name for f in _cli_fields(cls)
                     if f.metadata.get("argparse", {}).get("action") is argparse.BooleanOptionalAction)


def flag_names(cls) -> set[str]:
    """The command-line flags of ``cls``, e.g. ``{"--image-size", ...}``, the ``--no-`` form of an on/off switch
    too (``wit build`` checks config keys)."""
    negatable = negatable_names(cls)
    return {flag_name(f) for f in _cli_fields(cls)} | {"--no-" + flag_name(f)[2:] for f in _cli_fields(cls)
                                                       if f.name in negatable}
