"""Kubernetes manifests for a topology: its coordinator in one pod, chosen stages in pods of
their own that join it as the members of a group.

``manifests`` turns a topology (its raw YAML data, with every ``${VAR:-default}`` kept so
that pods can set them through their environment, and the same topology checked by the
engine) into a list of manifest dicts; ``dump`` writes them as multi-document YAML::

    pipeline deploy k8s topology.yaml --stage usage --keys keys | kubectl apply -f -

What is made, for the prefix ``P`` (default ``pipeline``):

* ConfigMap ``P-topology``: the topology as the pods run it: ``transport: tcp``, the
  coordinator bound on its pod's address (``host: ${POD_IP}``), the keys at
  ``/etc/pipeline/keys``, no ``hosts``/``coordinator``, and one group per pod stage, named
  after the stage, that the stage is placed on with ``replicas: members``.
* Secret ``P-keys``: the frame's CURVE keys (``pipeline keys``). A Secret's keys cannot
  hold '/', so ``authorized/NAME.key`` is stored as ``authorized.NAME.key`` and the volume's
  items put it back in ``authorized/``.
* Service and Deployment ``P-coordinator`` (or a Job, for a topology that runs to an end):
  ``pipeline run``, its control port named ``control``.
* Per pod stage, a headless Service and a StatefulSet ``P-<stage>`` running
  ``pipeline worker --group <stage>``, one member (and so one replica) per pod.

Why a StatefulSet and not a Deployment: when a stage shrinks it retires its highest-numbered
replica (keyed partitions and partial results are numbered), and a StatefulSet scales down
from its highest ordinal, so ``kubectl scale statefulset/P-<stage> --replicas=N`` maps
exactly to the stage's replica count, where a Deployment would stop an arbitrary pod. A
stage pod is ready only once it holds its replica (``pipeline worker --ready-file``), and
the StatefulSet starts pods in order, each when the one before is ready: so replica i runs
on pod i, and the pod a scale down stops is the one with the stage's highest replica.

Object names and labels must be DNS-1123 labels: a stage's name is lowercased and its '_'
become '-' there (``count_words`` -> ``P-count-words``); its group keeps the stage's name.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UsageError
from pipeline.security import AUTHORIZED, CLIENT, SERVER, key_files
from pipeline.topology import Topology

ETC = "/etc/pipeline"
TOPOLOGY_FILE = f"{ETC}/topology.yaml"
KEYS_DIR = f"{ETC}/keys"
#: every pod's working folder (an emptyDir): run_dir and relative paths of the topology
WORK_DIR = "/var/lib/pipeline"
#: present while a stage pod holds its replica (its readiness probe looks for it)
READY_FILE = f"{WORK_DIR}/ready"
#: the coordinator's control port when the topology gives none
DEFAULT_PORT = 7700
#: seconds the stage pods have to join, when the topology gives none
JOIN_TIMEOUT = 600
#: the user and group the processes run as (no root in the pods)
USER = 10001
DEFAULT_DRAIN_SECONDS = 120
#: the files ``pipeline keys DIR`` makes without --client, relative to DIR
KEYS_LAYOUT = key_files()
#: variables every container has from the downward API
POD_VARS = ("POD_IP", "POD_NAME")

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PREFIX = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)([eE]\d+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
#: a StatefulSet's name and a hash label its pods' revision: 63 characters in all
STATEFULSET_NAME_MAX = 52


@dataclass(frozen=True)
class Options:
    """How the manifests run the topology."""

    #: the first word of every object's name, and the label app.kubernetes.io/instance
    prefix: str = "pipeline"
    #: an image with this package installed (the ``pipeline`` command on its PATH)
    image: str = "zpipeline:latest"
    namespace: str | None = None
    #: topology variables, set in every container
    env: Mapping[str, str] = field(default_factory=dict)
    #: (PersistentVolumeClaim, mount path) pairs mounted in every pod
    volumes: tuple[tuple[str, str], ...] = ()
    #: the coordinator as a Job (a topology that runs to an end), not a Deployment
    job: bool = False
    #: seconds a pod has to drain after SIGTERM before it is killed
    drain_seconds: int = DEFAULT_DRAIN_SECONDS
    #: resource requests of each stage pod (Kubernetes quantities: 500m, 2, 4Gi)
    cpu: str | None = None
    memory: str | None = None

    def check(self) -> None:
        """Raise ``UsageError`` on the first option Kubernetes would refuse."""
        if not _PREFIX.match(self.prefix) or len(self.prefix) > 40:
            msg = (
                f"prefix {self.prefix!r} is not a DNS-1123 label that starts with a letter "
                "(lowercase letters, digits and '-', at most 40 characters): every object "
                "is named after it; give another with --prefix"
            )
            raise UsageError(msg)
        if self.namespace is not None and (
            not _LABEL.match(self.namespace) or len(self.namespace) > 63
        ):
            msg = (
                f"namespace {self.namespace!r} is not a DNS-1123 label (lowercase letters, "
                "digits and '-', at most 63 characters)"
            )
            raise UsageError(msg)
        if not self.image or any(c.isspace() for c in self.image):
            raise UsageError(f"image {self.image!r} is not an image reference")
        for name in self.env:
            if not _VAR.match(name):
                raise UsageError(
                    f"variable name {name!r} is not a topology variable name "
                    "(letters, digits and '_', not starting with a digit)"
                )
            if name in POD_VARS:
                raise UsageError(
                    f"{name} is set in every pod from the pod itself; give it no value"
                )
        self._check_volumes()
        if self.drain_seconds < 0:
            msg = f"drain seconds must be 0 or more, got {self.drain_seconds}"
            raise UsageError(msg)
        for what, value in (("cpu", self.cpu), ("memory", self.memory)):
            if value is not None and not _QUANTITY.match(value):
                raise UsageError(
                    f"{what} {value!r} is not a Kubernetes quantity (such as 500m, 2, 512Mi, 4Gi)"
                )

    def _check_volumes(self) -> None:
        taken = {TOPOLOGY_FILE, KEYS_DIR, WORK_DIR}
        for claim, path in self.volumes:
            if not _SUBDOMAIN.match(claim) or len(claim) > 253:
                raise UsageError(
                    f"volume claim {claim!r} is not a PersistentVolumeClaim name "
                    "(lowercase letters, digits, '-' and '.')"
                )
            if not path.startswith("/") or path.rstrip("/") in taken:
                raise UsageError(
                    f"volume {claim}: mount path {path!r} must be an absolute "
                    f"path other than {', '.join(sorted(taken))} and the other "
                    "volumes'"
                )
            taken.add(path.rstrip("/"))


@dataclass(frozen=True)
class PodStage:
    """A stage whose replicas run in pods of their own, one per pod."""

    #: its name in the topology; also the name of its group
    stage: str
    #: the name in object names and labels (a DNS-1123 label)
    name: str
    #: its replica count in the checked topology: the StatefulSet's
    replicas: int


def dns_name(stage: str) -> str:
    """A stage's name in object names and labels: lowercase, '_' -> '-'.

    >>> dns_name("count_Words")
    'count-words'
    """
    return stage.lower().replace("_", "-")


def pod_stages(topo: Topology, wanted: Sequence[str] = ()) -> tuple[PodStage, ...]:
    """The stages that go to pods of their own, in the topology's order: those it places on
    other hosts, and the ``wanted`` ones; raise ``UsageError`` naming a stage that cannot."""
    where = topo.file or "the topology"
    for name in wanted:
        if name not in topo.names:
            raise UsageError(
                f"there is no stage {name!r} in {where} (stages: {', '.join(topo.names)})"
            )
    placed = {s.name for s in topo.stages if any(h != topo.coordinator for h in s.hosts)}
    chosen = [s for s in topo.stages if s.name in placed or s.name in wanted]
    sources = {s.name for s in topo.sources()}
    found: list[PodStage] = []
    for s in chosen:
        if s.name in sources:
            raise UsageError(
                f"stage '{s.name}' is a source: its replicas split the input by number (replica "
                "i of n), so it cannot have one replica per pod that comes and goes; leave it "
                "with the coordinator (no --stage, no hosts)"
            )
        if not s.scalable:
            raise UsageError(
                f"stage '{s.name}' has scalable: false: its replica count cannot change while "
                "it runs, so it cannot have one replica per pod that comes and goes; leave it "
                "with the coordinator, or make it scalable"
            )
        name = dns_name(s.name)
        if not _LABEL.match(name) or name == "coordinator":
            raise UsageError(
                f"stage '{s.name}' cannot be named {name!r} in Kubernetes "
                "(a DNS-1123 label other than 'coordinator'); rename the stage"
            )
        twin = next((p.stage for p in found if p.name == name), None)
        if twin is not None:
            raise UsageError(
                f"stages '{twin}' and '{s.name}' would both be named {name!r} in "
                "Kubernetes; rename one"
            )
        # a stage already on a group: as many pods as the members its group waits for
        replicas = topo.groups.get(s.hosts[0], 1) if s.per_member else s.replicas
        found.append(PodStage(s.name, name, replicas))
    return tuple(found)


def check_names(prefix: str, stages: Sequence[PodStage]) -> None:
    """Raise ``UsageError`` when a StatefulSet's name would be too long."""
    for p in stages:
        full = f"{prefix}-{p.name}"
        if len(full) > STATEFULSET_NAME_MAX:
            raise UsageError(
                f"stage '{p.stage}': {full!r} is longer than "
                f"{STATEFULSET_NAME_MAX} characters, the most a StatefulSet's "
                "name may have; give a shorter --prefix"
            )


