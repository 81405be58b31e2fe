"""Topology: the graph of stages, as frozen and checked dataclasses.

YAML (``load_topology``) and the Python API (``AnalysisFrame.add_stage``) both produce the
same raw mapping and go through ``build_topology``, which checks everything before any
process starts and reports every problem at once, each with file, line and stage.

A topology file::

    name: wordcount                 # optional; default: the file's stem
    transport: ipc                  # ipc (default) or tcp (every socket CURVE-secured)
    keys: /etc/pipeline/keys        # tcp: the frame's keys (pipeline keys); default: per run
    max_message: 1073741824         # the largest message a socket takes from a peer (bytes)
    hosts: {a: 10.0.0.1, b: 10.0.0.2}  # several hosts (tcp): name -> address
    coordinator: a                  # where pipeline run runs (default: the first host)
    groups: {pool: 2}               # hosts that join at run time (pipeline worker --group),
                                    # 2 of them before the first replica starts ([pool]: 1)
    port: 7700                      # its control port; pipeline worker --host b joins there
    join_timeout: 60                # seconds each host has to join
    host: 127.0.0.1                 # address tcp endpoints bind to
    run_dir: .pipeline/wordcount    # summary, dead letters, sockets; default .pipeline/<name>
    drain_timeout: 30               # seconds to drain after SIGINT/SIGTERM
    defaults: {batch: {size: 500}}  # merged into every stage
    stages:
      - name: read
        run: stages.files:read_lines
        params: {paths: "${INPUT:-data/*.txt}"}
        next: words
      - name: words
        run: stages.text:split_words
        replicas: 2
        hosts: [b]                  # on host b (pipeline worker --host b); default: here
        next: count
      - name: tally
        run: stages.text:tally
        hosts: [pool]               # on the members of group pool, the least loaded first
        replicas: members           # one replica per member: grows and shrinks with them
      - name: count
        run: stages.text:CountWords
        route: {key: word}
        next: write
      - name: write
        run: stages.jsonl:WriteJsonLines
        params: {path: out/counts.jsonl}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.contract import (
    ResolveError,
    Role,
    StageImpl,
    check_params,
    inspect_stage,
    resolve,
)
from pipeline.errors import Problem, TopologyError
from pipeline.routing import BROADCAST, DEFAULT_PARTITIONS, KEY, ROUND_ROBIN, Route
from pipeline.yamlfile import Located, load

ON_ERROR = ("fail", "restart", "skip")
#: ``replicas: members``: a stage on a group runs one replica per member
MEMBERS = "members"
#: the largest message a socket of a frame takes from a peer, unless ``max_message`` says
#: otherwise (a peer sending more is disconnected, so it cannot make a process buffer more)
MAX_MESSAGE = 1 << 30
KINDS = ("process", "async")
TRANSPORTS = ("ipc", "tcp")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

TOP_KEYS = {
    "name",
    "transport",
    "host",
    "keys",
    "max_message",
    "hosts",
    "coordinator",
    "groups",
    "port",
    "join_timeout",
    "run_dir",
    "drain_timeout",
    "stats_interval",
    "defaults",
    "stages",
}
STAGE_KEYS = {
    "name",
    "run",
    "kind",
    "replicas",
    "next",
    "route",
    "params",
    "args",
    "on_error",
    "max_restarts",
    "batch",
    "backpressure",
    "scalable",
    "hosts",
}
DEFAULT_KEYS = {"kind", "on_error", "max_restarts", "batch", "backpressure"}
BATCH_KEYS = {"size", "bytes", "linger"}
FLOW_KEYS = {"credit", "window"}
ROUTE_KEYS = {"key", "partitions"}


@dataclass(frozen=True)
class BatchSpec:
    """How items are grouped into transport batches on a stage's outputs."""

    #: items per batch at most
    size: int = 4096
    #: bytes per batch, about: numpy buffers, or the encoded size of plain records
    bytes: int = 1 << 20
    #: seconds a partial batch of a source may wait for more items
    linger: float = 0.05


@dataclass(frozen=True)
class FlowSpec:
    """Backpressure: bounds on batches in flight."""

    #: batches one replica of this stage accepts ahead from each sending replica
    credit: int = 16
    #: batches one replica of this stage may have unacknowledged on one outgoing edge
    window: int = 64


