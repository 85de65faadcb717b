from django.urls import path

from analysis.api import views

urlpatterns = [
    path("analysis/submit", views.SubmitView.as_view(), name="analysis-submit"),
    path("analysis/import", views.ImportView.as_view(), name="analysis-import"),
    path("analysis", views.JobListView.as_view(), name="analysis-list"),
    path("analysis/<str:job_id>", views.JobDetailView.as_view(), name="analysis-detail"),
    path("analysis/<str:job_id>/status", views.JobStatusView.as_view(), name="analysis-status"),
    path("analysis/<str:job_id>/results", views.JobResultsView.as_view(), name="analysis-results"),
    path("analysis/<str:job_id>/report", views.JobReportView.as_view(), name="analysis-report"),
    path("analysis/<str:job_id>/retry", views.JobRetryView.as_view(), name="analysis-retry"),
    path(
        "analysis/<str:job_id>/evidence", views.JobEvidenceView.as_view(), name="analysis-evidence"
    ),
    path("vex/<str:vex_id>", views.VexDocumentView.as_view(), name="vex-detail"),
]
