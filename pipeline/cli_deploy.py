"""``pipeline deploy``: manifests that run a topology on a cluster (``deploy k8s``)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

DEPLOY_EPILOG = """\
examples:
  pipeline deploy k8s topology.yaml --stage usage --keys keys | kubectl apply -f -
"""

K8S_EPILOG = """\
Writes the manifests that run TOPOLOGY on Kubernetes: its coordinator ('pipeline run') in
one pod, and each stage the topology places on other hosts (its 'hosts'), or named with
--stage, in pods of its own ('pipeline worker --group STAGE'), one replica per pod. The
topology goes in a ConfigMap as the pods run it (tcp, the keys from a Secret, each pod stage
on a group named after it with 'replicas: members'); its ${VAR:-default} are kept, so
-e NAME=VALUE sets them in every pod. It is checked here with those values only, as the
pods will see them, not with this shell's environment. Sources cannot go to pods: their
replicas split the input by number.

Each pod stage is a StatefulSet: when a stage shrinks it retires its highest-numbered
replica, and a StatefulSet stops its highest ordinal first, so

  kubectl scale statefulset/PREFIX-STAGE --replicas=N

sets the stage's replica count. Stage names are lowercased and their '_' become '-' in
object names. The pods run as user 10001 in /var/lib/pipeline (an emptyDir, so relative
paths and run_dir are writable there): give input and output folders as volumes (claims
that every node can mount, such as ReadWriteMany ones) and point the topology's variables
at them. --job runs the coordinator as a Job, for a topology that runs to its end; the
stage pods wait for its next run ('kubectl delete' them when done).

The frame's keys (pipeline keys DIR; default: the topology's 'keys') go in a Secret, so the
output holds secret keys: keep it private (-o writes an owner-only file). --no-secret
leaves the Secret out, and the output header says the kubectl command that makes it.

examples:
  pipeline keys keys
  pipeline deploy k8s topology.yaml --stage usage --keys keys | kubectl apply -f -
  pipeline deploy k8s topology.yaml --stage usage --keys keys --namespace reports \\
      -e USAGE_REPLICAS=4 -e WRSTAT_DIR=/data/wrstat -e REPORT_DIR=/reports \\
      --volume wrstat-data:/data --volume usage-reports:/reports --job -o wrstat.yaml
  kubectl scale statefulset/pipeline-usage --replicas=6
"""


def _default_image() -> str:
    """This version's image: the coordinator and the workers must speak as this one."""
    try:
        return f"zpipeline:{version('zpipeline')}"
    except PackageNotFoundError:
        return "zpipeline:latest"


def add_parser(sub: Any) -> None:
    from pipeline.cli import DEFAULT_TOPOLOGY  # noqa: PLC0415 - the shared default

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "deploy",
        help="write manifests that run a topology on a cluster (Kubernetes)",
        description="Write manifests that run a topology on a cluster.",
        epilog=DEPLOY_EPILOG,
        formatter_class=fmt,
    )
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True
    k = targets.add_parser(
        "k8s",
        help="Kubernetes manifests: the coordinator, and stages in pods of their own",
        description="Write the Kubernetes manifests that run a topology: its coordinator in "
        "one pod, chosen stages in pods of their own, one replica per pod.",
        epilog=K8S_EPILOG,
        formatter_class=fmt,
    )
    k.add_argument(
        "topology",
        nargs="?",
        default=DEFAULT_TOPOLOGY,
        help=f"the topology file (default: ./{DEFAULT_TOPOLOGY})",
    )
    k.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a topology variable, set in every pod (repeatable)",
    )
    k.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="NAME",
        help="run this stage in pods of its own (repeatable; stages the "
        "topology places on other hosts go there anyway)",
    )
    k.add_argument(
        "--keys",
        metavar="DIR",
        help="the frame's keys folder, made by pipeline keys (default: the topology's 'keys')",
    )
    k.add_argument(
        "--no-secret",
        action="store_true",
        help="leave the keys' Secret out, to make it with kubectl (the pods "
        "mount the files of --keys DIR, else those pipeline keys DIR makes)",
    )
    k.add_argument(
        "--prefix",
        default="pipeline",
        help="the first word of every object's name (default: pipeline)",
    )
    k.add_argument("--namespace", metavar="NS", help="the namespace of every object")
    k.add_argument(
        "--image",
        default=_default_image(),
        help="an image with this package installed, 'pipeline' on its PATH (default: %(default)s)",
    )
    k.add_argument(
        "--volume",
        action="append",
        default=[],
        metavar="CLAIM:MOUNTPATH",
        help="mount a PersistentVolumeClaim in every pod (repeatable)",
    )
    k.add_argument(
        "--job",
        action="store_true",
        help="run the coordinator as a Job (a topology that runs to its end), not as a Deployment",
    )
    k.add_argument(
        "--drain-seconds",
        type=int,
        default=120,
        metavar="SECONDS",
        help="how long each pod may drain after SIGTERM before it is killed (default: 120)",
    )
    k.add_argument("--cpu", metavar="QUANTITY", help="CPU each stage pod requests (500m, 2)")
    k.add_argument(
        "--memory", metavar="QUANTITY", help="memory each stage pod requests (512Mi, 4Gi)"
    )
    k.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not standard output")
    k.set_defaults(handler=cmd_k8s)