@dataclass(frozen=True)
class StageSpec:
    name: str
    run: str
    role: Role
    is_async: bool
    kind: Literal["process", "async"] = "process"
    replicas: int = 1
    next: tuple[str, ...] = ()
    route: Route = field(default_factory=Route)
    params: Mapping[str, Any] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    on_error: Literal["fail", "restart", "skip"] = "fail"
    max_restarts: int = 5
    batch: BatchSpec = field(default_factory=BatchSpec)
    flow: FlowSpec = field(default_factory=FlowSpec)
    #: its replica count may change while it runs (``pipeline scale``)
    scalable: bool = True
    #: the hosts its replicas run on, in turn (replica i on hosts[i % n]); (): the
    #: coordinator's
    hosts: tuple[str, ...] = ()
    #: ``replicas: members``: one replica per member of its group, as they join and leave
    per_member: bool = False
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Topology:
    name: str
    stages: tuple[StageSpec, ...]
    transport: Literal["ipc", "tcp"] = "ipc"
    host: str = "127.0.0.1"
    run_dir: Path = Path(".pipeline")
    drain_timeout: float = 30.0
    stats_interval: float = 0.5
    file: str | None = None
    #: the frame's CURVE keys for tcp (``pipeline keys``); None: made afresh for each run
    keys: Path | None = None
    #: the largest message (bytes) a socket of the frame takes from a peer
    max_message: int = MAX_MESSAGE
    #: host name -> the address its processes bind and are reached at (several hosts)
    hosts: Mapping[str, str] = field(default_factory=dict)
    #: the host ``pipeline run`` runs on (default: the first of ``hosts``)
    coordinator: str | None = None
    #: groups of hosts that join at run time (``pipeline worker --group NAME``), each with
    #: the members to wait for before its first replica starts
    groups: Mapping[str, int] = field(default_factory=dict)
    #: the coordinator's control port, where ``pipeline worker`` joins (0: any free one)
    port: int = 0
    #: seconds a host has to join before the run fails saying what to start there
    join_timeout: float = 60.0

    def host_of(self, stage: str, index: int) -> str | None:
        """The host (or group, see ``groups``) replica ``index`` of ``stage`` runs on;
        None: the coordinator's."""
        hosts = self.stage(stage).hosts
        host = hosts[index % len(hosts)] if hosts else None
        return None if host == self.coordinator else host

    def address(self, host: str | None) -> str:
        """Where a host's processes bind (None: the coordinator)."""
        name = host or self.coordinator
        return self.hosts[name] if name is not None and name in self.hosts else self.host

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def upstream(self, name: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages if name in s.next)

    def order(self) -> tuple[str, ...]:
        """Stage names with every stage after all the stages that feed it."""
        placed: list[str] = []
        pending = list(self.names)
        while pending:
            ready = [n for n in pending if all(u in placed for u in self.upstream(n))]
            placed.extend(ready)
            pending = [n for n in pending if n not in ready]
        return tuple(placed)

    def sources(self) -> tuple[StageSpec, ...]:
        return tuple(s for s in self.stages if not self.upstream(s.name))

    def describe(self) -> str:
        """The graph as text, as ``pipeline check`` prints it."""
        head = f"{self.name}: {len(self.stages)} stages, transport {self.transport}"
        lines = [head, f"run dir {self.run_dir}"]
        width = max(len(s.name) for s in self.stages)
        for s in self.stages:
            kind = f"{s.kind}{' (async code)' if s.is_async and s.kind == 'process' else ''}"
            feeds = " -> " + ", ".join(s.next) if s.next else "  (sink)"
            up = self.upstream(s.name)
            route = "" if not up else f"  route {s.route.describe()}"
            lines.append(
                f"  {s.name:<{width}}  {s.role.value:<9} {kind:<7} x{s.replicas:<3} "
                f"{s.run}{route}  on_error {s.on_error}{feeds}"
            )
        return "\n".join(lines)


class _Checker:
    """Collects problems while building, so one run of ``check`` shows all of them."""

    def __init__(self, located: Located | None, origin: str | None) -> None:
        self.located = located
        self.origin = origin
        self.problems: list[Problem] = []

    def line(self, *path: str | int) -> int | None:
        return self.located.line(tuple(path)) if self.located else None

    def add(self, message: str, path: tuple[str | int, ...] = (), stage: str | None = None) -> None:
        self.problems.append(Problem(message, self.origin, self.line(*path), stage))

    def unknown_keys(
        self,
        got: Mapping[str, Any],
        allowed: set[str],
        what: str,
        path: tuple[str | int, ...],
        stage: str | None = None,
    ) -> None:
        for key in got:
            if key not in allowed:
                self.add(
                    f"unknown key '{key}' in {what} (allowed: {', '.join(sorted(allowed))})",
                    (*path, key),
                    stage,
                )

    def positive(
        self,
        value: Any,
        what: str,
        path: tuple[str | int, ...],
        stage: str | None,
        *,
        number: bool = False,
    ) -> bool:
        ok_types = (int, float) if number else (int,)
        if isinstance(value, bool) or not isinstance(value, ok_types) or value <= 0:
            kind = "a positive number" if number else "a whole number >= 1"
            self.add(f"{what} must be {kind}, got {value!r}", path, stage)
            return False
        return True


