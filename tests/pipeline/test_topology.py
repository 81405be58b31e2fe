"""Every way a topology can be wrong is caught before anything starts, with file, line and
stage in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.contract import Role
from pipeline.errors import TopologyError
from pipeline.routing import KEY
from pipeline.topology import load_topology

GOOD = """\
name: demo
stages:
  - name: src
    run: tests.stagelib:count_to
    params: {n: 10}
    next: mid
  - name: mid
    run: tests.stagelib:double
    replicas: 2
    next: sink
  - name: sink
    run: tests.stagelib:Collect
    params: {folder: /tmp/x}
"""


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        load_topology(path, env or {})
    return [str(p) for p in info.value.problems]


def one(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    found = problems(tmp_path, text, env)
    assert len(found) == 1, found
    return found[0]


def test_a_good_topology_loads_into_frozen_checked_stages(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(GOOD)
    topo = load_topology(path, {})
    assert topo.names == ("src", "mid", "sink")
    assert [s.role for s in topo.stages] == [Role.SOURCE, Role.TRANSFORM, Role.STATEFUL]
    assert topo.stage("mid").replicas == 2
    assert topo.upstream("sink") == ("mid",)
    assert topo.run_dir == Path(".pipeline/demo")
    with pytest.raises(AttributeError):
        topo.stage("mid").replicas = 3  # type: ignore[misc]


def test_describe_prints_the_graph(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(GOOD)
    text = load_topology(path, {}).describe()
    assert "src" in text and "-> mid" in text and "x2" in text and "(sink)" in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    msg = one(tmp_path, "stages:\n  - name: a\n    run: [unclosed\n")
    assert "YAML syntax error" in msg and "topology.yaml:" in msg


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in one(tmp_path, "")


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(tmp_path / "nope.yaml", {})
    assert "no topology file" in str(info.value)


@pytest.mark.parametrize("text", ["stages: []\n", "name: x\n", "stages: 3\n"])
def test_stages_must_be_a_non_empty_list(tmp_path: Path, text: str) -> None:
    assert "'stages' must be a non-empty list" in one(tmp_path, text)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "must be a mapping" in one(tmp_path, "- a\n- b\n")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = one(tmp_path, "replica: 3\n" + GOOD)
    assert "unknown key 'replica' in the topology" in msg and "topology.yaml:1:" in msg


def test_unknown_stage_key_names_stage_and_line(tmp_path: Path) -> None:
    text = GOOD.replace("    replicas: 2\n", "    replicas: 2\n    replica: 2\n")
    msg = one(tmp_path, text)
    assert "topology.yaml:10: stage 'mid': unknown key 'replica'" in msg


@pytest.mark.parametrize(
    ("block", "what"),
    [
        ("    batch: {sise: 3}\n", "unknown key 'sise' in batch"),
        ("    backpressure: {credits: 3}\n", "unknown key 'credits' in backpressure"),
        ("    route: {key: i, partition: 3}\n", "unknown key 'partition' in route"),
    ],
)
def test_unknown_nested_keys(tmp_path: Path, block: str, what: str) -> None:
    text = GOOD.replace("    replicas: 2\n", "    replicas: 2\n" + block)
    assert what in one(tmp_path, text)


def test_unknown_defaults_key(tmp_path: Path) -> None:
    assert "unknown key 'replicas' in defaults" in one(tmp_path, "defaults: {replicas: 2}\n" + GOOD)


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = GOOD.replace("    replicas: 2\n", "    replicas: 2\n    replicas: 3\n")
    msg = one(tmp_path, text)
    assert "key 'replicas' appears twice" in msg and ":10:" in msg


@pytest.mark.parametrize("name", ["", "a.b", "a b", "-x"])
def test_stage_names_are_checked(tmp_path: Path, name: str) -> None:
    text = GOOD.replace("name: mid", f"name: '{name}'").replace("next: mid", f"next: '{name}'")
    assert "needs a 'name'" in " ".join(problems(tmp_path, text))


def test_duplicate_stage_names(tmp_path: Path) -> None:
    text = GOOD + "  - name: mid\n    run: tests.stagelib:double\n"
    msgs = problems(tmp_path, text)
    assert any("same name" in m and "stage 'mid'" in m for m in msgs)


@pytest.mark.parametrize(
    ("run", "what"),
    [
        ("nomodule_xyz:fn", "cannot import module 'nomodule_xyz'"),
        ("tests.stagelib:nothing", "has no attribute 'nothing'"),
        ("tests.stagelib", "run must look like 'package.module:callable'"),
        ("tests.stagelib:REPO_CONSTANT", "has no attribute"),
    ],
)
def test_run_must_import_and_be_callable(tmp_path: Path, run: str, what: str) -> None:
    text = GOOD.replace("tests.stagelib:double", run)
    msg = one(tmp_path, text)
    assert what in msg and "stage 'mid'" in msg and "topology.yaml:8:" in msg


def test_run_that_is_not_callable(tmp_path: Path) -> None:
    text = GOOD.replace("tests.stagelib:double", "pipeline.topology:ON_ERROR")
    assert "is a tuple, not a function or class" in one(tmp_path, text)


def test_run_missing(tmp_path: Path) -> None:
    text = GOOD.replace("    run: tests.stagelib:double\n", "")
    assert "'run' must be 'package.module:callable'" in one(tmp_path, text)


def test_unknown_next_target(tmp_path: Path) -> None:
    msgs = problems(tmp_path, GOOD.replace("next: sink", "next: snk"))
    assert any("next names 'snk', which is not a stage" in m and "stage 'mid'" in m for m in msgs)
    # and so the real sink is fed by nothing
    assert any("stage 'sink': nothing sends to this stateful stage" in m for m in msgs)


def test_next_to_itself(tmp_path: Path) -> None:
    msg = " ".join(problems(tmp_path, GOOD.replace("next: sink", "next: [sink, mid]")))
    assert "cannot feed itself" in msg


def test_cycle(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    params: {folder: /tmp/x}\n", "    params: {folder: /tmp/x}\n    next: mid\n"
    )
    text = text.replace("tests.stagelib:Collect", "tests.stagelib:double")
    msgs = problems(tmp_path, text)
    assert any("cycle: " in m and "mid -> sink -> mid" in m for m in msgs), msgs


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "true"])
def test_replicas_must_be_at_least_one(tmp_path: Path, value: str) -> None:
    msg = one(tmp_path, GOOD.replace("replicas: 2", f"replicas: {value}"))
    assert "replicas must be a whole number >= 1" in msg and ":9:" in msg


def test_a_transform_nothing_feeds(tmp_path: Path) -> None:
    text = GOOD + "  - name: orphan\n    run: tests.stagelib:double\n"
    msg = one(tmp_path, text)
    assert "nothing sends to this transform stage" in msg and "stage 'orphan'" in msg


def test_a_source_that_is_fed(tmp_path: Path) -> None:
    text = GOOD.replace("tests.stagelib:double", "tests.stagelib:count_to")
    msg = one(tmp_path, text)
    assert "is a source" in msg and "src sends to it" in msg


def test_restart_refused_for_stateful_stage_that_cannot_rebuild(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    params: {folder: /tmp/x}\n", "    params: {folder: /tmp/x}\n    on_error: restart\n"
    )
    msg = one(tmp_path, text)
    assert "on_error: restart needs a stateful stage that can rebuild its state" in msg


def test_restart_allowed_for_restartable_stateful_stage(tmp_path: Path) -> None:
    text = GOOD.replace("tests.stagelib:Collect", "tests.stagelib:Rebuildable")
    text = text.replace("    params: {folder: /tmp/x}\n", "    on_error: restart\n")
    path = tmp_path / "t.yaml"
    path.write_text(text)
    assert load_topology(path, {}).stage("sink").on_error == "restart"


def test_restart_refused_for_a_source(tmp_path: Path) -> None:
    text = GOOD.replace("    params: {n: 10}\n", "    params: {n: 10}\n    on_error: restart\n")
    assert "needs a source that can rebuild" in one(tmp_path, text)


def test_params_must_fit_the_callable(tmp_path: Path) -> None:
    msg = one(tmp_path, GOOD.replace("params: {n: 10}", "params: {m: 10}"))
    assert "params do not fit tests.stagelib:count_to" in msg and "it takes: n, keys" in msg


def test_missing_required_param(tmp_path: Path) -> None:
    msg = one(tmp_path, GOOD.replace("    params: {folder: /tmp/x}\n", ""))
    assert "params do not fit tests.stagelib:Collect" in msg and "folder" in msg


def test_invalid_kind_and_policy(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    replicas: 2\n", "    replicas: 2\n    kind: thread\n    on_error: ignore\n"
    )
    msgs = problems(tmp_path, text)
    assert any("kind must be one of process, async" in m for m in msgs)
    assert any("on_error must be one of fail, restart, skip" in m for m in msgs)


def test_sync_mass_stage_cannot_be_async(tmp_path: Path) -> None:
    text = GOOD.replace("tests.stagelib:double", "tests.stagelib:mass_double")
    text = text.replace("    replicas: 2\n", "    replicas: 2\n    kind: async\n")
    assert "would block the event loop" in one(tmp_path, text)


def test_route_forms(tmp_path: Path) -> None:
    for route, ok in [
        ("broadcast", True),
        ("round-robin", True),
        ("{key: k}", True),
        ("random", False),
        ("{key: ''}", False),
    ]:
        text = GOOD.replace("    replicas: 2\n", f"    replicas: 2\n    route: {route}\n")
        path = tmp_path / "t.yaml"
        path.write_text(text)
        if ok:
            load_topology(path, {})
        else:
            with pytest.raises(TopologyError):
                load_topology(path, {})
    text = GOOD.replace(
        "    replicas: 2\n", "    replicas: 2\n    route: {key: k, partitions: 16}\n"
    )
    path.write_text(text)
    route = load_topology(path, {}).stage("mid").route
    assert route.kind == KEY and route.field == "k" and route.partitions == 16


def test_route_on_a_source(tmp_path: Path) -> None:
    text = GOOD.replace("    params: {n: 10}\n", "    params: {n: 10}\n    route: broadcast\n")
    assert "route has no effect on a stage nothing feeds" in one(tmp_path, text)


def test_transport_must_be_known(tmp_path: Path) -> None:
    assert "transport must be 'ipc' or 'tcp'" in one(tmp_path, "transport: udp\n" + GOOD)


def test_batch_and_backpressure_values(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    replicas: 2\n",
        "    replicas: 2\n    batch: {size: 0, linger: -1}\n    backpressure: {credit: x}\n",
    )
    msgs = problems(tmp_path, text)
    assert len(msgs) == 3
    assert any("batch.size must be a whole number >= 1" in m for m in msgs)
    assert any("batch.linger must be a positive number" in m for m in msgs)
    assert any("backpressure.credit must be a whole number >= 1" in m for m in msgs)


def test_unset_variable_without_default_is_named(tmp_path: Path) -> None:
    msg = one(tmp_path, GOOD.replace("{n: 10}", "{n: '${COUNT}'}"))
    assert "environment variable COUNT is not set" in msg and ":5:" in msg


def test_variables_are_substituted_and_typed(tmp_path: Path) -> None:
    text = GOOD.replace("replicas: 2", "replicas: ${REPLICAS:-3}").replace(
        "folder: /tmp/x", "folder: '${OUT-/tmp/default}/$${literal}'"
    )
    path = tmp_path / "t.yaml"
    path.write_text(text)
    topo = load_topology(path, {})
    assert topo.stage("mid").replicas == 3
    assert topo.stage("sink").params["folder"] == "/tmp/default/${literal}"
    topo = load_topology(path, {"REPLICAS": "4", "OUT": ""})
    assert topo.stage("mid").replicas == 4
    assert topo.stage("sink").params["folder"] == "/${literal}"


def test_substituted_value_cannot_break_the_structure(tmp_path: Path) -> None:
    text = GOOD.replace("folder: /tmp/x", "folder: '${OUT}'")
    path = tmp_path / "t.yaml"
    path.write_text(text)
    topo = load_topology(path, {"OUT": "a: b\n- c"})
    assert topo.stage("sink").params["folder"] == "a: b\n- c"


def test_no_source_at_all(tmp_path: Path) -> None:
    text = """\
