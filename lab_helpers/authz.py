"""Authorization: what an authenticated client may do.

mTLS answers "who is this?"; the application still decides "may they?".
An :class:`AccessPolicy` maps URL paths to the identities allowed there and
denies everything else. It names clients in one of three ways:

- ``"uri"`` (the default): a SubjectAltName URI such as
  ``spiffe://lab.example/user/alice``. A URI is unambiguous, and a trust
  domain (:meth:`AccessPolicy.trust_domain`) ties its namespace to the CA
  allowed to issue it, so a second trusted CA cannot mint "alice".
- ``"common_name"``: the subject's CN. Easy, and dangerous as soon as the
  server trusts more than one CA: any of them can issue ``CN=alice``.
- ``"fingerprint"``: the SHA-256 of one exact certificate (pinning). Nobody
  else can match it, but every renewal changes it, so every pin list must
  be updated in step with every renewal.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from cryptography import x509

from .errors import LabError
from .identity import ClientIdentity

__all__ = ["ANY_CLIENT", "AccessPolicy", "Decision", "IdentifyBy", "normalize_path"]

#: Allows any client whose certificate the server accepted.
ANY_CLIENT = "*"

IdentifyBy = Literal["uri", "common_name", "fingerprint"]


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one request, with the reason (shown to the client on a 403)."""

    allowed: bool
    path: str
    identity: str | None  # the name the policy used, or None when the certificate has none
    rule: str | None  # the path prefix that decided, or None
    reason: str


def normalize_path(target: str) -> str | None:
    """The path of a request target, decoded, or None when it could mean two things.

    Authorization decides on the path, and the application serves a path:
    if the two read the same target differently, a rule can be bypassed
    (``//admin``, ``/x/../admin``, ``/%61dmin``, ``/admin;x``). So the path
    is decoded once here, and anything ambiguous is refused (the server
    answers 400) instead of guessed at.
    """
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if not path.startswith("/") or ";" in path or "\\" in path:
        return None
    segments = path.split("/")[1:]
    if any(segment in (".", "..") for segment in segments) or "" in segments[:-1]:
        return None  # dot segments and empty segments (//) are ambiguous
    return path


def _path_matches(prefix: str, exact: bool, path: str) -> bool:
    """``/admin`` covers ``/admin`` and ``/admin/users``, not ``/administrator``; an exact rule covers one path."""
    if exact:
        return path == prefix
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