def control_port(topo: Topology) -> int:
    return topo.port or DEFAULT_PORT


# -- the topology as the pods run it ---------------------------------------------------------


class _Quoted(str):
    """A quoted scalar holding a substitution: the engine keeps it a string after
    substituting, where a plain one is typed (``${N:-2}`` is 2), so it is written quoted."""

    __slots__ = ()


class _RawLoader(yaml.SafeLoader):
    pass


def _construct_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    value = loader.construct_scalar(node)
    return _Quoted(value) if node.style is not None and "$" in value else value


_RawLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)


def raw_topology(text: str) -> dict[str, Any]:
    """A topology file's data with every ``${VAR}`` kept as written (check it with
    ``load_topology`` first: this assumes a valid file)."""
    data = yaml.load(text, Loader=_RawLoader)
    if not isinstance(data, dict):
        raise UsageError("the topology must be a mapping with a 'stages' list")
    return data


def cluster_topology(
    raw: Mapping[str, Any], topo: Topology, stages: Sequence[PodStage]
) -> dict[str, Any]:
    """The raw topology as the pods run it: over tcp, keys from the Secret, the coordinator
    bound on its pod's address, each pod stage on a group of its own named after it."""
    pods = {p.stage for p in stages}
    # the pods' file is topology.yaml, whose stem would become the frame's name
    out: dict[str, Any] = {
        "name": raw.get("name", topo.name),
        "transport": "tcp",
        "host": "${POD_IP}",
        "keys": KEYS_DIR,
        "port": control_port(topo),
        # pods are scheduled, and their image pulled, before they join: more than a minute
        "join_timeout": raw.get("join_timeout", JOIN_TIMEOUT),
        "groups": [p.stage for p in stages],
    }
    dropped = {"hosts", "coordinator", "groups", *out}
    for key, value in raw.items():
        if key == "stages":
            out[key] = [
                _stage(r, s.name, s.name in pods) for r, s in zip(value, topo.stages, strict=True)
            ]
        elif key not in dropped:
            out[key] = value
    return out


