"""The shell scripts: deploy/**/*.sh (the kind quick start) and .ci/run.

Docker is not available here, so deploy/kind/quickstart.sh never runs against a real cluster:
it is checked by ``shellcheck`` (Debian's package; .ci/run installs it) and read here, and run
with stub tools in tests/test_quickstart_run.py. Without shellcheck the shellcheck tests are
skipped locally and fail in CI (``CI`` set).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.tools import required_tool

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "deploy" / "kind" / "quickstart.sh"
SCRIPTS = [*sorted((REPO / "deploy").rglob("*.sh")), REPO / ".ci" / "run"]


def script_id(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.fixture
def shellcheck() -> str:
    return required_tool("shellcheck", "shellcheck")


def test_the_quick_start_is_among_the_checked_scripts():
    assert QUICKSTART in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=script_id)
def test_shellcheck_finds_nothing(shellcheck, script):
    result = subprocess.run(
        [shellcheck, "--external-sources", str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=script_id)
def test_a_script_is_bash_executable_and_stops_at_the_first_error(script):
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert os.access(script, os.X_OK), f"chmod +x {script_id(script)}"
    # The first command, after the header comments.
    first = next(line for line in lines[1:] if line.strip() and not line.startswith("#"))
    assert first == "set -euo pipefail"


def quickstart() -> str:
    return QUICKSTART.read_text()


def helm_install() -> str:
    """The `helm upgrade --install` command, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", quickstart())
    (command,) = [line for line in joined.splitlines() if line.startswith("helm upgrade")]
    return command


def test_the_kubescape_chart_version_is_pinned_in_one_variable():
    versions = re.findall(r"^KUBESCAPE_CHART_VERSION=(\S*)$", quickstart(), re.MULTILINE)
    assert len(versions) == 1, versions
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions[0]), versions[0]
    command = helm_install()
    assert '--version "$KUBESCAPE_CHART_VERSION"' in command
    assert command.count("--version") == 1


def test_the_operator_is_installed_with_what_the_service_needs():
    command = helm_install()
    assert "--install kubescape kubescape/kubescape-operator" in command
    assert {"--create-namespace", "--wait", "--namespace"} <= set(command.split())
    sets = dict(re.findall(r"--set (\S+?)=(\S+)", command))
    assert sets["clusterName"] == '"$CLUSTER_NAME"'
    assert sets["capabilities.relevancy"] == "enable"
    assert sets["capabilities.vulnerabilityScan"] == "enable"
    assert "https://kubescape.github.io/helm-charts/" in quickstart()


def test_it_waits_for_the_storage_apiservice_the_service_checks():
    text = quickstart()
    assert f"APISERVICE={settings.KUBESCAPE_APISERVICE}\n" in text
    assert 'wait --for=condition=Available "apiservice/$APISERVICE"' in text


def test_it_applies_the_services_own_rbac_and_writes_the_environment_of_make_run():
    text = quickstart()
    assert re.search(r"\.venv/bin/python manage\.py print_sandbox_rbac .*\n.*\| kubectl", text)
    settings_text = (REPO / "vexxy" / "settings.py").read_text()
    for line in (
        "export SANDBOX_ENABLED=true",
        "export K8S_IN_CLUSTER=false",
        "export KUBECONFIG=$KUBECONFIG_FILE",
        "export K8S_SANDBOX_NAMESPACE=$SANDBOX_NAMESPACE",
    ):
        assert f"\n{line}\n" in text
        name = line.split()[1].split("=")[0]
        assert f'"{name}"' in settings_text, f"settings.py does not read {name}"
    assert "make run" in text
    assert "manage.py create_api_key --json" in text
    assert "/api/v1/analysis/submit" in text


def test_it_says_how_it_is_checked_without_a_cluster():
    header = quickstart().split("set -euo pipefail")[0]
    assert "never run there against a real cluster" in header
    assert "shellcheck" in header
    assert "tests/test_quickstart_run.py" in header