class AccessPolicy:
    """Rules from path prefixes to allowed identities; the longest matching prefix decides; no rule, no access."""

    def __init__(self, *, identify_by: IdentifyBy = "uri") -> None:
        if identify_by not in ("uri", "common_name", "fingerprint"):
            raise LabError(f"identify_by={identify_by!r}: use 'uri', 'common_name' or 'fingerprint'.")
        self.identify_by = identify_by
        #: (path, exact) -> identities allowed. Replaced, never changed in place, so a running
        #: server reading it from another thread never sees it half-updated.
        self.rules: dict[tuple[str, bool], frozenset[str]] = {}
        self.trust_domains: dict[str, x509.Certificate] = {}

    def allow(self, path: str, *identities: str, exact: bool = False) -> AccessPolicy:
        """Allow ``identities`` (or :data:`ANY_CLIENT`) under ``path`` (or on ``path`` alone, with ``exact=True``).

        Returns the policy, to chain calls.
        """
        if normalize_path(path) != path:
            raise LabError(f"Rules name plain paths starting with '/': got {path!r}.")
        if not identities:
            raise LabError(f"Name who may access {path}: identities, or ANY_CLIENT.")
        key = (path, exact)
        self.rules = {**self.rules, key: self.rules.get(key, frozenset()) | frozenset(identities)}
        return self

    def trust_domain(self, domain: str, ca_certificate: x509.Certificate) -> AccessPolicy:
        """Accept ``spiffe://DOMAIN/...`` URIs only in certificates issued directly by ``ca_certificate``.

        Give the CA that signs the domain's client certificates: with a chain
        (notebook 09), that is the issuing intermediate, not the root. Once a
        trust domain is set, URIs of other schemes are not identities.
        """
        self.trust_domains = {**self.trust_domains, domain: ca_certificate}
        return self

    def identity_of(self, client: ClientIdentity) -> tuple[str | None, str]:
        """The name this policy knows the client by, or None with the reason it has none."""
        if self.identify_by == "common_name":
            return client.common_name, "the certificate has no commonName"
        if self.identify_by == "fingerprint":
            return client.fingerprint, ""
        if not client.uris:
            return None, "the certificate carries no SubjectAltName URI"
        if len(client.uris) > 1:
            # SPIFFE: an identity certificate carries exactly one URI; with two, which one is the client?
            return None, f"the certificate carries {len(client.uris)} URIs; an identity needs exactly one"
        uri = client.uris[0]
        refusal = self._trust_domain_refusal(uri, client)
        return (uri, "") if refusal is None else (None, refusal)

    def _trust_domain_refusal(self, uri: str, client: ClientIdentity) -> str | None:
        if not self.trust_domains:
            return None
        parts = urlsplit(uri)
        if parts.scheme != "spiffe":
            return (
                f"{uri} is not a spiffe:// URI, and this policy only accepts identities of its trust domains"
            )
        ca = self.trust_domains.get(parts.netloc)
        if ca is None:
            return f"{uri} belongs to trust domain {parts.netloc!r}, which this server does not know"
        try:
            if client.certificate is None:
                raise ValueError("no certificate")
            client.certificate.verify_directly_issued_by(ca)
        except Exception:  # InvalidSignature, ValueError (issuer name), TypeError (key type)
            return f"{uri} was issued by {client.issuer}, which does not speak for {parts.netloc!r}"
        return None

    def decide(self, client: ClientIdentity, target: str) -> Decision:
        """Allow or deny ``target`` (a request target: path and maybe a query) for ``client``."""
        path = normalize_path(target)
        name, why_none = self.identity_of(client)
        if path is None:
            return Decision(
                False, target, name, None, f"{target!r} is ambiguous (dot or empty segments, ';'): refused"
            )
        rules = self.rules  # one read: allow() replaces the dict, never changes it
        matching = [key for key in rules if _path_matches(key[0], key[1], path)]
        # The longest path decides; at equal length an exact rule beats a prefix rule.
        key = max(matching, key=lambda item: (len(item[0]), item[1])) if matching else None
        if key is None:
            return Decision(False, path, name, None, f"no rule covers {path}: denied by default")
        rule = key[0]
        allowed = rules[key]
        if ANY_CLIENT in allowed:
            return Decision(True, path, name, rule, f"{rule} is open to any authenticated client")
        if name is None:
            return Decision(False, path, None, rule, f"no identity to check: {why_none}")
        if name in allowed:
            return Decision(True, path, name, rule, f"{name} may access {rule}")
        return Decision(False, path, name, rule, f"{name} may not access {rule}")

    def __repr__(self) -> str:
        rules = "; ".join(
            f"{path}{' (exact)' if exact else ''} -> {', '.join(sorted(ids))}"
            for (path, exact), ids in sorted(self.rules.items())
        )
        return f"<AccessPolicy by {self.identify_by}: {rules or 'no rules (deny all)'}>"

    def _repr_html_(self) -> str:
        # The table shows ANY_CLIENT as its value, "*": the caption says what it stands for.
        any_client = any(ANY_CLIENT in ids for ids in self.rules.values())
        star = (
            f"{ANY_CLIENT} is ANY_CLIENT, any client whose certificate passed the handshake; "
            if any_client
            else ""
        )
        rows = "".join(
            f"<tr><td><code>{html.escape(path)}</code>{' (exact)' if exact else ''}</td>"
            f"<td>{html.escape(', '.join(sorted(ids)))}</td></tr>"
            for (path, exact), ids in sorted(self.rules.items())
        )
        return (
            f"<table><caption>Access policy (clients named by {self.identify_by}; {html.escape(star)}"
            f"anything not listed is denied)</caption><tr><th>path</th><th>allowed</th></tr>{rows}</table>"
        )
