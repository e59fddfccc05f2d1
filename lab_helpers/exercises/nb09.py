"""Checks for notebook 09, "Build a chain of trust".

The checks read the chains the learner built, verify them offline with
``verify_chain`` (``cryptography``'s path validation), and then use them for
real: a check starts a lab server for a moment (on a free port, under no
name, so it replaces nothing) that presents the learner's chain or trusts
the learner's root, and makes an mTLS request through it with ``attempt``.
The other half of each handshake (the client of a server check, the server
of a client check) comes from a throwaway CA the check makes itself, so that
only the learner's part can make the request fail.

Exercise 9.2 also proves that each path length is the smallest: it builds
the same shape of chain under a scratch root with one path length lowered,
and ``verify_chain`` must refuse it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..chains import verify_chain
from ..client import Outcome, attempt, server_certificate
from ..diagnosis import explain
from ..errors import LabError
from ..files import load_certificates, load_private_key, save_chain, save_private_key
from ..pki import CertificateAuthority, IssuedCertificate, PrivateKey, key_matches_certificate
from ..server import MTLSServer
from . import Checker, CheckResult, not_attempted
from .evidence import attempt_presenting, display_name, extension, has_purpose, nameless_server, signed_by

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

LEVELS = ("region", "department", "team")


# -- what the checks look at ----------------------------------------------------


def _constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    found = extension(certificate, x509.BasicConstraints)
    return found.value if found is not None else None


def _is_ca(certificate: x509.Certificate) -> bool:
    constraints = _constraints(certificate)
    return constraints is not None and constraints.ca


def _path_length(certificate: x509.Certificate) -> int | None:
    constraints = _constraints(certificate)
    return constraints.path_length if constraints is not None else None


def _path_length_text(path_length: int | None) -> str:
    return "no path length limit" if path_length is None else f"pathlen:{path_length}"


def _linked(certificates: Sequence[x509.Certificate], root: x509.Certificate) -> bool:
    """Each certificate is signed by the next one, and the last one by the root."""
    return all(signed_by(below, above) for below, above in zip(certificates, [*certificates[1:], root]))


def _issuer_name(certificate: x509.Certificate) -> str:
    """The commonName of a certificate's issuer, as display_name gives a subject's."""
    names = certificate.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.issuer.rfc4514_string()


def _gap(certificates: Sequence[x509.Certificate], root: x509.Certificate) -> str | None:
    """Where a chain file stops leading to ``root``, in words (None when each certificate is followed by its issuer).

    Names the first break: a certificate followed by a CA that did not sign
    it, or a last certificate whose issuer is missing from the file.
    """
    for position, below in enumerate(certificates):
        above = certificates[position + 1] if position + 1 < len(certificates) else None
        if above is not None:
            if not signed_by(below, above):
                return (
                    f"{display_name(below)} is followed by {display_name(above)}, but was signed by "
                    f"{_issuer_name(below)}: each certificate must be followed by the CA that signed it"
                )
        elif not signed_by(below, root):
            if below.issuer == root.subject:
                return (
                    f"{display_name(below)} names lab-root-ca as its issuer, but another key signed it: create "
                    "it from the root you unlocked with PASSPHRASE"
                )
            return (
                f"{display_name(below)} was signed by {_issuer_name(below)}, which is not in the file: a client "
                "that trusts only lab-root-ca needs every CA between your leaf and the root"
            )
    return None


def _request(
    *,
    server_chain: Sequence[x509.Certificate],
    server_key: PrivateKey,
    server_trusts: x509.Certificate,
    client_chain: Sequence[x509.Certificate],
    client_key: PrivateKey,
    client_trusts: x509.Certificate,
) -> Outcome:
    """One real mTLS request: a lab server presents ``server_chain``, a client presents ``client_chain``.

    Each side trusts exactly one certificate. The server runs under no name,
    on a free port, and stops when the request is done.
    """
    with nameless_server(server_chain, server_key, server_trusts) as server:
        return attempt_presenting(server, client_chain, client_key, client_trusts)


def _scratch_chain_verifies(path_lengths: Sequence[int | None]) -> bool:
    """Does a chain of CAs with these path lengths (top first) and a client leaf pass verify_chain?"""
    root = CertificateAuthority.create_root("scratch-root")
    ca = root
    for level, path_length in zip(LEVELS, path_lengths):
        ca = ca.create_intermediate(f"scratch-{level}-ca", path_length=path_length)
    leaf = ca.issue_client_certificate("scratch")
    return verify_chain(
        leaf.certificate, roots=[root.certificate], intermediates=leaf.chain, purpose="client"
    ).ok


def _is_alert(reason: str) -> bool:
    """A reason the lab server records when the *client* sent an alert (TLSV1_ALERT_UNKNOWN_CA...)."""
    return re.fullmatch(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_\w+", reason) is not None


def _server_refused_certificate(outcome: Outcome) -> bool:
    """The request failed because the server judged the client's certificate: a verification message on its side.

    OpenSSL's verification messages are words ('unable to get local issuer
    certificate'); an alert name means the client refused the server first,
    and the lab's own notes mean the handshake never got that far.
    """
    reason = outcome.server_reason
    if outcome.ok or reason is None or _is_alert(reason):
        return False
    return re.fullmatch(r"[A-Z0-9_]+", reason) is None and reason not in (
        "client closed the connection during the handshake",
        "handshake timed out",
    )


# -- the exercises ----------------------------------------------------------------


def exercise_1(
    chain_file: str | os.PathLike[str] | None,
    key_file: str | os.PathLike[str] | None,
    *,
    root_certificate: x509.Certificate,
) -> CheckResult:
    """9.1 A second intermediate: root -> lab-policy-ca -> lab-issuing-ca-2 -> server, served as a chain.

    The file must hold what a server sends: its own certificate first, then
    each issuer in turn, without the root (the client has it). Each path
    length must allow exactly this depth: pathlen:1 above, pathlen:0 below.
    The check then serves the two files to a client that trusts the root
    alone, which can succeed only if the chain in the file is complete.
    """
    c = Checker(
        "9.1",
        "A second intermediate",
        hint="A path length counts the CAs that may still follow a CA, never the leaf. A server sends its own "
        "certificate first, then each issuer in turn, up to the root and without it.",
    )
    if not_attempted(chain_file, key_file):
        return c.not_attempted()
    for value, variable in ((chain_file, "deep_chain_file"), (key_file, "deep_key_file")):
        if not isinstance(value, (str, os.PathLike)):
            return c.fail(f"{variable} should be the path of the file you saved, not {type(value).__name__}")
        if not Path(value).is_file():
            return c.fail(f"{value} does not exist: save it (save_chain, save_private_key) and give its path")
    assert chain_file is not None and key_file is not None
    try:
        certificates = load_certificates(chain_file)
        key = load_private_key(key_file)
    except LabError as error:
        return c.fail(f"the files cannot be loaded: {error}")
    leaf = certificates[0]
    if _is_ca(leaf):
        return c.fail(
            f"{Path(chain_file).name} starts with a CA certificate ({display_name(leaf)}): "
            "the server's own certificate comes first, then its issuers"
        )
    c.require(
        has_purpose(leaf, ExtendedKeyUsageOID.SERVER_AUTH),
        f"it starts with the server's certificate ({display_name(leaf)}, serverAuth)",
        f"its first certificate ({display_name(leaf)}) is not a server certificate: issue it with "
        "issue_server_certificate()",
    )
    matches = key_matches_certificate(key, leaf)
    c.require(
        matches,
        "deep_key_file holds the private key of that certificate",
        "deep_key_file does not hold the key of the first certificate: save the leaf's own private_key",
    )
    c.require(
        root_certificate not in certificates,
        "the root stays out of the file: the client has it already",
        "the file holds lab-root-ca too: leave it out (a root received from the peer proves nothing)",
    )
    intermediates = [certificate for certificate in certificates[1:] if certificate != root_certificate]
    gap = _gap([leaf, *intermediates], root_certificate)
    linked = gap is None
    c.require(
        linked,
        "each certificate is followed by its issuer, and the last one was signed by lab-root-ca",
        gap or "",
    )
    names = ", ".join(display_name(certificate) for certificate in intermediates) or "nothing"
    if linked:  # a complete path: is it the exercise's, with two CAs below the root?
        c.require(
            len(intermediates) == 2 and all(_is_ca(certificate) for certificate in intermediates),
            f"two intermediates follow the leaf ({names})",
            f"the leaf is followed by {names}, which leads to lab-root-ca: the exercise's chain has two "
            "intermediates between the leaf and the root (lab-issuing-ca-2, then lab-policy-ca)",
        )
    if len(intermediates) == 2 and linked:
        lower, upper = intermediates
        upper_length, lower_length = _path_length(upper), _path_length(lower)
        if upper_length == 0:
            upper_problem = (
                f"{display_name(upper)} has pathlen:0, so it may sign no CA at all: how many CAs must "
                "follow it in your chain?"
            )
        else:
            upper_problem = (
                f"{display_name(upper)} has {_path_length_text(upper_length)}: that allows more CAs "
                "below it than this chain needs; how many CAs follow it in your chain?"
            )
        c.require(
            upper_length == 1,
            f"{display_name(upper)} has pathlen:1: one CA may follow it, exactly what this chain needs",
            upper_problem,
        )
        c.require(
            lower_length == 0,
            f"{display_name(lower)} has pathlen:0: it signs leaves only",
            f"{display_name(lower)} has {_path_length_text(lower_length)}: its key could still create a CA "
            "below it; how many CAs does a CA that signs leaves only need below it?",
        )
    verdict = verify_chain(
        leaf, roots=[root_certificate], intermediates=intermediates, purpose="server", name="localhost"
    )
    c.require(
        verdict.ok,
        "verify_chain accepts it for localhost, with lab-root-ca as the only root",
        f"verify_chain refuses it: {verdict.error}",
    )
    if verdict.ok and matches:
        visitors = CertificateAuthority.create_root("check-client-ca")
        visitor = visitors.issue_client_certificate("visitor")
        outcome = _request(
            server_chain=certificates,
            server_key=key,
            server_trusts=visitors.certificate,
            client_chain=[visitor.certificate],
            client_key=visitor.private_key,
            client_trusts=root_certificate,
        )
        c.require(
            outcome.ok,
            "a lab server sent your chain, and a client that trusts only lab-root-ca accepted it",
            f"a lab server sent your chain, and a client that trusts only lab-root-ca got: {outcome}",
        )
    else:
        c.require(
            False,
            "",
            "a real request through a server sending this chain: not tried until verify_chain "
            "accepts it and the key matches",
        )
    return c.result()


def exercise_2(issued: IssuedCertificate | None, *, root_certificate: x509.Certificate) -> CheckResult:
    """9.2 Three CAs below the root, each with the smallest path length: the rule, found by experiment.

    A CA's path length counts the CAs that may follow it below, never the
    leaf: the smallest values for three CAs are 2, 1 and 0. The check does not
    compare numbers: it lowers each path length on a scratch copy of the
    chain and shows that ``verify_chain`` then refuses it. It also makes a
    real request in which alice sends her whole chain to a server that trusts
    the root alone.
    """
    c = Checker(
        "9.2",
        "Three CAs below the root",
        hint="A path length counts the CAs that may still follow below a CA, not the leaf. "
        "Try values with verify_chain(..., purpose='client') and keep the smallest that passes.",
    )
    if not_attempted(issued):
        return c.not_attempted()
    if not isinstance(issued, IssuedCertificate):
        return c.fail(
            f"three_cas_alice should be what issue_client_certificate returns (an IssuedCertificate, "
            f"with the certificate, its key and its chain), not {type(issued).__name__}"
        )
    leaf, chain = issued.certificate, list(issued.chain)  # chain: nearest CA first
    c.require(
        has_purpose(leaf, ExtendedKeyUsageOID.CLIENT_AUTH) and not _is_ca(leaf),
        f"it is a client certificate ({display_name(leaf)}, clientAuth)",
        "it is not a client certificate: issue it with issue_client_certificate(...) from the lowest CA",
    )
    cas_ok = len(chain) == 3 and all(_is_ca(certificate) for certificate in chain)
    names = " -> ".join(display_name(certificate) for certificate in reversed(chain)) or "nothing"
    c.require(
        cas_ok,
        f"three CAs stand between it and the root ({names})",
        f"the CAs between it and the root are: {names}; build three (a region, a department and a team CA)",
    )
    linked = _linked([leaf, *chain], root_certificate)
    c.require(
        linked,
        "each CA was signed by the one above it, and the top one by lab-root-ca",
        "the chain does not lead to lab-root-ca: create the top CA from the root (unlock it with PASSPHRASE), "
        "and each lower CA from the one above it",
    )
    verdict = verify_chain(leaf, roots=[root_certificate], intermediates=chain, purpose="client")
    c.require(
        verdict.ok, "verify_chain accepts the chain", f"verify_chain refuses the chain: {verdict.error}"
    )
    if cas_ok and linked:
        top_first = list(reversed(chain))
        lengths = [_path_length(certificate) for certificate in top_first]
        for position, (certificate, length) in enumerate(zip(top_first, lengths)):
            name = display_name(certificate)
            below = len(top_first) - 1 - position  # the CAs that follow this one; the leaf never counts
            if length is None:
                c.require(
                    False,
                    "",
                    f"{name} has no path length limit: that allows any depth below it; "
                    "give it the smallest number that still works",
                )
            elif length < below:
                c.require(
                    False,
                    "",
                    f"{name} has pathlen:{length}, and the chain breaks there, so verify_chain "
                    f"refuses it: how many CAs follow {name} in this chain?",
                )
            elif length == 0:
                c.require(True, f"{name} has pathlen:0, the smallest there is", "")
            elif verdict.ok:
                lower = [*lengths[:position], length - 1, *lengths[position + 1 :]]
                refused = not _scratch_chain_verifies(lower)
                too_much = (
                    f"{name} has pathlen:{length}, more than needed: verify_chain still accepts the chain with a "
                    f"smaller one. How many CAs follow {name} in this chain?"
                )
                if below == 0:
                    too_much += " (a path length counts the CAs that may follow, never the leaf)"
                c.require(
                    refused,
                    f"{name} has pathlen:{length}, the smallest: with {length - 1} verify_chain refuses the chain",
                    too_much,
                )
    if verdict.ok:
        servers = CertificateAuthority.create_root("check-server-ca")
        server = servers.issue_server_certificate()
        outcome = _request(
            server_chain=[server.certificate],
            server_key=server.private_key,
            server_trusts=root_certificate,
            client_chain=[leaf, *chain],
            client_key=issued.private_key,
            client_trusts=servers.certificate,
        )
        expected = f"Hello, {display_name(leaf)}\n"
        c.require(
            outcome.ok and outcome.body == expected,
            f"it sent its four certificates to a server that trusts only lab-root-ca, and was greeted "
            f"{expected.strip()!r}",
            f"it sent its four certificates to a server that trusts only lab-root-ca, and got: {outcome}",
        )
    return c.result()


def exercise_3(
    server: MTLSServer | None,
    client_ca: CertificateAuthority | None,
    *,
    root_certificate: x509.Certificate,
    server_issuing_ca: CertificateAuthority,
) -> CheckResult:
    """9.3 CAs for both, under one root: the server trusts only the CA that issues client certificates.

    One offline root, two issuing CAs below it. The check issues a client
    certificate from each and makes real requests to the learner's server:
    the client CA's must get in, the server-issuing CA's must not, although
    both lead to the same root. Each request trusts only the root, so the
    server must also send its chain.
    """
    c = Checker(
        "9.3",
        "CAs for both, under one root",
        hint="The server's ca_file decides whose clients get in: the client CA alone. A path must then "
        "end at that CA, which is no root: the flag named in the exercise allows it.",
    )
    if not_attempted(server, client_ca):
        return c.not_attempted()
    if not isinstance(client_ca, CertificateAuthority):
        return c.fail(
            f"client_issuing_ca should be the CertificateAuthority you created (root.create_intermediate(...)), "
            f"not {type(client_ca).__name__}"
        )
    if not isinstance(server, MTLSServer):
        return c.fail(f"split_server should be the MTLSServer you started, not {type(server).__name__}")
    if not server.running:
        return c.fail("split_server is not running: start() it, and keep it running until the check has run")
    ca_certificate = client_ca.certificate
    from_root = signed_by(ca_certificate, root_certificate)
    c.require(
        from_root,
        f"{display_name(ca_certificate)} is an intermediate of lab-root-ca",
        f"{display_name(ca_certificate)} was not signed by lab-root-ca: create it with root.create_intermediate(...)",
    )
    separate = ca_certificate.public_key() != server_issuing_ca.certificate.public_key()
    c.require(
        separate,
        f"{display_name(ca_certificate)} is a CA of its own, apart from lab-issuing-ca",
        "client_issuing_ca is lab-issuing-ca itself: create a new intermediate for the clients",
    )
    if separate:  # lab-issuing-ca's own pathlen:0 says nothing about a client CA that was never made
        length = _path_length(ca_certificate)
        c.require(
            length == 0,
            f"{display_name(ca_certificate)} has pathlen:0: it issues client certificates only",
            f"{display_name(ca_certificate)} has {_path_length_text(length)}: an issuing CA gets path_length=0",
        )
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        files = Path(folder)
        save_chain([root_certificate], files / "root.crt")

        def as_client(issued: IssuedCertificate, issuer: x509.Certificate, stem: str) -> Outcome:
            save_chain(
                [issued.certificate, issuer], files / f"{stem}-chain.crt"
            )  # the leaf and its issuing CA
            save_private_key(issued.private_key, files / f"{stem}.key")
            return attempt(
                server.url,
                ca_file=files / "root.crt",
                cert_file=files / f"{stem}-chain.crt",
                key_file=files / f"{stem}.key",
                server=server,
            )

        member = as_client(client_ca.issue_client_certificate("dana"), ca_certificate, "member")
        if (
            not member.ok
            and member.error is not None
            and explain(member.error).key == "server-ca-not-trusted"
        ):
            c.require(
                False,
                "",
                "a client that trusts only lab-root-ca refused your server's certificate: serve "
                "server-chain.crt (the leaf and lab-issuing-ca)",
            )
        elif not member.ok and member.server_reason == "unable to get issuer certificate":
            needs_flag = (
                "your server refused dana, a client of your client CA (it recorded 'unable to get issuer "
                "certificate'): the lab server's context follows OpenSSL's default rules, under which a path "
                "must end at a self-signed root, and your client CA is not one; set "
                "ssl.VERIFY_X509_PARTIAL_CHAIN in the context's verify_flags"
            )
            c.require(False, "", needs_flag)
        else:
            c.require(
                member.ok and member.body == "Hello, dana\n",
                f"dana, issued by {display_name(ca_certificate)}, got in: 'Hello, dana'",
                f"dana, issued by {display_name(ca_certificate)}, did not get in, so the server must trust your "
                f"client CA; what dana saw: {member}",
            )
        outsider = as_client(
            server_issuing_ca.issue_client_certificate("alice"), server_issuing_ca.certificate, "outsider"
        )
        if outsider.ok:
            refusal = (
                "alice, issued by lab-issuing-ca, got in: the server trusts more than the client CA (the root?); "
                "give it the client CA's certificate alone"
            )
        elif outsider.server_reason is not None and _is_alert(outsider.server_reason):
            # The server recorded an alert: the client refused the server, and alice's certificate was never judged.
            refusal = (
                f"not tested: alice refused your server first ({outsider.server_reason}), so it never judged "
                "her certificate"
            )
        else:
            refusal = (
                f"alice, issued by lab-issuing-ca, failed, but not because the server refused her: {outsider}"
            )
        c.require(
            _server_refused_certificate(outsider),
            f"alice, issued by lab-issuing-ca, was refused by the server ({outsider.server_reason})",
            refusal,
        )
        if member.ok:
            presented = server_certificate(
                server.url,
                ca_file=files / "root.crt",
                cert_file=files / "member-chain.crt",
                key_file=files / "member.key",
            )
            issuer = presented.issuer.rfc4514_string()
            c.require(
                not signed_by(presented, ca_certificate),
                f"the server's own certificate comes from {issuer}, not from the client CA",
                f"the server's own certificate was issued by {display_name(ca_certificate)}: that CA is for clients "
                "only; serve server-chain.crt",
            )
    return c.result()
