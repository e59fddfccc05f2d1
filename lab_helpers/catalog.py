"""The failure catalog: every common mTLS failure, reproduced for real against the lab server.

Each :class:`CatalogCase` changes one thing from the working set-up (a CA,
a certificate, a TLS version, the URL) and says what must happen: the
exception class the client gets, the reason the server records, and the
explanation :func:`~lab_helpers.diagnosis.explain` gives. :func:`run_case`
makes the request with plain ``requests`` code and checks all three.

Notebook 07 walks through the cases; ``python -m lab_helpers demo --all``
runs them in a terminal; the tests run each one twenty times.
"""

from __future__ import annotations

import datetime
import html
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from .client import Outcome, TLSVersionAdapter, attempt
from .diagnosis import Explanation, explain
from .files import save_certificate, save_private_key
from .pki import CertificateAuthority, IssuedCertificate, generate_private_key
from .server import MTLSServer, build_server_context

__all__ = ["CASES", "CaseResult", "CatalogCase", "CatalogLab", "run_case", "run_catalog", "summary_table"]

SSLError = requests.exceptions.SSLError
ConnectionError_ = requests.exceptions.ConnectionError


class CatalogLab:
    """The certificates the catalog needs, made once in a folder (a temporary one by default).

    Everything is made on first use: the lab CA and "another CA", a good
    server and client pair, and the broken variants (expired, not yet valid,
    wrong name, wrong EKU, a key that does not match, an encrypted key).
    A temporary folder is removed by :meth:`close` or at the end of a
    ``with CatalogLab() as lab:`` block; a folder you name is yours to keep.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="mtls-catalog-")
            directory = self._temporary.name
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.now = datetime.datetime.now(datetime.timezone.utc)

    def close(self) -> None:
        """Remove the temporary folder and the keys in it (idempotent; a folder you named is left alone)."""
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> CatalogLab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _save(
        self, name: str, issued: IssuedCertificate, *, password: bytes | None = None
    ) -> tuple[Path, Path]:
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        save_certificate(issued.certificate, cert)
        save_private_key(issued.private_key, key, password=password)
        return cert, key

    @cached_property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority.create_root("lab-ca")

    @cached_property
    def other_ca(self) -> CertificateAuthority:
        return CertificateAuthority.create_root("other-ca")

    @cached_property
    def ca_file(self) -> Path:
        return save_certificate(self.ca.certificate, self.directory / "ca.crt")

    @cached_property
    def other_ca_file(self) -> Path:
        return save_certificate(self.other_ca.certificate, self.directory / "other-ca.crt")

    @cached_property
    def server(self) -> tuple[Path, Path]:
        return self._save("server", self.ca.issue_server_certificate())

    @cached_property
    def client(self) -> tuple[Path, Path]:
        return self._save("client", self.ca.issue_client_certificate("alice"))

    @cached_property
    def client_from_other_ca(self) -> tuple[Path, Path]:
        return self._save("client-other-ca", self.other_ca.issue_client_certificate("alice"))

    @cached_property
    def client_expired(self) -> tuple[Path, Path]:
        start = self.now - datetime.timedelta(days=30)
        return self._save(
            "client-expired", self.ca.issue_client_certificate("alice", valid_from=start, valid_days=1)
        )

    @cached_property
    def client_not_yet_valid(self) -> tuple[Path, Path]:
        start = self.now + datetime.timedelta(days=1)
        return self._save(
            "client-future", self.ca.issue_client_certificate("alice", valid_from=start, valid_days=30)
        )

    @cached_property
    def server_other_host(self) -> tuple[Path, Path]:
        return self._save("server-other-host", self.ca.issue_server_certificate("api.example.com"))

    @cached_property
    def server_dns_only(self) -> tuple[Path, Path]:
        return self._save("server-dns-only", self.ca.issue_server_certificate("localhost"))

    @cached_property
    def server_expired(self) -> tuple[Path, Path]:
        start = self.now - datetime.timedelta(days=30)
        return self._save("server-expired", self.ca.issue_server_certificate(valid_from=start, valid_days=1))

    @cached_property
    def server_cn_only(self) -> tuple[Path, Path]:
        """CN=localhost and no SubjectAltName, like the article's ``openssl x509 -req`` certificate.

        The article's is version 1, with no extensions at all; cryptography writes
        version 3, so this one keeps the key identifiers that Python 3.13's
        strict mode demands. Without a SAN it fails the same way everywhere:
        ``Hostname mismatch``.
        """
        key = generate_private_key()
        issuer_ski = self.ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(minutes=5))
            .not_valid_after(self.now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
            )
            .sign(self.ca.private_key, hashes.SHA256())
        )
        cert, key_file = self.directory / "server-cn-only.crt", self.directory / "server-cn-only.key"
        save_certificate(certificate, cert)
        save_private_key(key, key_file)
        return cert, key_file

    @cached_property
    def client_with_wrong_key(self) -> tuple[Path, Path]:
        return self.client[0], self.server[1]  # alice's certificate, the server's key

    #: The password of ``client_encrypted_key`` (a lab secret: never write a real one in code).
    KEY_PASSWORD = b"lab password"

    @cached_property
    def client_encrypted_key(self) -> tuple[Path, Path]:
        return self._save(
            "client-encrypted", self.ca.issue_client_certificate("alice"), password=self.KEY_PASSWORD
        )


@dataclass(frozen=True)
class ServerSetup:
    """How the case's server runs: which certificate, which TLS versions."""

    certificate: Callable[[CatalogLab], tuple[Path, Path]] = lambda lab: lab.server
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum_version: ssl.TLSVersion | None = None


