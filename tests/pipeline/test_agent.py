"""The host agent's choices before it joins (``pipeline.agent``): where the coordinator is,
and which address of this host its workers are reached at."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline.agent import coordinator_endpoint, own_address
from pipeline.errors import UsageError
from tests.conftest import make_topology

GRAPH = """\
transport: tcp
hosts: {a: 10.0.0.1, b: 10.0.0.2}
port: 7700
stages:
  - name: src
    run: tests.stagelib:count_to
    next: mid
  - name: mid
    run: tests.stagelib:double
    hosts: [b]
"""


@pytest.mark.parametrize(("given", "endpoint"), [
    (None, "tcp://10.0.0.1:7700"),
    ("head1", "tcp://head1:7700"),
    ("head1:7800", "tcp://head1:7800"),
    ("tcp://pipeline-coordinator:7701", "tcp://pipeline-coordinator:7701"),
])  # fmt: skip
def test_the_coordinator_is_the_topologys_unless_given(
    tmp_path: Path, given: str | None, endpoint: str
) -> None:
    assert coordinator_endpoint(make_topology(GRAPH, tmp_path), given) == endpoint


def test_a_coordinator_without_a_port_is_a_usage_error(tmp_path: Path) -> None:
    topo = make_topology(GRAPH.replace("port: 7700\n", "").replace("    hosts: [b]\n", ""),
                         tmp_path)  # fmt: skip
    with pytest.raises(UsageError, match="--coordinator must be HOST:PORT"):
        coordinator_endpoint(topo, "head1")


def test_a_host_name_that_resolves_to_loopback_gives_the_outgoing_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostbyname", lambda name: "127.0.1.1")
    address = own_address()
    assert not address.startswith("127.")
    with socket.socket() as s:  # an address of this host: it can be bound
        s.bind((address, 0))


def test_a_host_name_that_resolves_elsewhere_is_taken_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostbyname", lambda name: "10.1.2.3")
    assert own_address() == "10.1.2.3"


def test_empty_address_and_coordinator_mean_the_defaults(tmp_path: Path) -> None:
    # as a systemd unit passes an unset ${PIPELINE_ADDRESS} and ${PIPELINE_COORDINATOR}
    from pipeline.agent import HostAgent  # noqa: PLC0415
    from pipeline.cli import build_parser  # noqa: PLC0415
    from pipeline.security import make_keys  # noqa: PLC0415

    keys = make_keys(tmp_path / "keys").folder
    topo = make_topology(f"keys: {keys}\ngroups: [pool]\n" + GRAPH, tmp_path)
    argv = ["worker", "t.yaml", "--group", "pool", "--name", "bee", "--address", "",
            "--coordinator", "", "--stay", "--join-timeout", "0"]  # fmt: skip
    args = build_parser(argv).parse_args(argv)
    agent = HostAgent(topo, args.name, args.join_timeout, group=args.group,
                      address=args.address, coordinator=args.coordinator,
                      stay=args.stay)  # fmt: skip
    assert agent.address == own_address()
    assert agent.endpoint == "tcp://10.0.0.1:7700"


def test_a_member_that_stays_goes_once_asked_to_leave_even_if_its_frame_ended_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM to a member holding a 'replicas: members' replica makes it leave after the
    # drain; if the frame ends before that, it must not wait for the next frame
    import signal  # noqa: PLC0415

    from pipeline import agent as agent_module  # noqa: PLC0415
    from pipeline.errors import ExitCode  # noqa: PLC0415
    from pipeline.security import make_keys  # noqa: PLC0415

    keys = make_keys(tmp_path / "keys").folder
    topo = make_topology(f"keys: {keys}\ngroups: [pool]\n" + GRAPH, tmp_path / "run")
    member = agent_module.HostAgent(topo, "bee", group="pool", address="127.0.0.1", stay=True)
    frames: list[int] = []

    def frame() -> ExitCode:
        frames.append(1)
        member.leaving = True  # asked to leave while it served this frame, which then ended
        return ExitCode.OK

    monkeypatch.setattr(member, "_frame", frame)
    monkeypatch.setattr(agent_module.launcher, "preload", lambda entries: None)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert member.run() == ExitCode.OK
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert frames == [1]
