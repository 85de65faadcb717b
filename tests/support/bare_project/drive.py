"""Requests against the bare project; prints what the test checks as one JSON document."""

import json
import sys

import django
from django.test import Client

django.setup()
client = Client(raise_request_exception=False)
answers = {
    "health": client.get("/health"),
    "livez": client.get("/livez"),
    "invalid": client.post("/orders", {"quantity": 0}, content_type="application/json"),
    "broken": client.get("/broken", HTTP_X_REQUEST_ID="bare-req-1"),
    "missing": client.get("/nowhere"),
}
print(
    json.dumps(
        {
            "responses": {
                name: {
                    "status": r.status_code,
                    "body": r.json(),
                    "request_id": r.get("X-Request-ID"),
                }
                for name, r in answers.items()
            },
            "analysis_loaded": any(
                m == "analysis" or m.startswith("analysis.") for m in sys.modules
            ),
        }
    )
)
