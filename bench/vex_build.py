"""Benchmark: OpenVEX build from Kubescape VulnerabilityManifests, as ratios to ``json.loads``.

Run from the repository root::

    .venv/bin/python bench/vex_build.py            # sizes 1000,10000,100000
    .venv/bin/python bench/vex_build.py --quick    # sizes 500,5000
    .venv/bin/python bench/vex_build.py --sizes 2000,20000 --repeat 5

For each size it generates (seeded, so every run sees the same data) a full
VulnerabilityManifest with that many Grype matches and a relevant manifest with
about 10% of its pairs, serialises both to JSON bytes, and measures:

* parse  — ``json.loads`` of both byte strings (the baseline);
* build  — ``json.loads`` + ``read_manifest`` of both + ``builder.build`` with
  schema validation off, from the same bytes;
* validate — ``schema.validate_document`` of the produced document, alone
  (jsonschema-rs, then uniqueness in linear time). A size whose projected
  validation time is over ``--validate-budget`` is not run: its projection is
  printed instead (validation was quadratic before ``uniqueItems`` moved out
  of jsonschema).

Each is the minimum of ``--repeat`` runs (``time.perf_counter``). It prints
ratios and the growth exponent log(t2/t1)/log(n2/n1) between consecutive
sizes (≈1.0 is linear). It asserts nothing about wall-clock time: absolute
times depend on the machine, the ratios much less.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")
import django  # noqa: E402

django.setup()  # the builder imports Django-aware modules; no database is touched

from analysis.kubescape.readers import read_manifest  # noqa: E402
from analysis.vex import builder  # noqa: E402
from analysis.vex.purls import subcomponent_purls  # noqa: E402
from analysis.vex.schema import fast_validator, validate_document, validator  # noqa: E402

TARGET = "target: build <= 3x parse, growth ~1.0"
SEED = 20240601
RELEVANT_FRACTION = 0.10
DUPLICATE_FRACTION = 0.01  # Grype reports some (vulnerability, package) pairs twice
NO_PURL_FRACTION = 0.02  # artifacts without a purl: the reader derives one

INFO = builder.DocumentInfo(
    image_ref="docker.io/library/nginx:1.25.3",
    image_digest="sha256:" + "32fdf92b4e986e109e4db0865758020cb0c3b70d6ba80d02fe87bad5cc3dc228",
    author="Vexxy Premium benchmark",
    tooling="vexxy-premium bench",
    id_base="https://vexxy.example/vex",
    timestamp=datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
    document_id=UUID("00000000-0000-4000-8000-000000000001"),
    other_digests=("sha256:" + "9f6ad1cdf02a3a6d072aa09fd5ff7e18ce0b22a90432164144197b17735fc4f0",),
    observed_seconds=300,
)

# -- synthetic data -------------------------------------------------------------

WORDS = (
    "buffer",
    "overflow",
    "heap",
    "stack",
    "use-after-free",
    "integer",
    "out-of-bounds",
    "read",
    "write",
    "remote",
    "attacker",
    "crafted",
    "request",
    "denial",
    "of",
    "service",
    "memory",
    "corruption",
    "allows",
    "local",
    "users",
    "privileges",
    "escalation",
    "parser",
    "function",
    "length",
    "validation",
    "improper",
    "input",
    "certificate",
    "handling",
    "null",
    "pointer",
    "dereference",
    "via",
    "the",
    "in",
    "when",
    "before",
    "versions",
    "component",
    "library",
    "through",
    "affected",
    "vulnerability",
    "exploit",
)
SEVERITY_WEIGHTS = {
    "Critical": 4,
    "High": 18,
    "Medium": 38,
    "Low": 20,
    "Negligible": 15,
    "Unknown": 5,
}
LICENSES = (
    "MIT",
    "Apache-2.0",
    "BSD-3-Clause",
    "GPL-2.0-only",
    "GPL-3.0-only",
    "LGPL-2.1-or-later",
    "MPL-2.0",
    "ISC",
    "Zlib",
    "OpenSSL",
)
ECOSYSTEMS = (  # (grype type, weight, purl builder, data source, namespace)
    (
        "deb",
        45,
        lambda n, v: f"pkg:deb/debian/{n}@{v}?arch=amd64&distro=debian-12",
        "https://security-tracker.debian.org/tracker/{id}",
        "debian:distro:debian:12",
    ),
    (
        "apk",
        10,
        lambda n, v: f"pkg:apk/alpine/{n}@{v}?arch=x86_64&distro=alpine-3.19",
        "https://security.alpinelinux.org/vuln/{id}",
        "alpine:distro:alpine:3.19",
    ),
    (
        "python",
        15,
        lambda n, v: f"pkg:pypi/{n}@{v}",
        "https://github.com/advisories/{id}",
        "github:language:python",
    ),
    (
        "java-archive",
        12,
        lambda n, v: f"pkg:maven/org.example.{n}/{n}@{v}",
        "https://github.com/advisories/{id}",
        "github:language:java",
    ),
    (
        "go-module",
        10,
        lambda n, v: f"pkg:golang/github.com/example/{n}@v{v}",
        "https://github.com/advisories/{id}",
        "github:language:go",
    ),
    (
        "npm",
        8,
        lambda n, v: f"pkg:npm/{n}@{v}",
        "https://github.com/advisories/{id}",
        "github:language:javascript",
    ),
)


def _sentence(rng: random.Random, low: int, high: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))
    return text[0].upper() + text[1:] + "."


def _packages(rng: random.Random, count: int) -> list[dict[str, Any]]:
    weights = [e[1] for e in ECOSYSTEMS]
    packages = []
    for index in range(count):
        kind, _, purl_of, source, namespace = rng.choices(ECOSYSTEMS, weights)[0]
        name = f"{rng.choice(WORDS).replace('-', '')}{rng.choice(WORDS)[:4]}-{index}"
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}"
        packages.append(
            {
                "type": kind,
                "name": name,
                "version": version,
                "purl": "" if rng.random() < NO_PURL_FRACTION else purl_of(name, version),
                "source": source,
                "namespace": namespace,
                "licenses": rng.sample(LICENSES, rng.randint(0, 2)),
            }
        )
    return packages


def _match(rng: random.Random, index: int, package: dict[str, Any]) -> dict[str, Any]:
    year = rng.randint(2005, 2024)
    if package["source"].startswith("https://github.com"):
        vuln_id = f"GHSA-{index:04x}-{rng.randrange(16**4):04x}-{rng.randrange(16**4):04x}"
        cve = f"CVE-{year}-{10000 + index}"
    else:
        vuln_id = cve = f"CVE-{year}-{10000 + index}"
    severity = rng.choices(list(SEVERITY_WEIGHTS), list(SEVERITY_WEIGHTS.values()))[0]
    state = rng.choices(("fixed", "not-fixed", "wont-fix", "unknown"), (55, 30, 10, 5))[0]
    fix_versions = [f"{package['version']}+deb12u{rng.randint(1, 9)}"] if state == "fixed" else []
    description = _sentence(rng, 12, 45)
    nvd_url = f"https://nvd.nist.gov/vuln/detail/{cve}"
    related = [
        {
            "id": cve,
            "dataSource": nvd_url,
            "namespace": "nvd:cpe",
            "severity": rng.choice(list(SEVERITY_WEIGHTS)),
            "urls": [
                f"https://www.openwall.com/lists/oss-security/{year}/0{rng.randint(1, 9)}/1",
                nvd_url,
            ],
            "description": description,
            "cvss": [
                {
                    "version": "3.1",
                    "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    "metrics": {
                        "baseScore": round(rng.uniform(2, 10), 1),
                        "exploitabilityScore": 3.9,
                        "impactScore": 5.9,
                    },
                }
            ],
        }
    ]
    if rng.random() < 0.2:  # a second alias now and then
        related.append({**related[0], "id": f"CVE-{year}-{50000 + index}"})
    name, version = package["name"], package["version"]
    return {
        "vulnerability": {
            "id": vuln_id,
            "dataSource": package["source"].format(id=vuln_id),
            "namespace": package["namespace"],
            "severity": severity,
            "urls": [package["source"].format(id=vuln_id)],
            "description": description,
            "cvss": None,
            "fix": {"versions": fix_versions, "state": state},
            "advisories": None,
        },
        "relatedVulnerabilities": related,
        "matchDetails": [
            {
                "type": "exact-direct-match",
                "matcher": f"{package['type']}-matcher",
                "searchedBy": {
                    "namespace": package["namespace"],
                    "package": {"name": name, "version": version},
                },
                "found": {"versionConstraint": f"< {version}-9 (deb)", "vulnerabilityID": vuln_id},
            }
        ],
        "artifact": {
            "name": name,
            "version": version,
            "type": package["type"],
            "locations": [
                {
                    "path": f"/usr/lib/{name}/{name}.so",
                    "layerID": f"sha256:{rng.randrange(16**16):016x}",
                }
            ],
            "language": "",
            "licenses": package["licenses"],
            "cpes": [f"cpe:2.3:a:{name}:{name}:{version}:*:*:*:*:*:*:*"],
            "purl": package["purl"],
            "upstreams": None,
            "metadata": None,
        },
    }


def _manifest(name: str, matches: list[dict[str, Any]], relevancy: bool) -> dict[str, Any]:
    return {
        "apiVersion": "spdx.softwarecomposition.kubescape.io/v1beta1",
        "kind": "VulnerabilityManifest",
        "metadata": {
            "name": name,
            "namespace": "kubescape",
            "annotations": {
                "kubescape.io/image-id": INFO.image_ref + "@" + INFO.image_digest,
                "kubescape.io/status": "ready",
            },
            "labels": {
                "kubescape.io/workload-kind": "Deployment",
                "kubescape.io/workload-name": "nginx",
            },
        },
        "spec": {"metadata": {"withRelevancy": relevancy}, "payload": {"matches": matches}},
    }


def generate(size: int, seed: int = SEED) -> tuple[dict[str, Any], dict[str, Any]]:
    """A full manifest with ``size`` matches and a relevant one with ~10% of its pairs."""
    rng = random.Random(f"{seed}:{size}")
    packages = _packages(rng, max(1, size // 6))
    matches: list[dict[str, Any]] = []
    for index in range(size):
        if matches and rng.random() < DUPLICATE_FRACTION:
            matches.append(json.loads(json.dumps(rng.choice(matches))))  # same pair again
        else:
            matches.append(_match(rng, index, rng.choice(packages)))
    relevant = rng.sample(matches, max(1, round(size * RELEVANT_FRACTION)))
    return (
        _manifest(f"nginx-full-{size}", matches, False),
        _manifest(f"nginx-relevant-{size}", relevant, True),
    )


# -- measured steps -----------------------------------------------------------------


def _build_unvalidated(full, relevant, info):
    """``builder.build`` without the schema check, with a cold purl cache (as in a new worker)."""
    subcomponent_purls.cache_clear()
    return builder.build(full, relevant, info, validate=False)


def parse_only(full_bytes: bytes, relevant_bytes: bytes) -> None:
    json.loads(full_bytes)
    json.loads(relevant_bytes)


def build_from_bytes(full_bytes: bytes, relevant_bytes: bytes) -> builder.BuildResult:
    full = read_manifest(json.loads(full_bytes), "full")
    relevant = read_manifest(json.loads(relevant_bytes), "relevant")
    return _build_unvalidated(full, relevant, INFO)


def best_of(
    repeat: int, function: Callable[..., Any], *args: Any, budget: float = math.inf
) -> tuple[float, Any, int]:
    """Minimum wall time over up to ``repeat`` runs, the last run's value, and the runs done.

    Stops repeating once another run would take the total past ``budget`` seconds.
    """
    best, value, total, runs = math.inf, None, 0.0, 0
    for _ in range(repeat):
        value = None  # free the previous run's result before the next
        gc.collect()
        start = time.perf_counter()
        value = function(*args)
        elapsed = time.perf_counter() - start
        best, total, runs = min(best, elapsed), total + elapsed, runs + 1
        if total + elapsed > budget:
            break
    return best, value, runs


def growth(t1: float, t2: float, n1: int, n2: int) -> float:
    return math.log(t2 / t1) / math.log(n2 / n1)


def projected_validation(size: int, measured: list[tuple[int, float]]) -> float | None:
    """Expected validation time at ``size`` from the sizes measured so far.

    With two measurements, their growth exponent; with one, 2.0 — the schema's
    ``uniqueItems`` on ``statements`` compares the (unhashable) statements pairwise.
    """
    if not measured:
        return None
    n1, t1 = measured[-1]
    exponent = (
        max(1.0, growth(measured[-2][1], t1, measured[-2][0], n1)) if len(measured) > 1 else 2.0
    )
    return t1 * (size / n1) ** exponent


# -- main ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="comma-separated match counts (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per measurement; the minimum is reported (default: 3)",
    )
    parser.add_argument("--quick", action="store_true", help="a fast run: sizes 500,5000")
    parser.add_argument(
        "--validate-budget",
        type=float,
        metavar="SECONDS",
        help="wall-time allowance for validating one size; a size whose "
        "projected time exceeds it is skipped and the projection printed, "
        "and repeats stop when the next would exceed it "
        "(default: 180, 60 with --quick)",
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="switch the cyclic garbage collector off while measuring "
        "(production runs with it on; this isolates its share)",
    )
    args = parser.parse_args(argv)
    sizes = [500, 5000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("sizes and --repeat must be positive")
    if args.validate_budget is None:
        args.validate_budget = 60.0 if args.quick else 180.0

    print(
        f"python {sys.version.split()[0]}, repeat={args.repeat} (min of), seed={SEED}, "
        f"gc {'OFF' if args.no_gc else 'on'}, validate budget {args.validate_budget:g}s/size"
    )
    print(
        "build: json.loads + read_manifest (both) + builder.build(..., validate=False), "
        f"{len(INFO.digests)} image digests"
    )
    validator(), fast_validator()  # compile the schema once, outside every measurement
    print(TARGET)
    header = (
        f"{'matches':>8} {'MB':>6} {'parse s':>8} {'build s':>8} {'build/parse':>11} "
        f"{'validate s':>11} {'valid/parse':>11} {'runs':>4} {'stmts':>6} {'affected':>8}"
    )
    print(header)
    print("-" * len(header))

    rows: list[tuple[int, float, float, float | None]] = []
    validated: list[tuple[int, float]] = []
    skipped = False
    for size in sizes:
        full_doc, relevant_doc = generate(size)
        full_bytes = json.dumps(full_doc).encode()
        relevant_bytes = json.dumps(relevant_doc).encode()
        del full_doc, relevant_doc
        if args.no_gc:
            gc.disable()
        try:
            t_parse, _, _ = best_of(args.repeat, parse_only, full_bytes, relevant_bytes)
            t_build, result, _ = best_of(args.repeat, build_from_bytes, full_bytes, relevant_bytes)
            projection = projected_validation(size, validated)
            if projection is not None and projection > args.validate_budget:
                t_valid, runs = None, 0
            else:
                t_valid, _, runs = best_of(
                    args.repeat, validate_document, result.document, budget=args.validate_budget
                )
                validated.append((size, t_valid))
        finally:
            gc.enable()
        summary = result.summary
        megabytes = (len(full_bytes) + len(relevant_bytes)) / 1e6
        rows.append((size, t_parse, t_build, t_valid))
        if t_valid is None:
            skipped = True
            valid_cols = f"{f'~{projection:.0f}*':>11} {f'~{projection / t_parse:.0f}x*':>11}"
        else:
            valid_cols = f"{t_valid:>11.4f} {t_valid / t_parse:>10.2f}x"
        print(
            f"{size:>8} {megabytes:>6.1f} {t_parse:>8.4f} {t_build:>8.4f} "
            f"{t_build / t_parse:>10.2f}x {valid_cols} {runs:>4} "
            f"{summary['total_statements']:>6} {summary['by_status']['affected']:>8}",
            flush=True,
        )
        del result, full_bytes, relevant_bytes
    if skipped:
        print(
            "* validation not run: projected time over --validate-budget; the projection "
            "extrapolates the measured sizes"
        )

    pairs = list(itertools.pairwise(rows))
    if pairs:
        print()
        print("growth exponent log(t2/t1)/log(n2/n1)  (1.0 = linear)")
        for (n1, p1, b1, v1), (n2, p2, b2, v2) in pairs:
            valid = f"{growth(v1, v2, n1, n2):.2f}" if v1 and v2 else "n/a"
            print(
                f"  {n1:>7} -> {n2:<7} build {growth(b1, b2, n1, n2):.2f}   "
                f"(parse {growth(p1, p2, n1, n2):.2f}, validate {valid})"
            )

    worst = max(b / p for _, p, b, _ in rows)
    growths = [growth(b1, b2, n1, n2) for (n1, _, b1, _), (n2, _, b2, _) in pairs]
    print()
    print(TARGET)
    print(
        f"observed: build/parse max {worst:.2f}x"
        + (f", build growth {', '.join(f'{g:.2f}' for g in growths)}" if growths else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