@dataclass(frozen=True)
class ClientSetup:
    """How the case's client calls: which CA it trusts, which certificate, which URL, which TLS versions."""

    trust: Callable[[CatalogLab], Path | None] = lambda lab: lab.ca_file
    certificate: Callable[[CatalogLab], tuple[Path, Path] | None] = lambda lab: lab.client
    scheme: str = "https"
    host: str = "localhost"
    maximum_version: ssl.TLSVersion | None = None


@dataclass(frozen=True)
class CatalogCase:
    key: str
    title: str
    change: str  # what differs from the working set-up, in words
    expected_error: type[BaseException]
    expected_server_reason: str
    expected_explanation: str  # a key of lab_helpers.diagnosis.CASES
    server: ServerSetup = field(default_factory=ServerSetup)
    client: ClientSetup = field(default_factory=ClientSetup)


_TLS12 = ssl.TLSVersion.TLSv1_2
_TLS13 = ssl.TLSVersion.TLSv1_3
_CLIENT_CLOSED = "client closed the connection during the handshake"

CASES: tuple[CatalogCase, ...] = (
    CatalogCase(
        "no-ca",
        "The client is given no CA",
        "requests gets no verify= file, so it trusts only certifi's public CAs",
        SSLError,
        "TLSV1_ALERT_UNKNOWN_CA",
        "server-ca-not-trusted",
        client=ClientSetup(trust=lambda lab: None),
    ),
    CatalogCase(
        "other-ca",
        "The client trusts another CA",
        "verify= names a CA that did not issue the server's certificate",
        SSLError,
        "TLSV1_ALERT_UNKNOWN_CA",
        "server-ca-not-trusted",
        client=ClientSetup(trust=lambda lab: lab.other_ca_file),
    ),
    CatalogCase(
        "no-client-certificate-tls13",
        "No client certificate, TLS 1.3",
        "the client sends no certificate; TLS 1.3 is negotiated",
        ConnectionError_,
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "client-certificate-missing",
        client=ClientSetup(certificate=lambda lab: None),
    ),
    CatalogCase(
        "no-client-certificate-tls12",
        "No client certificate, TLS 1.2",
        "the client sends no certificate; the server allows TLS 1.2 at most",
        SSLError,
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "client-certificate-missing-tls12",
        server=ServerSetup(maximum_version=_TLS12),
        client=ClientSetup(certificate=lambda lab: None),
    ),
    CatalogCase(
        "client-certificate-other-ca",
        "Client certificate from another CA",
        "alice's certificate was issued by a CA the server does not trust",
        ConnectionError_,
        "unable to get local issuer certificate",
        "client-ca-not-trusted",
        client=ClientSetup(certificate=lambda lab: lab.client_from_other_ca),
    ),
    CatalogCase(
        "client-certificate-expired",
        "Expired client certificate",
        "alice's certificate ended 29 days ago",
        ConnectionError_,
        "certificate has expired",
        "client-certificate-expired",
        client=ClientSetup(certificate=lambda lab: lab.client_expired),
    ),
    CatalogCase(
        "client-certificate-not-yet-valid",
        "Client certificate not yet valid",
        "alice's certificate starts tomorrow",
        ConnectionError_,
        "certificate is not yet valid",
        "certificate-bad",
        client=ClientSetup(certificate=lambda lab: lab.client_not_yet_valid),
    ),
    CatalogCase(
        "server-certificate-other-host",
        "Server certificate for another host",
        "the server's certificate names api.example.com; the URL says localhost",
        SSLError,
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "server-name-mismatch",
        server=ServerSetup(certificate=lambda lab: lab.server_other_host),
    ),
    CatalogCase(
        "server-certificate-cn-only",
        "The article's CN-only server certificate",
        "the server's certificate has CN=localhost and no SubjectAltName",
        SSLError,
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "server-name-mismatch",
        server=ServerSetup(certificate=lambda lab: lab.server_cn_only),
    ),
    CatalogCase(
        "url-by-ip-dns-only-san",
        "URL by IP, certificate with DNS names only",
        "the URL says 127.0.0.1; the certificate's SAN has DNS:localhost only",
        SSLError,
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "server-ip-mismatch",
        server=ServerSetup(certificate=lambda lab: lab.server_dns_only),
        client=ClientSetup(host="127.0.0.1"),
    ),
    CatalogCase(
        "server-certificate-expired",
        "Expired server certificate",
        "the server's certificate ended 29 days ago",
        SSLError,
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "server-certificate-expired",
        server=ServerSetup(certificate=lambda lab: lab.server_expired),
    ),
    CatalogCase(
        "server-certificate-as-client",
        "A server certificate used as a client certificate",
        "the client presents the server's certificate (EKU serverAuth only)",
        ConnectionError_,
        "unsuitable certificate purpose",
        "client-certificate-wrong-purpose",
        client=ClientSetup(certificate=lambda lab: lab.server),
    ),
    CatalogCase(
        "client-certificate-as-server",
        "A client certificate used as a server certificate",
        "the server presents alice's certificate (EKU clientAuth only)",
        SSLError,
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "server-certificate-wrong-purpose",
        server=ServerSetup(certificate=lambda lab: lab.client),
    ),
    CatalogCase(
        "key-does-not-match",
        "A key that does not match its certificate",
        "the client is given alice's certificate with the server's key",
        SSLError,
        _CLIENT_CLOSED,
        "client-key-mismatch",
        client=ClientSetup(certificate=lambda lab: lab.client_with_wrong_key),
    ),
    CatalogCase(
        "encrypted-key",
        "An encrypted key without its password",
        "the client's key file is encrypted; requests cannot pass a password",
        SSLError,
        _CLIENT_CLOSED,
        "client-key-encrypted",
        client=ClientSetup(certificate=lambda lab: lab.client_encrypted_key),
    ),
    CatalogCase(
        "protocol-version-mismatch",
        "No TLS version in common",
        "the server allows TLS 1.3 only; the client allows TLS 1.2 at most",
        SSLError,
        "UNSUPPORTED_PROTOCOL",
        "protocol-version-mismatch",
        server=ServerSetup(minimum_version=_TLS13),
        client=ClientSetup(maximum_version=_TLS12),
    ),
    CatalogCase(
        "plain-http",
        "Plain http:// to the TLS port",
        "the URL starts with http://",
        ConnectionError_,
        "HTTP_REQUEST",
        "plain-http-to-tls-port",
        client=ClientSetup(scheme="http"),
    ),
)

