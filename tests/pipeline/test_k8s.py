"""``pipeline deploy k8s``: manifests that the Kubernetes API schema takes, that run the
stages the topology says where it says, with the keys and variables it needs."""

from __future__ import annotations

import base64
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pipeline.cli import build_parser, main
from pipeline.errors import ExitCode
from pipeline.k8s import KEYS_DIR, TOPOLOGY_FILE
from pipeline.topology import load_topology
from tests.conftest import REPO
from tests.pipeline.test_cli_imports import help_of, loaded_after, run_python

WRSTAT = REPO / "topology.yaml"
EXAMPLE = REPO / "deploy" / "k8s" / "wrstat.yaml"
EXAMPLE_ARGS = ["deploy", "k8s", "topology.yaml", "--stage", "usage", "--no-secret"]
#: the oldest schemas every kubernetes-validate the tests allow ships, and the newest here
VERSIONS = ("1.28", kubernetes_validate.latest_version())

#: a topology that places one stage on another host (b) and one on the coordinator's (a)
COUNTS = """\
name: counts
transport: tcp
hosts: {a: 10.0.0.1, b: 10.0.0.2}
coordinator: a
port: 7811
stages:
  - name: read
    run: tests.stagelib:tagged
    params:
      n: ${N:-10}
      tag: "${TAG:-7}"
    next: double_up
  - name: double_up
    run: tests.stagelib:double
    replicas: ${DOUBLERS:-3}
    hosts: [b]
    next: even
  - name: even
    run: tests.stagelib:keep_even
    hosts: [a]
    next: total
  - name: total
    run: tests.stagelib:Total
    route: {key: k}
"""


@dataclass
class Made:
    code: int
    out: str
    err: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.out) if d is not None]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.docs if d["kind"] == kind
                 and (name is None or d["metadata"]["name"] == name)]  # fmt: skip
        assert len(found) == 1, f"{len(found)} {kind} {name or ''} in:\n{self.out}"
        return found[0]

    def topology_text(self) -> str:
        text: str = self.one("ConfigMap")["data"]["topology.yaml"]
        return text

    def pods(self) -> list[dict[str, Any]]:
        """The pod templates: the coordinator's, then each stage's."""
        return [d["spec"]["template"] for d in self.docs if "template" in d.get("spec", {})]


@pytest.fixture
def deploy(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Made:
        capsys.readouterr()
        code = main(["deploy", "k8s", *args])
        out, err = capsys.readouterr()
        return Made(code, out, err)

    return run


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A keys folder made by ``pipeline keys``, with one more client."""
    folder = tmp_path / "keys"
    assert main(["keys", str(folder), "--client", "monitor"]) == 0
    capsys.readouterr()
    return folder


@pytest.fixture
def counts(tmp_path: Path) -> Path:
    path = tmp_path / "counts.yaml"
    path.write_text(COUNTS)
    return path


def folder_files(folder: Path) -> dict[str, bytes]:
    return {f.relative_to(folder).as_posix(): f.read_bytes()
            for f in folder.rglob("*") if f.is_file()}  # fmt: skip


def mounted_keys(pod: dict[str, Any], secret_data: dict[str, bytes]) -> dict[str, bytes]:
    """The files a pod sees in its keys folder, given the Secret's data."""
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "keys")
    assert mount["mountPath"] == KEYS_DIR
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "keys")["secret"]
    assert volume["defaultMode"] == 0o400
    return {item["path"]: secret_data[item["key"]] for item in volume["items"]}


