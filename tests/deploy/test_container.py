"""The image definition in deploy/container/: what it copies is in the repository and in
the build context, it installs the whole package where the units and job scripts expect
it and starts its console script, it runs as a non-root numeric user, and its Python is
one the package supports; and it builds, with podman, into an image that runs the default
topology as that user.

No registry of images is reachable from the tests, so the build's base image is a stand-in
made from Debian's packages (debootstrap: the same Debian release and Python version as
the official image it names), imported under the base's name into a podman storage of the
test's own. The built image's filesystem is then run with chroot as the image's user,
/dev and /proc bound in: a container runtime needs privileges a test cannot count on
(setting the container's resource limits, for one)."""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from tests.conftest import REPO
from tests.servers import binary

CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"
IGNORE = REPO / ".dockerignore"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VENV = "/opt/pipeline/.venv"
#: the user the Kubernetes manifests run the image as
UID = 10001


@dataclass(frozen=True)
class Instruction:
    #: the build stage it is in, from 0 (-1: before the first FROM)
    stage: int
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Containerfile's instructions: continuation lines joined, comments dropped, and
    the ``${NAME}`` of a global ARG replaced by its default."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not (pending or line.strip()):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the file ends in a continuation line"
    found: list[Instruction] = []
    defaults: dict[str, str] = {}
    stage = -1
    for entry in logical:
        keyword, _, args = entry.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        elif keyword == "ARG" and stage == -1 and "=" in args:
            name, _, value = args.strip().partition("=")
            defaults[name] = value
        for name, value in defaults.items():
            args = args.replace(f"${{{name}}}", value)
        found.append(Instruction(stage, keyword, args.strip()))
    return found


INSTRUCTIONS = instructions(CONTAINERFILE.read_text())
FINAL = max(i.stage for i in INSTRUCTIONS)


def _all(keyword: str, stage: int | None = None) -> list[str]:
    return [i.args for i in INSTRUCTIONS
            if i.keyword == keyword and (stage is None or i.stage == stage)]  # fmt: skip


def _last(keyword: str) -> str:
    """The final stage's instruction ``keyword``: the one that takes effect."""
    found = _all(keyword, FINAL)
    assert found, f"the final stage has no {keyword}"
    return found[-1]


def _copies(stage: int | None = None) -> list[tuple[list[str], str, dict[str, str]]]:
    """Each COPY as (sources, destination, flags)."""
    found = []
    for args in _all("COPY", stage):
        words = args.split()
        flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
        paths = [w for w in words if not w.startswith("--")]
        found.append((paths[:-1], paths[-1], flags))
    return found


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """The ignore file's patterns, as docker and podman read them: (exception, pattern)."""
    rules = []
    for raw in IGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = posixpath.normpath(line.removeprefix("!").lstrip("/"))
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, re.escape(token))  # fmt: skip
        rules.append((keep, re.compile(regex + r"\Z")))
    return rules


def in_context(path: str) -> bool:
    """Whether ``path`` (relative to the repository) is sent to the build: the last pattern
    that matches it or a folder above it decides."""
    parts = path.split("/")
    above = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    sent = True
    for keep, pattern in _ignore_rules():
        if any(pattern.match(p) for p in above):
            sent = keep
    return sent


