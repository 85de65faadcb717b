"""Kubescape's instance IDs and slugs, checked against objects Kubescape really wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from analysis.sandbox.identity import ContainerInstance, image_slug, instance_slug, summary_name

SAMPLES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("instance", "slug"),
    [
        (
            ContainerInstance(
                "apps/v1", "kube-system", "ReplicaSet", "coredns-5d78c9869d", "coredns"
            ),
            "replicaset-coredns-5d78c9869d-coredns-185f-129c",
        ),
        (
            ContainerInstance(
                "apps/v1",
                "node-agent-test-hjjz",
                "ReplicaSet",
                "multiple-containers-deployment-d4b8dd5fd",
                "nginx",
            ),
            "replicaset-multiple-containers-deployment-d4b8dd5fd-nginx-42c9-63c3",
        ),
    ],
)
def test_slugs_of_real_container_profiles(instance, slug):
    assert instance.slug == slug


@pytest.mark.parametrize("sample", ["containerprofile-p1.json", "containerprofile-p12.json"])
def test_the_profiles_name_is_the_slug_of_its_instance_id(sample):
    profile = json.loads((SAMPLES / sample).read_text())
    instance_id = profile["annotations"]["kubescape.io/instance-id"]
    instance = ContainerInstance.from_instance_id(instance_id)
    assert instance.instance_id == instance_id
    # node-agent writes time-series parts as <slug>-<32 hex>; storage strips the suffix.
    assert profile["name"] == f"{instance.slug}-{profile['name'][-32:]}"


def test_long_slugs_are_cut_and_keep_the_hash():
    name = "a" * 300
    instance_id = f"apiVersion-apps/v1/namespace-ns/kind-ReplicaSet/name-{name}/containerName-app"
    digest = hashlib.sha256(instance_id.encode()).hexdigest()
    suffix = f"-{digest[:4]}-{digest[-4:]}"
    slug = instance_slug("ReplicaSet", name, "app", instance_id)
    assert slug == f"replicaset-{name}-app{suffix}"[:243] + suffix


def test_summary_and_image_slugs():
    assert summary_name("Deployment", "web", "target") == "deployment-web-target"
    assert image_slug("docker.io/library/nginx:1.25", "sha256:" + "0" * 58 + "c2b8f1") == (
        "docker.io-library-nginx-1.25-c2b8f1"
    )


def test_not_every_string_is_an_instance_id():
    assert ContainerInstance.from_instance_id("wlid://cluster-x/namespace-y/deployment-z") is None
