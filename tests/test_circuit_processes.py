"""A circuit's state is shared by processes through the service's cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from reliability.circuit import CircuitBreaker, CircuitState
from tests.reliability.test_circuit import rejected

REPO = Path(__file__).resolve().parent.parent


CHILD = textwrap.dedent("""
    import django

    django.setup()
    from reliability.circuit import CircuitBreaker

    breaker = CircuitBreaker("shared-test", failure_threshold=2, recovery_timeout=300)

    def down():
        raise ConnectionError("down")

    for _ in range({failures}):
        try:
            breaker.call(down)
        except ConnectionError:
            pass
    print("state=" + breaker.state().value)
""")


def run_child(env: dict[str, str], failures: int) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(failures=failures)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_state_is_shared_between_processes(child_env, clean_cache):
    assert run_child(child_env, failures=2)[-1] == "state=open"

    breaker = CircuitBreaker("shared-test", failure_threshold=2, recovery_timeout=300)
    assert breaker.state() is CircuitState.OPEN
    assert 1 <= rejected(breaker).retry_after <= 300

    breaker.reset()
    assert run_child(child_env, failures=0)[-1] == "state=closed"