def _merge_defaults(stage: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(stage)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping) and isinstance(merged[key], Mapping):
            merged[key] = {**value, **merged[key]}
    return merged


def _route(c: _Checker, raw: Any, path: tuple[str | int, ...], stage: str) -> Route:
    if raw is None or raw == ROUND_ROBIN:
        return Route()
    if raw == BROADCAST:
        return Route(BROADCAST)
    if isinstance(raw, Mapping):
        c.unknown_keys(raw, ROUTE_KEYS, "route", path, stage)
        key = raw.get("key")
        if not isinstance(key, str | int) or isinstance(key, bool) or key == "":
            c.add(f"route key must name a field, got {key!r}", path, stage)
            return Route()
        partitions = raw.get("partitions", DEFAULT_PARTITIONS)
        if not c.positive(partitions, "route partitions", (*path, "partitions"), stage):
            partitions = DEFAULT_PARTITIONS
        return Route(KEY, key, partitions)
    c.add(f"route must be 'round-robin', 'broadcast' or {{key: FIELD}}, got {raw!r}", path, stage)
    return Route()


def _sub_spec(
    c: _Checker, raw: Any, allowed: set[str], what: str, path: tuple[str | int, ...], stage: str
) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        c.add(f"{what} must be a mapping, got {raw!r}", path, stage)
        return {}
    c.unknown_keys(raw, allowed, what, path, stage)
    out: dict[str, Any] = {}
    for key in allowed & set(raw):
        number = key == "linger"
        if c.positive(raw[key], f"{what}.{key}", (*path, key), stage, number=number):
            out[key] = raw[key]
    return out


def _stage(
    c: _Checker, raw: Any, i: int, defaults: Mapping[str, Any], check_imports: bool
) -> dict[str, Any] | None:
    """Check one stage mapping; returns the keyword arguments of its StageSpec."""
    path: tuple[str | int, ...] = ("stages", i)
    if not isinstance(raw, Mapping):
        c.add(f"each stage must be a mapping with at least 'name' and 'run', got {raw!r}", path)
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        c.add(
            f"stage {i + 1} needs a 'name' of letters, digits, '_' and '-', got {name!r}",
            (*path, "name"),
        )
        return None
    c.unknown_keys(raw, STAGE_KEYS, "the stage", path, name)
    s = _StageCheck(c, _merge_defaults(raw, defaults), path, name)
    impl = s.run(check_imports)
    spec: dict[str, Any] = {
        "name": name,
        "line": c.line(*path),
        "kind": s.choice("kind", KINDS, "process"),
        "replicas": 1 if s.raw.get("replicas") == MEMBERS else s.count("replicas", 1),
        "per_member": s.raw.get("replicas") == MEMBERS,
        "next": s.next(),
        "route": _route(c, s.raw.get("route"), (*path, "route"), name),
        "params": s.params(),
        "args": s.args(),
        "on_error": s.choice("on_error", ON_ERROR, "fail"),
        "max_restarts": s.count("max_restarts", 5, minimum=0),
        "batch": BatchSpec(**s.sub("batch", BATCH_KEYS)),
        "flow": FlowSpec(**s.sub("backpressure", FLOW_KEYS)),
        "scalable": s.flag("scalable", True),
        "hosts": s.hosts(),
    }
    if isinstance(s.raw.get("run"), str):
        spec["run"] = s.raw["run"]
    if impl is None:
        spec["role"] = None  # unknown: the problem with 'run' is reported already
        spec["is_async"] = False
        return spec
    spec["role"] = impl.role
    spec["is_async"] = impl.is_async
    s.contract(impl, spec)
    return spec


