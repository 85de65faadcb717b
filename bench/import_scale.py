"""Benchmark: import of large manifests, as ratios to ``json.loads`` of the same files.

Run from the repository root::

    .venv/bin/python bench/import_scale.py               # 25k, 50k, 100k matches, both shapes
    .venv/bin/python bench/import_scale.py --quick       # 1k, 2k: well under a minute
    .venv/bin/python bench/import_scale.py --sizes 10000,40000 --shapes real
    DATABASE_URL=postgres://... .venv/bin/python bench/import_scale.py --postgres

For each shape and size it writes (seeded, cached under ``--data-dir``) a full
VulnerabilityManifest with that many matches and a relevant one with some of
its pairs, as JSON files, then runs, each in a fresh interpreter:

* parse  — read both files and ``json.loads`` them (the baseline);
* import — ``manage.py import_kubescape_results`` on both files (``call_command``
  after ``django.setup()``), on a fresh SQLite database (a copy of one migrated
  once, outside the timed part); with ``--postgres``, on the database of
  ``DATABASE_URL``, migrated first.

Shapes: ``synthetic`` is ``bench/vex_build.generate`` (slim matches, 10% relevant);
``real`` replicates Kubescape's own match records (the storage sample manifest,
~2.8 kB each), each copy renaming its packages, 30% relevant — about the pair
the issue measured (100,000 matches, 374 MB).

Seconds are the child's own wall time around the work (interpreter and Django
start-up excluded); peak MB is the child's ``ru_maxrss``. ``MB/1k`` is the peak
above the child's resident size before the work, per 1000 matches of the full
manifest: constant across sizes means memory grows linearly. Targets (issue 12,
target 5): import <= 5x the parse's time and <= 3x its peak memory. It asserts
nothing: absolute times depend on the machine, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "storage_vulnerabilitymanifest_01-example.yaml"
SEED = 20240601
TIME_TARGET, MEMORY_TARGET = 5.0, 3.0
REAL_RELEVANT_FRACTION = 0.30
IMAGE = "docker.io/library/nginx:1.25.3"
DIGEST = "sha256:" + "32fdf92b4e986e109e4db0865758020cb0c3b70d6ba80d02fe87bad5cc3dc228"
ORGANIZATION = "bench"


# -- inputs ------------------------------------------------------------------------------------


def _write_manifest(path: Path, name: str, relevancy: bool, payload: dict[str, Any], matches):
    """A VulnerabilityManifest object, its matches written one at a time from ``matches``."""
    head = {
        "apiVersion": "spdx.softwarecomposition.kubescape.io/v1beta1",
        "kind": "VulnerabilityManifest",
        "metadata": {
            "name": name,
            "namespace": "kubescape",
            "annotations": {"kubescape.io/image-id": f"{IMAGE}@{DIGEST}"},
        },
        "spec": {"metadata": {"withRelevancy": relevancy}, "payload": {**payload, "matches": []}},
    }
    text = json.dumps(head)
    before, after = text.rsplit('"matches": []', 1)
    with path.open("w") as out:
        out.write(before + '"matches": [')
        for index, match in enumerate(matches):
            out.write(("," if index else "") + match)
        out.write("]" + after)


def write_synthetic(size: int, full: Path, relevant: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")
    from vex_build import generate

    full_doc, relevant_doc = generate(size)
    full.write_text(json.dumps(full_doc))
    relevant.write_text(json.dumps(relevant_doc))


def write_real(size: int, full: Path, relevant: Path) -> None:
    """Copies of the sample's matches; copy ``k`` renames each package ``<name>-r<k>``."""
    import yaml

    sample = yaml.safe_load(SAMPLE.read_text())
    payload = {k: v for k, v in sample["spec"]["payload"].items() if k != "matches"}
    records = [json.dumps(m) for m in sample["spec"]["payload"]["matches"]]
    rng = random.Random(f"{SEED}:real:{size}")
    chosen = set(rng.sample(range(size), max(1, round(size * REAL_RELEVANT_FRACTION))))
    copies: list[str] = []

    def full_matches():
        for index in range(size):
            copy, record = divmod(index, len(records))
            match = json.loads(records[record])
            artifact = match["artifact"]
            name = artifact["name"]
            artifact["name"] = f"{name}-r{copy}"
            artifact["purl"] = artifact["purl"].replace(f"/{name}@", f"/{name}-r{copy}@", 1)
            text = json.dumps(match)
            if index in chosen:
                copies.append(text)
            yield text

    _write_manifest(full, f"nginx-full-{size}", False, payload, full_matches())
    _write_manifest(relevant, f"nginx-relevant-{size}", True, payload, copies)


WRITERS = {"synthetic": write_synthetic, "real": write_real}


def inputs(data_dir: Path, shape: str, size: int) -> tuple[Path, Path]:
    full = data_dir / f"{shape}-{size}-full.json"
    relevant = data_dir / f"{shape}-{size}-relevant.json"
    if not (full.exists() and relevant.exists()):
        data_dir.mkdir(parents=True, exist_ok=True)
        WRITERS[shape](size, full, relevant)
    return full, relevant


