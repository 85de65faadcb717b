"""The HTTP API: views, serializers, filters, URLs, authentication and the OpenAPI pieces."""