class _StageCheck:
    """The checks of one stage's keys, each reporting with the key's line."""

    def hosts(self) -> tuple[str, ...]:
        raw = self.raw.get("hosts", ())
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list | tuple) or not all(isinstance(h, str) for h in raw):
            self.c.add(f"hosts must be a list of host names, got {raw!r}",
                       (*self.path, "hosts"), self.name)  # fmt: skip
            return ()
        return tuple(raw)

    def __init__(self, c: _Checker, raw: Mapping[str, Any], path: tuple[str | int, ...], name: str):
        self.c = c
        self.raw = raw
        self.path = path
        self.name = name

    def add(self, message: str, key: str) -> None:
        self.c.add(message, (*self.path, key), self.name)

    def run(self, check_imports: bool) -> StageImpl | None:
        run = self.raw.get("run")
        if not isinstance(run, str):
            self.add(f"'run' must be 'package.module:callable', got {run!r}", "run")
            return None
        if not check_imports:
            return None
        try:
            return inspect_stage(resolve(run))
        except ResolveError as exc:
            self.add(str(exc), "run")
            return None

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.raw.get(key, default)
        if value not in allowed:
            self.add(f"{key} must be one of {', '.join(allowed)}, got {value!r}", key)
            return default
        return str(value)

    def count(self, key: str, default: int, minimum: int = 1) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.add(f"{key} must be a whole number >= {minimum}, got {value!r}", key)
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.add(f"{key} must be true or false, got {value!r}", key)
            return default
        return value

    def next(self) -> tuple[str, ...]:
        nxt = self.raw.get("next", ())
        if isinstance(nxt, str):
            nxt = (nxt,)
        if not isinstance(nxt, list | tuple) or not all(isinstance(n, str) for n in nxt):
            self.add(f"next must be a stage name or a list of them, got {nxt!r}", "next")
            return ()
        if len(set(nxt)) != len(nxt):
            self.add(f"next lists a stage twice: {list(nxt)}", "next")
        return tuple(dict.fromkeys(nxt))

    def params(self) -> dict[str, Any]:
        params = self.raw.get("params", {}) or {}
        if not isinstance(params, Mapping):
            self.add(f"params must be a mapping of keyword arguments, got {params!r}", "params")
            return {}
        return dict(params)

    def args(self) -> tuple[Any, ...]:
        args = self.raw.get("args", ())
        return tuple(args) if isinstance(args, list | tuple) else (args,)

    def sub(self, key: str, allowed: set[str]) -> dict[str, Any]:
        return _sub_spec(self.c, self.raw.get(key), allowed, key, (*self.path, key), self.name)

    def contract(self, impl: StageImpl, spec: dict[str, Any]) -> None:
        """What the stage's code allows: its params, restarts, where it may run."""
        why = check_params(impl, spec["params"], spec["args"])
        if why:
            self.add(why, "params")
        if (
            spec["on_error"] == "restart"
            and impl.role in (Role.STATEFUL, Role.SOURCE)
            and not impl.restartable
        ):
            what = "stateful stage" if impl.role is Role.STATEFUL else "source"
            self.add(
                f"on_error: restart needs a {what} that can rebuild its state, and "
                f"{spec['run']} does not declare restartable = True; use fail or skip, or "
                "make it restartable",
                "on_error",
            )
        if spec["kind"] == "async" and impl.role is Role.MASS and not impl.is_async:
            self.add(
                f"{spec['run']} is a plain function whose sockets.receive() would block the "
                "event loop; make it 'async def' or use kind: process",
                "kind",
            )


def _placement(
    c: _Checker, data: Mapping[str, Any], transport: str
) -> tuple[dict[str, str], str | None, int, dict[str, int]]:
    """The ``hosts`` map, the coordinator, its control port and the groups."""
    raw = data.get("hosts") or {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and _NAME.match(k) and isinstance(v, str) and v for k, v in raw.items()
    ):
        c.add(f"hosts must map host names to addresses, got {raw!r}", ("hosts",))
        raw = {}
    hosts = dict(raw)
    if hosts and transport != "tcp":
        c.add("several hosts need transport: tcp", ("hosts",))
    coordinator = data.get("coordinator", next(iter(hosts), None))
    if coordinator is not None and coordinator not in hosts:
        c.add(f"coordinator {coordinator!r} is not one of the hosts ({', '.join(hosts) or 'none'})",
              ("coordinator",))  # fmt: skip
        coordinator = None
    port = data.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        c.add(f"port must be a tcp port number, got {port!r}", ("port",))
        port = 0
    raw_groups = data.get("groups") or {}
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    if isinstance(raw_groups, list):
        raw_groups = dict.fromkeys(raw_groups, 1)
    groups: dict[str, int] = {}
    if not isinstance(raw_groups, Mapping) or not all(
        isinstance(g, str) and _NAME.match(g) and isinstance(n, int) and not isinstance(n, bool)
        and n >= 1 for g, n in raw_groups.items()
    ):  # fmt: skip
        c.add("groups must be a list of group names, or map each to the members to wait for "
              f"at the start, got {raw_groups!r}", ("groups",))  # fmt: skip
    else:
        groups = dict(raw_groups)
    for g in groups:
        if g in hosts:
            c.add(f"{g!r} is both a host and a group; name them apart", ("groups",))
    if groups and transport != "tcp":
        c.add("groups of hosts need transport: tcp", ("groups",))
    return hosts, coordinator, port, groups


