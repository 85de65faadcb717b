"""Digests of an image as runtimes, Kubescape and registries write them."""

from __future__ import annotations

import pytest

from analysis.image_reference import digest_of, unique_digests

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("image_id", "digest"),
    [
        (f"docker.io/library/nginx@sha256:{HEX}", f"sha256:{HEX}"),  # containerd, Kubescape
        (f"docker-pullable://nginx@sha256:{HEX}", f"sha256:{HEX}"),  # dockershim
        (f"nginx@sha256:{HEX.upper()}", f"sha256:{HEX}"),  # a repo digest
        (f"sha256:{HEX}", f"sha256:{HEX}"),  # a manifest digest
        (f"docker://sha256:{HEX}", None),  # Docker's image ID: the config digest
        (f"nginx@sha256:{HEX[:-2]}", None),
        ("nginx:1.25", None),
        ("", None),
    ],
)
def test_digest_of(image_id, digest):
    assert digest_of(image_id) == digest


def test_unique_digests_keep_the_first_seen_order():
    assert unique_digests("sha256:b", None, "sha256:a", "", "sha256:b") == ("sha256:b", "sha256:a")
