"""The ``pipeline`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from pipeline.errors import ExitCode, PipelineError, TopologyError, UsageError

DEFAULT_TOPOLOGY = "topology.yaml"

MAIN_HELP = """\
Run multistage stream-processing graphs described in a topology file.

A topology lists stages (a Python callable each), how many replicas each runs, and where
each sends its output. The engine starts every replica as a process (or as coroutines on an
event loop), moves batches between them over ZeroMQ, keeps memory bounded with credit-based
backpressure, and checks at the end that every record sent arrived.
"""

MAIN_EPILOG = """\
examples:
  pipeline check                      validate ./topology.yaml and print the graph
  pipeline run                        run ./topology.yaml
  pipeline run flows/daily.yaml -e INPUT=/data/today
  pipeline gen wrstat sample-data/wrstat   write sample input for the default topology
  pipeline ps                         the frames running on this machine
  pipeline scale usage 3              run 3 replicas of stage 'usage' from now on
  pipeline monitor                    a live view of a running frame, with controls

exit codes: 0 ok, 1 the run failed, 2 bad usage or invalid topology,
            3 the run finished but some input could not be read,
            4 a control request was refused or the frame could not be reached
"""

RUN_EPILOG = """\
Variables: ${VAR} and ${VAR:-default} in the topology are taken from the environment;
-e VAR=VALUE sets one for this run.

While it runs: Ctrl-C (or SIGTERM) stops the sources and drains what is in flight,
up to drain_timeout seconds; a second Ctrl-C stops at once. From another terminal:
pipeline status, scale, pause, resume, stop, kill and monitor operate it.

At the end one line per stage is printed (records in and out, failed, in flight, busy
time, rate), and <run_dir>/summary.json holds the full counters. Batches a stage could not
process (on_error: skip) are in <run_dir>/dead-letters/<run id>/.

examples:
  pipeline run
  pipeline run topology.yaml -e INPUT=/data/2026-11-21 --log-level debug
  PIPELINE_WEB_TOKEN=s3cret pipeline run --web          web monitor on 127.0.0.1:8765
  pipeline run --mqtt broker.example.org:1883           figures to MQTT as well
"""

CHECK_EPILOG = """\
Checks YAML syntax, unknown keys, stage names, next targets, cycles, that every 'run'
imports and is callable with its params, replica counts, error policies and that every
non-source stage is fed. Every problem is listed with its file and line; nothing runs.

examples:
  pipeline check
  pipeline check flows/daily.yaml -e INPUT=/tmp
"""


def _env_pairs(values: Sequence[str] | None) -> dict[str, str]:
    env = dict(os.environ)
    for pair in values or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            msg = f"-e takes VAR=VALUE, got {pair!r}"
            raise UsageError(msg)
        env[name] = value
    return env


def _add_topology_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "topology",
        nargs="?",
        default=DEFAULT_TOPOLOGY,
        help=f"the topology file (default: ./{DEFAULT_TOPOLOGY})",
    )
    p.add_argument(
        "-e",
        "--env",
        action="append",
        metavar="VAR=VALUE",
        help="set a variable for ${VAR} substitution (repeatable)",
    )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command. Given the ``argv`` it is to parse, it leaves out what
    only another command needs and costs imports: the KINDs of ``pipeline gen``."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="pipeline", description=MAIN_HELP, epilog=MAIN_EPILOG, formatter_class=fmt
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="run a topology to its end",
        description="Run a topology to its end.",
        epilog=RUN_EPILOG,
        formatter_class=fmt,
    )
    _add_topology_args(run)
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much the engine and the stages log (default: info)",
    )
    run.add_argument(
        "--progress",
        default="auto",
        choices=["auto", "on", "off"],
        help="a live view of the stages while the run goes on: records, rates, and a bar "
        "with the time left for stages that know their input's size (default: auto, on "
        "when standard error is a terminal)",
    )
    run.add_argument(
        "--web",
        nargs="?",
        const="127.0.0.1:8765",
        metavar="HOST:PORT",
        help="also start the web monitor for this run (pipeline web; default "
        "127.0.0.1:8765); its token is $PIPELINE_WEB_TOKEN, or one it prints",
    )
    run.add_argument(
        "--mqtt",
        metavar="BROKER",
        help="also publish the run's figures to this MQTT broker (pipeline mqtt; control "
        "only with $PIPELINE_MQTT_SECRET set)",
    )

    check = sub.add_parser(
        "check",
        help="validate a topology and print its graph",
        description="Validate a topology and print its graph; runs nothing.",
        epilog=CHECK_EPILOG,
        formatter_class=fmt,
    )
    _add_topology_args(check)

    # The parsers come from light modules; each handler imports what its command runs
    # (zmq, aiohttp, aiomqtt, ...), so that --help and the other commands start without them.
    from pipeline.cli_control import add_parsers as add_control  # noqa: PLC0415
    from pipeline.cli_deploy import add_parser as add_deploy  # noqa: PLC0415
    from pipeline.cli_keys import add_parser as add_keys  # noqa: PLC0415
    from pipeline.cli_mqtt import add_parser as add_mqtt  # noqa: PLC0415
    from pipeline.cli_web import add_parser as add_web  # noqa: PLC0415
    from pipeline.cli_worker import add_parser as add_worker  # noqa: PLC0415
    from pipeline.gen import add_parser as add_gen  # noqa: PLC0415

    add_control(sub)
    add_keys(sub)
    add_worker(sub)
    add_web(sub)
    add_mqtt(sub)
    add_deploy(sub)
    add_gen(sub, kinds=argv is None or _command(argv) == "gen")
    # commands of the shipped stages (``pipeline.commands`` entry points: add_parser(sub))
    for ep in sorted(entry_points(group="pipeline.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (``pipeline`` itself
    takes none but --help).

    >>> _command(["--help"]), _command(["gen", "wrstat", "out"])
    (None, 'gen')
    """
    return next((word for word in argv if not word.startswith("-")), None)


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from pipeline.topology import load_topology  # noqa: PLC0415

    return load_topology(args.topology, _env_pairs(args.env))


def cmd_check(args: argparse.Namespace) -> int:
    topo = _load(args)
    print(topo.describe())
    print("ok: the topology is valid")
    return ExitCode.OK


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.companions import Companions  # noqa: PLC0415
    from pipeline.supervisor import Supervisor  # noqa: PLC0415

    level = getattr(logging, args.log_level.upper())
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    topo = _load(args)
    progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    extra = [["web", "--bind", args.web]] if args.web else []
    if args.mqtt:
        extra.append(["mqtt", "--broker", args.mqtt])
    companions = Companions(topo.run_dir, extra)
    companions.start()
    try:
        report = Supervisor(topo, log_level=level, progress=progress).run()
    finally:
        companions.stop()
    for line in report.lines():
        print(line, file=sys.stderr)
    return int(report.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "check":
            return cmd_check(args)
        return int(args.handler(args))
    except TopologyError as exc:
        print(f"pipeline {args.command}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except UsageError as exc:
        print(f"pipeline {args.command}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except PipelineError as exc:
        print(f"pipeline {args.command}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print(f"pipeline {args.command}: interrupted", file=sys.stderr)
        return ExitCode.FAILED
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED
    except OSError as exc:  # a file or folder the command was given cannot be used
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pipeline {args.command}: {where}{exc.strerror or exc}; check that the path "
              "exists and that this user may read or write it", file=sys.stderr)  # fmt: skip
        return ExitCode.FAILED
