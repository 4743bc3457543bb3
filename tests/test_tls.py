"""`use_ssl 1`: daemons serve and call each other over TLS, with a CA of the operator's."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cluster import Cluster


def _write_pki(root: Path) -> None:
    """A CA and a certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shinha test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("tls"))
    for role in ("arbiter", "scheduler", "poller", "dataserver", "receiver"):
        c.add(role, f"{role}-1", extra="  use_ssl 1\n  hard_ssl_name_check 1\n")
    c.objects = ("define command {\n command_name ok\n command_line $USER1$/check_dummy 0 "
                 "fine\n}\ndefine host {\n host_name web\n check_command ok\n"
                 " check_interval 1\n}\n")
    c.write()
    _write_pki(c.root)
    main = c.main.read_text()
    c.main.write_text(main + "ca_cert=ca.pem\nserver_cert=server.pem\nserver_key=server.key\n")
    c.scheme = "https"
    c.ca = str(c.root / "ca.pem")
    c.start_all()
    yield c
    c.stop_all()


def test_the_cluster_works_over_tls(tls_cluster: Cluster) -> None:
    c = tls_cluster
    view = c.wait(lambda: (v := c.get("arbiter-1", "/cluster"))["leading"] and all(
        d["alive"] and d["last_contact"] for d in v["daemons"]) and v, 30,
        "every daemon alive over TLS")
    assert len(view["daemons"]) == 5
    row = c.wait(lambda: next((r for r in c.get("dataserver-1", "/api/hosts")["items"]
                               if r["host"] == "web" and r["state"] == 0), None), 30,
                 "a host check result stored over TLS")
    assert row["output"] == "OK: fine"


def test_plain_http_and_unknown_ca_are_refused(tls_cluster: Cluster) -> None:
    d = tls_cluster.daemons["dataserver-1"]
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://{d.address}:{d.port}/ping", timeout=3)
    strict = ssl.create_default_context()  # the system CAs only: our CA is unknown to it
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(f"https://{d.address}:{d.port}/ping", timeout=3, context=strict)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
