"""An `ssl` module for a CPython without OpenSSL: importable, configurable, never connecting (guest side).

CPython for WASI has no `ssl`, yet boto3, botocore, urllib3 and requests import it and
build an `SSLContext` when a client or session is created, long before any request.
This module gives them the names they read and a context object they can configure;
only opening a TLS connection fails, with a message saying why (the guest has no
sockets: outbound HTTP goes through the host, with the host-capabilities work).
Installed as `sys.modules["ssl"]` at build time, before anything imports it.
"""

from __future__ import annotations

import enum
import sys
import types
from collections import namedtuple
from typing import Any

NO_TLS = (
    "TLS connections are not available inside firebox's WebAssembly sandbox (no sockets);"
    " outbound HTTP goes through the host's HTTP API"
)


class SSLError(OSError):
    """Base of the TLS errors, as in CPython's ssl."""


class SSLZeroReturnError(SSLError):
    pass


class SSLWantReadError(SSLError):
    pass


class SSLWantWriteError(SSLError):
    pass


class SSLSyscallError(SSLError):
    pass


class SSLEOFError(SSLError):
    pass


class SSLCertVerificationError(SSLError, ValueError):
    pass


class VerifyMode(enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2


class TLSVersion(enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    MAXIMUM_SUPPORTED = -1
    SSLv3 = 768
    TLSv1 = 769
    TLSv1_1 = 770
    TLSv1_2 = 771
    TLSv1_3 = 772


class Purpose(enum.Enum):
    SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
    CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"


_CONSTANTS = {
    "PROTOCOL_SSLv23": 2, "PROTOCOL_TLS": 2, "PROTOCOL_TLSv1": 3, "PROTOCOL_TLSv1_1": 4,
    "PROTOCOL_TLSv1_2": 5, "PROTOCOL_TLS_CLIENT": 16, "PROTOCOL_TLS_SERVER": 17,
    "OP_ALL": 0x80000054, "OP_NO_SSLv2": 0, "OP_NO_SSLv3": 0x2000000,
    "OP_NO_TLSv1": 0x4000000, "OP_NO_TLSv1_1": 0x10000000, "OP_NO_TLSv1_2": 0x8000000,
    "OP_NO_TLSv1_3": 0x20000000, "OP_NO_COMPRESSION": 0x20000, "OP_NO_TICKET": 0x4000,
    "OP_NO_RENEGOTIATION": 0x40000000, "OP_CIPHER_SERVER_PREFERENCE": 0x400000,
    "OP_SINGLE_DH_USE": 0, "OP_SINGLE_ECDH_USE": 0, "OP_ENABLE_MIDDLEBOX_COMPAT": 0x100000,
    "VERIFY_DEFAULT": 0, "VERIFY_CRL_CHECK_LEAF": 4, "VERIFY_CRL_CHECK_CHAIN": 12,
    "VERIFY_X509_STRICT": 0x20, "VERIFY_X509_TRUSTED_FIRST": 0x8000,
    "VERIFY_X509_PARTIAL_CHAIN": 0x80000, "VERIFY_ALLOW_PROXY_CERTS": 0x40,
    "SSL_ERROR_ZERO_RETURN": 6, "SSL_ERROR_WANT_READ": 2, "SSL_ERROR_WANT_WRITE": 3,
    "SSL_ERROR_WANT_X509_LOOKUP": 4, "SSL_ERROR_SYSCALL": 5, "SSL_ERROR_SSL": 1,
    "SSL_ERROR_WANT_CONNECT": 7, "SSL_ERROR_EOF": 8, "SSL_ERROR_INVALID_ERROR_CODE": 10,
    "HAS_SNI": True, "HAS_ALPN": True, "HAS_ECDH": True, "HAS_NPN": False,
    "HAS_NEVER_CHECK_COMMON_NAME": True, "HAS_TLSv1_3": True, "HAS_TLSv1_2": True,
    "HAS_TLSv1_1": False, "HAS_TLSv1": False, "HAS_SSLv2": False, "HAS_SSLv3": False,
    "HAS_PSK": False, "HAS_PHA": False,
    "OPENSSL_VERSION": "OpenSSL 3.0.0 (firebox: no TLS inside the guest)",
    "OPENSSL_VERSION_INFO": (3, 0, 0, 0, 0), "OPENSSL_VERSION_NUMBER": 0x30000000,
    "CHANNEL_BINDING_TYPES": ["tls-unique"],
}  # fmt: skip

DefaultVerifyPaths = namedtuple(
    "DefaultVerifyPaths",
    "cafile capath openssl_cafile_env openssl_cafile openssl_capath_env openssl_capath",
)


class SSLContext:
    """A TLS configuration that records its settings; wrapping a socket raises `SSLError`."""

    sslsocket_class: Any = None
    sslobject_class: Any = None

    def __init__(self, protocol: int = 16, *args: Any, **kwargs: Any) -> None:
        self.protocol = protocol
        self.options = _CONSTANTS["OP_ALL"]
        self.verify_mode = VerifyMode.CERT_REQUIRED if protocol == 16 else VerifyMode.CERT_NONE
        self.check_hostname = protocol == 16
        self.verify_flags = 0
        self.minimum_version = TLSVersion.MINIMUM_SUPPORTED
        self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
        self.post_handshake_auth = False
        self.hostname_checks_common_name = False
        self.keylog_filename: str | None = None
        self.security_level = 2

    def load_verify_locations(self, *args: Any, **kwargs: Any) -> None:
        return None

    def load_cert_chain(self, *args: Any, **kwargs: Any) -> None:
        return None

    def load_default_certs(self, *args: Any, **kwargs: Any) -> None:
        return None

    def set_default_verify_paths(self) -> None:
        return None

    def set_ciphers(self, ciphers: str) -> None:
        return None

    def set_alpn_protocols(self, protocols: Any) -> None:
        return None

    def set_npn_protocols(self, protocols: Any) -> None:
        return None

    def set_ecdh_curve(self, name: str) -> None:
        return None

    def get_ciphers(self) -> list[dict[str, Any]]:
        return []

    def get_ca_certs(self, binary_form: bool = False) -> list[Any]:
        return []

    def cert_store_stats(self) -> dict[str, int]:
        return {"x509": 0, "crl": 0, "x509_ca": 0}

    def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise SSLError(NO_TLS)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        raise SSLError(NO_TLS)


class SSLSocket:
    """Never made: `SSLContext.wrap_socket` raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise SSLError(NO_TLS)


class SSLObject(SSLSocket):
    pass


class MemoryBIO:
    def __init__(self) -> None:
        raise SSLError(NO_TLS)


def create_default_context(purpose: Purpose = Purpose.SERVER_AUTH, **kwargs: Any) -> SSLContext:
    """Return a client context, as CPython's does (it can be configured, not connected)."""
    return SSLContext(16 if purpose is Purpose.SERVER_AUTH else 17)


def _create_unverified_context(*args: Any, **kwargs: Any) -> SSLContext:
    context = SSLContext(16)
    context.check_hostname = False
    context.verify_mode = VerifyMode.CERT_NONE
    return context


def get_default_verify_paths() -> DefaultVerifyPaths:
    return DefaultVerifyPaths(None, None, "SSL_CERT_FILE", "", "SSL_CERT_DIR", "")


def DER_cert_to_PEM_cert(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.standard_b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def PEM_cert_to_DER_cert(pem: str) -> bytes:
    import base64

    inner = pem.strip().removeprefix("-----BEGIN CERTIFICATE-----")
    return base64.decodebytes(inner.removesuffix("-----END CERTIFICATE-----").encode())


def get_server_certificate(*args: Any, **kwargs: Any) -> str:
    raise SSLError(NO_TLS)


def RAND_bytes(n: int) -> bytes:
    import os

    return os.urandom(n)


def RAND_status() -> bool:
    return True


def _module() -> types.ModuleType:
    module = types.ModuleType("ssl", __doc__)
    module.__dict__.update(_CONSTANTS)
    for member in VerifyMode:
        setattr(module, member.name, member)
    names = (
        SSLError, SSLZeroReturnError, SSLWantReadError, SSLWantWriteError, SSLSyscallError,
        SSLEOFError, SSLCertVerificationError, VerifyMode, TLSVersion, Purpose,
        DefaultVerifyPaths, SSLContext, SSLSocket, SSLObject, MemoryBIO,
        create_default_context, _create_unverified_context, get_default_verify_paths,
        DER_cert_to_PEM_cert, PEM_cert_to_DER_cert, get_server_certificate, RAND_bytes,
        RAND_status,
    )  # fmt: skip
    for value in names:
        setattr(module, value.__name__, value)
    module.CertificateError = SSLCertVerificationError  # type: ignore[attr-defined]
    module._create_default_https_context = create_default_context  # type: ignore[attr-defined]
    module._create_stdlib_context = _create_unverified_context  # type: ignore[attr-defined]
    module.SSLContext.sslsocket_class = SSLSocket
    module.SSLContext.sslobject_class = SSLObject
    module.Options = int  # type: ignore[attr-defined]
    module.VerifyFlags = int  # type: ignore[attr-defined]
    return module


def install() -> None:
    """Register this module as `ssl` unless the interpreter has a real one."""
    try:
        import _ssl  # noqa: F401
    except ImportError:
        sys.modules.setdefault("ssl", _module())


install()
