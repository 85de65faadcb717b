"""The image as a VEX product, once per digest the service knows for it.

Scanners query with the digest they recorded for the image: for a multi-arch
image usually the index digest, otherwise the platform manifest's. The
submitted digest, the pod's ``imageID`` and Kubescape's image digests can be
either, so every one of them becomes a product. Each product's ``@id`` is the
unqualified OCI purl both scanners match; ``identifiers`` keeps the fuller
purl (repository and tag) for people and exact-string consumers, and
``hashes`` the bare digest that Grype also matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from analysis.image_reference import parse_image_reference
from analysis.vex.purls import oci_purl


def image_products(image_ref: str, digests: Iterable[str]) -> list[dict[str, Any]]:
    """One OpenVEX product (without subcomponents) per digest."""
    reference = parse_image_reference(image_ref)
    qualifiers = {"repository_url": f"{reference.registry}/{reference.repository}"}
    if reference.tag:
        qualifiers["tag"] = reference.tag
    return [
        {
            "@id": oci_purl(reference.name, digest),
            "identifiers": {"purl": oci_purl(reference.name, digest, qualifiers)},
            "hashes": {"sha-256": digest.removeprefix("sha256:")},
        }
        for digest in digests
    ]
