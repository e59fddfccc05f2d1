"""The command line: ``python -m lab_helpers pki|serve|revoke|demo|doctor|bench|rehearse``.

``pki`` and ``serve`` are the article's ``openssl`` commands and
``node index.js`` in Python; ``demo`` runs the article's three ``curl`` requests
and checks their outcomes; ``doctor`` is the room check for a workshop.
"""

from __future__ import annotations

import argparse
import glob
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .arguments import OneLineParser, client_name, port_number, round_count
from .errors import LabError

__all__ = ["main"]


def _command_pki(args: argparse.Namespace) -> int:
    from .files import LabPaths, create_seed_pki

    paths = LabPaths.in_dir(args.dir)
    existing = [path.name for path in paths.all() + paths.intermediate_files() if path.exists()]
    if existing and not args.force:
        raise LabError(
            f"{paths.directory} already holds {', '.join(existing)}. Nothing was changed. "
            "Pass --force to replace them, or choose another --dir."
        )
    create_seed_pki(
        paths.directory, key_type=args.key_type, client_name=args.client_name, intermediate=args.intermediate
    )
    shape = "root -> intermediate -> leaves" if args.intermediate else "root -> leaves"
    print(f"Wrote the lab PKI ({args.key_type} keys, {shape}) to {paths.directory}:")
    for path in paths.all() + (paths.intermediate_files() if args.intermediate else []):
        print(f"  {path.name}")
    return 0