def _repository_files() -> list[str]:
    """The repository's files, tracked or new (not those git ignores)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True)  # fmt: skip
    return [f for f in listed.stdout.splitlines() if (REPO / f).is_file()]


def test_every_copy_source_is_in_the_repository_and_the_build_context() -> None:
    files = _repository_files()
    copied = [s for sources, _, flags in _copies() if "from" not in flags for s in sources]
    assert copied
    for source in copied:
        matches = sorted(REPO.glob(source))
        assert matches, f"COPY {source}: nothing in the repository matches it"
        for match in matches:
            name = match.relative_to(REPO).as_posix()
            under = [f for f in files if f == name or f.startswith(name + "/")]
            assert under, f"COPY {source}: {name} holds no file of the repository"
            left_out = [f for f in under if not in_context(f)]
            assert not left_out, f"COPY {source}: {IGNORE.name} leaves out {left_out[:5]}"


def test_the_build_context_leaves_out_the_local_state() -> None:
    for path in (".venv/bin/python", ".git/HEAD", ".pipeline/wrstat/summary.json",
                 "sample-data/wrstat/x.stats.gz", "reports/group-20261101.tsv",
                 "pipeline/__pycache__/cli.cpython-311.pyc",
                 "stages/wrstat/__pycache__/lines.parse_lines-392.py311.1.nbc"):  # fmt: skip
        assert not in_context(path), f"{path} would be sent to every build"


def test_the_whole_package_is_installed_into_the_venv_the_units_and_jobs_use() -> None:
    build = [i.stage for i in INSTRUCTIONS if i.keyword == "FROM" and " AS " in i.args.upper()]
    assert build and FINAL not in build, "the venv is built in a stage of its own"
    copied = {posixpath.normpath(s) for sources, _, _ in _copies(build[0]) for s in sources}
    readme = PYPROJECT["project"]["readme"]
    packages = {p.name for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
                for p in REPO.glob(pattern) if (p / "__init__.py").exists()}  # fmt: skip
    assert packages and packages | {"pyproject.toml", readme} <= copied
    assert any(r.startswith(f"{VENV}/bin/pip install") and r.endswith(" .")
               for r in _all("RUN", build[0])), "the build stage installs the package"  # fmt: skip
    # a venv is not relocatable: the final stage has it at the path it was made at
    assert ([VENV], VENV) in [(s, d) for s, d, flags in _copies(FINAL) if "from" in flags]
    for deployed in ("deploy/slurm/pipeline-run.sbatch", "deploy/systemd/pipeline@.service"):
        assert f"{VENV}/bin/pipeline" in (REPO / deployed).read_text(), deployed


def test_the_image_starts_the_venvs_console_script() -> None:
    assert "pipeline" in PYPROJECT["project"]["scripts"]
    assert json.loads(_last("ENTRYPOINT")) == [f"{VENV}/bin/pipeline"]
    assert json.loads(_last("CMD")) == ["--help"]  # arguments: pipeline run ..., worker ...


def test_it_runs_as_a_non_root_numeric_user_with_a_home_it_can_write() -> None:
    user, _, group = _last("USER").partition(":")
    assert user.isdigit() and int(user) == UID and int(user) != 0  # runAsNonRoot can check it
    assert not group or group.isdigit()
    runs = " ".join(_all("RUN", FINAL))
    assert re.search(rf"useradd\b.*--uid {UID}\b", runs)
    workdir = _last("WORKDIR")
    assert re.search(rf"install -d -o {UID} -g {UID}\b.* {re.escape(workdir)}\b", runs), (
        f"{workdir} is not made the user's: run dirs could not be written"
    )


def test_the_base_image_is_a_python_the_package_supports() -> None:
    bases = {i.args.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"}
    assert len(bases) == 1, f"the venv needs the interpreter it was made with: {bases}"
    found = re.fullmatch(r"(?:docker\.io/library/)?python:(\d+\.\d+)-slim-bookworm", bases.pop())
    assert found, "an official python:X.Y-slim-bookworm image"
    assert found[1] in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_the_labels_name_the_packages_version_and_licence() -> None:
    labels = dict(re.findall(r'(\S+)="([^"]*)"', " ".join(_all("LABEL", FINAL))))
    assert labels["org.opencontainers.image.version"] == PYPROJECT["project"]["version"]
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    assert labels["org.opencontainers.image.title"] == PYPROJECT["project"]["name"]


# -- the build ------------------------------------------------------------------------------

#: where the stand-in base image's Debian comes from
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: the CA certificates this machine trusts (a proxy's, where there is one), which the
#: stand-in base trusts too, so that pip in the build reaches PyPI as the tests' pip does
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """``podman`` with a storage of its own, removed after the tests."""
    root = tmp_path_factory.mktemp("podman")
    cmd = [binary("podman", "podman"), "--root", str(root / "storage"),
           "--runroot", str(root / "run")]  # fmt: skip
    try:
        yield cmd
    finally:
        subprocess.run([*cmd, "rm", "--all", "--force"], capture_output=True, check=False)
        subprocess.run([*cmd, "rmi", "--all", "--force"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def stand_in_base(podman: list[str], folder: Path, base: str) -> None:
    """Import, as ``base`` (python:X.Y-slim-<release>), a Debian <release> with its python3,
    which must be X.Y."""
    found = re.fullmatch(r"(?:docker\.io/library/)?python:(\d+\.\d+)-slim-(\w+)", base)
    assert found, base
    version, release = found[1], found[2]
    rootfs = folder / "rootfs"
    subprocess.run(
        [binary("debootstrap", "debootstrap"), "--variant=minbase",
         "--include=python3,python3-venv,python-is-python3", release, str(rootfs),
         DEBIAN_MIRROR], capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    python = sorted((rootfs / "usr/bin").glob("python3.*"))
    assert [p.name for p in python if re.fullmatch(r"python\d+\.\d+", p.name)] == [
        f"python{version}"
    ], f"Debian {release}'s python3 is not {version}: the stand-in would not be {base}"
    if CA_BUNDLE.exists():
        shutil.copy(CA_BUNDLE, rootfs / CA_BUNDLE.relative_to("/"))
        (rootfs / "etc/pip.conf").write_text(f"[global]\ncert = {CA_BUNDLE}\n")
    tar = folder / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    subprocess.run([*podman, "import", str(tar), base], capture_output=True, check=True)
    shutil.rmtree(rootfs)
    tar.unlink()


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_the_image_builds_and_runs_the_default_topology_as_its_user(
    podman: list[str], tmp_path: Path
) -> None:
    bases = {i.args.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"}
    stand_in_base(podman, tmp_path, bases.pop())
    built = subprocess.run(
        [*podman, "build", "--isolation", "chroot", "--pull=never", "-f", str(CONTAINERFILE),
         "-t", "zpipeline:test", str(REPO)],
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    inspect = subprocess.run([*podman, "image", "inspect", "zpipeline:test"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    config = json.loads(inspect.stdout)[0]["Config"]
    assert config["Entrypoint"] == [f"{VENV}/bin/pipeline"] and config["User"] == f"{UID}:{UID}"
    work = config["WorkingDir"]
    box = subprocess.run([*podman, "create", "zpipeline:test"], capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    mnt = Path(subprocess.run([*podman, "mount", box], capture_output=True, text=True,
                              check=True).stdout.strip())  # fmt: skip
    mounted: list[Path] = []
    try:
        for args, target in ((["--rbind", "/dev"], mnt / "dev"),
                             (["-t", "proc", "proc"], mnt / "proc")):  # fmt: skip
            subprocess.run(["mount", *args, str(target)], check=True)
            mounted.append(target)
        pipeline = " ".join(config["Entrypoint"])
        script = (f"cd {work} && {pipeline} gen wrstat sample >/dev/null && "
                  f"{pipeline} run /opt/pipeline/topology.yaml -e WRSTAT_DIR=sample "
                  "-e INGRESS_URL=off --progress off")  # fmt: skip
        ran = subprocess.run(
            ["chroot", f"--userspec={config['User']}", str(mnt), "/bin/sh", "-c", script],
            env=dict(e.split("=", 1) for e in config["Env"]), capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        assert "wrstat: ok" in ran.stderr
        reports = mnt / work.lstrip("/") / "reports"
        groups = sorted(reports.glob("group-*.tsv"))
        assert groups and len(groups[0].read_text().splitlines()) > 1
        assert groups[0].stat().st_uid == UID  # written by the image's user
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "--recursive", "--lazy", str(target)], check=False)
        subprocess.run([*podman, "unmount", box], capture_output=True, check=False)
