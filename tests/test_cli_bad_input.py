"""Bad input on the command line: one line that says what to do, exit status 2, and nothing written.

Each row of the table sets up a lab folder, runs one command with one bad
value, and checks three things: the exit status is 2, stderr is a single
line ``error: ...`` holding the words that say what to do, and no file under
the test's folder was created, changed or removed. The rows run in process
(``main([...])``) for speed; a few run as a learner runs them, in a child
process, to check the real exit status and that no traceback is printed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from test_cli import run_cli

from lab_helpers import (
    CertificateAuthority,
    LabPaths,
    create_seed_pki,
    load_certificate,
    save_crl,
    save_private_key,
    write_atomic,
)
from lab_helpers.cli import main


@dataclass
class Lab:
    """A test folder with a lab PKI in ``lab/``, and room for the files a row makes."""

    root: Path
    paths: LabPaths

    @property
    def lab(self) -> str:
        return str(self.paths.directory)

    def file(self, name: str, data: bytes) -> str:
        return str(write_atomic(self.root / name, data))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One lab PKI, copied for every row (making keys once keeps the table fast)."""
    folder = tmp_path_factory.mktemp("bad-input-template")
    create_seed_pki(folder / "lab")
    return folder


@pytest.fixture
def lab(template: Path, tmp_path: Path) -> Lab:
    for source in (template / "lab").iterdir():
        target = tmp_path / "lab" / source.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(source.read_bytes())
        os.chmod(target, source.stat().st_mode)
    return Lab(tmp_path, LabPaths(tmp_path / "lab"))


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``."""
    return {
        str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
        for path in sorted(root.rglob("*"))
    }


def _another_ca_named(name: str) -> CertificateAuthority:
    return CertificateAuthority.create_root(name)


def _other_client_pem(lab: Lab, ca_name: str) -> str:
    """A client certificate from another CA (named ``ca_name``), saved beside the lab."""
    issued = _another_ca_named(ca_name).issue_client_certificate("mallory")
    return lab.file(f"mallory-from-{ca_name}.crt", issued.cert_pem)


def _revoked_once(lab: Lab) -> list[str]:
    assert main(["revoke", "--dir", lab.lab, "--cert", str(lab.paths.client_cert)]) == 0
    return ["revoke", "--dir", lab.lab, "--cert", str(lab.paths.client_cert)]


def _encrypted_ca_key(lab: Lab) -> list[str]:
    from lab_helpers import load_private_key

    save_private_key(load_private_key(lab.paths.ca_key), lab.paths.ca_key, password=b"secret")
    return ["revoke", "--dir", lab.lab, "--cert", str(lab.paths.client_cert)]


def _damaged_server_key(lab: Lab) -> list[str]:
    lab.paths.server_key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    return ["serve", "--dir", lab.lab]


def _der_certificate(lab: Lab) -> str:
    """The lab's client certificate in DER, as some CAs hand them out."""
    return lab.file(
        "client.der", load_certificate(lab.paths.client_cert).public_bytes(serialization.Encoding.DER)
    )


def _crl_of(ca: CertificateAuthority, lab: Lab, name: str) -> str:
    return str(save_crl(ca.create_crl([]), lab.root / name))


