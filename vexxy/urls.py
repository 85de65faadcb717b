from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

public = {"authentication_classes": [], "permission_classes": []}

urlpatterns = [
    path("", include("reliability.urls")),
    path("api/v1/", include("analysis.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **public), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", **public), name="redoc"),
    path("admin/", admin.site.urls),
]
