"""Why a statement has its status: the text of ``status_notes`` and of a result's ``reason``.

A reader of the VEX, or of a ticket it was attached to, sees what the
statement rests on: how long execution was observed and whether Kubescape's
profile was complete, and, for a loaded package, which of its files were used
when Kubescape's filtered SBOM names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_FILES_NAMED = 5


@dataclass(frozen=True)
class Observation:
    """What the runtime evidence covers: seconds observed (None: not known) and completeness."""

    seconds: int | None
    completeness: str

    @property
    def window(self) -> str:
        if self.seconds is None:
            return "the observed execution"
        return f"{self.seconds} s of observed execution"

    @property
    def profile(self) -> str:
        if self.completeness == "complete":
            return "profile complete"
        return f"profile {self.completeness}: a load may have been missed"


def not_loaded(package: str, observation: Observation) -> str:
    """``Package x@1 was not loaded during 300 s of observed execution; profile complete.``"""
    return f"Package {package} was not loaded during {observation.window}; {observation.profile}."


def loaded(package: str, observation: Observation, files: Sequence[str] = ()) -> str:
    """``Package x@1 was loaded during 300 s of observed execution (files used: /a, /b).``"""
    used = ""
    if files:
        named = ", ".join(files[:MAX_FILES_NAMED])
        more = len(files) - MAX_FILES_NAMED
        used = f" (files used: {named}{f' and {more} more' if more > 0 else ''})"
    return (
        f"Package {package} was loaded during {observation.window}{used}, "
        "so the vulnerable code is reachable."
    )
