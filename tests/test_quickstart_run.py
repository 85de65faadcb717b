"""deploy/kind/quickstart.sh run end to end with docker, kind, helm and kubectl played by stubs.

Docker is not available here, so the tools the script drives are replaced at their command
line: each stub records its arguments (and what it reads on stdin) and answers what the real
tool would print for the few calls whose output the script uses. What is checked is the
script's own part: the order of the steps, the pinned chart and its settings, the RBAC it
applies (the service's own ``print_sandbox_rbac``), and the environment file it leaves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "deploy" / "kind" / "quickstart.sh"

STUB = """#!/usr/bin/env python3
import json, os, sys
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"tool": name, "args": args, "stdin": stdin}) + "\\n")
if name == "kind" and args[:2] == ["get", "kubeconfig"]:
    print("apiVersion: v1\\nkind: Config\\nclusters: []\\n")
if name == "kubectl" and "--dry-run=client" in args:
    namespace = args[args.index("namespace") + 1]
    print("apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: " + namespace)
"""


@pytest.fixture
def stubbed_tools(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "helm"):
        stub = bin_dir / tool
        stub.write_text(STUB)
        stub.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "STUB_LOG": str(tmp_path / "calls.jsonl"),
        "CLUSTER_NAME": f"qs-test-{uuid.uuid4().hex[:8]}",
    }


def calls(env: dict[str, str]) -> list[dict]:
    return [json.loads(line) for line in Path(env["STUB_LOG"]).read_text().splitlines()]


@pytest.mark.slow
def test_the_quick_start_creates_the_cluster_installs_kubescape_and_writes_the_env(
    stubbed_tools,
):
    env, name = stubbed_tools, stubbed_tools["CLUSTER_NAME"]
    written = [REPO / "var" / f"kind-{name}.env", REPO / "var" / f"kind-{name}.kubeconfig"]
    try:
        done = subprocess.run(
            ["bash", str(QUICKSTART)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        seen = calls(env)
        steps = [(c["tool"], c["args"][0]) for c in seen]
        assert steps.index(("kind", "create")) < steps.index(("helm", "upgrade"))
        assert steps.index(("helm", "upgrade")) < steps.index(("kubectl", "--context"))

        (install,) = [c["args"] for c in seen if c["tool"] == "helm" and c["args"][0] == "upgrade"]
        assert install[install.index("--version") + 1] == "1.40.3"
        assert install[install.index("--kube-context") + 1] == f"kind-{name}"
        settings = {install[i + 1] for i, arg in enumerate(install) if arg == "--set"}
        assert {
            f"clusterName={name}",
            "capabilities.relevancy=enable",
            "capabilities.vulnerabilityScan=enable",
        } <= settings

        applied = [
            doc
            for c in seen
            if c["tool"] == "kubectl" and "apply" in c["args"]
            for doc in yaml.safe_load_all(c["stdin"])
            if doc
        ]
        assert expected_rbac() == [doc for doc in applied if doc["kind"] != "Namespace"]
        assert {doc["metadata"]["name"] for doc in applied if doc["kind"] == "Namespace"} == {
            "vexxy-sandbox",
            "vexxy",
        }
        assert all(
            c["args"][:2] == ["--context", f"kind-{name}"] for c in seen if c["tool"] == "kubectl"
        )

        exported = dict(
            line.removeprefix("export ").split("=", 1)
            for line in written[0].read_text().splitlines()
        )
        assert exported["SANDBOX_ENABLED"] == "true"
        assert exported["K8S_IN_CLUSTER"] == "false"
        assert Path(exported["KUBECONFIG"]) == written[1]
        assert yaml.safe_load(written[1].read_text())["kind"] == "Config"
        assert oct(written[1].stat().st_mode & 0o777) == "0o600"
        assert f"kind delete cluster --name {name}" in done.stdout
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def test_the_quick_start_names_every_missing_tool(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "python3", "make"):  # what the script needs to get that far
        (bin_dir / tool).symlink_to(shutil.which(tool))
    done = subprocess.run(
        ["bash", str(QUICKSTART)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "not installed: docker kind kubectl helm" in done.stderr


def expected_rbac() -> list[dict]:
    out = StringIO()
    call_command("print_sandbox_rbac", stdout=out)
    return [doc for doc in yaml.safe_load_all(out.getvalue()) if doc]
