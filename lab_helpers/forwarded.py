"""The client certificate, forwarded by a proxy in a header: RFC 9440's ``Client-Cert`` and nginx's own form.

A proxy that terminates mTLS hands the client's certificate to the
application in a request header. Two encodings matter here:

- **RFC 9440** ``Client-Cert``: the certificate's DER bytes as a structured
  field byte sequence (RFC 9651, which obsoletes RFC 8941, section 3.3.5), that is
  base64 without line breaks between two colons: ``Client-Cert: :MIIBqDCC...Vw==:``.
  Cloudflare, HAProxy (``ssl_c_der,base64``) and Keycloak speak it.
- **nginx**'s ``$ssl_client_escaped_cert``: the PEM text, URL-encoded
  (``-----BEGIN%20CERTIFICATE-----%0AMIIB...``). nginx has no variable for
  base64-of-DER and no function to build one (njs, its JavaScript module, could).

The two carry the same bytes: a PEM body *is* the base64 of the DER, cut into
lines (RFC 9440, section 2.1, says as much). :func:`client_cert_header_from_nginx`
turns one into the other; :func:`parse_client_cert_header` reads a
``Client-Cert`` value back into a certificate, and refuses anything else with
a :class:`ClientCertHeaderError` whose ``status`` is 400 and whose message is
one line a log or a 400 body can show.

Parsing a header is not verifying a certificate: whoever can send the header
chooses its content. Only a proxy you trust, and that always sets (or
removes) the header, makes it worth reading (RFC 9440, section 4).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import LabError

__all__ = [
    "MAX_CLIENT_CERT_HEADER",
    "ClientCertHeaderError",
    "client_cert_header",
    "client_cert_header_from_nginx",
    "nginx_escaped_pem",
    "parse_client_cert_header",
]

#: The longest ``Client-Cert`` value accepted, in characters. RFC 9440 sets no
#: limit; a client certificate is typically 0.5-2 KB of DER (under 3,000 base64
#: characters), and Cloudflare stops forwarding at 10 KiB. 16 KiB leaves room
#: for large certificates and still refuses a header made to exhaust the parser.
MAX_CLIENT_CERT_HEADER = 16 * 1024

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)


class ClientCertHeaderError(LabError, ValueError):
    """A forwarded certificate header that cannot be used; ``status`` is the HTTP status to answer (400)."""

    status = 400


def client_cert_header(certificate: x509.Certificate) -> str:
    """The RFC 9440 ``Client-Cert`` value of ``certificate``: ``:`` + base64(DER) + ``:``."""
    return ":" + base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii") + ":"


def parse_client_cert_header(value: str | Iterable[str] | None) -> x509.Certificate:
    """Read the certificate in a ``Client-Cert`` value (RFC 9440, section 2.2).

    ``value`` is the field value, or every value the request carried under
    that name (``headers.get_all("Client-Cert")``): the field is a singleton,
    so two of them are refused, as a structured-field parser refuses
    ``:a:, :b:`` for an Item. Refused with :class:`ClientCertHeaderError`
    (status 400): no value, an empty one, one over :data:`MAX_CLIENT_CERT_HEADER`
    characters, anything but ``:base64:`` (parameters included), base64
    that does not decode, and bytes that are not one DER certificate.
    """
    if value is None:
        raise ClientCertHeaderError("No Client-Cert header: the request carries no forwarded certificate.")
    values = [value] if isinstance(value, str) else list(value)
    if not values:
        raise ClientCertHeaderError("No Client-Cert header: the request carries no forwarded certificate.")
    if len(values) > 1:
        raise ClientCertHeaderError(
            f"{len(values)} Client-Cert headers: RFC 9440 allows exactly one; refuse the request."
        )
    text = values[0].strip(" \t")  # structured fields ignore surrounding spaces (RFC 9651, section 4.2)
    if len(text) > MAX_CLIENT_CERT_HEADER:
        raise ClientCertHeaderError(
            f"Client-Cert is {len(text)} characters, over the limit of {MAX_CLIENT_CERT_HEADER}: refused unread."
        )
    if not text:
        raise ClientCertHeaderError(
            "Client-Cert is empty: it must be ':' + base64 of the DER certificate + ':'."
        )
    if len(text) < 2 or text[0] != ":" or text[-1] != ":" or ":" in text[1:-1]:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ClientCertHeaderError(
            f"Client-Cert {shown!r} is not a byte sequence: it must be ':' + base64 of the DER certificate + ':'."
        )
    body = text[1:-1]
    if not _BASE64.fullmatch(body):
        bad = [ch for ch in body if not (ch.isascii() and (ch.isalnum() or ch in "+/="))]
        if bad:
            raise ClientCertHeaderError(
                f"Client-Cert holds {bad[0]!r}, which is not base64 (A-Z a-z 0-9 + / =)."
            )
        raise ClientCertHeaderError("Client-Cert has '=' padding before its end: it is not one base64 value.")
    try:
        # RFC 9651 (section 4.2.7) asks parsers to accept a missing '=' padding: add it back.
        der = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error as error:
        raise ClientCertHeaderError(f"Client-Cert is not valid base64 ({error}).") from None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise ClientCertHeaderError(
            f"Client-Cert decodes to {len(der)} bytes that are not a DER X.509 certificate."
        ) from None


def client_cert_header_from_nginx(escaped_pem: str | None) -> str:
    """Turn nginx's ``$ssl_client_escaped_cert`` (URL-encoded PEM) into an RFC 9440 ``Client-Cert`` value.

    URL-decode, take the one PEM certificate, drop its armour lines and line
    breaks: what remains is base64 of the DER, the byte sequence RFC 9440
    wants. The result is checked by parsing it, so a damaged value is refused
    here with a :class:`ClientCertHeaderError`, not passed on.
    """
    if escaped_pem is None or not escaped_pem.strip():
        raise ClientCertHeaderError("No certificate from nginx: the header is missing or empty.")
    if len(escaped_pem) > 3 * MAX_CLIENT_CERT_HEADER:  # URL-encoding can triple a PEM's length
        raise ClientCertHeaderError(
            f"nginx's certificate header is {len(escaped_pem)} characters, over the limit: refused unread."
        )
    try:
        pem = unquote(escaped_pem, errors="strict") if "%" in escaped_pem else escaped_pem
    except UnicodeDecodeError:  # %FF and the like: bytes that are no UTF-8, so no PEM either
        raise ClientCertHeaderError("nginx's certificate header is not URL-encoded UTF-8.") from None
    blocks = _PEM_CERTIFICATE.findall(pem)
    if len(blocks) != 1:
        raise ClientCertHeaderError(
            f"nginx's certificate header holds {len(blocks)} PEM certificates; exactly one was expected."
        )
    value = ":" + "".join(blocks[0].split()) + ":"
    parse_client_cert_header(value)
    return value


def nginx_escaped_pem(certificate: x509.Certificate) -> str:
    """``certificate`` as nginx's ``$ssl_client_escaped_cert`` spells it: its PEM, URL-encoded.

    nginx escapes the PEM as a URI component: letters, digits and ``-._~``
    stay as they are; spaces, line breaks, ``+``, ``/`` and ``=`` become
    ``%20``, ``%0A``, ``%2B``, ``%2F`` and ``%3D``.
    """
    return quote(certificate.public_bytes(Encoding.PEM).decode("ascii"), safe="-._~")
