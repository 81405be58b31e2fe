"""The collector registry: which functions gather what, under which key and version.

A collector is a function registered with ``@register(key, version, ...)``; it is called
for a window ``since`` .. ``until`` (and more keywords, so it takes ``**kwargs``) and
returns JSON-serialisable data (``format="json"``) or the path(s) of the CSV file(s) it
wrote (``format="csv"``). Its key names the file in each tarball (``<key>.json`` or
``<key>.csv``) and its version goes into the tarball's ``manifest.json``. Exactly one
collector is the config collector (key ``config``, JSON), put into every tarball.

A collector with a ``slicing`` function is gathered once per window that function gives
(called as ``slicing(key, last_gather, since=..., until=...)``, or with
``full_sync_enabled=True`` when a full sync of ``full_sync_interval_days`` is due); sliced
collectors may share a key, the others' keys are unique within their shipping group.

Collectors are kept in registration order, which is the order they are gathered in.
Modules register into ``REGISTRY`` through the module-level ``register``; ``load`` imports
them and checks the result:

>>> registry = Registry()
>>> @registry.register("config", "1.0", config=True)
... def config(**kwargs):
...     return {"product": "example"}
>>> @registry.register("events", "1.2", format="csv")
... def events(**kwargs):
...     return None
>>> registry.check()
>>> [c.file_name for c in registry.collectors()]
['config.json', 'events.csv']
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

FORMATS = ("json", "csv")
#: the config collector's key
CONFIG_KEY = "config"
#: stems of the files every tarball holds beside the collectors' own
RESERVED_KEYS = frozenset({CONFIG_KEY, "manifest", "data_collection_status"})

# ASCII letters, digits, "_", "-" and "."; no leading "." (no hidden file, no "." or "..")
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")

F = TypeVar("F", bound=Callable[..., Any])
Slicing = Callable[..., Iterable[tuple[datetime, datetime]]]


def valid_key(key: str) -> bool:
    """Whether ``key`` can name a file in a tarball (reserved names aside).

    >>> valid_key("usage_groups"), valid_key("v1.2-x"), valid_key("a/b"), valid_key(".x")
    (True, True, False, False)
    """
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


class RegistryError(Exception):
    """The registered collectors cannot be gathered; every problem found is listed."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = "invalid collectors" if n == 1 else f"invalid collectors ({n} problems)"
        return head + ":\n" + "\n".join(f"  {p}" for p in self.problems)


@dataclass(frozen=True)
class Collector:
    """One registered collector (see the module docstring for the fields' meaning)."""

    key: str
    version: str
    fn: Callable[..., Any]
    format: str = "json"
    config: bool = False
    slicing: Slicing | None = None
    shipping_group: str = "default"
    description: str = ""
    full_sync_interval_days: int | None = None

    @property
    def sliced(self) -> bool:
        return self.slicing is not None

    @property
    def file_name(self) -> str:
        """The collector's file in a tarball."""
        return f"{self.key}.{self.format}"

    @property
    def where(self) -> str:
        """The collector function as ``module:line name``, for messages."""
        return _where(self.fn)

    def __str__(self) -> str:
        return f"collector '{self.key}' ({self.where})"


