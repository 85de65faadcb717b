"""The README's shell examples as tests: its ```sh blocks, run by bash, and every curl recorded.

A block runs unless the line right above its fence is a marker saying why it cannot:
``<!-- example: not run — needs Docker -->``. ``run_blocks`` runs blocks in order in one bash
(``set -euo pipefail``), so that ``KEY``, ``JOB`` and ``VEX`` flow from block to block as they
do for a reader; a ``curl`` on ``PATH`` in front of the real one records each request (method,
URL, status, headers, what it printed, the file it saved) without changing what the block sees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

MARKER = re.compile(r"<!--\s*example:\s*not run\s*[—-]+\s*(?P<reason>\S.*?)\s*-->")
FENCE = re.compile(r"^(?P<fence>`{3,})\s*(?P<info>[^`]*)$")
README_PORT = 8000


@dataclass(frozen=True)
class Block:
    """One ```sh block: its text, where it is, and why it is not run (None: it is run)."""

    number: int  # 1-based, among the sh blocks
    line: int  # of the opening fence
    section: str  # the heading (##, ###) it is under
    text: str
    not_run: str | None

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0]


@dataclass(frozen=True)
class Markdown:
    blocks: list[Block]
    stray_markers: list[int]  # lines of markers that are not right above an sh block


def shell_blocks(text: str) -> Markdown:
    """Every ```sh fenced block of ``text``, in order; other fences are skipped whole."""
    lines = text.splitlines()
    blocks: list[Block] = []
    markers = {i for i, line in enumerate(lines) if MARKER.search(line)}
    used: set[int] = set()
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## ") or line.startswith("### "):
            section = line.lstrip("#").strip()
        opening = FENCE.match(line)
        if opening is None:
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        end = i + 1
        while end < len(lines) and not (
            lines[end].startswith(fence) and not lines[end].strip("`").strip()
        ):
            end += 1
        if end == len(lines):
            raise AssertionError(f"README line {i + 1}: a ``` fence is never closed")
        if info.split()[:1] == ["sh"]:
            above = i - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            marker = MARKER.search(lines[above]) if above >= 0 else None
            if marker:
                used.add(above)
            blocks.append(
                Block(
                    number=len(blocks) + 1,
                    line=i + 1,
                    section=section,
                    text="\n".join(lines[i + 1 : end]),
                    not_run=marker["reason"] if marker else None,
                )
            )
        i = end + 1
    return Markdown(blocks, sorted(n + 1 for n in markers - used))


def documented_statuses(text: str) -> dict[tuple[str, str], int]:
    """``(method, path template) -> status`` from every table row that begins with
    `` `METHOD /path` `` and whose last cell begins with a status: the API table's success
    column, the health table's answers. The API table's paths are under ``/api/v1``."""
    statuses = {}
    row = re.compile(
        r"^\|\s*`(?P<method>[A-Z]+) (?P<path>/[^`\s]*)`\s*\|.*\|\s*`?(?P<status>\d{3})\b"
    )
    for line in text.splitlines():
        if match := row.match(line):
            statuses[(match["method"], match["path"])] = int(match["status"])
    return statuses


def template_of(method: str, path: str, documented: dict[tuple[str, str], int]) -> str | None:
    """The documented template (``/analysis/{id}/status``) of ``method path``, trying the path
    under /api/v1 too; a literal path wins over a template."""
    templates = sorted((t for m, t in documented if m == method), key=lambda t: "{" in t)
    for candidate in (path, path.removeprefix("/api/v1")):
        for template in templates:
            pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
            if re.fullmatch(pattern, candidate):
                return template
    return None


# -- the recording curl ---------------------------------------------------------------------

SHIM = '''\
#!{python}
"""curl, recorded for tests/test_readme_examples.py: the real one runs with the same arguments."""
import json, os, subprocess, sys, uuid

folder = os.environ["README_TEST_CURL_DIR"]
call = os.path.join(folder, uuid.uuid4().hex)
report = "\\n::readme-curl:: "
done = subprocess.run(
    [{curl!r}, "-D", call + ".headers", "-w", "%{{stderr}}" + report + "%{{json}}\\n",
     *sys.argv[1:]],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
)
sys.stdout.buffer.write(done.stdout)
sys.stdout.flush()
printed, found, reported = done.stderr.decode(errors="replace").rpartition(report)
sys.stderr.write(printed if found else reported)
reported = reported if found else ""
with open(call + ".stdout", "wb") as stdout:
    stdout.write(done.stdout)
record = {{
    "block": int(os.environ.get("README_TEST_BLOCK", "0")),
    "argv": sys.argv[1:],
    "call": call,
    "exit": done.returncode,
    "curl": json.loads(reported) if reported.strip() else None,
}}
with open(os.path.join(folder, "calls.jsonl"), "a", encoding="utf-8") as calls:
    calls.write(json.dumps(record) + "\\n")
sys.exit(done.returncode)
'''


@dataclass
class CurlCall:
    block: int
    argv: list[str]
    exit: int
    report: dict[str, Any]
    headers_text: str
    stdout: bytes

    @property
    def method(self) -> str:
        return self.report["method"]

    @property
    def url(self) -> str:
        return self.report["url_effective"]

    @property
    def path(self) -> str:
        return re.sub(r"^https?://[^/]+", "", self.url).split("?", 1)[0]

    @property
    def status(self) -> int:
        return int(self.report["http_code"])

    @property
    def saved_as(self) -> str | None:
        return self.report.get("filename_effective") or None

    def header(self, name: str) -> str | None:
        """The last response's header ``name``."""
        found = None
        for line in self.headers_text.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                found = value.strip()
        return found

    def json(self) -> Any:
        """The JSON body it printed (``-i``: after the headers)."""
        body = self.stdout
        if body.startswith(b"HTTP/"):
            body = body.split(b"\r\n\r\n", 1)[1]
        return json.loads(body)

    def __str__(self) -> str:
        return f"block {self.block}: {self.method} {self.url} -> {self.status}"


