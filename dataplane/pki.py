"""The lab's own PKI: three certificate authorities and the certificates the lab uses.

    controller CA   signs exactly one certificate: the controller's. Every hypervisor
                    trusts only this CA, so its OVSDB server accepts only the controller
                    as a client, and its OpenFlow connection talks only to the controller.
    hypervisor CA   signs each hypervisor's certificate. The controller trusts this CA for
                    the hypervisors' OpenFlow connections and their OVSDB servers.
    database CA     signs each member's certificate of the controller's database (a Raft
                    cluster, --nb-cluster). A member trusts this CA (its Raft peers) and the
                    controller CA (the controllers, and the lab's own queries, which present
                    the controller's certificate); the controller trusts it for --nb ssl:.

So one hypervisor cannot log in to another's OVSDB (its certificate is from the wrong CA),
no hypervisor can open the controller's database, and nothing without a certificate gets a
TLS session at all. Keys are ECDSA P-256; files
are PEM, the format OVS (--private-key, --certificate, --ca-cert, set-ssl), os-ken
(--ctl-privkey, --ctl-cert, --ca-certs) and python-ovs (Stream.ssl_set_*) read.

On real hosts the same layout is made with `ovs-pki` (see README).
"""
from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=30)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What one party presents (key, cert) and what it trusts (ca)."""
    key: Path
    cert: Path
    ca: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "packetwalk lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _cert(subject: str, key, issuer_name: x509.Name, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    return b.sign(issuer_key, hashes.SHA256())


class _Authority:
    def __init__(self, directory: Path, name: str):
        self.dir, self.name = directory, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.subject = _name(f"packetwalk {name} CA")
        self.cert_path = directory / f"{name}-ca.pem"
        self.cert_path.write_bytes(_cert(f"packetwalk {name} CA", self.key, self.subject, self.key, True)
                                   .public_bytes(serialization.Encoding.PEM))

    def issue(self, who: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        key_path, cert_path = self.dir / f"{who}-privkey.pem", self.dir / f"{who}-cert.pem"
        _write_key(key_path, key)
        cert_path.write_bytes(_cert(who, key, self.subject, self.key, False).public_bytes(serialization.Encoding.PEM))
        return key_path, cert_path


class LabPKI:
    """Make the lab's CAs and certificates under `directory` (the CA keys stay in memory)."""

    def __init__(self, directory: Path, hypervisors: list[str], database_members: list[str] = ()):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        controller_ca, hypervisor_ca = _Authority(self.dir, "controller"), _Authority(self.dir, "hypervisor")
        key, cert = controller_ca.issue("controller")
        self.controller = Credentials(key, cert, hypervisor_ca.cert_path)
        self.hypervisors = {}
        for name in hypervisors:
            key, cert = hypervisor_ca.issue(name)
            self.hypervisors[name] = Credentials(key, cert, controller_ca.cert_path)
        self.database: dict[str, Credentials] = {}
        self.database_ca: Path | None = None
        if database_members:
            database_ca = _Authority(self.dir, "database")
            self.database_ca = database_ca.cert_path
            trusted = self.dir / "database-trusts.pem"      # one file, both CAs (OVS reads every one in it)
            trusted.write_bytes(database_ca.cert_path.read_bytes() + controller_ca.cert_path.read_bytes())
            for name in database_members:
                key, cert = database_ca.issue(name)
                self.database[name] = Credentials(key, cert, trusted)

    @property
    def database_client(self) -> Credentials:
        """What a client of the controller's database presents and trusts: the controller's
        certificate, and the database CA."""
        return Credentials(self.controller.key, self.controller.cert, self.database_ca)


def stranger(directory: Path) -> Credentials:
    """A certificate from a CA nobody in the lab trusts (for checks that it is refused)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = _Authority(directory, "stranger")
    key, cert = ca.issue("stranger")
    return Credentials(key, cert, ca.cert_path)
