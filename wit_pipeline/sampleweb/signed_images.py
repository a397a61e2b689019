"""Images carrying an opt-out inside the file, for the sample web and the tests (issue #16 signals ``metadata``
and ``c2pa``).

- ``xmp_packet(value)``: an XMP packet whose ``plus:DataMining`` is ``value`` (a bare ``DMI-...`` code or its
  vocabulary URI), as an attribute of ``rdf:Description`` or as an element (``as_element``);
  ``jpeg_with_xmp_data_mining`` puts it in a JPEG's APP1 segment, ``png_with_xmp`` in a PNG iTXt chunk,
  ``webp_with_xmp`` in a WebP ``XMP `` chunk.
- ``jpeg_with_c2pa_training_mining(jpeg, entries)``: the JPEG signed with a C2PA manifest holding a
  ``cawg.training-mining`` assertion (``{"cawg.ai_training": "notAllowed", ...}``: entry -> use).
  c2pa-python's ``Builder`` signs it with an ES256 key whose certificate chain (a CA and a leaf) is
  generated in memory once per process with ``cryptography``: nothing downloaded, no secret on disk.
"""

from __future__ import annotations

import datetime
import io
import threading
import zlib
from functools import lru_cache

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def xmp_packet(value: str, *, as_element: bool = False) -> bytes:
    """An XMP packet with ``plus:DataMining`` = ``value``."""
    if as_element:
        description = (f'<rdf:Description rdf:about="" xmlns:plus="{PLUS_NS}">'
                       f"<plus:DataMining>{value}</plus:DataMining></rdf:Description>")
    else:
        description = f'<rdf:Description rdf:about="" xmlns:plus="{PLUS_NS}" plus:DataMining="{value}"/>'
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'{description}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode("utf-8")


def jpeg_with_xmp_data_mining(jpeg: bytes, value: str, *, as_element: bool = False) -> bytes:
    """``jpeg`` with an APP1 XMP segment (right after SOI) whose ``plus:DataMining`` is ``value``."""
    payload = _JPEG_XMP + xmp_packet(value, as_element=as_element)
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def png_with_xmp(png: bytes, value: str, *, compressed: bool = False) -> bytes:
    """``png`` with an iTXt ``XML:com.adobe.xmp`` chunk (after IHDR), optionally deflated."""
    packet = xmp_packet(value)
    text = zlib.compress(packet) if compressed else packet
    data = b"XML:com.adobe.xmp\x00" + bytes([int(compressed), 0]) + b"\x00\x00" + text
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + _png_chunk(b"iTXt", data) + png[ihdr_end:]


def webp_with_xmp(webp: bytes, value: str) -> bytes:
    """``webp`` (a simple lossy/lossless WebP) with an ``XMP `` chunk appended; the RIFF size is updated. Readers
    expect VP8X flags for metadata; ours finds the chunk by walking the chunks."""
    packet = xmp_packet(value)
    chunk = b"XMP " + len(packet).to_bytes(4, "little") + packet + (b"\x00" if len(packet) & 1 else b"")
    body = webp[12:] + chunk
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


# -- C2PA --------------------------------------------------------------------------------------------------

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _certificate_chain() -> tuple[bytes, bytes]:
    """(leaf + CA certificates PEM, leaf private key PEM): a throwaway ES256 chain made in memory, valid for a
    day either side of now. C2PA refuses a self-signed signing certificate, so the leaf is issued by a CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wit-pipeline sample web")])

    def usage(signing: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=signing, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not signing,
                             crl_sign=not signing, encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.timezone.utc)
    span = datetime.timedelta(days=1)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def builder(subject: str, key) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(name(subject)).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - span).not_valid_after(now + span)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))

    ca = (builder("wit-pipeline sample web CA", ca_key).issuer_name(name("wit-pipeline sample web CA"))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(signing=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (builder("wit-pipeline sample web signer", leaf_key).issuer_name(ca.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(signing=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return chain, key


def training_mining_manifest(entries: dict[str, str], label: str = "cawg.training-mining") -> dict:
    """A manifest definition: a ``c2pa.created`` action (C2PA requires one) and the training/mining assertion."""
    return {
        "claim_generator_info": [{"name": "wit-pipeline sample web", "version": "1"}],
        "title": "signal.jpg", "format": "image/jpeg",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"}]}},
            {"label": label, "data": {"entries": {name: {"use": use} for name, use in entries.items()}}},
        ],
    }


def jpeg_with_c2pa_training_mining(jpeg: bytes, entries: dict[str, str], label: str = "cawg.training-mining"
                                   ) -> bytes:
    """``jpeg`` signed with a C2PA manifest whose ``label`` assertion has ``entries`` (entry -> use)."""
    import c2pa

    chain, key = _certificate_chain()
    with _lock:                              # one signing at a time: the sample web's threads may ask together
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))
        with signer, c2pa.Builder(training_mining_manifest(entries, label)) as builder:
            out = io.BytesIO()
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
    return out.getvalue()
