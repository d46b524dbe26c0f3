"""API keys, tenants, rate limits and mutual TLS on a real gateway (gRPC and the OpenAI HTTP API) in
this process, with a throwaway CA; what the logs and metrics hold afterwards."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import httpx
import numpy as np
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.client import AnomalyClient, LLMClient
from server.client_channel import ChannelSecurity
from server.security.api_keys import key_digest, new_key
from tests.support.in_process_gateway import Gateway, gateway_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
X = np.ones((2, 9), dtype=np.float32)


def _cert(subject: str, key, issuer=None, issuer_key=None, ca: bool = False, sans=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer_key is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path.with_suffix(".crt"), path.with_suffix(".key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate it signed, and one it did not."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("stackserve test CA", ca_key, ca=True)
    _write(d / "ca", ca, ca_key)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    sans = (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"))
    _write(d / "server", _cert("localhost", srv_key, ca, ca_key, sans=sans), srv_key)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    _write(d / "client", _cert("client-a", cli_key, ca, ca_key), cli_key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    _write(d / "rogue", _cert("rogue", rogue_key), rogue_key)  # self-signed: not from our CA
    return {n: d / n for n in ("ca", "server", "client", "rogue")}


@pytest.fixture(scope="module")
def secured(trained, settings, pki, tmp_path_factory, shared_llm):
    keys = {"alpha": new_key(), "beta": new_key()}
    log = tmp_path_factory.mktemp("logs") / "access.log"
    cfg = gateway_settings(
        settings.data_dir,
        security={
            "tenants": [
                {"name": "alpha", "key_sha256": [key_digest(keys["alpha"])]},
                {"name": "beta", "key_sha256": [key_digest(keys["beta"])], "services": ["anomaly"],
                 "requests_per_s": 0.01, "burst": 3},
            ],
            "tls": {"cert": str(pki["server"].with_suffix(".crt")), "key": str(pki["server"].with_suffix(".key")),
                    "client_ca": str(pki["ca"].with_suffix(".crt")), "metrics": True},
            "access_log_file": str(log),
        },
    )
    g = Gateway(cfg, shared_llm)
    yield g, keys, log
    g.close()


def sec(pki, key: str | None, who: str = "client") -> ChannelSecurity:
    return ChannelSecurity(key, pki["ca"].with_suffix(".crt"), pki[who].with_suffix(".crt"),
                           pki[who].with_suffix(".key"))


def code_of(fn) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value


def test_health_is_open_and_every_service_needs_a_key(secured, pki):
    g, keys, _ = secured
    addr = f"127.0.0.1:{g.gw.port}"
    with AnomalyClient(addr, security=sec(pki, None)) as c:
        assert c.health() == "SERVING"  # probes carry no key
        err = code_of(lambda: c.score(X, model="shuttle-rf"))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "API key" in err.details()
    with AnomalyClient(addr, security=sec(pki, keys["alpha"] + "0")) as c:
        err = code_of(lambda: c.score(X, model="shuttle-rf"))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and keys["alpha"] not in err.details()
    with AnomalyClient(addr, security=sec(pki, keys["alpha"])) as c:
        assert c.score(X, model="shuttle-rf").scores.shape == (2,)


def test_tenant_services_and_rate_limit(secured, pki):
    g, keys, _ = secured
    addr = f"127.0.0.1:{g.gw.port}"
    with LLMClient(addr, security=sec(pki, keys["beta"])) as c:
        err = code_of(lambda: c.complete("Hi", max_tokens=2))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "llm" in err.details()
    with AnomalyClient(addr, security=sec(pki, keys["beta"])) as c:
        results = []
        for _ in range(5):  # burst 3 (a refused service spends none), one token per 100 s after
            try:
                results.append(c.score(X, model="shuttle-rf").scores.shape)
            except grpc.RpcError as exc:
                results.append(exc.code())
        assert results[:3] == [(2,)] * 3
        assert results[3:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    with LLMClient(addr, security=sec(pki, keys["alpha"])) as c:  # alpha: every service, no limit
        assert c.complete("Hi", max_tokens=2, temperature=0).usage.completion_tokens >= 1


def test_tls_refuses_plaintext_unknown_and_certless_clients(secured, pki):
    g, keys, _ = secured
    addr = f"127.0.0.1:{g.gw.port}"
    for security in (ChannelSecurity(keys["alpha"]),  # plaintext to a TLS port
                     ChannelSecurity(keys["alpha"], pki["ca"].with_suffix(".crt")),  # TLS, no client certificate
                     sec(pki, keys["alpha"], who="rogue")):  # a certificate our CA did not sign
        with AnomalyClient(addr, security=security) as c:
            err = code_of(lambda c=c: c.score(X, model="shuttle-rf", timeout=5))
            assert err.code() == grpc.StatusCode.UNAVAILABLE


def test_openai_api_over_mutual_tls_with_keys(secured, pki):
    g, keys, _ = secured
    base = f"https://127.0.0.1:{g.gw.openai_port}/v1"
    def tls(with_cert: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki["ca"].with_suffix(".crt")))
        if with_cert:
            ctx.load_cert_chain(str(pki["client"].with_suffix(".crt")), str(pki["client"].with_suffix(".key")))
        return ctx

    def client(key: str) -> openai.OpenAI:
        http = httpx.Client(verify=tls(True), timeout=60)
        return openai.OpenAI(base_url=base, api_key=key, max_retries=0, http_client=http)

    with client("ssk-wrong") as oc, pytest.raises(openai.AuthenticationError):
        oc.models.list()
    with client(keys["beta"]) as oc, pytest.raises(openai.PermissionDeniedError):
        oc.completions.create(model="", prompt="Hi", max_tokens=2)
    with client(keys["alpha"]) as oc:
        model = oc.models.list().data[0].id
        out = oc.completions.create(model=model, prompt="Hi", max_tokens=2, temperature=0)
        assert out.usage.completion_tokens >= 1
    with httpx.Client(verify=tls(False), timeout=10) as no_cert, \
            pytest.raises(httpx.HTTPError):  # the handshake fails without a client certificate
        no_cert.get(f"{base}/models", headers={"authorization": f"Bearer {keys['alpha']}"})


def test_no_key_or_prompt_in_the_access_log_or_metrics(secured, pki):
    g, keys, log = secured
    secret = f"a secret prompt {uuid.uuid4().hex}"
    with LLMClient(f"127.0.0.1:{g.gw.port}", security=sec(pki, keys["alpha"])) as c:
        c.complete(secret, max_tokens=2, temperature=0, request_id="sec-rid-1")
    with LLMClient(f"127.0.0.1:{g.gw.port}", security=sec(pki, keys["alpha"] + "x")) as c:
        code_of(lambda: c.complete(secret, max_tokens=2, request_id="sec-rid-2"))
    # the access log flushes every 0.2 s: wait for both calls' lines
    wait_until(lambda: log.exists() and all(rid in log.read_text() for rid in ("sec-rid-1", "sec-rid-2")), 10,
               "both calls' lines in the access log")
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if "sec-rid-" in ln]
    assert any('"tenant": "alpha"' in ln and '"code": "OK"' in ln for ln in lines), lines
    assert any('"code": "UNAUTHENTICATED"' in ln for ln in lines), lines
    metrics_url = f"https://127.0.0.1:{g.gw.metrics_port}/metrics"  # security.tls.metrics: mutual TLS
    scraper = ssl.create_default_context(cafile=pki["ca"].with_suffix(".crt"))
    scraper.load_cert_chain(pki["client"].with_suffix(".crt"), pki["client"].with_suffix(".key"))
    metrics = urllib.request.urlopen(metrics_url, timeout=10, context=scraper).read().decode()
    anonymous = ssl.create_default_context(cafile=pki["ca"].with_suffix(".crt"))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):  # no client certificate
        urllib.request.urlopen(metrics_url, timeout=10, context=anonymous).read()
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):  # plaintext
        urllib.request.urlopen(f"http://127.0.0.1:{g.gw.metrics_port}/metrics", timeout=10).read()
    assert 'code="UNAUTHENTICATED"' in metrics and 'code="PERMISSION_DENIED"' in metrics
    for where in (text, metrics):
        assert secret not in where
        for key in keys.values():
            assert key not in where and key_digest(key) not in where
