"""hybridpref's data model.

Items hold K responses; judgments (human or AI, any task type) hold a verdict that converts to
pairwise preferences through `annotate.verdicts`. Assignments are the human queue, judge runs
the AI pre-labelling, routing runs and decisions say which items go to humans and why, final
labels and exports are what researchers take away. Rules about one row live on its model;
workflows that touch several rows live in `annotate/services.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from annotate import verdicts

DEFAULT_ASPECTS = ["overall", "helpfulness", "truthfulness", "harmlessness"]


def default_aspects() -> list[str]:
    return list(DEFAULT_ASPECTS)


def default_scale_labels() -> list[str]:
    return list(verdicts.DEFAULT_SCALE_LABELS)


class TaskType(models.TextChoices):
    PAIRWISE = verdicts.PAIRWISE, "Pairwise (graded)"
    RANKING = verdicts.RANKING, "Ranking of K"
    KWISE = verdicts.KWISE, "K-wise best–worst"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    task_type = models.CharField(max_length=16, choices=TaskType.choices, default=TaskType.PAIRWISE)
    num_responses = models.PositiveSmallIntegerField(
        "responses per item (K)",
        default=2,
        validators=[MinValueValidator(2), MaxValueValidator(16)],
    )
    aspects = models.JSONField(
        default=default_aspects, help_text="Aspects judged per item, in order."
    )
    allow_ties = models.BooleanField(default=True)
    scale_labels = models.JSONField(
        default=default_scale_labels,
        help_text="Labels of the 5-point pairwise scale, A much better first.",
    )
    overlap = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Distinct annotators per human-routed item.",
    )
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    show_ai_suggestions = models.BooleanField(
        default=False, help_text="Off by default: seeing the AI's verdict anchors annotators."
    )
    gold_rate = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of served items drawn from gold items, for quality control.",
    )
    assignment_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="How long an annotator holds an item before it returns to the pool.",
    )
    judges = models.ManyToManyField(
        "Judge", blank=True, related_name="projects", help_text="The AI panel."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.task_type == TaskType.PAIRWISE and self.num_responses != 2:
            errors["num_responses"] = "A pairwise project has exactly 2 responses per item."
        if self.task_type == TaskType.KWISE and self.num_responses < 3:
            errors["num_responses"] = "Best–worst needs at least 3 responses per item."
        aspects = self.aspects
        if (
            not isinstance(aspects, list)
            or not aspects
            or not all(isinstance(a, str) and a.strip() for a in aspects)
        ):
            errors["aspects"] = "List at least one aspect name."
        elif len(set(aspects)) != len(aspects):
            errors["aspects"] = "Aspect names must be unique."
        if not isinstance(self.scale_labels, list) or len(self.scale_labels) != 5:
            errors["scale_labels"] = "The pairwise scale has exactly 5 labels."
        if errors:
            raise ValidationError(errors)

    def role_of(self, user: Any) -> str | None:
        """The user's role here, or None. Superusers act as admins of every project."""
        if not getattr(user, "is_authenticated", False):
            return None
        if user.is_superuser:
            return Membership.Role.ADMIN
        role = self.memberships.filter(user=user).values_list("role", flat=True).first()
        return role

    def validate_verdict(self, value: Any) -> dict:
        return verdicts.validate(
            self.task_type, value, k=self.num_responses, allow_ties=self.allow_ties
        )


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        RESEARCHER = "researcher", "Researcher"
        ANNOTATOR = "annotator", "Annotator"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} · {self.project}"

    # Who may do what: one table, read by every view and API endpoint.
    CAN_MANAGE = {Role.ADMIN}
    CAN_RESEARCH = {Role.ADMIN, Role.RESEARCHER}
    CAN_ANNOTATE = {Role.ADMIN, Role.RESEARCHER, Role.ANNOTATOR}


