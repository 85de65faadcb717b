"""The real URLconf plus failing views under /api/test/ (``@pytest.mark.urls("tests.urls")``)."""

from django.urls import include, path

from tests import views

urlpatterns = [
    path("api/test/submit", views.SubmitView.as_view()),
    path("api/test/protected", views.ProtectedView.as_view()),
    path("api/test/items/<int:pk>", views.ItemView.as_view()),
    *(
        path(f"api/test/raise/{name}", views.raising(factory))
        for name, factory in views.RAISERS.items()
    ),
    path("api/test/plain/runtime-error", views.plain_runtime_error),
    path("api/test/plain/not-found", views.plain_not_found),
    path("api/test/plain/permission-denied", views.plain_permission_denied),
    path("api/test/plain/csrf", views.plain_csrf_protected),
    path("", include("vexxy.urls")),
]
