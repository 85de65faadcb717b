from django.urls import path

from . import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("livez", views.livez, name="livez"),
    path("readyz", views.readyz, name="readyz"),
]