_BY_KEY = {case.key: case for case in CASES}


@dataclass(frozen=True)
class CaseResult:
    """One run of a case: what the client and the server saw, the explanations, and whether all was as expected."""

    case: CatalogCase
    outcome: Outcome
    client_explanation: Explanation | None
    server_explanation: Explanation | None

    @property
    def server_reason(self) -> str | None:
        return self.outcome.server_reason

    @property
    def classification(self) -> tuple[str, str | None, str | None]:
        """(exception class, server reason, explanation key): the same every run, or the case is unstable."""
        key = self.client_explanation.key if self.client_explanation else None
        return (self.outcome.error_class or "no error", self.server_reason, key)

    @property
    def as_expected(self) -> bool:
        return (
            self.outcome.failed_with(self.case.expected_error)
            and self.server_reason == self.case.expected_server_reason
            and self.client_explanation is not None
            and self.client_explanation.key == self.case.expected_explanation
        )

    def __repr__(self) -> str:
        verdict = "as expected" if self.as_expected else "NOT as expected"
        return f"<CaseResult {self.case.key}: {self.outcome.error_class}, server saw {self.server_reason!r}, {verdict}>"

    def __str__(self) -> str:
        lines = [
            f"{self.case.title} ({self.case.change})",
            f"  client saw:  {self.outcome.error_class or 'success'}: {self.outcome.reason or self.outcome.status}",
            f"  server saw:  {self.server_reason}",
        ]
        if self.client_explanation:
            lines += ["  " + line for line in str(self.client_explanation).splitlines()]
        lines.append("  as expected" if self.as_expected else "  NOT AS EXPECTED")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        mark = "✅ as expected" if self.as_expected else "❌ NOT as expected"
        explanation = self.client_explanation._repr_html_() if self.client_explanation else ""
        return (
            f"<div><b>{html.escape(self.case.title)}</b>: {html.escape(self.case.change)}<br>"
            f"client saw: <code>{html.escape(str(self.outcome.error_class))}</code> "
            f"({html.escape(str(self.outcome.reason))})<br>"
            f"server saw: <code>{html.escape(str(self.server_reason))}</code><br>{explanation}{mark}</div>"
        )