def _check_hosts(c: _Checker, specs: list[dict[str, Any]], hosts: Mapping[str, str],
                 coordinator: str | None, port: int,
                 groups: Mapping[str, int]) -> None:  # fmt: skip
    """Every stage's hosts are known hosts or groups; stages elsewhere need the
    coordinator's port; ``replicas: members`` is for a stage on one group."""
    elsewhere = False
    known = ", ".join((*hosts, *groups)) or "none"
    for i, s in enumerate(specs):
        for h in s.get("hosts", ()):
            if h not in hosts and h not in groups:
                c.add(f"host {h!r} is neither in the topology's hosts nor its groups ({known})",
                      ("stages", i, "hosts"), s["name"])  # fmt: skip
            elif h != coordinator:
                elsewhere = True
        if s.get("per_member") and (len(s["hosts"]) != 1 or s["hosts"][0] not in groups):
            c.add(f"replicas: {MEMBERS} needs the stage on exactly one group (hosts: [GROUP], "
                  f"GROUP in groups), got hosts: {list(s['hosts'])}",
                  ("stages", i, "replicas"), s["name"])  # fmt: skip
        if s.get("per_member") and (s.get("role") is Role.SOURCE or not s.get("scalable", True)):
            c.add(f"replicas: {MEMBERS} needs a stage that can scale while running (not a "
                  "source, not scalable: false)", ("stages", i, "replicas"), s["name"])  # fmt: skip
    if elsewhere and not port:
        c.add("stages placed on other hosts need the coordinator's 'port', where their "
              "pipeline worker joins", ("port",))  # fmt: skip


def _check_graph(c: _Checker, specs: list[dict[str, Any]], raw_stages: list[Any]) -> None:
    index = {s["name"]: i for i, s in enumerate(specs)}
    seen: set[str] = set()
    for i, s in enumerate(specs):
        if s["name"] in seen:
            c.add(
                "another stage has the same name; stage names must be unique",
                ("stages", i, "name"),
                s["name"],
            )
        seen.add(s["name"])
    for i, s in enumerate(specs):
        for target in s["next"]:
            if target not in index:
                known = ", ".join(sorted(index))
                c.add(
                    f"next names '{target}', which is not a stage (stages: {known})",
                    ("stages", i, "next"),
                    s["name"],
                )
            elif target == s["name"]:
                c.add(
                    "next names the stage itself; a stage cannot feed itself",
                    ("stages", i, "next"),
                    s["name"],
                )
    fed = {t for s in specs for t in s["next"] if t in index}
    for i, s in enumerate(specs):
        role = s["role"]
        if role is Role.SOURCE and s["name"] in fed:
            feeders = [f["name"] for f in specs if s["name"] in f["next"]]
            c.add(
                f"{s.get('run')} is a source (its first parameter is ctx) but "
                f"{', '.join(feeders)} sends to it; a fed stage takes (item, ctx)",
                ("stages", i, "run"),
                s["name"],
            )
        if role in (Role.TRANSFORM, Role.STATEFUL) and s["name"] not in fed and "run" in s:
            c.add(
                f"nothing sends to this {role.value} stage; add it to another stage's 'next', "
                "or make it a source (first parameter ctx)",
                ("stages", i),
                s["name"],
            )
        if s["name"] not in fed and s["route"] != Route():
            c.add(
                "route has no effect on a stage nothing feeds; remove it",
                ("stages", i, "route"),
                s["name"],
            )
    _check_cycles(c, specs, index)
    if specs and not any(s["name"] not in fed for s in specs):
        c.add("no stage is a source: every stage is fed by another", ("stages",))


