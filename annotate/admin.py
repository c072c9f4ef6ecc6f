from __future__ import annotations

from django.contrib import admin

from annotate import models


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "task_type",
        "num_responses",
        "overlap",
        "allow_ties",
        "created_at",
    ]
    list_filter = ["task_type"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["judges"]
    inlines = [MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__slug"]
    autocomplete_fields = ["user", "project"]


@admin.register(models.ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = [
        "filename",
        "project",
        "kind",
        "status",
        "created",
        "skipped",
        "invalid",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    readonly_fields = ["errors"]


@admin.register(models.Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "project",
        "route",
        "is_gold",
        "human_assigned",
        "human_done",
        "created_at",
    ]
    list_filter = ["project", "route", "is_gold"]
    search_fields = ["external_id", "content_hash"]
    raw_id_fields = ["import_batch"]
    list_select_related = ["project"]


@admin.register(models.Judge)
class JudgeAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model", "dtype", "device", "batch_size", "max_length"]
    list_filter = ["backend"]
    search_fields = ["name", "model"]


@admin.register(models.Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "created_by", "created_at"]
    list_filter = ["project"]


@admin.register(models.JudgeRun)
class JudgeRunAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "judge",
        "prompt_version",
        "status",
        "done",
        "failed",
        "total",
        "created_at",
    ]
    list_filter = ["status", "judge"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = [
        "item",
        "annotator",
        "status",
        "is_gold",
        "created_at",
        "expires_at",
        "finished_at",
    ]
    list_filter = ["status", "project"]
    raw_id_fields = ["item"]


@admin.register(models.Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = [
        "item",
        "aspect",
        "kind",
        "source",
        "annotator",
        "judge",
        "confidence",
        "created_at",
    ]
    list_filter = ["kind", "source", "aspect"]
    raw_id_fields = ["item", "assignment", "judge_run", "import_batch"]


@admin.register(models.RoutingRun)
class RoutingRunAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "policy",
        "policy_version",
        "budget_kind",
        "budget",
        "human_items",
        "status",
        "created_at",
    ]
    list_filter = ["policy", "status"]


@admin.register(models.RoutingDecision)
class RoutingDecisionAdmin(admin.ModelAdmin):
    list_display = ["run", "item", "route", "score", "rank"]
    list_filter = ["route"]
    raw_id_fields = ["run", "item"]


@admin.register(models.FinalLabel)
class FinalLabelAdmin(admin.ModelAdmin):
    list_display = [
        "item",
        "aspect",
        "source",
        "method",
        "num_humans",
        "agreement",
        "ai_confidence",
    ]
    list_filter = ["source", "method", "aspect"]
    raw_id_fields = ["item"]


@admin.register(models.Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["project", "shape", "file_format", "status", "rows", "created_at"]
    list_filter = ["status", "shape", "file_format"]


@admin.register(models.LabelRun)
class LabelRunAdmin(admin.ModelAdmin):
    list_display = ["project", "method", "status", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "method"]
    readonly_fields = ["summary", "error"]


@admin.register(models.ReportRun)
class ReportRunAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "kind",
        "labels",
        "aspect",
        "rounds",
        "status",
        "judgments",
        "computed_at",
        "created_by",
    ]
    list_filter = ["status", "kind"]
    readonly_fields = ["payload", "error"]
