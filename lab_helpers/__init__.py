"""lab_helpers: the reusable code of the mTLS course.

Notebooks import what they use by name, for example
``from lab_helpers import CertificateAuthority, MTLSServer, attempt``.
Each name lives in a small module:

- ``pki``: keys, CSRs, a certificate authority with server and client profiles
- ``files``: the lab folder, atomic writes, loading with clear errors
- ``server``: the mTLS server on a background thread
- ``client``: a ``requests`` session for the lab, and ``attempt``
- ``summary``: ``describe()``, a certificate in words
- ``diagnosis``: ``explain()``, a TLS failure in words: who rejected whom, why, the fix
- ``catalog``: the failure catalog, every common failure reproduced
- ``authz``: an access policy: which client may read which path
- ``wire``: the handshake traced, a recording proxy, session resumption
- ``chains``: offline chain verification (cryptography's path validation, plus CRLs)
- ``errors``: the exceptions, each saying what to do
- ``environment``: set environment variables for one experiment, restored exactly
- ``measuring``: how long notebook 12's measurements last (shorter in the course's tests)
- ``nginx``: a real nginx run from the lab folder (notebook 14)
- ``backend``: the application behind a proxy, on a thread
- ``forwarded``: the client certificate in a header: RFC 9440's ``Client-Cert`` and nginx's form
- ``stack_servers``: real uvicorn, aiohttp and gRPC servers on a thread (notebook 13)
- ``asgi_tls``: the ASGI TLS extension for uvicorn: the app learns its client's certificate
- ``stack_errors``: ``explain()`` for httpx, aiohttp, urllib3 and gRPC errors

Names are imported lazily, on first use: ``python -m lab_helpers pki`` then
starts without loading ``requests``, and a notebook pays only for what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "INSTALL_NGINX": "nginx",
    "Nginx": "nginx",
    "NginxError": "nginx",
    "NginxInfo": "nginx",
    "NginxUnavailable": "nginx",
    "find_nginx": "nginx",
    "nginx_available": "nginx",
    "nginx_info": "nginx",
    "running_nginx": "nginx",
    "Backend": "backend",
    "ForwardedRequest": "backend",
    "get_with_sni": "backend",
    "ClientCertHeaderError": "forwarded",
    "MAX_CLIENT_CERT_HEADER": "forwarded",
    "client_cert_header": "forwarded",
    "client_cert_header_from_nginx": "forwarded",
    "nginx_escaped_pem": "forwarded",
    "parse_client_cert_header": "forwarded",
    "HandshakeResult": "wire",
    "HandshakeTrace": "wire",
    "RecordingProxy": "wire",
    "TraceUnavailable": "wire",
    "handshake": "wire",
    "msg_callback_available": "wire",
    "parse_records": "wire",
    "trace_handshake": "wire",
    "key_shares": "wire",
    "ChainVerdict": "chains",
    "verify_chain": "chains",
    "server_certificate": "client",
    "save_chain": "files",
    "save_crl": "files",
    "load_crl": "files",
    "load_certificates": "files",
    "load_revocation_list": "server",
    "ANY_CLIENT": "authz",
    "AccessPolicy": "authz",
    "Decision": "authz",
    "CatalogLab": "catalog",
    "run_case": "catalog",
    "run_catalog": "catalog",
    "summary_table": "catalog",
    "Explanation": "diagnosis",
    "explain": "diagnosis",
    "TLSVersionAdapter": "client",
    "DEFAULT_TIMEOUT": "client",
    "LabSession": "client",
    "Outcome": "client",
    "attempt": "client",
    "lab_session": "client",
    "CertificateDescription": "summary",
    "describe": "summary",
    "creation_profile": "summary",
    "purpose_name": "oid_names",
    "signature_algorithm_name": "oid_names",
    "KeyMismatchError": "errors",
    "KeyPasswordError": "errors",
    "LabError": "errors",
    "LabFileMissingError": "errors",
    "NotACAError": "errors",
    "NotPEMError": "errors",
    "TamperedCSRError": "errors",
    "UnreadableCertificateError": "errors",
    "LabPaths": "files",
    "create_seed_pki": "files",
    "ensure_seed_pki": "files",
    "ensure_certificate_authority": "files",
    "lab_dir": "files",
    "load_certificate": "files",
    "load_certificate_authority": "files",
    "load_csr": "files",
    "load_private_key": "files",
    "save_certificate": "files",
    "save_csr": "files",
    "save_private_key": "files",
    "write_atomic": "files",
    "ClientIdentity": "identity",
    "fingerprint": "identity",
    "identity_from_certificate": "identity",
    "CertificateAuthority": "pki",
    "IssuedCertificate": "pki",
    "create_csr": "pki",
    "generate_private_key": "pki",
    "key_matches_certificate": "pki",
    "LabRequestHandler": "server",
    "MTLSServer": "server",
    "Rejection": "server",
    "build_server_context": "server",
    "running_servers": "server",
    "temporary_environment": "environment",
    "MEASURE_TIME_SCALE_VARIABLE": "measuring",
    "measure_time_scale": "measuring",
    "AiohttpServer": "stack_servers",
    "GrpcServer": "stack_servers",
    "UvicornServer": "stack_servers",
    "running_stack_servers": "stack_servers",
    "scope_client_certificate": "asgi_tls",
    "tls_extension": "asgi_tls",
    "with_tls_extension": "asgi_tls",
}

__version__ = "0.1.0"
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from .asgi_tls import scope_client_certificate, tls_extension, with_tls_extension
    from .authz import ANY_CLIENT, AccessPolicy, Decision
    from .backend import Backend, ForwardedRequest, get_with_sni
    from .catalog import CatalogLab, run_case, run_catalog, summary_table
    from .chains import ChainVerdict, verify_chain
    from .client import (
        DEFAULT_TIMEOUT,
        LabSession,
        Outcome,
        TLSVersionAdapter,
        attempt,
        lab_session,
        server_certificate,
    )
    from .diagnosis import Explanation, explain
    from .environment import temporary_environment
    from .errors import (
        KeyMismatchError,
        KeyPasswordError,
        LabError,
        LabFileMissingError,
        NotACAError,
        NotPEMError,
        TamperedCSRError,
        UnreadableCertificateError,
    )
    from .files import (
        LabPaths,
        create_seed_pki,
        ensure_certificate_authority,
        ensure_seed_pki,
        lab_dir,
        load_certificate,
        load_certificate_authority,
        load_certificates,
        load_crl,
        load_csr,
        load_private_key,
        save_certificate,
        save_chain,
        save_crl,
        save_csr,
        save_private_key,
        write_atomic,
    )
    from .forwarded import (
        MAX_CLIENT_CERT_HEADER,
        ClientCertHeaderError,
        client_cert_header,
        client_cert_header_from_nginx,
        nginx_escaped_pem,
        parse_client_cert_header,
    )
    from .identity import ClientIdentity, fingerprint, identity_from_certificate
    from .measuring import MEASURE_TIME_SCALE_VARIABLE, measure_time_scale
    from .nginx import (
        INSTALL_NGINX,
        Nginx,
        NginxError,
        NginxInfo,
        NginxUnavailable,
        find_nginx,
        nginx_available,
        nginx_info,
        running_nginx,
    )
    from .oid_names import purpose_name, signature_algorithm_name
    from .pki import (
        CertificateAuthority,
        IssuedCertificate,
        create_csr,
        generate_private_key,
        key_matches_certificate,
    )
    from .server import (
        LabRequestHandler,
        MTLSServer,
        Rejection,
        build_server_context,
        load_revocation_list,
        running_servers,
    )
    from .stack_servers import AiohttpServer, GrpcServer, UvicornServer, running_stack_servers
    from .summary import CertificateDescription, creation_profile, describe
    from .wire import (
        HandshakeResult,
        HandshakeTrace,
        RecordingProxy,
        TraceUnavailable,
        handshake,
        key_shares,
        msg_callback_available,
        parse_records,
        trace_handshake,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lab_helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