class ImportBatch(models.Model):
    """One run of the importer: provenance for every item and label it created."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=500)
    kind = models.CharField(max_length=16, default="items", help_text="items or labels")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    created = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True, help_text="The first invalid rows: line, field, reason."
    )
    rejects_path = models.CharField(max_length=500, blank=True)
    message = models.TextField(
        blank=True, help_text="The one-line summary, or why the import failed."
    )
    options = models.JSONField(
        default=dict, blank=True, help_text="format, maps, skip_invalid: to replay the import."
    )
    upload_path = models.CharField(
        max_length=500, blank=True, help_text="Where an uploaded file waits for the worker."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.filename} → {self.project} ({self.status})"


class Item(models.Model):
    class Route(models.TextChoices):
        PENDING = "pending", "Not routed yet"
        HUMAN = "human", "Humans"
        AI = "ai", "AI label"

    # No index of its own: the unique (project, external_id) index already leads with project,
    # and every index here is paid on each of the thousands of rows an import writes.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    external_id = models.CharField(max_length=255)
    # Not indexed: nothing looks items up by it (an item without an id is found by the external id
    # derived from it), and each index is paid on every row an import writes.
    content_hash = models.CharField(max_length=64)
    prompt = models.JSONField(help_text='Plain text, or a chat: [{"role", "content"}, ...].')
    responses = models.JSONField(help_text='[{"model", "text"}, ...] in canonical order.')
    metadata = models.JSONField(default=dict, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_label = models.JSONField(
        null=True, blank=True, help_text="A verdict in the project's task type."
    )
    route = models.CharField(max_length=8, choices=Route.choices, default=Route.PENDING)
    # Denormalised counters the queue reads under a row lock instead of counting assignments.
    human_assigned = models.PositiveSmallIntegerField(
        default=0, help_text="Active + submitted assignments."
    )
    human_done = models.PositiveSmallIntegerField(default=0, help_text="Submitted human judgments.")
    flags = models.JSONField(
        default=dict, blank=True, help_text="e.g. truncated inputs, per judge."
    )
    tags = models.JSONField(
        default=dict,
        blank=True,
        help_text="Descriptive tags for routing (subject, expertise, safety …), from the tagging task.",
    )
    # Where the item came from; only the admin reads it. No database constraint: PostgreSQL
    # checked it row by row, 100k times for one batch (5 µs per imported item, a seventh of the
    # server's work); deleting a batch through Django still sets it to NULL.
    import_batch = models.ForeignKey(
        ImportBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="items",
        db_constraint=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="item_unique_external_id"
            ),
        ]
        indexes = [
            # Regular items only: gold items are not capped by overlap, so the ones served once
            # sat at the top of every "next" scan, and the queue read more of them each day.
            models.Index(
                fields=["project", "route", "human_assigned"],
                condition=Q(is_gold=False),
                name="item_queue_idx",
            ),
            # The queue draws gold items from a small pool; without this it scans the project.
            models.Index(fields=["project"], condition=Q(is_gold=True), name="item_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.external_id}"

    @property
    def prompt_text(self) -> str:
        """The prompt as one string; chat turns become "role: content" paragraphs."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n\n".join(
            f"{turn.get('role', 'user')}: {turn.get('content', '')}" for turn in self.prompt
        )

    @property
    def is_chat(self) -> bool:
        return isinstance(self.prompt, list)

    @property
    def model_names(self) -> list[str]:
        return [r.get("model", "") for r in self.responses]