def _stage(raw: Mapping[str, Any], name: str, in_pods: bool) -> dict[str, Any]:
    out = {k: v for k, v in raw.items() if k != "hosts"}
    if in_pods:
        out["replicas"] = "members"
        out["hosts"] = [name]
    return out


# -- the keys --------------------------------------------------------------------------------


def read_keys(folder: Path) -> dict[str, bytes]:
    """The files of a keys folder (``pipeline keys``) by their path relative to it."""
    make = f"make one with: pipeline keys {folder}"
    if not folder.is_dir() or not any(folder.iterdir()):
        raise UsageError(f"{folder}: no keys there; {make}")
    files: dict[str, bytes] = {}
    for entry in sorted(folder.iterdir()):
        inner = sorted(entry.iterdir()) if entry.name == AUTHORIZED and entry.is_dir() else []
        for f in inner or [entry]:
            rel = f.relative_to(folder).as_posix()
            if not f.is_file() or not _SECRET_KEY.match(f.name):
                raise UsageError(
                    f"{f}: not a file of a keys folder (only files, and files "
                    "in authorized/, named with letters, digits, '-', '_' and "
                    f"'.'); {make}"
                )
            files[rel] = f.read_bytes()
    for needed in (f"{SERVER}.key_secret", f"{CLIENT}.key_secret"):
        if needed not in files:
            raise UsageError(f"{folder}: not a folder of frame keys, it has no {needed}; {make}")
    return files