stages:
  - name: a
    run: tests.stagelib:double
    next: b
  - name: b
    run: tests.stagelib:double
    next: a
"""
    msgs = problems(tmp_path, text)
    assert any("no stage is a source" in m for m in msgs)
    assert any("cycle" in m for m in msgs)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("replicas: 2", "replicas: 0").replace("next: sink", "next: nowhere")
    text = "bogus: 1\n" + text
    msgs = problems(tmp_path, text)
    assert len(msgs) == 4, msgs
    for part in ["unknown key 'bogus'", "replicas must be", "next names 'nowhere'", "stage 'sink'"]:
        assert any(part in m for m in msgs), part


def test_defaults_are_merged_into_stages(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("defaults: {batch: {size: 7}, on_error: skip}\n" + GOOD)
    topo = load_topology(path, {})
    assert all(s.batch.size == 7 and s.on_error == "skip" for s in topo.stages)


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("drain_timeout: 0\n", "drain_timeout must be a positive number"),
        ("stats_interval: soon\n", "stats_interval must be a positive number"),
        ("host: ''\n", "host must be an address to bind"),
        ("run_dir: 5\n", "run_dir must be a directory path"),
        ("name: 'a b'\n", "name must be letters, digits"),
        ("defaults: [1]\n", "defaults must be a mapping"),
    ],
)
def test_top_level_settings_are_checked(tmp_path: Path, line: str, what: str) -> None:
    msg = one(tmp_path, line + GOOD.replace("name: demo\n", ""))
    assert what in msg and "topology.yaml:1:" in msg


def test_max_restarts_and_params_types(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    replicas: 2\n", "    replicas: 2\n    max_restarts: -1\n    params: [1]\n"
    )
    msgs = problems(tmp_path, text)
    assert any("max_restarts must be a whole number >= 0" in m for m in msgs)
    assert any("params must be a mapping of keyword arguments" in m for m in msgs)


def test_order_puts_every_stage_after_its_feeders(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "stages:\n"
        "  - {name: sink, run: tests.stagelib:Collect, params: {folder: /tmp/x}}\n"
        "  - {name: mid, run: tests.stagelib:double, next: sink}\n"
        "  - {name: src, run: tests.stagelib:count_to, next: [mid, sink]}\n"
    )
    assert load_topology(path, {}).order() == ("src", "mid", "sink")