def install_curl_shim(folder: Path) -> Path:
    """A ``bin`` folder whose ``curl`` records each call in ``folder``; put it first on PATH."""
    real = shutil.which("curl")
    assert real, "the README's examples need curl"
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    shim = bin_dir / "curl"
    shim.write_text(SHIM.format(python=sys.executable, curl=real))
    shim.chmod(0o755)
    return bin_dir


def recorded_calls(folder: Path) -> list[CurlCall]:
    log = folder / "calls.jsonl"
    calls = []
    for line in log.read_text().splitlines() if log.exists() else []:
        record = json.loads(line)
        assert record["curl"] is not None, f"curl reported nothing: {record}"
        call = Path(record["call"])
        headers = call.with_suffix(".headers")
        calls.append(
            CurlCall(
                block=record["block"],
                argv=record["argv"],
                exit=record["exit"],
                report=record["curl"],
                headers_text=headers.read_text(errors="replace") if headers.exists() else "",
                stdout=call.with_suffix(".stdout").read_bytes(),
            )
        )
    return calls


# -- running blocks -------------------------------------------------------------------------


@dataclass
class Run:
    completed: subprocess.CompletedProcess
    finished: list[int]  # numbers of the blocks that ran to their end
    calls: list[CurlCall] = field(default_factory=list)

    def explain(self) -> str:
        return (
            f"exit {self.completed.returncode}; blocks finished: {self.finished}\n"
            f"--- stdout (end)\n{self.completed.stdout[-6000:]}\n"
            f"--- stderr (end)\n{self.completed.stderr[-6000:]}\n"
            "--- requests\n" + "\n".join(map(str, self.calls))
        )


def script(blocks: list[Block], port: int | None) -> str:
    """One bash script: each block as written (its port replaced), then a line saying it ended."""
    parts = ["set -euo pipefail"]
    for block in blocks:
        text = block.text
        if port is not None:
            text = text.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}")
        parts += [
            f"# README.md block {block.number} (line {block.line})",
            f"export README_TEST_BLOCK={block.number}",
            text,
            f'echo {block.number} >> "$README_TEST_PROGRESS"',
        ]
    return "\n".join(parts) + "\n"


def mirror_of_repo(folder: Path) -> Path:
    """A folder whose entries are links to the repository's: the blocks' relative paths
    (``.venv``, ``manage.py``, ``tests/fixtures``) work there, and what they save stays there."""
    folder.mkdir(parents=True)
    for entry in REPO.iterdir():
        if entry.name not in {".git", "var"}:
            (folder / entry.name).symlink_to(entry)
    return folder


def run_blocks(
    blocks: list[Block],
    *,
    env: dict[str, str],
    cwd: Path,
    work: Path,
    port: int | None,
    timeout: float,
) -> Run:
    """Runs ``blocks`` in one bash in ``cwd``; ``work`` holds the records."""
    calls_dir = work / "curl"
    bin_dir = install_curl_shim(calls_dir)
    progress = work / "progress"
    progress.touch()
    script_file = work / "readme.sh"
    script_file.write_text(script(blocks, port))
    completed = subprocess.run(
        ["bash", str(script_file)],
        cwd=cwd,
        env={
            **env,
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}",
            "README_TEST_CURL_DIR": str(calls_dir),
            "README_TEST_PROGRESS": str(progress),
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    finished = [int(n) for n in progress.read_text().split()]
    return Run(completed, finished, recorded_calls(calls_dir))
