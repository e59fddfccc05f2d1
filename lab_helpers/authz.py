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
from urllib.parse import urlsplit

from cryptography import x509

from .errors import LabError
from .identity import ClientIdentity

__all__ = ["ANY_CLIENT", "AccessPolicy", "Decision", "IdentifyBy"]

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


def _path_matches(prefix: str, path: str) -> bool:
    """``/admin`` covers ``/admin`` and ``/admin/users``, not ``/administrator``."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


class AccessPolicy:
    """Rules from path prefixes to allowed identities; the longest matching prefix decides; no rule, no access."""

    def __init__(self, *, identify_by: IdentifyBy = "uri") -> None:
        if identify_by not in ("uri", "common_name", "fingerprint"):
            raise LabError(f"identify_by={identify_by!r}: use 'uri', 'common_name' or 'fingerprint'.")
        self.identify_by = identify_by
        self.rules: dict[str, frozenset[str]] = {}
        self.trust_domains: dict[str, x509.Certificate] = {}

    def allow(self, path_prefix: str, *identities: str) -> "AccessPolicy":
        """Allow ``identities`` (or :data:`ANY_CLIENT`) under ``path_prefix``. Returns the policy, to chain calls."""
        if not path_prefix.startswith("/"):
            raise LabError(f"Path prefixes start with '/': got {path_prefix!r}.")
        if not identities:
            raise LabError(f"Name who may access {path_prefix}: identities, or ANY_CLIENT.")
        self.rules[path_prefix] = self.rules.get(path_prefix, frozenset()) | frozenset(identities)
        return self

    def trust_domain(self, domain: str, ca_certificate: x509.Certificate) -> "AccessPolicy":
        """Accept ``spiffe://DOMAIN/...`` URIs only in certificates issued directly by ``ca_certificate``."""
        self.trust_domains[domain] = ca_certificate
        return self

    def identity_of(self, client: ClientIdentity) -> tuple[str | None, str]:
        """The name this policy knows the client by, or None with the reason it has none."""
        if self.identify_by == "common_name":
            return client.common_name, "the certificate has no commonName"
        if self.identify_by == "fingerprint":
            return client.fingerprint, ""
        for uri in client.uris:
            refusal = self._trust_domain_refusal(uri, client)
            if refusal is None:
                return uri, ""
            return None, refusal
        return None, "the certificate carries no SubjectAltName URI"

    def _trust_domain_refusal(self, uri: str, client: ClientIdentity) -> str | None:
        parts = urlsplit(uri)
        if parts.scheme != "spiffe" or not self.trust_domains:
            return None
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

    def decide(self, client: ClientIdentity, path: str) -> Decision:
        path = urlsplit(path).path or "/"
        matching = [prefix for prefix in self.rules if _path_matches(prefix, path)]
        rule = max(matching, key=len) if matching else None
        name, why_none = self.identity_of(client)
        if rule is None:
            return Decision(False, path, name, None, f"no rule covers {path}: denied by default")
        allowed = self.rules[rule]
        if ANY_CLIENT in allowed:
            return Decision(True, path, name, rule, f"{rule} is open to any authenticated client")
        if name is None:
            return Decision(False, path, None, rule, f"no identity to check: {why_none}")
        if name in allowed:
            return Decision(True, path, name, rule, f"{name} may access {rule}")
        return Decision(False, path, name, rule, f"{name} may not access {rule}")

    def __repr__(self) -> str:
        rules = "; ".join(f"{prefix} -> {', '.join(sorted(ids))}" for prefix, ids in sorted(self.rules.items()))
        return f"<AccessPolicy by {self.identify_by}: {rules or 'no rules (deny all)'}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(prefix)}</code></td><td>{html.escape(', '.join(sorted(ids)))}</td></tr>"
            for prefix, ids in sorted(self.rules.items())
        )
        return (
            f"<table><caption>Access policy (clients named by {self.identify_by}; "
            f"anything not listed is denied)</caption><tr><th>path</th><th>allowed</th></tr>{rows}</table>"
        )