def _where(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or repr(fn)
    code = getattr(fn, "__code__", None)
    line = f":{code.co_firstlineno}" if code is not None else ""
    return f"{module}{line} {name}"


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """``a`` is ``b``, or ``b`` is ``a`` defined again by re-importing its module (same
    module and qualified name; functions local to another or lambdas only by identity)."""
    if a is b:
        return True
    name = getattr(a, "__qualname__", None)
    return (
        isinstance(name, str)
        and "<" not in name
        and name == getattr(b, "__qualname__", None)
        and getattr(a, "__module__", None) == getattr(b, "__module__", None)
    )


class Registry:
    """Collectors in registration order; ``check()`` says whether they can be gathered."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(
        self,
        key: str,
        version: str,
        *,
        format: str = "json",
        config: bool = False,
        slicing: Slicing | None = None,
        shipping_group: str = "default",
        description: str = "",
        full_sync_interval_days: int | None = None,
    ) -> Callable[[F], F]:
        """A decorator recording the function as a collector; the function is returned
        unchanged. Registering the same function again under its key is ignored, and one
        defined again by re-importing its module replaces its earlier record, so importing
        twice registers nothing twice; problems are reported by ``check()``."""

        def record(fn: F) -> F:
            new = Collector(key, version, fn, format, config, slicing, shipping_group,
                            description, full_sync_interval_days)  # fmt: skip
            for i, old in enumerate(self._collectors):
                if old.key == key and _same_function(fn, old.fn):
                    if old.fn is not fn:
                        self._collectors[i] = new
                    return fn
            self._collectors.append(new)
            return fn

        return record

    def collectors(self) -> list[Collector]:
        """Every collector, in registration order."""
        return list(self._collectors)

    def config(self) -> Collector:
        """The config collector; a ``RegistryError`` unless there is exactly one."""
        found = [c for c in self._collectors if c.config]
        if len(found) != 1:
            raise RegistryError([_config_count(found)])
        return found[0]

    def check(self) -> None:
        """Raise a ``RegistryError`` listing every problem: not exactly one config
        collector, or it is not JSON keyed ``config``; a key that cannot name a file or
        takes a reserved name; a non-sliced key taken twice in one shipping group; an
        unknown format; an empty version."""
        problems: list[str] = []
        configs = [c for c in self._collectors if c.config]
        if len(configs) != 1:
            problems.append(_config_count(configs))
        for c in self._collectors:
            problems += _problems(c)
        taken: dict[tuple[str, str], list[Collector]] = {}
        for c in self._collectors:
            taken.setdefault((c.shipping_group, c.key), []).append(c)
        for (group, key), same in taken.items():
            if len(same) > 1 and not all(c.sliced for c in same):
                where = ", ".join(c.where for c in same)
                problems.append(
                    f"key '{key}' is registered {len(same)} times in shipping group "
                    f"'{group}' ({where}); a key is unique within its shipping group unless "
                    "every collector using it has a slicing function: rename one"
                )
        if problems:
            raise RegistryError(problems)


def _config_count(configs: list[Collector]) -> str:
    if not configs:
        return (
            "no config collector: register exactly one, e.g. "
            "@register('config', '1.0', config=True) on a function returning a dict"
        )
    return (
        f"{len(configs)} config collectors ({', '.join(str(c) for c in configs)}); "
        "keep exactly one with config=True"
    )


def _problems(c: Collector) -> list[str]:
    """What is wrong with one collector on its own."""
    found = []
    if c.format not in FORMATS:
        found.append(f"{c}: format {c.format!r} is not one of {', '.join(FORMATS)}")
    if not isinstance(c.version, str) or not c.version:
        found.append(f"{c}: version {c.version!r} should be a non-empty string, e.g. '1.0'")
    if not valid_key(c.key):
        found.append(
            f"{c}: key {c.key!r} cannot name a file: use ASCII letters, digits, '_', '-' "
            "and '.', not starting with '.'"
        )
    if c.config:
        if c.key != CONFIG_KEY:
            found.append(f"{c}: the config collector's key must be '{CONFIG_KEY}'")
        if c.format != "json":
            found.append(f"{c}: the config collector must be JSON, not {c.format!r}")
        if c.sliced:
            found.append(f"{c}: the config collector is gathered once: drop its slicing")
    elif c.key in RESERVED_KEYS:
        found.append(
            f"{c}: key {c.key!r} is reserved for the tarball's own files "
            f"({', '.join(sorted(RESERVED_KEYS))}); choose another"
        )
    if not c.shipping_group:
        found.append(f"{c}: shipping_group should be a non-empty name, e.g. 'default'")
    slicing: object = c.slicing  # typed callable, but given by hand
    if slicing is not None and not callable(slicing):
        found.append(f"{c}: slicing {slicing!r} is not callable")
    days = c.full_sync_interval_days
    if days is not None and (c.slicing is None or not isinstance(days, int) or days < 1):
        found.append(
            f"{c}: full_sync_interval_days={days!r} needs a slicing function and a whole "
            "number of days of at least 1"
        )
    return found


#: the registry modules register into with the module-level ``register``
REGISTRY = Registry()
register = REGISTRY.register


def load(modules: Sequence[str]) -> Registry:
    """Import ``modules`` (e.g. ``["stages.ingress.collectors", "mysite.collectors"]``),
    which register into ``REGISTRY``, and return it checked (``RegistryError`` otherwise).
    Loading a module again registers nothing twice."""
    for name in [modules] if isinstance(modules, str) else modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(f"{exc.name}.")):
                raise  # the module exists but something it imports does not
            msg = (
                f"collector module '{name}' not found: give the dotted name of a module "
                "importable from the Python path (e.g. 'stages.ingress.collectors')"
            )
            raise RegistryError([msg]) from exc
    REGISTRY.check()
    return REGISTRY
