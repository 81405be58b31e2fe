"""The web monitor (``pipeline web``) on a live frame: the page in a real headless Chromium,
the token the controls need, the JSON API, the Prometheus metrics, and the server ending
by itself when the frame stops."""

from __future__ import annotations

import contextlib
import json
import re
import select
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from pipeline.cli_web import parse_bind
from pipeline.errors import ControlCode, ControlError, ExitCode, UsageError
from pipeline.security import make_keys
from tests.brokers import free_port
from tests.conftest import start_cli
from tests.pipeline.test_control import GRAPH
from tests.running import Running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "t0ken-for-the-test"
STAGES = {"src", "double", "total", "sink"}
T = TypeVar("T")


def until(check: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    """The first truthy value of ``check()``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g}s (last: {value!r})")
        time.sleep(0.1)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    #: ends with '/'
    url: str

    def get(self, path: str) -> tuple[int, str, str]:
        """HTTP status, Content-Type and body of ``GET path``."""
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()

    def control(self, body: Any, token: str | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        req = urllib.request.Request(self.url + "api/control", data, headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"pipeline web printed nothing in {timeout:g}s")
    return proc.stdout.readline()


@pytest.fixture
def frame(tmp_path: Path, registry: Path) -> Iterator[Running]:
    """A frame whose source goes on for minutes unless it is stopped."""
    text = GRAPH.format(name="watched", n=10**7, keys=7, pause=0.02, out=tmp_path / "out")
    run = Running(text, tmp_path / "run")
    yield run
    if run.thread.is_alive():
        with contextlib.suppress(ControlError):
            run.frame.request("stop")
    assert run.wait(30).exit_code == ExitCode.OK


@pytest.fixture
def server(frame: Running) -> Iterator[Server]:
    with serving(frame) as served:
        yield served


@contextlib.contextmanager
def serving(frame: Running) -> Iterator[Server]:
    """``pipeline web`` on ``frame``, stopped at the end."""
    proc = start_cli("web", "--frame", str(frame.run_dir), "--bind", "127.0.0.1:0",
                     "--token", TOKEN)  # fmt: skip
    try:
        line = read_line(proc, 20)
        found = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
        assert found, f"no URL in {line!r}"
        assert found.group(2) == TOKEN
        yield Server(proc, found.group(1))
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1200,800"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def cell(driver: WebDriver, stage: str, field: str) -> str:
    """The text of a table cell ('' before the table is drawn)."""
    found = driver.find_elements(By.CSS_SELECTOR, f'td[data-stage="{stage}"][data-field="{field}"]')
    return str(found[0].text) if found else ""


def shown_count(driver: WebDriver, stage: str, field: str) -> int:
    """A whole number as the page shows it (``12,345``); -1 before the first status."""
    text = cell(driver, stage, field).replace(",", "")
    return int(text) if text.isdigit() else -1


def message(driver: WebDriver) -> tuple[str, str]:
    m = driver.find_element(By.ID, "message")
    return str(m.get_attribute("class") or ""), str(m.text)


def click_and_read(driver: WebDriver, selector: str) -> tuple[str, str]:
    """Click a control and wait for the page's answer (its message)."""
    driver.execute_script("document.querySelector('#message').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    return until(lambda: message(driver) if message(driver)[1] else None, "an answer shown")


def desired(run: Running, stage: str) -> int:
    return int(run.frame.status()["stages"][stage]["desired"])


PLUS = 'button[data-command="scale"][data-stage="double"][data-delta="1"]'


def test_page_draws_a_node_per_stage_and_its_figures_stay_live(
    frame: Running, server: Server, browser: WebDriver
) -> None:
    browser.get(server.url)
    nodes = until(lambda: browser.find_elements(By.CSS_SELECTOR, "g.node[data-stage]"),
                  "the graph drawn")  # fmt: skip
    assert {n.get_attribute("data-stage") for n in nodes} == STAGES
    first = until(lambda: max(0, shown_count(browser, "src", "records_out")), "records shown")
    until(lambda: shown_count(browser, "src", "records_out") > first, "the records grow")
    assert browser.find_element(By.ID, "state").text.lower() == "running"
    src = browser.find_element(By.CSS_SELECTOR, 'g.node[data-stage="src"]').text
    assert "1/1" in src and "/s" in src and "busy" in src and "backlog" in src
    assert "frame watched" in browser.find_element(By.ID, "title").text
    for field in ("rate_in", "backlog", "busy", "p50", "p99", "errors", "cpu", "rss"):
        assert cell(browser, "double", field), field
    line = browser.find_element(By.CSS_SELECTOR, 'td[data-stage="double"].spark polyline')
    until(lambda: len((line.get_attribute("points") or "").split()) >= 2, "a sparkline")


def test_page_controls_are_refused_without_the_right_token_and_work_with_it(
    frame: Running, server: Server, browser: WebDriver
) -> None:
    browser.get(server.url)
    until(lambda: shown_count(browser, "double", "records_in") >= 0, "the table filled")
    kind, text = click_and_read(browser, PLUS)
    assert kind == "refused" and "needs the token" in text, text
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    kind, text = click_and_read(browser, PLUS)
    assert kind == "refused" and "needs the token" in text, text
    kind, text = click_and_read(browser, 'button[data-command="pause"]')
    assert kind == "refused", text
    time.sleep(0.5)
    st = frame.frame.status()
    assert st["state"] == "running" and st["stages"]["double"]["desired"] == 1
    assert st["rescale"] is None
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(TOKEN)
    kind, text = click_and_read(browser, PLUS)
    assert kind == "done" and "double 1 \u2192 2" in text, text
    until(lambda: desired(frame, "double") == 2, "double scaled to 2")
    until(lambda: cell(browser, "double", "replicas").endswith("2/2 +"), "the page shows 2/2")
    kind, text = click_and_read(
        browser, 'button[data-command="scale"][data-stage="src"][data-delta="1"]'
    )
    assert kind == "refused" and "source" in text and f"code {ControlCode.REFUSED:d}" in text


def test_page_says_the_frame_stopped_and_the_server_exits(
    frame: Running, server: Server, browser: WebDriver
) -> None:
    browser.get(server.url + "?token=" + TOKEN)
    until(lambda: shown_count(browser, "src", "records_out") >= 0, "the table filled")
    assert "token" not in browser.current_url  # kept for the tab, not in the address
    assert browser.find_element(By.ID, "token").get_attribute("value") == TOKEN
    kind, text = click_and_read(browser, 'button[data-command="stop"]')
    assert kind == "done", text
    banner = browser.find_element(By.ID, "ended")
    until(banner.is_displayed, "the page says the frame stopped", timeout=15)
    assert "stopped" in banner.text
    assert browser.find_element(By.ID, "state").text.lower() == "stopped"
    assert browser.find_element(By.CSS_SELECTOR, PLUS).get_attribute("disabled") is not None
    assert server.proc.wait(10) == 0
    assert server.proc.stdout is not None
    assert "has stopped" in server.proc.stdout.read()


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of the Prometheus text format; every metric declared by HELP and TYPE first."""
    typed: dict[str, str] = {}
    samples = {}
    label = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped"), line
            typed[name] = kind
            continue
        found = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        assert found, f"not a sample: {line!r}"
        name, labels, value = found.groups()
        assert name in typed, f"{name} has no TYPE line before it"
        if typed[name] == "counter":
            assert name.endswith("_total"), name
        pairs = frozenset(label.findall(labels or ""))
        samples[name, pairs] = float(value)
    return samples


def test_metrics_are_prometheus_text_with_every_stage_and_growing_counters(
    frame: Running, server: Server
) -> None:
    def src_out() -> float:
        code, ctype, text = server.get("metrics")
        assert code == 200 and ctype.startswith("text/plain") and "version=0.0.4" in ctype
        m = parse_metrics(text)
        stages = {dict(k)["stage"] for n, k in m if n == "pipeline_records_in_total"}
        assert stages == STAGES
        assert m["pipeline_frame_up", frozenset({("frame", "watched")})] == 1
        double = frozenset({("frame", "watched"), ("stage", "double")})
        for name in ("records_out_total", "rate_in_records_per_second", "backlog_batches",
                     "busy_ratio", "replicas_desired", "replicas_alive", "cpu_ratio",
                     "rss_bytes", "errors_total"):  # fmt: skip
            assert ("pipeline_" + name, double) in m, name
        return m["pipeline_records_out_total", frozenset({("frame", "watched"),
                                                          ("stage", "src")})]  # fmt: skip

    first = src_out()
    until(lambda: src_out() > first, "pipeline_records_out_total of src grows")
    _, _, text = server.get("metrics")
    assert re.search(r'pipeline_batch_latency_seconds\{.*stage="double",quantile="0.99"\}', text)


def test_api_control_needs_the_token_for_changes_and_passes_refusals_on(
    frame: Running, server: Server
) -> None:
    scale = {"command": "scale", "args": {"stage": "double", "replicas": 3}}
    for token in (None, "wrong", TOKEN + "x", ""):
        code, reply = server.control(scale, token)
        assert code == 401, token
        assert reply["status"] == "error" and reply["code"] == ControlCode.UNAUTHORIZED
        assert "token" in reply["reason"]
    code, reply = server.control({"command": "stop"})
    assert code == 401
    code, reply = server.control({"command": "explode"})  # unknown verbs need it too
    assert code == 401
    assert desired(frame, "double") == 1 and frame.frame.status()["state"] == "running"
    # verbs that change nothing need no token
    code, reply = server.control({"command": "status"})
    assert code == 200 and reply["result"]["frame"] == "watched"
    code, reply = server.control(scale, TOKEN)
    assert code == 200 and reply == {"status": "ok", "code": 0,
                                     "result": {"stage": "double", "from": 1, "to": 3}}  # fmt: skip
    until(lambda: desired(frame, "double") == 3, "double scaled to 3")
    code, reply = server.control({"command": "scale", "args": {"stage": "src", "replicas": 2}},
                                 TOKEN)  # fmt: skip
    assert code == 409 and reply["code"] == ControlCode.REFUSED
    assert "it is a source" in reply["reason"]
    code, reply = server.control({"command": "scale", "args": {"stage": "nope", "replicas": 2}},
                                 TOKEN)  # fmt: skip
    assert code == 400 and reply["code"] == ControlCode.NO_SUCH_STAGE
    code, reply = server.control(b"{not json", TOKEN)
    assert code == 400 and reply["code"] == ControlCode.BAD_REQUEST
    code, _, body = server.get("api/status")
    assert code == 200 and set(json.loads(body)["stages"]) == STAGES


def test_events_stream_statuses_then_end_and_the_server_exits_after_the_frame(
    frame: Running, server: Server
) -> None:
    events: list[tuple[str, Any]] = []
    with urllib.request.urlopen(server.url + "api/events", timeout=20) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        event = ""
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
                if event == "status" and len(events) == 3:
                    frame.frame.request("stop")
    kinds = [e for e, _ in events]
    assert kinds[0] == "history" and kinds[-1] == "end" and kinds.count("end") == 1
    assert kinds.count("status") >= 2
    assert events[-1][1]["frame"] == "watched"
    assert server.proc.wait(10) == 0


def test_bind_takes_host_and_port_and_says_what_it_wants() -> None:
    assert parse_bind("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_bind("9000") == ("127.0.0.1", 9000)
    assert parse_bind(":9000") == ("127.0.0.1", 9000)
    assert parse_bind("0.0.0.0") == ("0.0.0.0", 8765)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    for bad in ("host:port", "1.2.3.4:70000", "[::1]:x"):
        with pytest.raises(UsageError, match="--bind takes HOST:PORT"):
            parse_bind(bad)


SPREAD = """\
name: spread
transport: tcp
keys: {keys}
port: {port}
groups: [pool]
run_dir: {run_dir}
stages:
  - name: src
    run: tests.stagelib:ticking
    params: {{every: 0.01}}
    next: mid
  - name: mid
    run: tests.stagelib:double
    hosts: [pool]
"""


def test_page_lists_the_hosts_that_joined_a_frame_on_several(
    tmp_path: Path, registry: Path, browser: WebDriver
) -> None:
    text = SPREAD.format(keys=make_keys(tmp_path / "keys").folder, port=free_port(),
                         run_dir=tmp_path / "run")  # fmt: skip
    (tmp_path / "spread.yaml").write_text(text)
    # a member of group pool on this host, at 127.0.0.1
    member = start_cli("worker", str(tmp_path / "spread.yaml"), "--group", "pool", "--name",
                       "bee", "--address", "127.0.0.1")  # fmt: skip
    run = Running(text, tmp_path / "run")
    try:
        with serving(run) as server:
            browser.get(server.url)
            hosts = browser.find_element(By.ID, "hosts")
            until(lambda: "bee (pool) joined, 1 worker(s)" in hosts.text or None,
                  "the member shown", timeout=30)  # fmt: skip
            assert hosts.text.startswith("hosts: ")
            assert "lost" not in (hosts.get_attribute("class") or "")
            status, _, body = server.get("metrics")
            assert status == 200
            assert 'pipeline_host_up{frame="spread",host="bee",group="pool"} 1' in body
    finally:
        run.frame.request("stop")
        assert run.wait(30).exit_code == ExitCode.OK
        member.wait(30)
        for pipe in (member.stdout, member.stderr):
            if pipe is not None:
                pipe.close()
    assert member.returncode == 0