def _check_cycles(c: _Checker, specs: list[dict[str, Any]], index: dict[str, int]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for nxt in specs[index[name]]["next"]:
            if nxt not in index or nxt == name:
                continue
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [name, nxt]
                c.add(f"the graph has a cycle: {' -> '.join(cycle)}", ("stages", index[nxt]), nxt)
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[name] = 2

    for s in specs:
        if s["name"] not in state:
            visit(s["name"], [s["name"]])


def build_topology(
    data: Any,
    *,
    located: Located | None = None,
    origin: str | None = None,
    default_name: str = "pipeline",
    check_imports: bool = True,
) -> Topology:
    """Check raw topology data and build the frozen ``Topology``; raise ``TopologyError``."""
    c = _Checker(located, origin)
    if not isinstance(data, Mapping):
        c.add("the topology must be a mapping with a 'stages' list")
        raise TopologyError(c.problems)
    c.unknown_keys(data, TOP_KEYS, "the topology", ())
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        c.add(f"name must be letters, digits, '_' and '-', got {name!r}", ("name",))
        name = "pipeline"
    transport = data.get("transport", "ipc")
    if transport not in TRANSPORTS:
        c.add(f"transport must be 'ipc' or 'tcp', got {transport!r}", ("transport",))
        transport = "ipc"
    host = data.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        c.add(f"host must be an address to bind, got {host!r}", ("host",))
        host = "127.0.0.1"
    run_dir = data.get("run_dir", os.path.join(".pipeline", name))
    if not isinstance(run_dir, str | os.PathLike) or not str(run_dir):
        c.add(f"run_dir must be a directory path, got {run_dir!r}", ("run_dir",))
        run_dir = os.path.join(".pipeline", name)
    keys = data.get("keys")
    if keys is not None and (not isinstance(keys, str | os.PathLike) or not str(keys)):
        c.add(f"keys must be a folder made by pipeline keys, got {keys!r}", ("keys",))
        keys = None
    if keys is not None and transport != "tcp":
        c.add("keys are for transport: tcp (ipc sockets are owner-only files)", ("keys",))
    max_message = data.get("max_message", MAX_MESSAGE)
    if isinstance(max_message, bool) or not isinstance(max_message, int) or max_message < 1024:
        c.add(f"max_message must be a whole number of bytes, at least 1024, got {max_message!r}",
              ("max_message",))  # fmt: skip
        max_message = MAX_MESSAGE
    hosts, coordinator, port, groups = _placement(c, data, transport)
    timing = {}
    for key, default in (("drain_timeout", 30.0), ("stats_interval", 0.5),
                         ("join_timeout", 60.0)):  # fmt: skip
        value = data.get(key, default)
        timing[key] = float(value) if c.positive(value, key, (key,), None, number=True) else default
    defaults = data.get("defaults", {}) or {}
    if not isinstance(defaults, Mapping):
        c.add(f"defaults must be a mapping, got {defaults!r}", ("defaults",))
        defaults = {}
    c.unknown_keys(defaults, DEFAULT_KEYS, "defaults", ("defaults",))

    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        c.add("'stages' must be a non-empty list of stages", ("stages",))
        raise TopologyError(c.problems)
    specs = [s for i, r in enumerate(raw_stages) if (s := _stage(c, r, i, defaults, check_imports))]
    if len(specs) == len(raw_stages):
        _check_graph(c, specs, raw_stages)
        _check_hosts(c, specs, hosts, coordinator, port, groups)
    if c.problems:
        raise TopologyError(c.problems)
    return Topology(
        name=name,
        stages=tuple(StageSpec(**s) for s in specs),
        transport=transport,
        host=host,
        run_dir=Path(run_dir),
        drain_timeout=timing["drain_timeout"],
        stats_interval=timing["stats_interval"],
        file=origin,
        keys=Path(keys) if keys else None,
        max_message=max_message,
        hosts=hosts,
        coordinator=coordinator,
        groups=groups,
        port=port,
        join_timeout=timing["join_timeout"],
    )


def load_topology(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    check_imports: bool = True,
) -> Topology:
    """Read, substitute and check a topology file."""
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"no topology file at {file}; give a path, or run where topology.yaml is"
        raise TopologyError([Problem(msg)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([Problem(f"cannot read the topology: {exc}", file)]) from None
    located = load(text, file, os.environ if env is None else env)
    return build_topology(
        located.data,
        located=located,
        origin=file,
        default_name=Path(file).stem.replace(".", "-") or "pipeline",
        check_imports=check_imports,
    )