def _pairs(values: list[str], option: str, shape: str, sep: str) -> list[tuple[str, str]]:
    """Each of ``values`` (given as ``shape``) split at its first ``sep``."""
    pairs = []
    for value in values:
        left, found, right = value.partition(sep)
        if not found or not left or not right:
            raise UsageError(f"{option} takes {shape}, got {value!r}")
        pairs.append((left, right))
    return pairs


def cmd_k8s(args: argparse.Namespace) -> int:
    from pipeline import k8s  # noqa: PLC0415 - yaml, only when it runs
    from pipeline.topology import load_topology  # noqa: PLC0415

    env = dict(_pairs(args.env, "--env", "NAME=VALUE", "="))
    options = k8s.Options(
        prefix=args.prefix,
        image=args.image,
        namespace=args.namespace,
        env=env,
        volumes=tuple(_pairs(args.volume, "--volume", "CLAIM:MOUNTPATH", ":")),
        job=args.job,
        drain_seconds=args.drain_seconds,
        cpu=args.cpu,
        memory=args.memory,
    )
    options.check()
    pod_env = {"POD_IP": "127.0.0.1", "POD_NAME": f"{args.prefix}-coordinator"}
    topo = load_topology(args.topology, {**pod_env, **env})
    stages = k8s.pod_stages(topo, args.stage)
    if not stages:
        movable = [s.name for s in topo.stages if s not in topo.sources()]
        raise UsageError(
            f"no stage of {args.topology} goes to pods of its own: it places none "
            "on other hosts; name the ones to run there with --stage NAME "
            f"(its stages that are not sources: {', '.join(movable)})"
        )
    raw = k8s.raw_topology(Path(args.topology).read_text(encoding="utf-8"))
    keys = _keys(args, topo.keys)
    docs = k8s.manifests(raw, topo, stages, options, keys)
    header = textwrap.wrap(
        f"Kubernetes manifests of {Path(args.topology).name}, made by pipeline deploy k8s: "
        f"its coordinator, and {', '.join(s.stage for s in stages)} in pods of their own. "
        "Make them again rather than edit them.",
        width=96,
    )
    if args.no_secret:
        command = k8s.secret_command(args.prefix, args.namespace, tuple(keys), args.keys or "DIR")
        header += [
            f"The Secret {args.prefix}-keys is not here; make it from the keys folder "
            "(pipeline keys DIR) with",
            f"  {command}",
        ]
    text = k8s.dump(docs, header)
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write(args.output, text, secret=not args.no_secret)
        print(f"{args.output}: {len(docs)} manifests written", file=sys.stderr)
    return 0


def _keys(
    args: argparse.Namespace, topology_keys: Path | None
) -> dict[str, bytes] | tuple[str, ...]:
    """The keys folder's files with their contents for the Secret, or with --no-secret
    only their paths: those of --keys DIR, else those ``pipeline keys DIR`` makes."""
    from pipeline import k8s  # noqa: PLC0415

    if args.no_secret:
        return tuple(k8s.read_keys(Path(args.keys))) if args.keys else k8s.KEYS_LAYOUT
    folder = args.keys or topology_keys
    if folder is None:
        raise UsageError(
            "the pods need the frame's keys: give --keys DIR (make them with "
            "pipeline keys DIR), or --no-secret to make their Secret with kubectl"
        )
    return k8s.read_keys(Path(folder))


def _write(path: str, text: str, *, secret: bool) -> None:
    """Write ``text``; owner-only when it holds the Secret."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o666)
    with open(fd, "w", encoding="utf-8") as f:
        if secret:  # a file that was there keeps its mode otherwise
            os.fchmod(fd, 0o600)
        f.write(text)
