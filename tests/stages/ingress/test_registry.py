"""The collector registry: what it records, what check() refuses, and loading modules."""

from __future__ import annotations

import datetime as dt
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stages.ingress import registry as registry_module
from stages.ingress.registry import Registry, RegistryError, load, valid_key


def gather(**kwargs: Any) -> dict[str, Any]:
    return {}


def other(**kwargs: Any) -> dict[str, Any]:
    return {}


def one_day(key: str, last: dt.datetime, **kwargs: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    return [(last, last + dt.timedelta(days=1))]


def with_config() -> Registry:
    r = Registry()
    r.register("config", "1.0", config=True)(gather)
    return r


def problems(r: Registry) -> str:
    with pytest.raises(RegistryError) as caught:
        r.check()
    return str(caught.value)


def test_register_records_every_field_and_returns_the_function_unchanged() -> None:
    r = with_config()
    decorate = r.register("events", "2.1", format="csv", slicing=one_day, shipping_group="g",
                          description="d", full_sync_interval_days=7)  # fmt: skip
    assert decorate(other) is other
    c = r.collectors()[1]
    assert (c.key, c.version, c.fn, c.format, c.config, c.slicing, c.shipping_group,
            c.description, c.full_sync_interval_days) == (
        "events", "2.1", other, "csv", False, one_day, "g", "d", 7)  # fmt: skip
    assert c.sliced and c.file_name == "events.csv"
    assert c.where.startswith(f"{__name__}:") and c.where.endswith(" other")
    r.check()


def test_collectors_keep_registration_order_not_name_order() -> None:
    r = Registry()
    for key in ("zeta", "config", "alpha"):
        r.register(key, "1.0", config=key == "config")(lambda **kw: None)
    assert [c.key for c in r.collectors()] == ["zeta", "config", "alpha"]
    assert r.config().key == "config"


def test_no_config_collector_is_refused_with_what_to_register() -> None:
    r = Registry()
    r.register("events", "1.0")(gather)
    text = problems(r)
    assert "no config collector" in text and "config=True" in text
    with pytest.raises(RegistryError, match="no config collector"):
        r.config()


def test_two_config_collectors_are_refused_naming_both() -> None:
    r = with_config()
    r.register("config", "1.1", config=True)(other)
    text = problems(r)
    assert "2 config collectors" in text
    assert " gather)" in text and " other)" in text


def test_the_config_collector_is_json_keyed_config_and_not_sliced() -> None:
    r = Registry()
    r.register("settings", "1.0", format="csv", config=True, slicing=one_day)(gather)
    text = problems(r)
    assert "key must be 'config'" in text
    assert "must be JSON, not 'csv'" in text
    assert "drop its slicing" in text


@pytest.mark.parametrize("key", ["a/b", "", ".hidden", "..", "naïve", "sp ace", "x\n"])
def test_a_key_that_cannot_name_a_file_is_refused(key: str) -> None:
    r = with_config()
    r.register(key, "1.0")(other)
    assert f"key {key!r} cannot name a file" in problems(r)


@pytest.mark.parametrize("key", ["manifest", "data_collection_status", "config"])
def test_reserved_keys_are_refused_for_ordinary_collectors(key: str) -> None:
    r = with_config()
    r.register(key, "1.0", format="csv")(other)
    assert f"key '{key}' is reserved" in problems(r)


def test_valid_keys() -> None:
    assert all(valid_key(k) for k in ("a", "A_1", "v1.2-x", "-x", "_"))


def test_a_non_sliced_key_is_unique_within_its_shipping_group() -> None:
    r = with_config()
    r.register("events", "1.0")(gather)
    r.register("events", "1.0", format="csv")(other)
    text = problems(r)
    assert "key 'events' is registered 2 times in shipping group 'default'" in text
    assert " gather" in text and " other" in text and "rename one" in text


def test_a_key_may_repeat_across_shipping_groups_or_when_every_use_is_sliced() -> None:
    r = with_config()
    r.register("events", "1.0")(gather)
    r.register("events", "1.0", shipping_group="other")(other)
    r.register("slices", "1.0", slicing=one_day)(gather)
    r.register("slices", "1.0", slicing=one_day)(other)
    r.check()
    r.register("slices", "1.0")(lambda **kw: None)  # one not sliced: no longer allowed
    assert "key 'slices' is registered 3 times" in problems(r)


def test_unknown_format_empty_version_and_full_sync_without_slicing_are_refused() -> None:
    r = with_config()
    r.register("a", "1.0", format="xml")(other)
    r.register("b", "")(other)
    r.register("c", "1.0", full_sync_interval_days=3)(other)
    text = problems(r)
    assert "format 'xml' is not one of json, csv" in text
    assert "version '' should be a non-empty string" in text
    assert "full_sync_interval_days=3 needs a slicing function" in text
    assert "(3 problems)" in text


def test_registering_the_same_function_again_is_ignored() -> None:
    r = with_config()
    r.register("events", "1.0")(other)
    r.register("events", "9.9")(other)
    assert [(c.key, c.version) for c in r.collectors()] == [("config", "1.0"), ("events", "1.0")]
    r.check()


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Registry]:
    """A module-level REGISTRY and register of the test's own, and a folder on the Python
    path for collector modules; modules imported from it are forgotten afterwards."""
    fresh = Registry()
    monkeypatch.setattr(registry_module, "REGISTRY", fresh)
    monkeypatch.setattr(registry_module, "register", fresh.register)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield fresh
    for name in set(sys.modules) - before:
        if name.startswith("ingress_test_"):
            del sys.modules[name]


