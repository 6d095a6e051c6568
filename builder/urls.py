from django.urls import path

from builder import api, block_tests_api, schedules_api, versions_api

urlpatterns = [
    path("workflows/", api.WorkflowListView.as_view(), name="workflow-list"),
    path("workflows/<int:pk>/", api.WorkflowDetailView.as_view(), name="workflow-detail"),
    path(
        "workflows/<int:pk>/validate/", api.WorkflowValidateView.as_view(), name="workflow-validate"
    ),
    path(
        "workflows/<int:pk>/duplicate/",
        api.WorkflowDuplicateView.as_view(),
        name="workflow-duplicate",
    ),
    path("workflows/<int:pk>/export/", api.WorkflowExportView.as_view(), name="workflow-export"),
    path(
        "workflows/<int:pk>/publish/",
        versions_api.WorkflowPublishView.as_view(),
        name="workflow-publish",
    ),
    path(
        "workflows/<int:pk>/versions/",
        versions_api.VersionListView.as_view(),
        name="workflow-versions",
    ),
    path(
        "workflows/<int:pk>/versions/diff/",
        versions_api.VersionDiffView.as_view(),
        name="workflow-version-diff",
    ),
    path(
        "workflows/<int:pk>/versions/<int:number>/",
        versions_api.VersionDetailView.as_view(),
        name="workflow-version",
    ),
    path(
        "workflows/<int:pk>/versions/<int:number>/restore/",
        versions_api.VersionRestoreView.as_view(),
        name="workflow-version-restore",
    ),
    path(
        "workflows/<int:pk>/blocks/<str:block_id>/test/",
        block_tests_api.BlockTestView.as_view(),
        name="workflow-block-test",
    ),
    path("workflows/<int:pk>/runs/", api.WorkflowRunsView.as_view(), name="workflow-runs"),
    path(
        "workflows/<int:pk>/runs/last/", api.WorkflowLastRunView.as_view(), name="workflow-last-run"
    ),
    path(
        "workflows/<int:pk>/webhook/secret/", api.WebhookSecretView.as_view(), name="webhook-secret"
    ),
    path("runs/<str:pk>/", api.RunDetailView.as_view(), name="run-detail"),
    path("runs/<str:pk>/items/", api.RunItemsView.as_view(), name="run-items"),
    path("runs/<str:pk>/summary/", api.RunSummaryView.as_view(), name="run-summary"),
    path("runs/<str:pk>/cancel/", api.RunCancelView.as_view(), name="run-cancel"),
    path("runs/<str:pk>/retry-failed/", api.RunRetryFailedView.as_view(), name="run-retry-failed"),
    path(
        "runs/<str:pk>/resume-provider/",
        api.RunResumeProviderView.as_view(),
        name="run-resume-provider",
    ),
    path("runs/<str:pk>/timeline/", api.RunTimelineView.as_view(), name="run-timeline"),
    path("blocks/", api.BlockCatalogueView.as_view(), name="block-catalogue"),
    path("templates/", api.TemplateListView.as_view(), name="template-list"),
    path(
        "templates/<slug:slug>/instantiate/",
        api.TemplateInstantiateView.as_view(),
        name="template-instantiate",
    ),
    path("secrets/", api.SecretListView.as_view(), name="secret-list"),
    path("secrets/<str:name>/", api.SecretDetailView.as_view(), name="secret-detail"),
    path(
        "schedules/preview/",
        schedules_api.SchedulePreviewView.as_view(),
        name="schedule-preview",
    ),
]