def secret_key(path: str) -> str:
    """The Secret's key of a file of the keys folder (a key cannot hold '/').

    >>> secret_key("authorized/client.key")
    'authorized.client.key'
    """
    return path.replace("/", ".")


def secret_command(
    prefix: str, namespace: str | None, layout: Sequence[str], folder: str = "DIR"
) -> str:
    """The kubectl command that makes the Secret from a keys folder of ``layout``: the folder
    itself for its top files (kubectl takes no subfolder), one key=path per file below.

    >>> secret_command("p", None, ["server.key", "authorized/a.key"], "k").split()[4:]
    ['p-keys', '--from-file=k', '--from-file=authorized.a.key=k/authorized/a.key']
    """
    words = [
        "kubectl",
        *(["-n", namespace] if namespace else []),
        "create",
        "secret",
        "generic",
        f"{prefix}-keys",
        f"--from-file={folder}",
    ]
    words += [f"--from-file={secret_key(p)}={folder}/{p}" for p in sorted(layout) if "/" in p]
    return shlex.join(words)


# -- the manifests ---------------------------------------------------------------------------


def manifests(
    raw: Mapping[str, Any],
    topo: Topology,
    stages: Sequence[PodStage],
    options: Options,
    keys: Mapping[str, bytes] | Sequence[str],
) -> list[dict[str, Any]]:
    """Every manifest, in the order to apply them. ``keys``: the keys folder's files by path
    relative to it with their contents (made into the Secret), or only their paths (the
    Secret is made by hand: ``secret_command``)."""
    options.check()
    check_names(options.prefix, stages)
    if not stages:
        raise UsageError("no stage goes to pods of its own; name one with --stage NAME")
    p = _Parts(options, sorted(keys), control_port(topo))
    text = yaml.dump(
        cluster_topology(raw, topo, stages), Dumper=_Dumper, sort_keys=False, allow_unicode=True
    )
    docs = [p.obj("v1", "ConfigMap", "topology", None, data={"topology.yaml": text})]
    if isinstance(keys, Mapping):
        data = {secret_key(k): base64.b64encode(v).decode() for k, v in sorted(keys.items())}
        docs.append(p.obj("v1", "Secret", "keys", None, type="Opaque", data=data))
    docs.append(
        p.service(
            "coordinator", {"ports": [{"name": "control", "port": p.port, "targetPort": "control"}]}
        )
    )
    docs.append(p.coordinator())
    for stage in stages:
        docs.append(p.service(stage.name, {"clusterIP": "None"}))
        docs.append(p.statefulset(stage))
    return docs


