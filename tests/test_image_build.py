"""The image installs exactly requirements.lock, and the lock matches pyproject.toml.

There is no Docker here: the Dockerfile is parsed (with test_container_health's parser) and the
lock is read offline. Whether the lock is what uv would generate today from pyproject.toml is
``make lock-check``, run by CI (it needs PyPI).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.test_container_health import dockerfile

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]


def lock_entries() -> list[tuple[str, list[str]]]:
    """Each requirement line of the lock (continuations joined) with its hashes."""
    joined = re.sub(r"\\\n\s*", " ", LOCK.read_text())
    entries = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *options = re.split(r"\s+(?=--)", line.strip())
        entries.append((requirement, options))
    return entries


def lock_pins() -> dict[str, Pin]:
    pins = {}
    for text, options in lock_entries():
        requirement = Requirement(text)
        (specifier,) = requirement.specifier  # exactly one
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = Pin(name, Version(specifier.version), requirement.marker, tuple(options))
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def image_python() -> str:
    """The image's Python version, from the pinned base (python:3.11.N-slim-...)."""
    instructions, _ = dockerfile()
    (image,) = {line.split()[1] for line in instructions if line.startswith("FROM ")}
    return re.match(r"python:(\d+\.\d+\.\d+)-", image)[1]


def image_environments() -> list[dict[str, str]]:
    """Marker environments of the image's Python on the two architectures it is built for."""
    full = image_python()
    return [
        {
            "python_version": full.rsplit(".", 1)[0],
            "python_full_version": full,
            "implementation_version": full,
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "platform_machine": machine,
            "platform_system": "Linux",
            "sys_platform": "linux",
            "os_name": "posix",
            "platform_release": "",
            "platform_version": "",
            "extra": "",
        }
        for machine in ("x86_64", "aarch64")
    ]


# -- the Dockerfile --------------------------------------------------------------------


def test_the_build_installs_only_the_lock_hash_checked_and_without_resolving():
    instructions, _ = dockerfile()
    installs = [line for line in instructions if re.search(r"\bpip3? install\b", line)]
    assert len(installs) == 1, installs
    words = installs[0].split()
    assert words[words.index("-r") + 1] == "requirements.lock"
    assert {"--require-hashes", "--no-deps"} <= set(words)
    # The lock is copied into the build stage before it is installed.
    build = instructions[: instructions.index(installs[0])]
    assert any(re.fullmatch(r"COPY requirements\.lock \S+", line) for line in build)


def test_the_base_image_is_pinned_to_a_patch_version_in_one_arg():
    _, text = dockerfile()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, re.MULTILINE)
    assert re.fullmatch(r"3\.11\.\d+", image_python())
    raw_froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(raw_froms) == 2, raw_froms  # build and runtime
    assert set(raw_froms) == {"${PYTHON_IMAGE}"}, raw_froms


# -- the lock --------------------------------------------------------------------------


def test_every_line_of_the_lock_pins_one_version_with_hashes():
    entries = lock_entries()
    assert len(entries) > 20
    for text, options in entries:
        requirement = Requirement(text)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1, text
        assert specifiers[0].operator == "==", text
        assert "*" not in specifiers[0].version, text
        assert not requirement.url, text
        assert options, f"{text}: no hashes"
        assert all(HASH.fullmatch(option) for option in options), (text, options)


def test_the_lock_says_it_is_made_by_make_lock():
    header = LOCK.read_text().split("\n", 3)[:2]
    assert header[0] == "# This file was autogenerated by uv via the following command:"
    assert header[1].strip() == "#    make lock"
    makefile = (REPO / "Makefile").read_text()
    compile_command = re.search(r"^LOCK_COMPILE = (.*?[^\\])$", makefile, re.MULTILINE | re.DOTALL)
    assert compile_command, "the Makefile's LOCK_COMPILE"
    words = compile_command[1].replace("\\\n", " ").split()
    assert {"--universal", "--generate-hashes", "pyproject.toml"} <= set(words)
    assert words[words.index("--custom-compile-command") + 1] == '"make'  # "make lock"
    # The runtime dependencies only: no dev extra in the image.
    assert not {"--extra", "--all-extras"} & set(words)


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=str)
def test_every_runtime_dependency_is_pinned_within_pyprojects_range(requirement):
    pins = lock_pins()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement} is not in requirements.lock: run make lock"
    pin = pins[name]
    assert requirement.specifier.contains(pin.version, prereleases=True), (
        f"requirements.lock pins {name}=={pin.version}, outside {requirement}: run make lock"
    )
    for environment in image_environments():
        assert pin.marker is None or pin.marker.evaluate(environment), (pin, environment)


def test_the_lock_holds_no_dev_only_package():
    pins = lock_pins()
    for name in ("pytest", "ruff", "uv", "selenium", "schemathesis", "hypothesis"):
        assert name not in pins


def test_the_lock_is_closed_under_dependencies_for_the_images_python():
    """--no-deps is safe: what each pinned package requires is pinned too.

    Read offline from the metadata of this venv's installs of the same versions (a package
    installed here at another version is not checked), for the image's Python on amd64 and
    arm64, following the extras pyproject.toml and the packages themselves ask for.
    """
    pins = lock_pins()
    wanted_extras: dict[str, set[str]] = {}
    for requirement in runtime_requirements():
        wanted_extras.setdefault(canonicalize_name(requirement.name), set()).update(
            requirement.extras
        )
    checked, missing = set(), []
    changed = True
    while changed:
        changed = False
        for name, pin in pins.items():
            try:
                dist = importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                continue
            if Version(dist.version) != pin.version:
                continue
            checked.add(name)
            for text in dist.requires or []:
                requirement = Requirement(text)
                needed = [
                    environment
                    for environment in image_environments()
                    for extra in {"", *wanted_extras.get(name, ())}
                    if requirement.marker is None
                    or requirement.marker.evaluate({**environment, "extra": extra})
                ]
                if not needed:
                    continue
                dependency = canonicalize_name(requirement.name)
                extras = wanted_extras.setdefault(dependency, set())
                if not requirement.extras <= extras:
                    extras.update(requirement.extras)
                    changed = True
                pin_of = pins.get(dependency)
                for environment in needed:
                    if (
                        pin_of is None
                        or not requirement.specifier.contains(pin_of.version, prereleases=True)
                        or (pin_of.marker and not pin_of.marker.evaluate(environment))
                    ):
                        missing.append(f"{name} {pin.version} needs {requirement}")
    assert not sorted(set(missing))
    # Most of the lock is installed here at its own version; otherwise this checks little.
    assert len(checked) >= len(pins) * 3 // 4, sorted(set(pins) - checked)
