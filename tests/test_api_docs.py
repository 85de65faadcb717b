"""Swagger UI and ReDoc work with no network: every asset they load is served by the service."""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_only_assets_the_service_serves(client, page):
    response = client.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSET.findall(html)
    assert assets, "the page loads its viewer from somewhere"
    remote = [url for url in assets if not url.startswith("/")]
    assert remote == [], f"{page} loads {remote}"
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content if asset.streaming else [asset.content])


def test_swagger_ui_reads_the_schema_the_service_publishes(client):
    html = client.get("/api/docs/").content.decode()

    assert '"/api/schema/"' in html or "'/api/schema/'" in html
    assert client.get("/api/schema/").status_code == 200