#: (id, the arguments given the lab, words the message must hold). Words name the fix, not only the fault.
Row = tuple[str, Callable[[Lab], list[str]], tuple[str, ...]]
ROWS: list[Row] = [
    (
        "serve-port-too-high",
        lambda lab: ["serve", "--dir", lab.lab, "--port", "99999"],
        ("99999 is not a port", "use 0 for a free port, or a port from 1 to 65535"),
    ),
    (
        "serve-port-negative",
        lambda lab: ["serve", "--dir", lab.lab, "--port", "-1"],
        ("-1 is not a port", "use 0 for a free port"),
    ),
    (
        "serve-port-not-a-number",
        lambda lab: ["serve", "--dir", lab.lab, "--port", "eighty"],
        ("'eighty' is not a whole number", "use 0 for a free port"),
    ),
    (
        "serve-dir-missing",
        lambda lab: ["serve", "--dir", str(lab.root / "nowhere")],
        ("does not exist", "python -m lab_helpers pki --dir"),
    ),
    (
        "serve-dir-is-a-file",
        lambda lab: ["serve", "--dir", str(lab.paths.ca_cert)],
        ("is a file, not a folder", "Name a folder"),
    ),
    (
        "serve-crl-missing",
        lambda lab: ["serve", "--dir", lab.lab, "--crl", str(lab.root / "none.crl")],
        ("does not exist", "python -m lab_helpers revoke --dir"),
    ),
    (
        "serve-crl-is-a-folder",
        lambda lab: ["serve", "--dir", lab.lab, "--crl", lab.lab],
        ("is a folder, not a file", "pass the CRL file itself"),
    ),
    (
        "serve-crl-of-another-ca",
        lambda lab: [
            "serve",
            "--dir",
            lab.lab,
            "--crl",
            _crl_of(_another_ca_named("other-ca"), lab, "other.crl"),
        ],
        ("was issued by CN=other-ca", "every client would be refused", "Pass the CRL of the CA that issues"),
    ),
    (
        "serve-crl-same-name-other-key",
        lambda lab: [
            "serve",
            "--dir",
            lab.lab,
            "--crl",
            _crl_of(_another_ca_named("lab-ca"), lab, "forged.crl"),
        ],
        ("same name, different key", "CA that really signed it"),
    ),
    (
        "serve-crl-is-a-key",
        lambda lab: ["serve", "--dir", lab.lab, "--crl", str(lab.paths.ca_key)],
        ("holds a PEM PRIVATE KEY, not a CRL", "Check which file you passed"),
    ),
    (
        "serve-server-key-damaged",
        _damaged_server_key,
        ("server.key has a PEM private key marker but its contents are damaged", "Recreate the file"),
    ),
    (
        "pki-dir-is-a-file",
        lambda lab: ["pki", "--dir", str(lab.paths.ca_cert)],
        ("is a file, not a folder", "Name a folder"),
    ),
    (
        "pki-dir-under-a-file",
        lambda lab: ["pki", "--dir", str(lab.paths.ca_cert / "sub")],
        ("Cannot create the lab folder", "Choose a folder you can write in"),
    ),
    (
        "pki-dir-already-full",
        lambda lab: ["pki", "--dir", lab.lab],
        ("already holds", "Pass --force to replace them, or choose another --dir"),
    ),
    (
        "pki-client-name-empty",
        lambda lab: ["pki", "--dir", str(lab.root / "new"), "--client-name", ""],
        ("'' cannot name a client", "use 1 to 64 letters, digits"),
    ),
    (
        "pki-client-name-with-a-space",
        lambda lab: ["pki", "--dir", str(lab.root / "new"), "--client-name", "al ice"],
        ("'al ice' cannot name a client", "spiffe://lab.example/user/NAME"),
    ),
    (
        "pki-client-name-too-long",
        lambda lab: ["pki", "--dir", str(lab.root / "new"), "--client-name", "a" * 65],
        ("cannot name a client", "1 to 64"),
    ),
    (
        "pki-key-type-unknown",
        lambda lab: ["pki", "--dir", str(lab.root / "new"), "--key-type", "dsa"],
        ("invalid choice: 'dsa'", "See `python -m lab_helpers pki --help`"),
    ),
    (
        "revoke-the-root",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", str(lab.paths.ca_cert)],
        ("is a self-signed root", "remove it from every trust store", "parent's CRL", "revocation='chain'"),
    ),
    (
        "revoke-same-name-other-key",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", _other_client_pem(lab, "lab-ca")],
        ("same name, different key", "CA that really signed it"),
    ),
    (
        "revoke-another-ca",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", _other_client_pem(lab, "other-ca")],
        ("No CA in", "its issuer is CN=other-ca", "Revoke it with the lab folder of the CA that signed it"),
    ),
    ("revoke-twice", _revoked_once, ("is already revoked", "Nothing was changed")),
    (
        "revoke-a-key-file",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", str(lab.paths.client_key)],
        ("holds a PEM PRIVATE KEY, not a certificate", "Check which file you passed"),
    ),
    (
        "revoke-an-empty-file",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", lab.file("empty.crt", b"")],
        ("does not contain a PEM block", "Pass the certificate file itself"),
    ),
    (
        "revoke-a-damaged-certificate",
        lambda lab: [
            "revoke",
            "--dir",
            lab.lab,
            "--cert",
            lab.file("damaged.crt", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ],
        ("contents are damaged", "Recreate the file"),
    ),
    (
        "revoke-a-der-certificate",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", _der_certificate(lab)],
        ("looks like binary DER", "openssl x509 -inform der"),
    ),
    (
        "revoke-a-missing-certificate",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", str(lab.root / "gone.crt")],
        ("does not exist", "Create it first"),
    ),
    (
        "revoke-a-folder-as-certificate",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", lab.lab],
        ("is a folder, not a file", "pass the certificate file itself"),
    ),
    (
        "revoke-crl-is-a-folder",
        lambda lab: ["revoke", "--dir", lab.lab, "--cert", str(lab.paths.client_cert), "--crl", lab.lab],
        ("is a folder, not a file", "pass the CRL file itself"),
    ),
    (
        "revoke-crl-damaged",
        lambda lab: [
            "revoke",
            "--dir",
            lab.lab,
            "--cert",
            str(lab.paths.client_cert),
            "--crl",
            lab.file("damaged.crl", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
        ],
        ("contents are damaged", "Recreate the file"),
    ),
    (
        "revoke-crl-of-another-ca",
        lambda lab: [
            "revoke",
            "--dir",
            lab.lab,
            "--cert",
            str(lab.paths.client_cert),
            "--crl",
            _crl_of(_another_ca_named("other-ca"), lab, "other.crl"),
        ],
        ("was issued by CN=other-ca", "pass --crl with another file name"),
    ),
    (
        "revoke-crl-same-name-other-key",
        lambda lab: [
            "revoke",
            "--dir",
            lab.lab,
            "--cert",
            str(lab.paths.client_cert),
            "--crl",
            _crl_of(_another_ca_named("lab-ca"), lab, "forged.crl"),
        ],
        ("same name, different key",),
    ),
    (
        "revoke-dir-missing",
        lambda lab: ["revoke", "--dir", str(lab.root / "nowhere"), "--cert", str(lab.paths.client_cert)],
        ("does not exist", "python -m lab_helpers pki --dir"),
    ),
    (
        "revoke-dir-is-a-file",
        lambda lab: ["revoke", "--dir", str(lab.paths.ca_cert), "--cert", str(lab.paths.client_cert)],
        ("is a file, not a folder",),
    ),
    (
        "revoke-without-cert",
        lambda lab: ["revoke", "--dir", lab.lab],
        ("the following arguments are required: --cert", "See `python -m lab_helpers revoke --help`"),
    ),
    (
        "revoke-with-an-encrypted-ca-key",
        _encrypted_ca_key,
        (
            "is encrypted, and the command line cannot ask for its password",
            "load_certificate_authority(cert, key, password=...)",
        ),
    ),
    (
        "bench-zero-rounds",
        lambda lab: ["bench", "--rounds", "0"],
        ("0 rounds is out of range", "at least 1 round and at most 1000"),
    ),
    (
        "bench-too-many-rounds",
        lambda lab: ["bench", "--rounds", "100000"],
        ("out of range", "at most 1000"),
    ),
    (
        "exercises-root-is-not-the-repository",
        lambda lab: ["exercises", "--root", lab.lab, "--check"],
        ("has no notebooks/solutions folder", "Pass the repository's root folder with --root"),
    ),
    (
        "unknown-command",
        lambda lab: ["revokee"],
        ("invalid choice: 'revokee'", "See `python -m lab_helpers --help`"),
    ),
]


@pytest.fixture
def no_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve installs SIGTERM/SIGINT handlers; in process they must not touch pytest's own."""
    monkeypatch.setattr(signal, "signal", lambda *args: None)


@pytest.fixture
def no_long_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must stop a command before it runs: reaching a server, a benchmark or a notebook sync
    fails the row at once instead of hanging it."""
    from lab_helpers import bench, server
    from lab_helpers.exercises import derive

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the command ran for bad input")

    monkeypatch.setattr(server.MTLSServer, "start", refuse)
    monkeypatch.setattr(bench, "run_bench", refuse)
    monkeypatch.setattr(derive, "sync", refuse)


def test_the_table_has_at_least_twenty_rows() -> None:
    assert len(ROWS) >= 20 and len({row[0] for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize(("arguments", "words"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    arguments: Callable[[Lab], list[str]],
    words: tuple[str, ...],
    lab: Lab,
    capsys: pytest.CaptureFixture[str],
    no_signal_handlers: None,
    no_long_runs: None,
) -> None:
    argv = arguments(lab)  # the setup a row needs happens here, before the snapshot
    capsys.readouterr()
    before = snapshot(lab.root)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's errors end the program
        status = exit_.code  # type: ignore[assignment]
    captured = capsys.readouterr()
    assert status == 2, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert captured.out == ""
    assert snapshot(lab.root) == before, "something was written"


def test_the_lab_still_works_after_the_bad_input(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """The twin: the same commands with good values succeed."""
    assert main(["revoke", "--dir", lab.lab, "--cert", str(lab.paths.client_cert)]) == 0
    assert "Revoked serial" in capsys.readouterr().out
    assert main(["pki", "--dir", str(lab.root / "new"), "--client-name", "bob.smith-2"]) == 0
    assert (lab.root / "new" / "client.crt").exists()


@pytest.mark.parametrize(
    "arguments",
    [
        ["serve", "--port", "99999"],
        ["pki", "--dir", "{file}"],
        ["revoke", "--dir", "{lab}", "--cert", "{root}"],
    ],
    ids=["serve-port", "pki-dir-file", "revoke-root"],
)
def test_as_a_learner_runs_it_exit_status_2_and_no_traceback(arguments: list[str], lab: Lab) -> None:
    argv = [part.format(file=lab.paths.ca_cert, lab=lab.lab, root=lab.paths.ca_cert) for part in arguments]
    before = snapshot(lab.root)
    result = run_cli(*argv, cwd=lab.root)
    assert result.returncode == 2, result
    assert (
        result.stderr.count("\n") == 1
        and result.stderr.startswith("error: ")
        and "Traceback" not in result.stderr
    )
    assert snapshot(lab.root) == before


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root may write in any folder and bind any port"
)
def test_an_unwritable_folder_and_a_privileged_port(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    locked = lab.root / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main(["pki", "--dir", str(locked / "lab")]) == 2
        assert "Choose a folder you can write in" in capsys.readouterr().err
        crl = str(locked / "ca.crl")
        assert main(["revoke", "--dir", lab.lab, "--cert", str(lab.paths.client_cert), "--crl", crl]) == 2
        assert "Check the path, and that you may read and write there" in capsys.readouterr().err
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)
    from lab_helpers import LabError, MTLSServer, build_server_context

    with pytest.raises(LabError, match="ports below 1024 need administrator rights"):
        context = build_server_context(lab.paths.server_cert, lab.paths.server_key, lab.paths.ca_cert)
        MTLSServer(context, port=80, name=None).start()
