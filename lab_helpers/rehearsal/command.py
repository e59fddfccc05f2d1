"""``python -m lab_helpers rehearse``: the room rehearsal on a real JupyterHub, from the command line.

This module only describes the command: ``python -m lab_helpers`` imports it to list its
subcommands, so it must stay as light as argparse. The rehearsal itself (JupyterHub,
tornado, psutil) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from ..errors import LabError

__all__ = ["register"]

EXAMPLES = """examples:
  python -m lab_helpers rehearse --learners 3                 # notebooks 00-06, three learners at once
  python -m lab_helpers rehearse --learners 1,4,8,12 --json   # a sweep: the largest N that keeps up
  python -m lab_helpers rehearse --learners 20 --stagger 2    # a learner starting every 2 seconds

needs: pip install -r requirements-instructor.txt (JupyterHub), and npm ci --prefix hub (its proxy)"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``rehearse`` subcommand to the command line's subparsers."""
    rehearse = commands.add_parser(
        "rehearse",
        help="(instructors) run the course for N learners at once on a real JupyterHub, and measure it",
        description="Start a JupyterHub on 127.0.0.1, give N learners a home each, run the notebooks in every "
        "learner's server at once (REST API and kernel websocket, as a browser does), print the figures, "
        "and stop everything.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rehearse.add_argument(
        "--learners",
        default="3",
        metavar="N[,N...]",
        help="learners at once (default 3); a list such as 1,4,8 runs one rehearsal each, from a single learner up",
    )
    rehearse.add_argument(
        "--notebooks", default="00-06", help="which notebooks, in order: 00-06 (default), 00,05, all"
    )
    rehearse.add_argument(
        "--stagger",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds between two learners' starts (default 0)",
    )
    rehearse.add_argument(
        "--solutions", action="store_true", help="run the solution notebooks (exercises done, checks run)"
    )
    rehearse.add_argument(
        "--keep-kernels",
        action="store_true",
        help="leave each notebook's kernel running until the learner's last notebook, as a room that never shuts one down",
    )
    rehearse.add_argument(
        "--kernel-transport",
        choices=["ipc", "tcp"],
        default="ipc",
        help="how servers reach their kernels: ipc (default, Unix sockets: what a shared host should use) or tcp "
        "(Jupyter's default, ports on 127.0.0.1, racy when many kernels start at once)",
    )
    rehearse.add_argument(
        "--cell-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds one cell may take (default 300)",
    )
    rehearse.add_argument(
        "--spawn-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds a server or kernel may take to start (default 300)",
    )
    rehearse.add_argument(
        "--course",
        default=None,
        metavar="DIR",
        help="the course's folder, with notebooks/ (default: this checkout)",
    )
    rehearse.add_argument(
        "--proxy",
        default=None,
        metavar="PATH",
        help="the configurable-http-proxy command (default: hub/node_modules, then PATH)",
    )
    rehearse.add_argument(
        "--json", action="store_true", help="print the figures as JSON on stdout; the report goes to stderr"
    )
    rehearse.add_argument(
        "--keep-folder",
        action="store_true",
        help="keep the temporary folder (homes, hub log) for a look afterwards",
    )
    rehearse.set_defaults(run=_command_rehearse)


def _command_rehearse(args: argparse.Namespace) -> int:
    if os.name != "posix":
        raise LabError("The rehearsal runs where JupyterHub runs: Linux or macOS.")
    from .hub import find_proxy, jupyterhub_version
    from .plan import RehearsalPlan, find_course_root, parse_learner_counts, select_notebooks

    # What was asked is checked first, then what is installed: a typo gets its own message.
    counts = parse_learner_counts(args.learners)
    if len(counts) > 1 and counts[0] != 1:
        counts = (1, *counts)  # a sweep compares each N with one learner alone
    for option, value in (
        ("--stagger", args.stagger),
        ("--cell-timeout", args.cell_timeout),
        ("--spawn-timeout", args.spawn_timeout),
    ):
        if value < 0 or (value == 0 and option != "--stagger"):
            raise LabError(
                f"{option} {value:g}: give a number of seconds"
                + (", 0 or more." if option == "--stagger" else ", more than 0.")
            )
    course_root = find_course_root(args.course)
    notebooks = select_notebooks(course_root, args.notebooks, solutions=args.solutions)
    jupyterhub_version()
    proxy = find_proxy(course_root, args.proxy)
    # Ctrl-C must reach this command even when a shell started it in the background with SIGINT
    # ignored (as non-interactive shells do): the stop it triggers is what cleans up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    plans = [
        RehearsalPlan(
            learners=count,
            notebooks=notebooks,
            course_root=course_root,
            proxy_command=proxy,
            stagger=args.stagger,
            keep_kernels=args.keep_kernels,
            kernel_transport=args.kernel_transport,
            cell_timeout=args.cell_timeout,
            spawn_timeout=args.spawn_timeout,
        )
        for count in counts
    ]
    from .report import format_report, format_sweep
    from .run import run_rehearsal

    human = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the JSON alone
    results = []
    for plan in plans:
        print(f"Rehearsal with {plan.learners} learner(s)...", file=sys.stderr, flush=True)
        result = run_rehearsal(plan, keep_folder=args.keep_folder)
        results.append(result)
        print(format_report(result) + "\n", file=human, flush=True)
        if result.interrupted:
            break
    if len(results) > 1:
        print(format_sweep(results), file=human, flush=True)
    if args.json:
        print(
            json.dumps(
                [result.to_json() for result in results] if len(counts) > 1 else results[0].to_json(),
                indent=2,
            )
        )
    if any(result.interrupted for result in results):
        return 130
    if len(results) == 1:
        return 0 if results[0].ok else 1
    # A sweep is meant to find the N that fails to keep up: that is its result, not an error.
    return 0 if all(result.error is None and result.leftovers.nothing for result in results) else 1
