"""TLS on the channels python-ovs opens: every hypervisor's OVSDB and the controller's own
database (`--nb ssl:A:P,ssl:B:P,ssl:C:P`).

OpenFlow's TLS is os-ken's: `--ctl-privkey`, `--ctl-cert` (the controller's key and
certificate) and `--ca-certs` (the CA that signed the hypervisors' certificates). The
hypervisors' OVSDB follows them (today's rule: all three given). The database's options
follow the same names: `--nb-privkey`, `--nb-cert`, `--nb-ca-certs` (the CA that signed the
database servers' certificates), each defaulting to its OpenFlow twin.

python-ovs keeps one key, one certificate and one CA file for the whole process, so both
OVSDB channels present the same key and certificate (different ones are refused, naming
both), and the CAs they trust go into one file. `plan()` decides (pure), `check()` reads
every file once (an error names the option and the file), `use()` hands them to python-ovs.
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import re
import shutil
import ssl
import tempfile

from os_ken import cfg

OPTIONS = [
    cfg.StrOpt("nb-privkey", default=None,
               help="with --nb ssl:...: the controller's private key for its database (default: --ctl-privkey)"),
    cfg.StrOpt("nb-cert", default=None,
               help="with --nb ssl:...: the controller's certificate for its database (default: --ctl-cert)"),
    cfg.StrOpt("nb-ca-certs", default=None,
               help="with --nb ssl:...: the CA certificate(s) that signed the database servers' certificates "
                    "(default: --ca-certs)"),
]
cfg.CONF.register_cli_opts(OPTIONS)
_REMOTE = re.compile(r"^(?:(tcp|ssl):(?:\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d{1,5})|unix:(.+))$")


class TlsError(ValueError):
    """The TLS options do not fit together, or a file they name cannot be used; str() says which."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What python-ovs is given: (option, file) pairs, so every error names both."""
    key: tuple[str, str]
    cert: tuple[str, str]
    cas: tuple[tuple[str, str], ...]       # every CA the process trusts (one file per channel)
    hypervisors: bool                      # the hypervisors' OVSDB over SSL
    database: bool                         # the controller's database over SSL


def nb_remotes(nb: str) -> list[str]:
    """The servers in --nb, each checked: tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH, all
    encrypted or none (a cluster reached partly in clear text is not over TLS)."""
    remotes = [r.strip() for r in nb.split(",")]
    for r in remotes:
        m = _REMOTE.match(r)
        if not m or (m.group(2) and not 0 < int(m.group(2)) < 65536):
            raise TlsError(f"--nb {nb}: {r!r} is not a database server: give tcp:HOST:PORT, ssl:HOST:PORT "
                           "or unix:PATH (several: comma-separated)")
    if len({r.startswith("ssl:") for r in remotes}) > 1:
        raise TlsError(f"--nb {nb}: mixes ssl: and plain servers: give ssl: for all of them, or for none")
    return remotes


# the database's option, the OpenFlow option it defaults to, what it names
_TWINS = (("--nb-privkey", "--ctl-privkey", "private key"), ("--nb-cert", "--ctl-cert", "certificate"),
          ("--nb-ca-certs", "--ca-certs", "CA certificate"))


def plan(nb: str | None, ctl_privkey=None, ctl_cert=None, ca_certs=None,
         nb_privkey=None, nb_cert=None, nb_ca_certs=None) -> Plan | None:
    """Which OVSDB channels are TLS, and with what; None: neither. TlsError when the
    options contradict each other or one the database needs is missing."""
    given = {"--ctl-privkey": ctl_privkey, "--ctl-cert": ctl_cert, "--ca-certs": ca_certs,
             "--nb-privkey": nb_privkey, "--nb-cert": nb_cert, "--nb-ca-certs": nb_ca_certs}
    hypervisors = bool(ctl_privkey and ctl_cert and ca_certs)
    database = bool(nb) and all(r.startswith("ssl:") for r in nb_remotes(nb))
    stray = [mine for mine, _, _ in _TWINS if given[mine]]
    if stray and not database:
        raise TlsError(f"{', '.join(stray)} given, but the database is not reached over TLS: "
                       f"give its servers as --nb ssl:HOST:PORT,... (now: {nb or 'the embedded database'})")
    if not database:
        return Plan(("--ctl-privkey", ctl_privkey), ("--ctl-cert", ctl_cert), (("--ca-certs", ca_certs),),
                    True, False) if hypervisors else None
    chosen = []
    for mine, twin, what in _TWINS:
        if not (given[mine] or given[twin]):
            raise TlsError(f"--nb {nb}: the database over TLS needs the controller's {what}: "
                           f"give {mine} FILE (or {twin} FILE)")
        chosen.append((mine, given[mine]) if given[mine] else (twin, given[twin]))
    key, cert, ca = chosen
    if hypervisors:
        for mine, twin in ((key, "--ctl-privkey"), (cert, "--ctl-cert")):
            if not _same_file(mine[1], given[twin]):
                raise TlsError(f"{mine[0]} {mine[1]} and {twin} {given[twin]} differ: the hypervisors' OVSDB "
                               "and the database are opened by python-ovs, which presents one key and certificate "
                               "for the whole process: give the same files (or leave the --nb- ones out)")
    cas = []
    for option, path in ((("--ca-certs", ca_certs),) if hypervisors else ()) + (ca,):
        if not any(_same_file(path, known) for _, known in cas):
            cas.append((option, path))
    return Plan(key, cert, tuple(cas), hypervisors, True)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def check(p: Plan) -> None:
    """Read every file now, not at the first connection: a missing or unreadable file, a key
    that is not the certificate's, a CA file with no certificate: TlsError naming it."""
    for option, path in (p.key, p.cert, *p.cas):
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            raise TlsError(f"{option} {path}: cannot read it: {e.strerror or e}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(p.cert[1], p.key[1])
    except ssl.SSLError as e:
        raise TlsError(f"{p.cert[0]} {p.cert[1]} with {p.key[0]} {p.key[1]}: not a PEM certificate and "
                       f"its private key ({e.reason or e})") from None
    for option, path in p.cas:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(path)
        except ssl.SSLError as e:
            raise TlsError(f"{option} {path}: no PEM CA certificate in it ({e.reason or e})") from None


def use(p: Plan) -> None:
    """Give python-ovs the key, the certificate and the CAs (several: one file of them all,
    in a private directory removed when the process ends)."""
    import ovs.stream
    ca = p.cas[0][1]
    if len(p.cas) > 1:
        directory = tempfile.mkdtemp(prefix="packetwalk-tls-")
        atexit.register(shutil.rmtree, directory, True)
        ca = os.path.join(directory, "trusted-cas.pem")
        with open(ca, "wb") as out:
            for _, path in p.cas:
                with open(path, "rb") as f:
                    out.write(f.read().rstrip(b"\n") + b"\n")
    ovs.stream.Stream.ssl_set_private_key_file(p.key[1])
    ovs.stream.Stream.ssl_set_certificate_file(p.cert[1])
    ovs.stream.Stream.ssl_set_ca_cert_file(ca)


def configure(conf) -> str:
    """From the controller's options: check and set python-ovs's TLS; the scheme to open the
    hypervisors' OVSDB with ("ssl" or "tcp"). TlsError on a mistake."""
    p = plan(conf.nb, conf.ctl_privkey, conf.ctl_cert, conf.ca_certs, conf.nb_privkey, conf.nb_cert, conf.nb_ca_certs)
    if p is None:
        return "tcp"
    check(p)
    use(p)
    return "ssl" if p.hypervisors else "tcp"