def _command_serve(args: argparse.Namespace) -> int:
    from .files import LabPaths
    from .reload import FileWatcher
    from .server import MTLSServer, build_server_context

    paths = LabPaths.in_dir(args.dir, create=False)
    certificate = paths.server_cert_to_send  # the chain file when there is an intermediate
    crl = Path(args.crl) if args.crl else None
    if crl is not None:
        from .revoke import check_crl_for_clients

        check_crl_for_clients(paths, crl)  # a CRL from another CA would refuse every client

    def build() -> ssl.SSLContext:
        return build_server_context(certificate, paths.server_key, paths.ca_cert, crl_file=crl)

    context = build()  # every file is read and checked here, before the server or any signal is touched
    stop = threading.Event()
    # SIGTERM (from kill, systemd, a test harness) stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C raises KeyboardInterrupt even when a shell started us in the
    # background with SIGINT ignored (as non-interactive shells do).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    show = None if args.quiet else (lambda line: print(line, flush=True))
    server = MTLSServer(context, port=args.port, name=None, on_event=show).start()
    watched = [certificate, paths.server_key] + ([crl] if crl else [])
    watcher = FileWatcher(
        watched, rebuild=build, apply=server.replace_context, report=lambda line: print(line, flush=True)
    )
    print(f"Serving mTLS on {server.url} (127.0.0.1 only). Press Ctrl-C to stop.", flush=True)
    if crl:
        print(
            f"Checking client certificates against {crl}; changes to it are picked up without a restart.",
            flush=True,
        )
    print(
        f"Try: curl --noproxy '*' --cacert {paths.ca_cert} --cert {paths.client_cert_to_send} "
        f"--key {paths.client_key} {server.url}",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            watcher.check()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("Server stopped.", flush=True)
    return 0


def _command_revoke(args: argparse.Namespace) -> int:
    from .revoke import revoke_certificate

    result = revoke_certificate(args.dir, args.cert, crl_path=args.crl)
    print(result)
    return 0


def _command_demo(args: argparse.Namespace) -> int:
    if args.all:
        from .catalog import run_catalog, summary_table

        results = run_catalog()
        for number, result in enumerate(results, start=1):
            print(f"{number:>2}. {result}\n", flush=True)
        print(summary_table(results))
        failures = sum(not result.as_expected for result in results)
        print(f"\n{len(results) - failures} of {len(results)} cases as expected.")
        return 0 if not failures else 1
    from .demo import run_demo

    return run_demo()


def _command_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor()


def _command_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(rounds=args.rounds, quick=args.quick, as_json=args.json)


def _command_exercises(args: argparse.Namespace) -> int:
    from .exercises.derive import sync

    root = Path(args.root).resolve()
    if not (root / "notebooks" / "solutions").is_dir():
        raise LabError(
            f"{root} has no notebooks/solutions folder. Pass the repository's root folder with --root."
        )
    if args.only and not list((root / "notebooks" / "solutions").glob(f"{glob.escape(args.only)}*.ipynb")):
        raise LabError(
            f"No solution notebook's name starts with {args.only!r}: pass two digits, e.g. --only 04."
        )
    differing = sync(root, write=not args.check, only=args.only)
    if args.check:
        for name in differing:
            print(f"{name} differs from its solution notebook: run `python -m lab_helpers exercises`")
        return 1 if differing else 0
    print(
        f"Updated {len(differing)} exercise notebook(s)" + (f": {', '.join(differing)}" if differing else ".")
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m lab_helpers", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pki = commands.add_parser("pki", help="write the article's CA, server and client files to a folder")
    pki.add_argument("--dir", default=None, help="lab folder (default: $MTLS_LAB_DIR or ./lab-files)")
    pki.add_argument(
        "--key-type", choices=["ec", "rsa", "ed25519"], default="ec", help="default: ec (ECDSA P-256)"
    )
    pki.add_argument(
        "--client-name",
        default="alice",
        type=client_name,
        help="the client certificate's name (default: alice)",
    )
    pki.add_argument("--force", action="store_true", help="replace lab files that already exist")
    pki.add_argument(
        "--intermediate",
        action="store_true",
        help="issue the leaves from an intermediate CA; also writes server-chain.crt and client-chain.crt",
    )
    pki.set_defaults(run=_command_pki)

    serve = commands.add_parser(
        "serve", help="run the mTLS server in the foreground, like the article's node index.js"
    )
    serve.add_argument("--dir", default=None, help="lab folder with ca.crt, server.crt, server.key")
    serve.add_argument(
        "--port", type=port_number, default=0, help="port on 127.0.0.1 (default: 0, a free one)"
    )
    serve.add_argument("--quiet", action="store_true", help="do not print a line per request and rejection")
    serve.add_argument(
        "--crl", default=None, help="reject client certificates this CRL lists (re-read when it changes)"
    )

    revoke = commands.add_parser("revoke", help="add a certificate to the lab CRL (ca.crl in the lab folder)")
    revoke.add_argument("--dir", default=None, help="lab folder with the CA that issued the certificate")
    revoke.add_argument("--cert", required=True, help="the certificate to revoke (PEM)")
    revoke.add_argument(
        "--crl", default=None, help="the CRL file to update (default: ca.crl in the lab folder)"
    )
    revoke.set_defaults(run=_command_revoke)
    serve.set_defaults(run=_command_serve)

    demo = commands.add_parser("demo", help="the article's three requests against a fresh PKI and server")
    demo.add_argument(
        "--all", action="store_true", help="run the whole failure catalog and print its summary table"
    )
    demo.set_defaults(run=_command_demo)

    doctor = commands.add_parser("doctor", help="check that this machine is ready for the course")
    doctor.set_defaults(run=_command_doctor)

    bench = commands.add_parser(
        "bench", help="measure PKI creation, requests and handshakes (and the article's Node.js server)"
    )
    bench.add_argument(
        "--rounds",
        type=round_count,
        default=5,
        help="rounds per measurement (1 to 1000); medians are reported",
    )
    bench.add_argument("--quick", action="store_true", help="a short run (a few seconds) with fewer requests")
    bench.add_argument(
        "--json", action="store_true", help="print the figures as JSON (progress still goes to stderr)"
    )
    bench.set_defaults(run=_command_bench)

    exercises = commands.add_parser(
        "exercises", help="(course authors) derive notebooks/NN_*.ipynb from notebooks/solutions/NN_*.ipynb"
    )
    exercises.add_argument("--root", default=".", help="the repository's root folder (default: here)")
    exercises.add_argument(
        "--check", action="store_true", help="only compare; exit 1 if a notebook is out of date"
    )
    exercises.add_argument(
        "--only", default=None, metavar="NN", help="only the notebooks whose names start with NN"
    )
    exercises.set_defaults(run=_command_exercises)

    from .rehearsal.command import (
        register as register_rehearse,  # light: the rehearsal loads only when it runs
    )

    register_rehearse(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (
        OSError
    ) as error:  # a path the system refused (permissions, a full disk): one line, not a traceback
        where = f" ({error.filename})" if error.filename else ""
        print(
            f"error: {error.strerror or error}{where}. Check the path, and that you may read and write there.",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
