"""Mutual TLS for the Dask grading cluster: who may talk to the scheduler, and in secret.

Why: a Dask scheduler runs whatever function any client sends it, on workers that run as root
(the sandbox needs it) next to the hidden split and the answer keys; and it takes any process
that says it is a worker, whose results the client then writes as grades. Plain ``tcp://``
leaves both to the network policies alone. With ``grading.dask_tls_dir`` set, the scheduler,
every worker and the client (``course grade``, so the hub's service) present a certificate
signed by the course's own CA and refuse every peer without one; the traffic (notebooks,
results) is encrypted. A ``LocalCluster`` (``grading.dask_scheduler`` empty) always uses
Dask's temporary in-memory certificates: on a shared machine another local user could
otherwise reach its loopback port.

The folder holds three files, made by ``course dask certs DIR``:

- ``ca.pem``: the CA's certificate (its key is not kept: a new bundle replaces the whole set);
- ``node.pem`` and ``node-key.pem``: the one certificate every peer presents, and its key.

Dask does not check host names (only the CA), so one certificate serves every role.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any

from autograder.errors import ConfigError

CA_FILE = "ca.pem"
CERT_FILE = "node.pem"
KEY_FILE = "node-key.pem"
TLS_FILES = (CA_FILE, CERT_FILE, KEY_FILE)
SCHEME = "tls://"


def tls_dir(root: Path, setting: str) -> Path | None:
    """``grading.dask_tls_dir`` as a folder (relative to the course root), None when unset."""
    if not setting:
        return None
    folder = Path(setting)
    return folder if folder.is_absolute() else root / folder


def scheme_problem(address: str, tls_set: bool) -> tuple[str, str, str] | None:
    """When ``grading.dask_scheduler`` and ``grading.dask_tls_dir`` disagree: the field at fault,
    what is wrong, and the fix. (A set with an empty address, a local cluster that makes its own
    certificates, is a mistake too: the set would go unused.)"""
    tls = address.startswith(SCHEME)
    if tls_set and not tls:
        return ("grading.dask_tls_dir", f"is set, but grading.dask_scheduler {address!r} is not a "
                "tls:// address", "write the scheduler's address as tls://host:port, or empty "
                "grading.dask_tls_dir")
    if tls and not tls_set:
        return ("grading.dask_scheduler", f"{address!r} speaks TLS, but grading.dask_tls_dir is "
                "empty", "make a set with `course dask certs DIR`, start the scheduler and the "
                "workers with its files (--tls-ca-file, --tls-cert, --tls-key), and name DIR in "
                "grading.dask_tls_dir")
    return None


def require_files(folder: Path) -> dict[str, Path]:
    """The three files, or :class:`ConfigError` naming each one missing."""
    files = {name: folder / name for name in TLS_FILES}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise ConfigError(
            f"grading.dask_tls_dir: {folder} lacks {', '.join(missing)}",
            hint=f"make the set with `course dask certs {folder}` and give the same files to the "
                 "scheduler and every worker (--tls-ca-file, --tls-cert, --tls-key)")
    return files


def client_security(folder: Path | None) -> Any:
    """The client's :class:`distributed.Security` for a cluster that requires TLS, or None."""
    if folder is None:
        return None
    from distributed import Security

    files = require_files(folder)
    return Security(require_encryption=True, tls_ca_file=str(files[CA_FILE]),
                    tls_client_cert=str(files[CERT_FILE]), tls_client_key=str(files[KEY_FILE]))


def cli_args(folder: Path | str) -> list[str]:
    """``dask scheduler`` / ``dask worker`` options that make it present and require the set."""
    folder = Path(folder)
    return ["--tls-ca-file", str(folder / CA_FILE), "--tls-cert", str(folder / CERT_FILE),
            "--tls-key", str(folder / KEY_FILE)]


def make_certs(folder: Path, *, hosts: tuple[str, ...] = (), days: int = 365) -> dict[str, Path]:
    """A new CA and one certificate it signed, valid ``days`` from now, written to ``folder``
    (created mode 0700; the key 0600). ``hosts`` go into the certificate's names (Dask does
    not check them; other TLS tools may). Replaces an older set in the folder."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if days < 1:
        raise ConfigError(f"--days {days}: a certificate must be valid for at least one day",
                          hint="give a positive number of days")
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "course-autograder"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("course grading CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for host in dict.fromkeys(("localhost", *hosts)):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(name("course grading node"))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = serialization.Encoding.PEM
    files = {CA_FILE: ca.public_bytes(pem), CERT_FILE: cert.public_bytes(pem),
             KEY_FILE: key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())}
    written = {}
    for file_name, data in files.items():
        path = folder / file_name
        tmp = path.with_name(path.name + ".new")
        tmp.unlink(missing_ok=True)  # a leftover would keep its own mode: the key goes in fresh
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600 if file_name == KEY_FILE else 0o644)
        with os.fdopen(fd, "wb") as sink:
            sink.write(data)
        os.replace(tmp, path)
        written[file_name] = path
    return written
