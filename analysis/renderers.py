"""The VEX formats a client can ask for, by ``?format=`` or by ``Accept``."""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer

from .vex.cyclonedx import MEDIA_TYPE as CYCLONEDX_MEDIA_TYPE


class OpenVexRenderer(JSONRenderer):
    """OpenVEX v0.2.0, the default: ``?format=openvex`` or ``Accept: application/json``."""

    format = "openvex"


class CycloneDxRenderer(JSONRenderer):
    """CycloneDX 1.6 JSON: ``?format=cyclonedx`` or ``Accept: application/vnd.cyclonedx+json``."""

    media_type = CYCLONEDX_MEDIA_TYPE
    format = "cyclonedx"


VEX_RENDERERS = (OpenVexRenderer, CycloneDxRenderer)
VEX_FORMATS = tuple(renderer.format for renderer in VEX_RENDERERS)