class Judge(models.Model):
    """A registered AI judge. Rows are edited in the admin; `models_gpu` builds the model from them."""

    class Backend(models.TextChoices):
        LLM_PAIRWISE = "llm_pairwise", "Causal LM, pairwise verdict probabilities"
        LLM_LISTWISE = "llm_listwise", "Causal LM, listwise with rotated orders"
        REWARD_MODEL = "reward_model", "Reward model (sequence classifier, one logit)"
        DENSITY_RATIO = "density_ratio", "Density ratio of two causal LMs (CDR)"
        IMPORTED = "imported", "Imported labels (external judge)"

    class Dtype(models.TextChoices):
        AUTO = "auto", "auto (bf16 on GPU, fp32 on CPU)"
        FLOAT32 = "float32"
        BFLOAT16 = "bfloat16"
        FLOAT16 = "float16"
        INT8 = "int8", "int8 (CPU only, approximate: dynamic int8 Linear layers)"

    name = models.SlugField(max_length=100, unique=True)
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.LLM_PAIRWISE)
    model = models.CharField(
        max_length=500,
        blank=True,
        help_text="Hugging Face id or local folder; blank = embedded SmolLM2.",
    )
    weak_model = models.CharField(
        max_length=500, blank=True, help_text="Density ratio only: the weak model."
    )
    dtype = models.CharField(max_length=16, choices=Dtype.choices, default=Dtype.AUTO)
    device = models.CharField(max_length=32, default="auto", help_text="auto, cpu, cuda, cuda:1 …")
    max_length = models.PositiveIntegerField(default=2048, validators=[MinValueValidator(64)])
    batch_size = models.PositiveIntegerField(default=8, validators=[MinValueValidator(1)])
    items_per_task = models.PositiveIntegerField(default=64, validators=[MinValueValidator(1)])
    aspect_mode = models.CharField(
        max_length=16,
        default="per_aspect",
        choices=[("per_aspect", "One prompt per aspect"), ("overall_only", "Overall only")],
    )
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_imported(self) -> bool:
        return self.backend == self.Backend.IMPORTED


class Rubric(models.Model):
    """A project's judge prompt. Append-only: editing makes a new version, so every AI judgment
    names the exact prompt that produced it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rubrics")
    version = models.PositiveIntegerField()
    template = models.TextField(
        help_text="Placeholders: {prompt}, {response_a}, {response_b}, {aspect}."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="rubric_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} rubric v{self.version}"

    @property
    def label(self) -> str:
        return f"rubric-v{self.version}"


class JobBusy(Exception):
    """A job of the same scope is already queued or running: `active` is that row (None if it
    finished in the meantime)."""

    def __init__(self, active: Any) -> None:
        super().__init__(f"already active: {active}")
        self.active = active


class WorkerJob(models.Model):
    """What every row that a worker runs in the background records: who started it, when it
    started and ended, and why it failed. Its status choices are the subclass's own."""

    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def mark_failed(cls, pk: int, exc: BaseException) -> None:
        """Record that the job failed and why (the exception's type and text, cut to what a
        page can show). An UPDATE by id: the worker's copy of the row may be stale."""
        cls.objects.filter(pk=pk).update(
            status="failed",  # every subclass's Status has FAILED = "failed"
            error=f"{type(exc).__name__}: {exc}"[:5000],
            finished_at=timezone.now(),
        )

    @classmethod
    def start_exclusive(cls, *, scope: dict[str, Any], **fields: Any) -> Any:
        """A new queued row of `scope` (e.g. its project), unless one of the same scope is
        queued or running (JobBusy). The rule is the subclass's partial unique constraint on its
        ACTIVE statuses, which settles two requests that check at the same moment; rows lost by
        their worker are failed first, so they do not block every later run."""
        cls.fail_lost(**scope)
        try:
            with transaction.atomic():
                return cls.objects.create(**scope, **fields)
        except IntegrityError:
            raise JobBusy(cls.objects.filter(status__in=cls.ACTIVE, **scope).first()) from None

    @classmethod
    def claim(cls, pk: int, **also: Any) -> Any:
        """Mark the row running for the worker that got its task, with `also` set; the row (its
        project loaded), or None when it is gone or finished. A row already "running" is claimed
        again: that is a redelivery after its worker was lost."""
        claimed = cls.objects.filter(pk=pk, status__in=cls.ACTIVE).update(
            status="running", started_at=timezone.now(), **also
        )
        return cls.objects.select_related("project").get(pk=pk) if claimed else None

    @classmethod
    def fail_lost(cls, **filters: Any) -> int:
        """Mark failed the matching rows still "running" after the task time limit: they lost
        their worker (the limit kills the task before the row is updated), and a row left
        running would block every later run. Returns how many were marked."""
        limit = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
        return cls.objects.filter(status="running", started_at__lt=limit, **filters).update(
            status="failed",
            error="no result within the task time limit: the worker was lost",
            finished_at=timezone.now(),
        )


