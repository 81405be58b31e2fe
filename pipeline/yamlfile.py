"""YAML with line numbers and ``${VAR}`` substitution, for topology files.

Values are substituted after parsing, scalar by scalar, so an environment value can never
break the YAML structure, and line numbers stay those of the file. ``${VAR}`` must be set;
``${VAR:-default}`` falls back when VAR is unset or empty, ``${VAR-default}`` only when unset;
``$$`` is a literal ``$``. An unquoted scalar that is only a substitution is typed after
substitution, so ``replicas: ${REPLICAS:-2}`` is the integer 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipeline.errors import Problem, TopologyError

Path = tuple[str | int, ...]

_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\})")


@dataclass
class Located:
    """Parsed YAML data and the 1-based line of every mapping key and list entry."""

    data: Any
    file: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def substitute(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with variables replaced, and the names of unset variables without default."""
    missing: list[str] = []

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op == ":-" and not value:
            return default or ""
        if op == "-" and value is None:
            return default or ""
        if value is None:
            missing.append(name)
            return ""
        return value

    return _VAR.sub(repl, text), missing


class _Walker:
    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.loader = yaml.SafeLoader("")
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []

    def walk(self, node: yaml.Node, path: Path) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.walk_key(key_node)
                if key in out:
                    line = key_node.start_mark.line + 1
                    self.problems.append(
                        Problem(
                            f"key '{key}' appears twice in the same mapping; keep one",
                            self.file,
                            line,
                        )
                    )
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.walk(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def walk_key(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problems.append(
                Problem("mapping keys must be plain scalars", self.file, node.start_mark.line + 1)
            )
            return repr(node)
        return self.loader.construct_object(node)

    def scalar(self, node: yaml.Node) -> Any:
        assert isinstance(node, yaml.ScalarNode)
        text = node.value
        if "$" not in text or node.tag not in ("tag:yaml.org,2002:str", "!"):
            return self.loader.construct_object(node)
        value, missing = substitute(text, self.env)
        for name in missing:
            self.problems.append(
                Problem(
                    f"environment variable {name} is not set; set it, or give a default "
                    f"with ${{{name}:-default}}",
                    self.file,
                    node.start_mark.line + 1,
                )
            )
        tag = node.tag
        if node.style is None:  # plain scalar: type it after substitution
            tag = self.loader.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        return self.loader.construct_object(
            yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, node.style)
        )


def load(text: str, file: str, env: Mapping[str, str]) -> Located:
    """Parse ``text``; raise ``TopologyError`` naming file and line on any problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc)
        raise TopologyError([Problem(f"YAML syntax error: {what}", file, line)]) from None
    if node is None:
        raise TopologyError([Problem("the file is empty; it needs a 'stages' list", file, 1)])
    walker = _Walker(file, env)
    data = walker.walk(node, ())
    if walker.problems:
        raise TopologyError(walker.problems)
    return Located(data, file, walker.lines)
