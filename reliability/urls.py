from django.urls import path

from . import views
from .metrics.views import metrics

urlpatterns = [
    path("health", views.health, name="health"),
    path("livez", views.livez, name="livez"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