class JudgeRun(WorkerJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_runs")
    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(
        max_length=16,
        default="verdicts",
        choices=[("verdicts", "Verdicts (pre-labelling)"), ("tags", "Tags for routing")],
    )
    prompt_version = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.judge} on {self.project} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int:
        return (
            int(100 * (self.done + self.failed) / self.total)
            if self.total
            else (100 if self.is_finished else 0)
        )


class Assignment(models.Model):
    """One annotator holding one item. The lock expires so an abandoned item returns to the pool."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUBMITTED = "submitted"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    presentation_order = models.JSONField(
        help_text="Canonical response indices in the order shown."
    )
    is_gold = models.BooleanField(default=False)
    skip_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Never the same item twice to one annotator (an expired hold does not count).
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=~Q(status="expired"),
                name="assignment_once_per_annotator",
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "status"], name="assignment_annotator_idx"),
            # Lazy expiry looks for overdue active holds on every "next"; keep that an index probe.
            models.Index(
                fields=["project", "expires_at"],
                condition=Q(status="active"),
                name="assignment_active_expiry_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} → {self.item} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.status == self.Status.ACTIVE and self.expires_at <= timezone.now()

    @classmethod
    def expiry_from_now(cls, project: Project) -> Any:
        return timezone.now() + timedelta(minutes=project.assignment_minutes)


class Judgment(models.Model):
    """One verdict on one item and aspect, by a human or an AI judge, in canonical response order."""

    class Kind(models.TextChoices):
        HUMAN = "human"
        AI = "ai"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgments")
    aspect = models.CharField(max_length=64, default="overall")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    source = models.CharField(
        max_length=100, help_text='"annotate", "imported", or the judge / import source name.'
    )
    task_type = models.CharField(max_length=16, choices=TaskType.choices)
    value = models.JSONField(help_text="The verdict; shape in annotate/verdicts.py.")
    # Humans
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="judgments",
    )
    external_annotator = models.CharField(
        max_length=100,
        blank=True,
        help_text="Imported human labels: who, as the source names them.",
    )
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgments"
    )
    rationale = models.TextField(blank=True)
    confidence_label = models.CharField(
        max_length=16, blank=True, help_text="The annotator's own confidence."
    )
    time_spent_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Measured on the server."
    )
    presentation_order = models.JSONField(null=True, blank=True)
    # AI judges
    judge = models.ForeignKey(
        Judge, null=True, blank=True, on_delete=models.PROTECT, related_name="judgments"
    )
    judge_run = models.ForeignKey(
        JudgeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgments"
    )
    prompt_version = models.CharField(max_length=64, blank=True)
    probabilities = models.JSONField(
        null=True, blank=True, help_text='e.g. {"a": .7, "b": .2, "tie": .1}'
    )
    confidence = models.FloatField(null=True, blank=True, help_text="0..1; higher = more sure.")
    signals = models.JSONField(
        default=dict, blank=True, help_text="margin, swap_disagreement, entropy, …"
    )
    raw = models.JSONField(null=True, blank=True, help_text="Per-order raw output.")
    import_batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgments"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Idempotent AI writes: one verdict per item, judge, prompt version and aspect.
            models.UniqueConstraint(
                fields=["item", "judge", "prompt_version", "aspect"],
                condition=Q(judge__isnull=False),
                name="judgment_ai_once",
            ),
            # Idempotent submits: one judgment per assignment and aspect.
            models.UniqueConstraint(
                fields=["assignment", "aspect"],
                condition=Q(assignment__isnull=False),
                name="judgment_assignment_once",
            ),
            # Idempotent label imports of humans not in the app.
            models.UniqueConstraint(
                fields=["item", "source", "external_annotator", "aspect"],
                condition=Q(judge__isnull=True, assignment__isnull=True),
                name="judgment_imported_once",
            ),
        ]
        indexes = [models.Index(fields=["item", "kind", "aspect"], name="judgment_item_kind_idx")]

    def __str__(self) -> str:
        who = self.judge or self.annotator or self.external_annotator or self.source
        return f"{who} on {self.item_id}/{self.aspect}: {self.value}"

    def preferences(self, k: int | None = None) -> list[verdicts.Preference]:
        k = k if k is not None else len(self.item.responses)
        return verdicts.to_preferences(self.task_type, self.value, k=k)


class RoutingRun(WorkerJob):
    """One routing decision over a project: a policy, a budget, and the items it sent to humans.

    Computing the preview reads every item and AI judgment of the project (about 9 s at 50,000
    items on PostgreSQL, more with MiniLM embeddings), so a worker computes it: the row is
    queued, then running, then a preview (its decisions written) or failed; applying it is a
    separate, short step.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PREVIEW = "preview"
        APPLIED = "applied"
        FAILED = "failed"

    ACTIVE = {Status.QUEUED, Status.RUNNING}
    FINISHED = {Status.PREVIEW, Status.APPLIED, Status.FAILED}

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="routing_runs")
    policy = models.CharField(max_length=32)
    policy_version = models.CharField(max_length=32, blank=True)
    budget_kind = models.CharField(
        max_length=16,
        default="judgments",
        choices=[("judgments", "Human judgments"), ("money", "Money")],
    )
    budget = models.FloatField(validators=[MinValueValidator(0.0)])
    cost_per_judgment = models.FloatField(default=0.0, validators=[MinValueValidator(0.0)])
    seed = models.PositiveIntegerField(default=0)
    embed = models.BooleanField(
        default=False, help_text="Features include MiniLM embeddings of the responses."
    )
    human_items = models.PositiveIntegerField(default=0)
    estimate = models.JSONField(
        default=dict, blank=True, help_text="Estimated accuracy / predicted score and the curve."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent of the work done")
    seconds = models.FloatField(default=0.0)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Each preview reads the whole project; a second at once only doubles the load
            # (and a double click would queue two). The database refuses the second even when
            # two requests check at the same moment.
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status__in=["queued", "running"]),
                name="routing_run_one_active_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"{self.project} {self.policy} budget={self.budget:g} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class RoutingDecision(models.Model):
    run = models.ForeignKey(RoutingRun, on_delete=models.CASCADE, related_name="decisions")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="routing_decisions")
    route = models.CharField(max_length=8, choices=Item.Route.choices)
    score = models.FloatField(help_text="The policy's score: higher = a human adds more.")
    rank = models.PositiveIntegerField()
    reason = models.JSONField(
        default=dict, blank=True, help_text="The features that drove the score."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "item"], name="decision_once_per_run")
        ]
        indexes = [models.Index(fields=["run", "rank"], name="decision_rank_idx")]

    def __str__(self) -> str:
        return f"{self.item_id} → {self.route} (score {self.score:.3f})"