class _Parts:
    """The pieces the manifests share: names, labels, the pod template."""

    def __init__(self, options: Options, layout: Sequence[str], port: int) -> None:
        self.o = options
        self.layout = layout
        self.port = port

    def labels(self, component: str | None) -> dict[str, str]:
        """The labels of ``component``'s objects and pods; None: of those all pods share."""
        labels = {NAME: "pipeline", INSTANCE: self.o.prefix}
        return labels if component is None else {**labels, COMPONENT: component}

    def obj(
        self, api: str, kind: str, name: str, component: str | None, **body: Any
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": f"{self.o.prefix}-{name}"}
        if self.o.namespace:
            meta["namespace"] = self.o.namespace
        meta["labels"] = self.labels(component)
        return {"apiVersion": api, "kind": kind, "metadata": meta, **body}

    def service(self, component: str, spec: dict[str, Any]) -> dict[str, Any]:
        spec = {"selector": self.labels(component), **spec}
        return self.obj("v1", "Service", component, component, spec=spec)

    def coordinator(self) -> dict[str, Any]:
        args = ["run", TOPOLOGY_FILE, "--progress", "off"]
        ports = [{"name": "control", "containerPort": self.port}]
        pod = self.pod("coordinator", args, ("POD_IP",), ports=ports)
        if self.o.job:
            pod["spec"]["restartPolicy"] = "Never"
            return self.obj(
                "batch/v1",
                "Job",
                "coordinator",
                "coordinator",
                spec={"backoffLimit": 0, "template": pod},
            )
        # Recreate: two coordinators of one frame must never run at once
        spec = {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": self.labels("coordinator")},
            "template": pod,
        }
        return self.obj("apps/v1", "Deployment", "coordinator", "coordinator", spec=spec)

    def statefulset(self, stage: PodStage) -> dict[str, Any]:
        args = [
            "worker",
            TOPOLOGY_FILE,
            "--group",
            stage.stage,
            "--name",
            "$(POD_NAME)",
            "--address",
            "$(POD_IP)",
            "--coordinator",
            f"{self.o.prefix}-coordinator:{self.port}",
            "--stay",
            "--join-timeout",
            "0",
            "--ready-file",
            READY_FILE,
        ]
        requests = {k: v for k, v in (("cpu", self.o.cpu), ("memory", self.o.memory)) if v}
        pod = self.pod(stage.name, args, POD_VARS, requests=requests)
        # ready once it holds its replica: the next pod starts (and joins) only then, so
        # replica i runs on pod i and a scale down retires the stage's highest replica
        pod["spec"]["containers"][0]["readinessProbe"] = {
            "exec": {"command": ["test", "-e", READY_FILE]},
            "periodSeconds": 2,
        }
        spec = {
            "serviceName": f"{self.o.prefix}-{stage.name}",
            "replicas": stage.replicas,
            # members join in the order of their ordinals, as the stage numbers them
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": self.labels(stage.name)},
            "template": pod,
        }
        return self.obj("apps/v1", "StatefulSet", stage.name, stage.name, spec=spec)

    def pod(
        self,
        component: str,
        args: list[str],
        pod_vars: Sequence[str],
        *,
        ports: list[dict[str, Any]] | None = None,
        requests: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        field_of = {"POD_IP": "status.podIP", "POD_NAME": "metadata.name"}
        env: list[dict[str, Any]] = [
            {"name": v, "valueFrom": {"fieldRef": {"fieldPath": field_of[v]}}} for v in pod_vars
        ]
        # the image's user may have no home: caches (compiled code, fonts) go to the pod's
        # working folder
        given = {"HOME": WORK_DIR, **self.o.env}
        env += [{"name": k, "value": v} for k, v in given.items()]
        container: dict[str, Any] = {
            "name": "pipeline",
            "image": self.o.image,
            "command": ["pipeline"],
            "args": args,
            "workingDir": WORK_DIR,
            "env": env,
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False},
            "volumeMounts": self.mounts(),
        }
        if ports:
            container["ports"] = ports
        if requests:
            container["resources"] = {"requests": requests}
        spec = {
            # fsGroup: the Secret's files (mode 0400, owned by root) become readable by the
            # group, which the process is in
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": USER,
                "runAsGroup": USER,
                "fsGroup": USER,
            },
            "terminationGracePeriodSeconds": self.o.drain_seconds,
            # topology variables come from the environment: no variables of other Services
            "enableServiceLinks": False,
            "containers": [container],
            "volumes": self.volumes(),
        }
        return {"metadata": {"labels": self.labels(component)}, "spec": spec}

    def mounts(self) -> list[dict[str, Any]]:
        # the topology as one file (subPath), so that the keys' mount is not nested in a
        # read-only ConfigMap volume
        mounts: list[dict[str, Any]] = [
            {"name": "work", "mountPath": WORK_DIR},
            {
                "name": "topology",
                "mountPath": TOPOLOGY_FILE,
                "subPath": "topology.yaml",
                "readOnly": True,
            },
            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
        ]
        mounts += [
            {"name": f"data-{i}", "mountPath": path} for i, (_, path) in enumerate(self.o.volumes)
        ]
        return mounts

    def volumes(self) -> list[dict[str, Any]]:
        items = [{"key": secret_key(path), "path": path} for path in self.layout]
        volumes: list[dict[str, Any]] = [
            {"name": "work", "emptyDir": {}},
            {"name": "topology", "configMap": {"name": f"{self.o.prefix}-topology"}},
            {
                "name": "keys",
                "secret": {
                    "secretName": f"{self.o.prefix}-keys",
                    "defaultMode": 0o400,
                    "items": items,
                },
            },
        ]
        volumes += [
            {"name": f"data-{i}", "persistentVolumeClaim": {"claimName": claim}}
            for i, (claim, _) in enumerate(self.o.volumes)
        ]
        return volumes


# -- YAML out --------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else '"' if isinstance(value, _Quoted) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Quoted, _represent_str)


def dump(docs: Sequence[Mapping[str, Any]], header: Sequence[str] = ()) -> str:
    """``docs`` as multi-document YAML, after ``header`` lines as comments."""
    head = "".join(f"# {line}".rstrip() + "\n" for line in header)
    body = yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, allow_unicode=True
    )
    return head + body
