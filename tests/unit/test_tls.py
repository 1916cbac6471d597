"""TLS options of the controller (controller/tls.py): which OVSDB channels go over TLS with
which files, and a clear error naming the option and the file for every mistake."""
from __future__ import annotations

import subprocess
import sys

import pytest

from controller import tls
from dataplane.pki import LabPKI

NB = "ssl:10.0.0.1:6641,ssl:10.0.0.2:6641,ssl:10.0.0.3:6641"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return LabPKI(tmp_path_factory.mktemp("pki"), ["hv1"], ["nbdb1"])


def ctl(pki) -> dict:
    c = pki.controller
    return {"ctl_privkey": str(c.key), "ctl_cert": str(c.cert), "ca_certs": str(c.ca)}


def test_no_tls_anywhere_is_no_plan():
    assert tls.plan(None) is None
    assert tls.plan("tcp:10.0.0.1:6641,tcp:10.0.0.2:6641") is None


def test_openflow_tls_alone_opens_the_hypervisors_ovsdb_with_the_same_files(pki):
    p = tls.plan(None, **ctl(pki))
    assert p.hypervisors and not p.database
    assert p.key == ("--ctl-privkey", str(pki.controller.key)) and p.cas == (("--ca-certs", str(pki.controller.ca)),)


def test_the_database_over_tls_trusts_both_cas_with_one_key(pki):
    p = tls.plan(NB, **ctl(pki), nb_ca_certs=str(pki.database_ca))
    assert p.hypervisors and p.database
    assert p.key == ("--ctl-privkey", str(pki.controller.key))
    assert p.cas == (("--ca-certs", str(pki.controller.ca)), ("--nb-ca-certs", str(pki.database_ca)))


def test_the_database_alone_over_tls_takes_its_own_options(pki):
    c = pki.database_client
    p = tls.plan(NB, nb_privkey=str(c.key), nb_cert=str(c.cert), nb_ca_certs=str(c.ca))
    assert p.database and not p.hypervisors
    assert p.key == ("--nb-privkey", str(c.key)) and p.cas == (("--nb-ca-certs", str(c.ca)),)


def test_the_same_ca_for_both_is_trusted_once(pki):
    p = tls.plan(NB, **ctl(pki))
    assert p.cas == (("--ca-certs", str(pki.controller.ca)),)


@pytest.mark.parametrize("nb, says", [
    ("tpc:10.0.0.1:6641", "'tpc:10.0.0.1:6641' is not a database server"),
    ("ssl:10.0.0.1", "'ssl:10.0.0.1' is not a database server"),
    ("ssl:10.0.0.1:99999", "'ssl:10.0.0.1:99999' is not a database server"),
    ("ssl:10.0.0.1:6641,tcp:10.0.0.2:6641", "mixes ssl: and plain servers"),
])
def test_a_bad_database_address_is_named(nb, says):
    with pytest.raises(tls.TlsError, match=says):
        tls.plan(nb)


def test_the_database_over_tls_without_a_key_says_which_option(pki):
    with pytest.raises(tls.TlsError, match=r"needs the controller's private key: give --nb-privkey FILE "
                                           r"\(or --ctl-privkey FILE\)"):
        tls.plan(NB, nb_cert=str(pki.controller.cert), nb_ca_certs=str(pki.database_ca))


def test_database_options_without_a_tls_database_are_refused(pki):
    with pytest.raises(tls.TlsError, match="--nb-ca-certs given, but the database is not reached over TLS"):
        tls.plan("tcp:10.0.0.1:6641", nb_ca_certs=str(pki.database_ca))


def test_two_different_keys_are_refused_naming_both(pki):
    other = pki.database["nbdb1"]
    with pytest.raises(tls.TlsError, match=f"--nb-privkey {other.key} and --ctl-privkey {pki.controller.key} differ"):
        tls.plan(NB, **ctl(pki), nb_privkey=str(other.key), nb_cert=str(other.cert))


def test_a_missing_key_file_is_named(pki, tmp_path):
    p = tls.plan(NB, **{**ctl(pki), "ctl_privkey": str(tmp_path / "nope.pem")}, nb_ca_certs=str(pki.database_ca))
    with pytest.raises(tls.TlsError, match=f"--ctl-privkey {tmp_path / 'nope.pem'}: cannot read it: "
                                           "No such file or directory"):
        tls.check(p)


def test_a_key_path_that_cannot_be_read_is_named(pki, tmp_path):
    """(A directory: unreadable as a file even for root, as CI runs.)"""
    p = tls.plan(NB, **{**ctl(pki), "ctl_privkey": str(tmp_path)})
    with pytest.raises(tls.TlsError, match=f"--ctl-privkey {tmp_path}: cannot read it: Is a directory"):
        tls.check(p)


def test_a_key_that_is_not_the_certificates_is_named(pki):
    p = tls.plan(NB, **{**ctl(pki), "ctl_privkey": str(pki.hypervisors["hv1"].key)})
    with pytest.raises(tls.TlsError, match=f"--ctl-cert {pki.controller.cert} with --ctl-privkey "
                                           f"{pki.hypervisors['hv1'].key}: not a PEM certificate and its private key"):
        tls.check(p)


def test_a_ca_file_with_no_certificate_is_named(pki, tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    p = tls.plan(NB, **ctl(pki), nb_ca_certs=str(junk))
    with pytest.raises(tls.TlsError, match=f"--nb-ca-certs {junk}: no PEM CA certificate in it"):
        tls.check(p)


def test_use_gives_python_ovs_one_file_with_every_ca(pki, monkeypatch):
    import ovs.stream
    for attr in ("_SSL_private_key_file", "_SSL_certificate_file", "_SSL_ca_cert_file"):
        monkeypatch.setattr(ovs.stream.Stream, attr, None)
    p = tls.plan(NB, **ctl(pki), nb_ca_certs=str(pki.database_ca))
    tls.check(p)
    tls.use(p)
    bundle = open(ovs.stream.Stream._SSL_ca_cert_file, "rb").read()
    assert ovs.stream.Stream._SSL_private_key_file == str(pki.controller.key)
    assert pki.controller.ca.read_bytes().strip() in bundle and pki.database_ca.read_bytes().strip() in bundle


def test_the_controller_refuses_a_missing_key_in_one_line_and_starts_nothing(pki, tmp_path):
    missing = tmp_path / "missing-privkey.pem"
    r = subprocess.run([sys.executable, "-m", "packetwalk.cli", "controller", "--nb", NB, "--api-port", "0",
                        "--ctl-privkey", str(missing), "--ctl-cert", str(pki.controller.cert),
                        "--ca-certs", str(pki.controller.ca), "--nb-ca-certs", str(pki.database_ca)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"--ctl-privkey {missing}: cannot read it: No such file or directory" in r.stderr
    assert "Traceback" not in r.stderr
