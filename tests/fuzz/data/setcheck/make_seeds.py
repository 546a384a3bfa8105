#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Seeds for tests/fuzz/fuzz_setcheck.c (needs python3-cryptography).

usage: make_seeds.py CORPUS_DIR
Makes the fuzz-only test CA beside this script (ca.crt, ca.key) when it is
missing, then one seed per case in CORPUS_DIR, each only when that file is
missing (keys are random: remaking would churn the corpus): flags byte, tls.key and
tls.crt lengths (16-bit big-endian), tls.key, tls.crt, ca.crt (the rest),
as the fuzzer reads them. Dates are fixed around the fuzzer's clock
(FUZZ_NOW, 2026-12-01T00:00:00Z), so the valid sets stay valid for it.
"""
import datetime
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
MIN = datetime.timedelta(minutes=1)
# What the fuzzer's identity asks for (fuzz_setcheck.c).
URI = "spiffe://example.org/dev/fz"
DNS = "fz.example.org"
IP = "127.0.0.1"
VALIDITY = datetime.timedelta(hours=1)
EMAIL = "ops@example.org"
F_SERVER, F_RESIGN, F_EMAIL = 1, 2, 4


def pem_key(k, traditional=False):
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else \
        serialization.PrivateFormat.PKCS8
    return k.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def name(*pairs):
    return x509.Name([x509.NameAttribute(oid, v) for oid, v in pairs])


def make_ca(cn, key=None, signer=None, signer_key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    subj = name((NameOID.COMMON_NAME, cn))
    b = (x509.CertificateBuilder().subject_name(subj)
         .issuer_name(signer.subject if signer else subj)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
         .not_valid_after(datetime.datetime(2036, 1, 1, tzinfo=datetime.timezone.utc))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                        critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False))
    return b.sign(signer_key or key, hashes.SHA256()), key


def leaf(ca, ca_key, key=None, server=False, ca_true=False, eku=None, extra_dns=False,
         subject=None, not_before=None, life=None, ku_cert_sign=False):
    key = key or ec.generate_private_key(ec.SECP256R1())
    nb = not_before or NOW - 10 * MIN
    life = life or VALIDITY + 5 * MIN  # the local issuer backdates 5 minutes
    sans = [x509.UniformResourceIdentifier(URI)]
    if server:
        sans += [x509.DNSName(DNS), x509.IPAddress(__import__("ipaddress").ip_address(IP))]
    if extra_dns:
        sans.append(x509.DNSName("evil.example.org"))
    if eku is None:
        eku = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    subject = subject or name((NameOID.COUNTRY_NAME, "LK"),
                              (NameOID.ORGANIZATION_NAME, "Example, Inc."),
                              (NameOID.COMMON_NAME, "dev.fz"))
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(nb + life)
         .add_extension(x509.BasicConstraints(ca=ca_true, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, True, False, False, ku_cert_sign, False,
                                      False, False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
         .add_extension(x509.SubjectAlternativeName(sans), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    return b.sign(ca_key, hashes.SHA256()), key


def seed(out, label, flags, key, crt, ca):
    if os.path.exists(os.path.join(out, label)):
        return
    with open(os.path.join(out, label), "wb") as f:
        f.write(struct.pack(">BHH", flags, len(key), len(crt)) + key + crt + ca)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    crt_path, key_path = os.path.join(HERE, "ca.crt"), os.path.join(HERE, "ca.key")
    if not os.path.exists(crt_path):
        ca, ca_key = make_ca("Duet Fuzz Root CA")
        open(crt_path, "wb").write(pem_cert(ca))
        open(key_path, "wb").write(pem_key(ca_key))
    ca = x509.load_pem_x509_certificate(open(crt_path, "rb").read())
    ca_key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
    ca_pem = pem_cert(ca)
    other, other_key = make_ca("Some Other CA")
    inter, inter_key = make_ca("Duet Fuzz Intermediate", signer=ca, signer_key=ca_key)

    c, k = leaf(ca, ca_key)
    seed(out, "client-valid", 0, pem_key(k), pem_cert(c), ca_pem)
    seed(out, "client-valid-resign", F_RESIGN, pem_key(k), pem_cert(c), ca_pem)
    seed(out, "client-valid-sec1-key", 0, pem_key(k, True), pem_cert(c), ca_pem)
    seed(out, "key-mismatch", 0, pem_key(ec.generate_private_key(ec.SECP256R1())),
         pem_cert(c), ca_pem)
    seed(out, "truncated-cert", 0, pem_key(k), pem_cert(c)[:300], ca_pem)
    seed(out, "truncated-key", 0, pem_key(k)[:100], pem_cert(c), ca_pem)
    seed(out, "truncated-ca", 0, pem_key(k), pem_cert(c), ca_pem[:200])
    seed(out, "ca-crt-differs", 0, pem_key(k), pem_cert(c), pem_cert(other))
    seed(out, "empty", 0, b"", b"", b"")
    seed(out, "cert-as-key", 0, pem_cert(c), pem_cert(c), ca_pem)
    seed(out, "key-and-cert-in-crt", 0, pem_key(k), pem_cert(c) + pem_key(k), ca_pem)

    c, k = leaf(ca, ca_key, server=True)
    seed(out, "server-valid", F_SERVER, pem_key(k), pem_cert(c), ca_pem)
    seed(out, "server-as-client", 0, pem_key(k), pem_cert(c), ca_pem)

    c, k = leaf(other, other_key)
    seed(out, "other-ca", 0, pem_key(k), pem_cert(c), pem_cert(other))
    c, k = leaf(inter, inter_key)
    seed(out, "via-intermediate", 0, pem_key(k), pem_cert(c) + pem_cert(inter), ca_pem)

    cases = {
        "ca-true": dict(ca_true=True),
        "eku-both": dict(eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
        "extra-dns-san": dict(extra_dns=True),
        "extra-ou": dict(subject=name((NameOID.COUNTRY_NAME, "LK"),
                                      (NameOID.ORGANIZATION_NAME, "Example, Inc."),
                                      (NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
                                      (NameOID.COMMON_NAME, "dev.fz"))),
        "wrong-cn": dict(subject=name((NameOID.COUNTRY_NAME, "LK"),
                                      (NameOID.ORGANIZATION_NAME, "Example, Inc."),
                                      (NameOID.COMMON_NAME, "prod.fz"))),
        "lifetime-too-long": dict(life=datetime.timedelta(days=1)),
        "lifetime-too-short": dict(life=30 * MIN),
        "expired": dict(not_before=NOW - 3 * VALIDITY),
        "not-yet-valid": dict(not_before=NOW + VALIDITY),
        "ku-cert-sign": dict(ku_cert_sign=True),
        "rsa-key": dict(key=rsa.generate_private_key(65537, 2048)),
    }
    with_email = name((NameOID.COUNTRY_NAME, "LK"), (NameOID.ORGANIZATION_NAME, "Example, Inc."),
                      (NameOID.COMMON_NAME, "dev.fz"), (NameOID.EMAIL_ADDRESS, EMAIL))
    c, k = leaf(ca, ca_key, subject=with_email)
    seed(out, "email-valid", F_EMAIL, pem_key(k), pem_cert(c), ca_pem)
    seed(out, "email-unexpected", 0, pem_key(k), pem_cert(c), ca_pem)
    c, k = leaf(ca, ca_key, subject=name((NameOID.COUNTRY_NAME, "LK"),
                                         (NameOID.ORGANIZATION_NAME, "Example, Inc."),
                                         (NameOID.COMMON_NAME, "dev.fz"),
                                         (NameOID.EMAIL_ADDRESS, "root@example.org")))
    seed(out, "email-differs", F_EMAIL, pem_key(k), pem_cert(c), ca_pem)
    c, k = leaf(ca, ca_key)
    seed(out, "email-missing", F_EMAIL, pem_key(k), pem_cert(c), ca_pem)

    for label, kw in cases.items():
        c, k = leaf(ca, ca_key, **kw)
        seed(out, label, F_RESIGN if label == "ca-true" else 0, pem_key(k), pem_cert(c), ca_pem)


main()
