"""Benchmark: Kubernetes API requests per analysis, with 0 and with N unrelated Kubescape objects.

Run from the repository root::

    .venv/bin/python bench/kube_requests.py                  # 100, 500 and 2,000 decoys
    .venv/bin/python bench/kube_requests.py --quick          # 500 decoys (the target's count)
    .venv/bin/python bench/kube_requests.py --decoys 5000    # 1-3 sizes, comma-separated
    .venv/bin/python bench/kube_requests.py --detail         # every kind of request, per run

One analysis runs through the whole sandbox pipeline (``tests/test_pipeline.py``
``run_pipeline``: claim, deploy, wait for Kubescape, read, build the VEX document, clean up) on
the fake clock of ``tests/support/sandbox_world.py``, against the Kubernetes API double of
``tests/support/kube_api.py`` (kmock over real HTTP, so every request the service's client makes
is seen and counted). It runs once on an empty cluster and once per size among that many decoys
(``seed_decoys``: other workloads' objects in the namespaces and kinds the pipeline reads, named
and labelled as Kubescape writes them), each on a fresh double. It prints the requests per
analysis for each, their ratio to the 0-decoy run, whether the requests are the same by verb
and kind of path and the analysis produced the same result, and whether any request read a
whole Kubescape collection. Target 7 (issue 12): the ratio is 1.00x at every size.

The analysis is the one ``tests/test_kube_request_counts.py`` runs (its
``analysis_with_decoys``), so it is driven through pytest: ``pytest.main`` collects this file,
whose one internal test measures and hands its counts back to this process to print. That way
the analysis runs exactly as in the test suite: pytest-django's test database (a throwaway
SQLite file, or the PostgreSQL of ``DATABASE_URL`` when set, as in CI) and ``settings`` fixture,
the suite's own fixtures (``tests/conftest.py``: eager Celery, the organization) and the count
test's own budgets (its autouse ``small_budgets``), both loaded as plugins (``-p``); Django is
set up before pytest so that they can be imported. A copy of that set-up here would drift from
the test's. Nothing depends on time: the counts are exact and repeatable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET = 1.0
COUNTS_MODULE = "tests.test_kube_request_counts"


@dataclass
class Run:
    decoys: int
    requests: Counter  # "VERB path?params" -> count, with this job's names as placeholders
    outcome: dict[str, Any]

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@dataclass
class Bench:
    """The plugin handed to ``pytest.main``: the sizes in, the runs out."""

    sizes: list[int]
    runs: list[Run] = field(default_factory=list)

    @pytest.fixture
    def bench(self) -> Bench:
        return self


# -- what pytest runs -------------------------------------------------------------------------


@pytest.mark.django_db
def test_requests_per_analysis(bench: Bench, settings, tmp_path, organization) -> None:
    from tests.test_kube_request_counts import analysis_with_decoys

    for decoys in [0, *bench.sizes]:
        requests, outcome = analysis_with_decoys(settings, tmp_path, organization, decoys)
        bench.runs.append(Run(decoys, requests, outcome))


# -- this process -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(runs: list[Run], detail: bool) -> bool:
    from tests.test_kube_request_counts import KUBESCAPE_COLLECTION

    quiet, busy = runs[0], runs[1:]
    print("\n| decoys | requests per analysis | ratio to 0 decoys | same requests | same result |"
          "\n|---|---|---|---|---|")  # fmt: skip
    for run in runs:
        print(
            f"| {run.decoys:,} | {run.total} | {run.total / quiet.total:.2f}x | "
            f"{'yes' if run.requests == quiet.requests else 'NO'} | "
            f"{'yes' if run.outcome == quiet.outcome else 'NO'} |"
        )
    kinds = sorted(set().union(*(run.requests for run in runs)))
    differing = [k for k in kinds if len({run.requests[k] for run in runs}) > 1]
    if detail or differing:
        heading = "every kind of request" if detail else "kinds of request that differ"
        print(f"\n{heading} (count per run: " + ", ".join(f"{r.decoys:,}" for r in runs) + ")")
        for kind in kinds if detail else differing:
            print("  " + "  ".join(f"{run.requests[kind]:3d}" for run in runs) + f"  {kind}")
    collections = [k for k in kinds if KUBESCAPE_COLLECTION.search(k)]
    print(f"\n{len(kinds)} kinds of request; analysis {quiet.outcome['status'][0]}; "
          f"collection reads of Kubescape kinds: {', '.join(collections) or 'none'}")  # fmt: skip
    print("\nTarget 7 (issue 12):")
    met, reads = True, "; collections of Kubescape kinds read" if collections else ""
    for run in busy:
        ratio = run.total / quiet.total
        same = run.requests == quiet.requests and run.outcome == quiet.outcome
        complete = quiet.outcome["status"] == ("complete", "")
        ok = ratio == TARGET and same and complete and not collections
        met &= ok
        note = ("" if same else "; the requests or the result differ") + reads
        print(
            f"kube requests: {run.total} per analysis with {run.decoys:,} decoys, {quiet.total} "
            f"with 0 ({ratio:.2f}x; target {TARGET:.2f}x{note}) — {verdict(ok)}"
        )
    return met


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 decoys only")
    parser.add_argument(
        "--decoys",
        default="100,500,2000",
        help="1-3 decoy counts, comma-separated (multiples of 10)",
    )
    parser.add_argument("--detail", action="store_true", help="print every kind of request")
    args = parser.parse_args()
    if args.quick:
        args.decoys = "500"
    sizes = sorted({int(size) for size in args.decoys.split(",")} - {0})
    if not 1 <= len(sizes) <= 3 or any(size < 0 or size % 10 for size in sizes):
        parser.error("--decoys: one to three multiples of 10 (a decoy workload is 10 objects)")
    args.sizes = sizes
    return args


def main() -> int:
    args = parse_args()
    # pytest-django sets Django up only after the -p plugins below are imported; they import
    # models, so set it up first (pytest-django then leaves it as it is).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")
    import django

    django.setup()
    bench = Bench(args.sizes)
    print(f"one analysis with 0 and with {', '.join(f'{s:,}' for s in args.sizes)} decoys")
    code = pytest.main(
        [
            str(Path(__file__).resolve()),
            f"--rootdir={ROOT}",
            "-c",
            str(ROOT / "pyproject.toml"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            "-p",
            COUNTS_MODULE,
        ],
        plugins=[bench],
    )
    if code != pytest.ExitCode.OK or len(bench.runs) != len(args.sizes) + 1:
        print("\nkube requests: not measured (the analysis failed; see above)")
        return 1
    return 0 if report(bench.runs, args.detail) else 1


if __name__ == "__main__":
    sys.exit(main())