def client_session(case: CatalogCase, lab: CatalogLab) -> requests.Session:
    """Plain requests, set up as the case says (trust_env off, so the environment cannot interfere)."""
    session = requests.Session()
    session.trust_env = False
    trust = case.client.trust(lab)
    session.verify = str(trust) if trust is not None else True
    pair = case.client.certificate(lab)
    session.cert = (str(pair[0]), str(pair[1])) if pair is not None else None
    if case.client.maximum_version is not None:
        session.mount("https://", TLSVersionAdapter(maximum_version=case.client.maximum_version))
    return session


def run_case(case: CatalogCase | str, lab: CatalogLab, *, server_name: str | None = None) -> CaseResult:
    """Start the case's server, make its request, and collect both sides' views."""
    if isinstance(case, str):
        case = _BY_KEY[case]
    cert_file, key_file = case.server.certificate(lab)
    context = build_server_context(
        cert_file,
        key_file,
        lab.ca_file,
        minimum_version=case.server.minimum_version,
        maximum_version=case.server.maximum_version,
    )
    with MTLSServer(context, name=server_name) as server, client_session(case, lab) as session:
        url = f"{case.client.scheme}://{case.client.host}:{server.port}/"
        outcome = attempt(url, session=session, server=server)
    return CaseResult(
        case=case,
        outcome=outcome,
        client_explanation=outcome.explain(),
        server_explanation=explain(outcome.server_reason) if outcome.server_reason else None,
    )


def run_catalog(lab: CatalogLab | None = None, keys: list[str] | None = None) -> list[CaseResult]:
    """Run every case (or the named ones) against one set of lab certificates."""
    chosen = [_BY_KEY[key] for key in keys] if keys else list(CASES)
    if lab is not None:
        return [run_case(case, lab) for case in chosen]
    with CatalogLab() as own:  # made here, removed here
        return [run_case(case, own) for case in chosen]


def summary_table(results: list[CaseResult]) -> str:
    """A plain-text table: one row per case."""
    rows = [("case", "client error", "server saw", "explained as", "ok")]
    for result in results:
        rows.append(
            (
                result.case.key,
                str(result.outcome.error_class),
                str(result.server_reason),
                result.client_explanation.key if result.client_explanation else "-",
                "yes" if result.as_expected else "NO",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
