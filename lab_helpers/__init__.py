"""lab_helpers: the reusable code of the mTLS course.

Notebooks import what they use by name, for example
``from lab_helpers import CertificateAuthority, MTLSServer, attempt``.
Each name lives in a small module:

- ``pki``: keys, CSRs, a certificate authority with server and client profiles
- ``files``: the lab folder, atomic writes, loading with clear errors
- ``server``: the mTLS server on a background thread
- ``client``: a ``requests`` session for the lab, and ``attempt``
- ``describe``: a certificate in words
- ``errors``: the exceptions, each saying what to do
"""

from .client import DEFAULT_TIMEOUT, LabSession, Outcome, attempt, lab_session
from .describe import CertificateDescription, describe
from .errors import (
    KeyMismatchError,
    KeyPasswordError,
    LabError,
    LabFileMissingError,
    NotACAError,
    NotPEMError,
    TamperedCSRError,
)
from .files import (
    LabPaths,
    create_seed_pki,
    ensure_seed_pki,
    lab_dir,
    load_certificate,
    load_certificate_authority,
    load_csr,
    load_private_key,
    save_certificate,
    save_csr,
    save_private_key,
    write_atomic,
)
from .identity import ClientIdentity, fingerprint, identity_from_certificate
from .pki import (
    CertificateAuthority,
    IssuedCertificate,
    create_csr,
    generate_private_key,
    key_matches_certificate,
)
from .server import LabRequestHandler, MTLSServer, Rejection, build_server_context, running_servers

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT", "LabSession", "Outcome", "attempt", "lab_session",
    "CertificateDescription", "describe",
    "KeyMismatchError", "KeyPasswordError", "LabError", "LabFileMissingError",
    "NotACAError", "NotPEMError", "TamperedCSRError",
    "LabPaths", "create_seed_pki", "ensure_seed_pki", "lab_dir", "load_certificate",
    "load_certificate_authority", "load_csr", "load_private_key", "save_certificate",
    "save_csr", "save_private_key", "write_atomic",
    "ClientIdentity", "fingerprint", "identity_from_certificate",
    "CertificateAuthority", "IssuedCertificate", "create_csr", "generate_private_key",
    "key_matches_certificate",
    "LabRequestHandler", "MTLSServer", "Rejection", "build_server_context", "running_servers",
]
