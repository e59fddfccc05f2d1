"""Errors that tell the learner what to do next.

Every problem that a learner can cause (a missing file, a file that is not
PEM, a key that belongs to another certificate, a tampered CSR, a password
that is wrong) is raised as a :class:`LabError` subclass whose message ends
with the action that fixes it. Catching ``LabError`` catches them all.
"""

from __future__ import annotations

__all__ = [
    "KeyMismatchError",
    "KeyPasswordError",
    "LabError",
    "LabFileMissingError",
    "NotACAError",
    "NotPEMError",
    "TamperedCSRError",
    "UnreadableCertificateError",
]


class LabError(Exception):
    """Base class: something in the lab is not as it should be; the message says how to fix it."""


class LabFileMissingError(LabError, FileNotFoundError):
    """A lab file does not exist (it is also a FileNotFoundError, so plain code can catch it)."""


class NotPEMError(LabError, ValueError):
    """A file or blob is not the PEM object we expected (certificate, key or CSR)."""


class KeyMismatchError(LabError, ValueError):
    """A private key does not belong to the certificate it is paired with."""


class TamperedCSRError(LabError, ValueError):
    """A CSR's signature does not match its contents: it was changed after it was signed."""


class NotACAError(LabError, ValueError):
    """A certificate without BasicConstraints CA:TRUE was asked to sign something."""


class KeyPasswordError(LabError, ValueError):
    """An encrypted private key was loaded without its password, or with a wrong one."""


class UnreadableCertificateError(LabError, ValueError):
    """A certificate loads, but a part the lab needs (a name, the key, an extension) cannot be parsed."""
