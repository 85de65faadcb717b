"""The VEX formats a client can ask for, by ``?format=`` or by ``Accept``."""

from __future__ import annotations

from rest_framework.request import Request

from analysis.vex.cyclonedx import MEDIA_TYPE as CYCLONEDX_MEDIA_TYPE
from reliability.renderers import OrjsonRenderer


class OpenVexRenderer(OrjsonRenderer):
    """OpenVEX v0.2.0, the default: ``?format=openvex`` or ``Accept: application/json``."""

    format = "openvex"


class CycloneDxRenderer(OrjsonRenderer):
    """CycloneDX 1.6 JSON: ``?format=cyclonedx`` or ``Accept: application/vnd.cyclonedx+json``."""

    media_type = CYCLONEDX_MEDIA_TYPE
    format = "cyclonedx"


class VexJsonRenderer(OpenVexRenderer):
    """``?format=json``, as on every other DRF view: OpenVEX."""

    format = "json"


VEX_RENDERERS = (OpenVexRenderer, CycloneDxRenderer, VexJsonRenderer)
VEX_FORMATS = tuple(renderer.format for renderer in VEX_RENDERERS)


def unknown_format(request: Request) -> str | None:
    """The ``format`` asked for when no VEX renderer has it."""
    requested = request.query_params.get("format")
    return requested if requested is not None and requested not in VEX_FORMATS else None