def write_module(folder: Path, name: str, body: str) -> None:
    head = "from stages.ingress.registry import register\n\n"
    (folder / f"{name}.py").write_text(head + textwrap.dedent(body), encoding="utf-8")


CONFIG = """
@register("config", "1.0", config=True)
def config(**kwargs):
    return {"product": "test"}
"""

EVENTS = """
@register("events", "1.0", format="csv")
def events(**kwargs):
    return None
"""


def test_load_imports_modules_into_the_registry_and_checks_it(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    write_module(tmp_path, "ingress_test_a", CONFIG)
    write_module(tmp_path, "ingress_test_b", EVENTS)
    got = load(["ingress_test_a", "ingress_test_b"])
    assert got is fresh_registry
    assert [c.key for c in got.collectors()] == ["config", "events"]


def test_loading_twice_or_reimporting_registers_nothing_twice(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    write_module(tmp_path, "ingress_test_c", CONFIG + EVENTS)
    load(["ingress_test_c"])
    first = fresh_registry.collectors()
    load(["ingress_test_c"])
    del sys.modules["ingress_test_c"]  # imported afresh: new function objects
    load(["ingress_test_c"])
    again = fresh_registry.collectors()
    assert [c.key for c in again] == ["config", "events"]
    assert again[1].fn is not first[1].fn  # the record follows the module's new code
    assert again[1].fn is sys.modules["ingress_test_c"].events


def test_load_refuses_a_second_function_under_a_taken_key(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    write_module(tmp_path, "ingress_test_d", CONFIG + EVENTS)
    write_module(tmp_path, "ingress_test_e", EVENTS)
    with pytest.raises(RegistryError, match="key 'events' is registered 2 times") as caught:
        load(["ingress_test_d", "ingress_test_e"])
    assert "ingress_test_d:" in str(caught.value) and "ingress_test_e:" in str(caught.value)


def test_load_names_a_module_that_does_not_exist(fresh_registry: Registry) -> None:
    with pytest.raises(RegistryError, match="collector module 'ingress_test_nowhere' not found"):
        load(["ingress_test_nowhere"])


def test_load_lets_a_missing_import_inside_a_module_through(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    write_module(tmp_path, "ingress_test_f", "import ingress_test_missing_dependency\n")
    with pytest.raises(ModuleNotFoundError, match="ingress_test_missing_dependency"):
        load(["ingress_test_f"])


def test_a_collector_checked_by_load_must_have_a_config(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    write_module(tmp_path, "ingress_test_g", EVENTS)
    with pytest.raises(RegistryError, match="no config collector"):
        load(["ingress_test_g"])
