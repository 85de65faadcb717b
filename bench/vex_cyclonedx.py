"""Benchmark: the CycloneDX form of a VEX, as a ratio to ``json.loads`` of its OpenVEX.

Run from the repository root::

    .venv/bin/python bench/vex_cyclonedx.py                  # 1000 and 5000 matches
    .venv/bin/python bench/vex_cyclonedx.py --sizes 10000

For each size it builds the OpenVEX document from the same synthetic manifests
as ``bench/vex_build.py`` and measures, minimum of ``--repeat`` runs:

* parse — ``json.loads`` of the OpenVEX document's bytes (the baseline);
* cyclonedx — ``cyclonedx_vex``: the BOM built with cyclonedx-python-lib,
  serialised and validated against the CycloneDX 1.6 schema.

The conversion runs once per document (in the worker when a sandbox job
completes, on the first download for an imported one) and is then stored,
so there is no target; the ratio and the time per statement say what a
first download of an imported VEX costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vex_build import INFO, best_of, builder, generate, read_manifest

from analysis.vex.cyclonedx import cyclonedx_vex


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000", help="match counts (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    print("cyclonedx: cyclonedx-python-lib build + serialise + CycloneDX 1.6 validation")
    header = ("matches", 8), ("stmts", 7), ("parse s", 8), ("cyclonedx s", 12), ("ratio", 8)
    print(" ".join(f"{name:>{width}}" for name, width in header), f"{'ms/stmt':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        full, relevant = generate(size)
        document = builder.build(
            read_manifest(full, "full"), read_manifest(relevant, "relevant"), INFO, validate=False
        ).document
        raw = json.dumps(document).encode()
        parse, _, _ = best_of(args.repeat, json.loads, raw)
        convert, bom, _ = best_of(args.repeat, cyclonedx_vex, document, uuid.UUID(int=size))
        statements = len(bom["vulnerabilities"])
        print(
            f"{size:>8} {statements:>7} {parse:>8.3f} {convert:>12.2f} {convert / parse:>7.0f}x "
            f"{convert / statements * 1000:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