class FinalLabel(models.Model):
    """The label an item carries into a dataset, per aspect, with where it came from."""

    class Source(models.TextChoices):
        HUMAN = "human"
        AI = "ai"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="final_labels")
    aspect = models.CharField(max_length=64, default="overall")
    task_type = models.CharField(max_length=16, choices=TaskType.choices)
    value = models.JSONField()
    source = models.CharField(max_length=8, choices=Source.choices)
    method = models.CharField(max_length=32, help_text="majority, dawid_skene, judge:<name>, …")
    num_humans = models.PositiveSmallIntegerField(default=0)
    agreement = models.FloatField(null=True, blank=True)
    ai_confidence = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "aspect"], name="final_label_once")]

    def __str__(self) -> str:
        return f"{self.item_id}/{self.aspect}: {self.value} ({self.source})"


class Export(WorkerJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    shape = models.CharField(
        max_length=16,
        choices=[
            ("dpo", "DPO / TRL pairs"),
            ("reward", "Reward-model pairs"),
            ("listwise", "Listwise"),
            ("raw", "Raw judgments"),
        ],
    )
    file_format = models.CharField(
        max_length=16,
        choices=[
            ("jsonl", "JSONL"),
            ("parquet", "Parquet"),
            ("hf", "Hugging Face datasets folder"),
        ],
    )
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows = models.PositiveIntegerField(default=0)
    # Progress: `processed` of `total` source rows (labels, or judgments for raw) have been read;
    # `rows` counts what was written, which differs because rankings expand to several pairs.
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    files = models.JSONField(
        default=list, blank=True, help_text='[{"name", "bytes", "rows"}] inside `path`.'
    )
    stats = models.JSONField(default=dict, blank=True, help_text="What the dataset card says.")
    path = models.CharField(max_length=500, blank=True)

    FINISHED = {Status.SUCCEEDED, Status.FAILED}

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.project} {self.shape}.{self.file_format} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return int(100 * self.processed / self.total) if self.total else 0


