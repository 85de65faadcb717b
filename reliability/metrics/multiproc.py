"""prometheus-client's multiprocess mode: one directory that every process of a host writes to.

The mode is chosen when ``prometheus_client`` is imported, from the environment
variable ``PROMETHEUS_MULTIPROC_DIR``; so the variable is settled by each program's
entry point before anything imports it (``gunicorn.conf.py`` for the web server,
``vexxy/celery.py`` for Celery's worker and beat). This module imports nothing of
prometheus-client at import time.

Files are named ``<kind>_<pid>.db``. Counters and histograms of a process that died
must keep counting in the sum: deleting its file would make a counter go down,
which Prometheus takes for a reset — a spike in every rate() when other live
processes still hold part of the sum. So when a program starts, the files of
processes that are no longer alive are folded into ``<kind>_archive.db`` and
removed (:func:`fold_dead_process_files`); files of live processes — the web
server's and the Celery worker's share the directory — are never touched. Liveness
is a pid check: share a directory only among processes of one host (one pid
namespace), never through a volume between containers.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("reliability.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
ARCHIVE = "archive"  # the pid part of the files that hold exited processes' values


def multiproc_dir() -> Path | None:
    """The shared directory, or ``None``: this process keeps its metrics in memory."""
    value = os.environ.get(ENV, "")
    return Path(value) if value else None


def forget_empty_dir() -> None:
    """An empty ``PROMETHEUS_MULTIPROC_DIR`` means off: take it out of the environment.

    prometheus_client turns multiprocess mode on when the variable is present at all, and an
    empty one has it write its files into the working directory.
    """
    if os.environ.get(ENV) == "":
        del os.environ[ENV]


def use_multiproc_dir(default: Path) -> Path | None:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` to ``default`` unless already set, and make it.

    An empty value set by the operator turns multiprocess mode off.
    """
    if os.environ.get(ENV) == "":
        forget_empty_dir()
        return None
    os.environ.setdefault(ENV, str(default))
    directory = multiproc_dir()
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    return directory


def pid_of(path: Path) -> int | None:
    """The process a metrics file belongs to: ``counter_123.db`` -> 123."""
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def fold_dead_process_files(directory: Path | None = None) -> list[Path]:
    """Fold the files of exited processes into the archive files; returns the files folded.

    A dead process's counters and histograms are added to ``counter_archive.db`` /
    ``histogram_archive.db`` (and ``sum``/``max``/``min``/``mostrecent`` gauges to
    theirs, by their rule), so sums never go down and the directory does not grow
    with every restart; its ``all`` and ``live*`` gauges are dropped. Call it where
    a program starts: concurrent calls take turns on a lock file.
    """
    directory = directory or multiproc_dir()
    if directory is None or not directory.is_dir():
        return []
    with _locked(directory / "fold.lock"):
        folded = [path for path in sorted(directory.glob("*.db")) if _fold_if_dead(path)]
    if folded:
        logger.info(
            "Folded %d metrics file(s) of exited processes in %s",
            len(folded),
            directory,
            extra={"metrics_dir": str(directory), "folded": len(folded)},
        )
    return folded


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kind(path: Path) -> str:
    """``counter``, ``histogram`` or ``gauge_<mode>``."""
    return path.stem.rsplit("_", 1)[0]


def _fold_if_dead(path: Path) -> bool:
    pid = pid_of(path)
    if pid is None or pid == os.getpid() or pid_alive(pid):
        return False
    kind = _kind(path)
    combine = _COMBINE.get(kind)
    if combine is not None:
        _fold_into_archive(path, path.with_name(f"{kind}_{ARCHIVE}.db"), combine)
    path.unlink(missing_ok=True)
    return True


def _fold_into_archive(path: Path, archive: Path, combine: Combine) -> None:
    """Write the archive plus ``path`` to a copy, then swap it in: no scrape sees half."""
    from prometheus_client.mmap_dict import MmapedDict

    folded = {key: (value, ts) for key, value, ts, _ in _values(archive)}
    for key, value, ts, _ in _values(path):
        folded[key] = combine(folded[key], (value, ts)) if key in folded else (value, ts)
    draft = archive.with_suffix(".draft")
    draft.unlink(missing_ok=True)
    target = MmapedDict(str(draft))
    try:
        for key, (value, ts) in folded.items():
            target.write_value(key, value, ts)
    finally:
        target.close()
    os.replace(draft, archive)


def _values(path: Path) -> list[tuple[str, float, float, int]]:
    from prometheus_client.mmap_dict import MmapedDict

    if not path.exists():
        return []
    return list(MmapedDict.read_all_values_from_file(str(path)))


Pair = tuple[float, float]
Combine = Callable[[Pair, Pair], Pair]


def _add(old: Pair, new: Pair) -> Pair:
    return old[0] + new[0], max(old[1], new[1])


_COMBINE: dict[str, Combine] = {
    "counter": _add,
    "histogram": _add,
    "gauge_sum": _add,
    "gauge_max": lambda old, new: max(old, new),
    "gauge_min": lambda old, new: min(old, new),
    "gauge_mostrecent": lambda old, new: new if new[1] >= old[1] else old,
}


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (``livesum``/``liveall``...); counters stay."""
    if multiproc_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