# -- children: each measures itself ------------------------------------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    """This process's peak resident size: ``ru_maxrss`` keeps the parent's across exec."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_parse(full: str, relevant: str) -> dict[str, float]:
    base = _rss_mb()
    start = time.perf_counter()
    documents = [json.loads(Path(p).read_bytes()) for p in (full, relevant)]
    seconds = time.perf_counter() - start
    del documents
    return {"seconds": seconds, "base_mb": base, "peak_mb": _peak_mb()}


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")
    import django

    django.setup()


def child_setup() -> dict[str, float]:
    _django()
    from django.core.management import call_command

    from analysis.models import Organization

    call_command("migrate", verbosity=0)
    Organization.objects.update_or_create(
        slug=ORGANIZATION, defaults={"name": "Bench", "monthly_analysis_quota": 10**9}
    )
    return {}


def child_import(full: str, relevant: str) -> dict[str, float]:
    _django()
    from django.core.management import call_command

    base = _rss_mb()
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        call_command(
            "import_kubescape_results",
            organization=ORGANIZATION,
            image=IMAGE,
            digest=DIGEST,
            full=Path(full),
            relevant=Path(relevant),
            stdout=quiet,
        )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "base_mb": base, "peak_mb": _peak_mb()}


CHILDREN = {"parse": child_parse, "setup": child_setup, "import": child_import}


@dataclass
class Run:
    seconds: float
    peak_mb: float
    base_mb: float


def run_child(kind: str, *args: str, env: dict[str, str]) -> Run:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(figures.get("seconds", 0.0), figures.get("peak_mb", 0.0), figures.get("base_mb", 0))


def measure_import(full: Path, relevant: Path, template: Path | None) -> Run:
    """The import on a copy of the migrated ``template``, or on DATABASE_URL when None."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="vexxy-import-bench-") as scratch:
        if template is not None:
            database = Path(scratch) / "bench.sqlite3"
            shutil.copyfile(template, database)
            env["DATABASE_URL"] = f"sqlite:///{database}"
        else:
            run_child("setup", env=env)
        return run_child("import", str(full), str(relevant), env=env)


def migrated_template(directory: Path) -> Path:
    """A migrated SQLite database with the organization: each import starts from a copy."""
    template = directory / "template.sqlite3"
    run_child("setup", env={**os.environ, "DATABASE_URL": f"sqlite:///{template}"})
    return template


# -- main ----------------------------------------------------------------------------------------


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000", help="match counts")
    parser.add_argument("--shapes", default="synthetic,real", help="synthetic and/or real")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,2000")
    parser.add_argument("--postgres", action="store_true", help="use DATABASE_URL, not SQLite")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vexxy-import-bench",
        help="where generated inputs are cached (default: %(default)s)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](*rest)))
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.postgres and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("--postgres needs DATABASE_URL=postgres://...")
    sizes = [1000, 2000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or not set(shapes) <= set(WRITERS):
        parser.error("sizes must be positive; shapes: synthetic, real")

    print(
        f"python {sys.version.split()[0]}, seed={SEED}, database "
        f"{'PostgreSQL (DATABASE_URL)' if args.postgres else 'fresh SQLite per run'}"
    )
    print(f"targets: import <= {TIME_TARGET:g}x parse time, <= {MEMORY_TARGET:g}x parse peak")
    header = (
        f"{'shape':>9} {'matches':>8} {'MB in':>7} {'parse s':>8} {'parse MB':>9} "
        f"{'import s':>9} {'import MB':>10} {'time x':>7} {'':>4} {'mem x':>6} {'':>4} "
        f"{'MB/1k':>6}"
    )
    print(header)
    print("-" * len(header))
    misses = 0
    scratch = tempfile.TemporaryDirectory(prefix="vexxy-import-template-")
    template = None if args.postgres else migrated_template(Path(scratch.name))
    for shape in shapes:
        for size in sizes:
            full, relevant = inputs(args.data_dir, shape, size)
            megabytes = (full.stat().st_size + relevant.stat().st_size) / 1e6
            parse = run_child("parse", str(full), str(relevant), env=dict(os.environ))
            imported = measure_import(full, relevant, template)
            time_ratio = imported.seconds / parse.seconds
            memory_ratio = imported.peak_mb / parse.peak_mb
            per_1k = (imported.peak_mb - imported.base_mb) / (size / 1000)
            misses += (time_ratio > TIME_TARGET) + (memory_ratio > MEMORY_TARGET)
            print(
                f"{shape:>9} {size:>8} {megabytes:>7.1f} {parse.seconds:>8.2f} "
                f"{parse.peak_mb:>9.0f} {imported.seconds:>9.2f} {imported.peak_mb:>10.0f} "
                f"{time_ratio:>6.2f}x {verdict(time_ratio, TIME_TARGET)} "
                f"{memory_ratio:>5.2f}x {verdict(memory_ratio, MEMORY_TARGET)} {per_1k:>6.1f}",
                flush=True,
            )
    print()
    print(
        "time x / mem x: import vs json.loads of the same files; "
        "MB/1k: import peak above its start, per 1000 matches (flat = linear growth)"
    )
    print(
        "small inputs are dominated by fixed costs (Django's ~100 MB, a job's queries): "
        "the targets are for 100,000 matches"
    )
    print(f"{misses} target(s) missed")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