class LabelRun(WorkerJob):
    """One computation of a project's final labels on a worker: it takes tens of seconds on a
    large project, too long for a web request, so the pages and the API poll this row."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    ACTIVE = {Status.QUEUED, Status.RUNNING}
    FINISHED = {Status.SUCCEEDED, Status.FAILED}

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_runs")
    method = models.CharField(max_length=32, help_text="majority or dawid_skene")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    summary = models.JSONField(
        default=dict, blank=True, help_text="What the computation reported: counts and seconds."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Two runs of one project at once would each delete the labels the other just wrote
            # (a run removes every label older than its own start); the database refuses the
            # second even when two requests check at the same moment.
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status__in=["queued", "running"]),
                name="label_run_one_active_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"{self.project} final labels by {self.method} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class ReportRun(WorkerJob):
    """One computation of a quality report or a leaderboard on a worker, and its result.

    Both read every judgment (or label) of the project: seconds to minutes on a large project,
    too long for a web request. The pages and the API show the latest succeeded row for the
    parameters asked and poll an active one. The payload is the report as JSON, the same shape
    the API returns.
    """

    class Kind(models.TextChoices):
        QUALITY = "quality", "Quality report"
        LEADERBOARD = "leaderboard", "Leaderboard"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    ACTIVE = {Status.QUEUED, Status.RUNNING}
    FINISHED = {Status.SUCCEEDED, Status.FAILED}

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="report_runs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Parameters (blank / 0 for the quality report, which has none).
    labels = models.CharField(max_length=8, blank=True, help_text="final, human or ai")
    aspect = models.CharField(max_length=64, blank=True)
    rounds = models.PositiveIntegerField(default=0, help_text="bootstrap rounds")
    seed = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent of the rows read")
    payload = models.JSONField(default=dict, blank=True)
    judgments = models.PositiveIntegerField(
        default=0, help_text="Judgments (or final labels) the report was computed from."
    )
    last_judgment_id = models.BigIntegerField(
        null=True, blank=True, help_text="The project's newest judgment when it was computed."
    )
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Each run reads the whole project; two of one kind at once only double the load.
            # The database refuses the second even when two requests check at the same moment.
            models.UniqueConstraint(
                fields=["project", "kind"],
                condition=models.Q(status__in=["queued", "running"]),
                name="report_run_one_active_per_project_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.project} {self.kind} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