CASES = {
    "wrstat": [str(WRSTAT), "--stage", "usage"],
    "job": [str(WRSTAT), "--stage", "usage", "--stage", "changes", "--job"],
    "volumes-env-namespace": [
        str(WRSTAT), "--stage", "usage", "--namespace", "reports", "--prefix", "wrstat",
        "-e", "USAGE_REPLICAS=4", "-e", "WRSTAT_DIR=/data/wrstat", "-e", "REPORT_DIR=/reports",
        "--volume", "wrstat-data:/data", "--volume", "usage-reports:/reports",
        "--cpu", "500m", "--memory", "2Gi", "--drain-seconds", "300",
    ],
    "no-secret": [str(WRSTAT), "--stage", "report", "--no-secret"],
}  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_manifest_validates_against_the_kubernetes_api_schema(
    deploy: Any, keys: Path, case: str, version: str
) -> None:
    made = deploy(*CASES[case], "--keys", str(keys))
    assert made.code == 0, made.err
    kinds = [d["kind"] for d in made.docs]
    assert kinds.count("StatefulSet") >= 1 and ("Job" in kinds) == (case == "job")
    for doc in made.docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_refuses_a_field_kubernetes_does_not_know(deploy: Any) -> None:
    """The validation above would catch a misspelt field: strict mode is on."""
    made = deploy(str(WRSTAT), "--stage", "usage", "--no-secret")
    statefulset = made.one("StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["workdir"] = "/tmp"
    with pytest.raises(kubernetes_validate.ValidationError, match="workdir"):
        kubernetes_validate.validate(statefulset, VERSIONS[0], strict=True)


def test_each_pod_stage_is_a_statefulset_of_its_replica_count(deploy: Any, keys: Path) -> None:
    made = deploy(str(WRSTAT), "--stage", "usage", "--stage", "changes", "--keys", str(keys),
                  "-e", "USAGE_REPLICAS=3", "--drain-seconds", "45")  # fmt: skip
    assert made.code == 0, made.err
    sets = {d["metadata"]["name"]: d["spec"] for d in made.docs if d["kind"] == "StatefulSet"}
    assert {n: s["replicas"] for n, s in sets.items()} == {"pipeline-usage": 3,
                                                           "pipeline-changes": 1}  # fmt: skip
    for name, spec in sets.items():
        assert spec["podManagementPolicy"] == "OrderedReady"
        headless = made.one("Service", spec["serviceName"])
        assert spec["serviceName"] == name and headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["selector"] == spec["selector"]["matchLabels"]
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 45
    coordinator = made.one("Deployment", "pipeline-coordinator")["spec"]
    assert coordinator["replicas"] == 1 and coordinator["strategy"] == {"type": "Recreate"}


def test_the_coordinator_service_port_is_the_topologys_port(
    deploy: Any, keys: Path, counts: Path
) -> None:
    made = deploy(str(counts), "--keys", str(keys))
    assert made.code == 0, made.err
    service = made.one("Service", "pipeline-coordinator")["spec"]
    assert service["ports"] == [{"name": "control", "port": 7811, "targetPort": "control"}]
    coordinator = made.one("Deployment")["spec"]["template"]
    assert service["selector"] == coordinator["metadata"]["labels"]
    assert coordinator["spec"]["containers"][0]["ports"] == [{"name": "control",
                                                               "containerPort": 7811}]  # fmt: skip
    args = made.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--coordinator") + 1] == "pipeline-coordinator:7811"
    assert yaml.safe_load(made.topology_text())["port"] == 7811
    # a topology without a port: the default one
    plain = deploy(str(WRSTAT), "--stage", "usage", "--no-secret")
    assert plain.one("Service", "pipeline-coordinator")["spec"]["ports"][0]["port"] == 7700


def test_a_stage_placed_on_another_host_goes_to_pods_named_as_kubernetes_allows(
    deploy: Any, keys: Path, counts: Path
) -> None:
    made = deploy(str(counts), "--keys", str(keys))
    assert made.code == 0, made.err
    statefulset = made.one("StatefulSet", "pipeline-double-up")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["metadata"]["labels"]["app.kubernetes.io/component"] == "double-up"
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--group") + 1] == "double_up"  # the group keeps the stage's name
    cluster = yaml.safe_load(made.topology_text())
    assert cluster["groups"] == ["double_up"]
    stages = {s["name"]: s for s in cluster["stages"]}
    assert stages["double_up"]["hosts"] == ["double_up"]
    assert "hosts" not in stages["even"]  # it was on the coordinator's host: it stays there


def test_the_configmap_holds_the_topology_as_the_pods_run_it(deploy: Any, keys: Path) -> None:
    made = deploy(str(WRSTAT), "--stage", "usage", "--keys", str(keys))
    assert made.code == 0, made.err
    cluster = yaml.safe_load(made.topology_text())
    keys_ = ("name", "transport", "host", "keys", "port", "join_timeout", "groups")
    assert {k: cluster[k] for k in keys_} == {
        "name": "wrstat", "transport": "tcp", "host": "${POD_IP}", "keys": KEYS_DIR,
        "port": 7700, "join_timeout": 600, "groups": ["usage"],
    }  # fmt: skip
    assert "hosts" not in cluster and "coordinator" not in cluster
    stages = {s["name"]: s for s in cluster["stages"]}
    assert stages["usage"]["replicas"] == "members" and stages["usage"]["hosts"] == ["usage"]
    assert all("hosts" not in s for n, s in stages.items() if n != "usage")
    # variables are kept for the pods to set
    assert stages["read"]["params"]["path"] == "${WRSTAT_DIR:-sample-data/wrstat}"
    mount = next(m for m in made.pods()[0]["spec"]["containers"][0]["volumeMounts"]
                 if m["name"] == "topology")  # fmt: skip
    assert mount == {"name": "topology", "mountPath": TOPOLOGY_FILE, "subPath": "topology.yaml",
                     "readOnly": True}  # fmt: skip


def test_the_configmap_topology_loads_with_the_engine_once_its_variables_are_given(
    deploy: Any, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = deploy(str(WRSTAT), "--stage", "usage", "--keys", str(keys))
    assert made.code == 0, made.err
    pods_file = tmp_path / "topology.yaml"
    pods_file.write_text(made.topology_text())
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    monkeypatch.setenv("REPORT_DIR", "/reports")
    topo = load_topology(pods_file)
    assert (topo.name, topo.transport, topo.host, topo.port) == ("wrstat", "tcp", "10.1.2.3", 7700)
    assert topo.keys == Path(KEYS_DIR)
    assert topo.groups == {"usage": 1}
    usage = topo.stage("usage")
    assert usage.per_member and usage.hosts == ("usage",)
    original = load_topology(WRSTAT)
    for stage in original.stages:
        assert topo.stage(stage.name).params == stage.params, stage.name
        assert topo.stage(stage.name).run == stage.run


@pytest.mark.parametrize("env", [{}, {"N": "5", "TAG": "9", "DOUBLERS": "4"}])
def test_variables_keep_their_types_after_substitution_in_the_pods(
    deploy: Any, keys: Path, counts: Path, tmp_path: Path, env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A plain ${N:-10} is a number once substituted and a quoted "${TAG:-7}" a string,
    in the ConfigMap as in the topology it was made from."""
    made = deploy(str(counts), "--keys", str(keys))
    assert made.code == 0, made.err
    pods_file = tmp_path / "pods.yaml"
    pods_file.write_text(made.topology_text())
    for name, value in {"POD_IP": "10.1.2.3", **env}.items():
        monkeypatch.setenv(name, value)
    params = load_topology(pods_file).stage("read").params
    assert params == load_topology(counts).stage("read").params
    assert params == {"n": int(env.get("N", "10")), "tag": env.get("TAG", "7")}


def test_the_secret_reproduces_the_keys_folder_byte_for_byte(deploy: Any, keys: Path) -> None:
    made = deploy(str(WRSTAT), "--stage", "usage", "--stage", "report", "--keys", str(keys))
    assert made.code == 0, made.err
    secret = made.one("Secret", "pipeline-keys")
    assert secret["type"] == "Opaque"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    wanted = folder_files(keys)
    assert "authorized/monitor.key" in wanted and "server.key_secret" in wanted
    assert len(made.pods()) == 3
    for pod in made.pods():
        assert mounted_keys(pod, data) == wanted
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] == 10001
        assert security["fsGroup"] == 10001  # so that the 0400 files are the process's


def test_output_with_the_secret_is_written_owner_only(
    deploy: Any, keys: Path, tmp_path: Path
) -> None:
    out = tmp_path / "manifests.yaml"
    made = deploy(str(WRSTAT), "--stage", "usage", "--keys", str(keys), "-o", str(out))
    assert made.code == 0 and made.out == ""
    assert out.stat().st_mode & 0o777 == 0o600
    assert "kind: Secret" in out.read_text() and "6 manifests written" in made.err


def kubectl_secret(command: str) -> dict[str, bytes]:
    """The data of the Secret ``kubectl create secret generic NAME --from-file=...`` makes:
    from a folder its regular files (not its subfolders), from KEY=PATH that file."""
    data: dict[str, bytes] = {}
    for word in shlex.split(command):
        source = word.removeprefix("--from-file=")
        if source == word:
            continue
        key, sep, path = source.partition("=")
        if sep:
            data[key] = Path(path).read_bytes()
        else:
            data.update({f.name: f.read_bytes() for f in Path(source).iterdir() if f.is_file()})
    return data


def secret_command(made: Made) -> str:
    lines = [line.removeprefix("#").strip() for line in made.out.splitlines()]
    return next(line for line in lines if line.startswith("kubectl "))


def test_without_the_secret_the_kubectl_command_shown_makes_the_one_the_pods_mount(
    deploy: Any, keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the layout pipeline keys makes, without --keys
    made = deploy(str(WRSTAT), "--stage", "usage", "--no-secret", "--namespace", "reports")
    assert made.code == 0, made.err
    assert all(d["kind"] != "Secret" for d in made.docs)
    command = secret_command(made)
    assert command.startswith("kubectl -n reports create secret generic pipeline-keys ")
    plain = tmp_path / "plain"
    assert main(["keys", str(plain)]) == 0
    data = kubectl_secret(command.replace("DIR", str(plain)))
    for pod in made.pods():
        assert mounted_keys(pod, data) == folder_files(plain)
    # the layout of a given folder, with one more client
    made = deploy(str(WRSTAT), "--stage", "usage", "--no-secret", "--keys", str(keys))
    assert made.code == 0, made.err
    data = kubectl_secret(secret_command(made))
    for pod in made.pods():
        assert mounted_keys(pod, data) == folder_files(keys)


def test_the_coordinators_command_is_one_pipeline_run_takes(deploy: Any) -> None:
    for extra in ([], ["--job"]):
        made = deploy(str(WRSTAT), "--stage", "usage", "--no-secret", *extra)
        container = made.pods()[0]["spec"]["containers"][0]
        assert container["command"] == ["pipeline"]
        args = build_parser(container["args"]).parse_args(container["args"])
        assert (args.command, args.topology, args.progress) == ("run", TOPOLOGY_FILE, "off")
        env = {e["name"]: e for e in container["env"]}
        assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    job = made.one("Job", "pipeline-coordinator")["spec"]
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"


def test_the_workers_command_is_one_pipeline_worker_takes(deploy: Any) -> None:
    made = deploy(str(WRSTAT), "--stage", "usage", "--no-secret", "--prefix", "wr")
    container = made.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    args = build_parser(container["args"]).parse_args(container["args"])
    assert args.command == "worker" and args.topology == TOPOLOGY_FILE
    assert (args.group, args.name, args.address) == ("usage", "$(POD_NAME)", "$(POD_IP)")
    assert args.coordinator == "wr-coordinator:7700" and made.one("Service", "wr-coordinator")
    assert args.stay and args.join_timeout == 0
    # ready once it holds its replica, so the pods (and replicas) come up in order
    assert container["readinessProbe"]["exec"]["command"] == ["test", "-e", args.ready_file]
    assert made.one("StatefulSet")["spec"]["podManagementPolicy"] == "OrderedReady"
    # Kubernetes puts the pod's name and address where $(POD_NAME) and $(POD_IP) stand
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_env_and_volumes_reach_every_pod(deploy: Any) -> None:
    made = deploy(*CASES["volumes-env-namespace"], "--no-secret")
    assert made.code == 0, made.err
    assert {d["metadata"]["namespace"] for d in made.docs} == {"reports"}
    assert made.one("StatefulSet", "wrstat-usage")["spec"]["replicas"] == 4
    for pod in made.pods():
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["WRSTAT_DIR"] == "/data/wrstat" and env["REPORT_DIR"] == "/reports"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}  # fmt: skip
        assert {claims[n]: mounts[n] for n in claims} == {"wrstat-data": "/data",
                                                          "usage-reports": "/reports"}  # fmt: skip
    resources = made.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": "2Gi"}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "nosuch"], "there is no stage 'nosuch'"),
        (["--stage", "read"], "stage 'read' is a source"),
        (["--stage", "usage"], "give --keys DIR"),
        (["--stage", "usage", "--keys", "{tmp}/none"], "{tmp}/none: no keys there; make one "
         "with: pipeline keys {tmp}/none"),
        (["--stage", "usage", "--keys", "{tmp}/empty"], "{tmp}/empty: no keys there"),
        (["--stage", "usage", "--keys", "{tmp}/half"], "has no server.key_secret"),
        (["--stage", "usage", "--no-secret", "--prefix", "Pipe_line"],
         "prefix 'Pipe_line' is not a DNS-1123 label"),
        (["--stage", "usage", "--no-secret", "--prefix", "1st"], "prefix '1st'"),
        (["--no-secret"], "goes to pods of its own: it places none on other hosts; name the "
         "ones to run there with --stage NAME (its stages that are not sources: usage, report"),
        (["--stage", "usage", "--no-secret", "-e", "USAGE_REPLICAS"], "--env takes NAME=VALUE"),
        (["--stage", "usage", "--no-secret", "-e", "POD_IP=1.2.3.4"], "POD_IP is set in every "
         "pod"),
        (["--stage", "usage", "--no-secret", "--volume", "data:relative"],
         "mount path 'relative' must be an absolute path"),
        (["--stage", "usage", "--no-secret", "--volume", "Data:/data"], "volume claim 'Data'"),
        (["--stage", "usage", "--no-secret", "--cpu", "lots"], "cpu 'lots' is not a Kubernetes "
         "quantity"),
        (["--stage", "usage", "--no-secret", "-e", "USAGE_REPLICAS=none"],
         "topology.yaml:19: stage 'usage': replicas must be a whole number"),
    ],
)  # fmt: skip
def test_a_usage_error_exits_2_naming_what_is_wrong(
    deploy: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "client.key_secret").write_text("not the server's\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    made = deploy(str(WRSTAT), *args)
    assert made.code == ExitCode.USAGE, made.out
    assert made.err.startswith("pipeline deploy: ")
    assert message.replace("{tmp}", str(tmp_path)) in made.err
    assert made.out == ""


def test_stages_that_cannot_have_a_replica_per_pod_are_refused(deploy: Any, tmp_path: Path) -> None:
    placed_source = COUNTS.replace("    next: double_up\n", "    next: double_up\n    hosts: [b]\n")
    fixed = COUNTS.replace("    replicas: ${DOUBLERS:-3}\n", "    scalable: false\n")
    twins = COUNTS.replace("name: even", "name: double-up").replace("next: even",
                                                                     "next: double-up")  # fmt: skip
    for text, args, message in [
        (placed_source, [], "stage 'read' is a source"),
        (fixed, [], "stage 'double_up' has scalable: false"),
        (twins, ["--stage", "double-up"], "stages 'double_up' and 'double-up' would both be "
         "named 'double-up'"),
        (COUNTS.replace("double_up", "double_up_every_single_one"), ["--prefix", "p" * 30],
         f"'{'p' * 30}-double-up-every-single-one' is longer than 52 characters"),
    ]:  # fmt: skip
        path = tmp_path / "t.yaml"
        path.write_text(text)
        made = deploy(str(path), "--no-secret", *args)
        assert made.code == ExitCode.USAGE and message in made.err, made.err


def test_the_example_in_deploy_k8s_is_what_the_command_makes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert main(EXAMPLE_ARGS) == 0
    made = capsys.readouterr().out
    regenerate = shlex.join(["pipeline", *EXAMPLE_ARGS, "-o", "deploy/k8s/wrstat.yaml"])
    assert made == EXAMPLE.read_text(), f"the example is stale; make it again: {regenerate}"
    for doc in yaml.safe_load_all(made):
        kubernetes_validate.validate(doc, VERSIONS[0], strict=True)


def test_deploy_help_teaches_and_loads_no_heavy_library() -> None:
    assert loaded_after(help_of("deploy", "k8s")) == []
    out = run_python(textwrap.dedent(help_of("deploy", "k8s")) + textwrap.dedent("""
        import sys
        print(sorted(m for m in ("yaml", "pipeline.k8s", "kubernetes_validate")
                     if m in sys.modules))
    """))  # fmt: skip
    assert out.splitlines()[-1] == "[]"
    assert "examples:" in run_python("from pipeline.cli import main\nmain(['deploy', 'k8s', "
                                     "'--help'])")  # fmt: skip
