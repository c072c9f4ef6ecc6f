from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Item, Judge, JudgeRun, Judgment
from annotate.services import judging
from models_gpu.tasks import run_batch
from tests.annotate.judge_fakes import FakeJudge, use_fake_judge

pytestmark = pytest.mark.django_db


@pytest.fixture
def judge() -> Judge:
    return Judge.objects.create(name="tiny", items_per_task=2, aspect_mode="overall_only")


def _run_all(run: JudgeRun) -> None:
    for batch in judging.judge_run_batches(run):
        run_batch(run.pk, batch)
    run.refresh_from_db()


def test_starting_a_run_splits_the_items_into_batches_and_enqueues_them_after_commit(
    project: Any, judge: Judge, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[tuple[int, list[int]]] = []
    monkeypatch.setattr(
        "models_gpu.tasks.judge_batch.delay", lambda run_id, ids: sent.append((run_id, ids))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = judging.judge_run_start(project=project, judge=judge)
    assert sent == []  # nothing leaves before the run row is committed
    for callback in callbacks:
        callback()
    assert (run.total, run.batches_total, run.status) == (5, 3, JudgeRun.Status.QUEUED)
    assert [len(ids) for _, ids in sent] == [2, 2, 1]
    assert judge in project.judges.all()


def test_a_run_stores_both_orders_combined_with_confidence_signals(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    use_fake_judge(monkeypatch, FakeJudge())
    run = judging.judge_run_start(project=project, judge=judge, enqueue=False)
    _run_all(run)
    assert (run.status, run.done, run.failed) == (JudgeRun.Status.SUCCEEDED, 5, 0)
    j = Judgment.objects.filter(judge=judge).first()
    assert j.kind == Judgment.Kind.AI and j.prompt_version == judging.DEFAULT_PROMPT_VERSION
    assert j.probabilities["a"] == pytest.approx(0.7)  # ½(0.8 + 0.6)
    assert j.signals["swap_disagreement"] == pytest.approx(0.2)
    assert j.value == {"strength": 1}
    assert j.raw["order_ab"]["p_first"] == 0.8 and j.raw["order_ba"]["p_second"] == 0.6


def test_a_redelivered_batch_writes_and_counts_nothing_twice(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    use_fake_judge(monkeypatch, FakeJudge())
    run = judging.judge_run_start(project=project, judge=judge, enqueue=False)
    batches = judging.judge_run_batches(run)
    run_batch(run.pk, batches[0])
    run_batch(run.pk, batches[0])
    run.refresh_from_db()
    assert (run.done, run.batches_done) == (2, 1)
    assert Judgment.objects.filter(judge=judge).count() == 2


def test_one_failing_item_records_its_error_and_does_not_sink_its_batch(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    bad = project.items.order_by("pk").first()
    bad.prompt = "FAIL me"
    bad.save()
    use_fake_judge(monkeypatch, FakeJudge())
    run = judging.judge_run_start(project=project, judge=judge, enqueue=False)
    _run_all(run)
    assert (run.status, run.done, run.failed) == (JudgeRun.Status.SUCCEEDED, 4, 1)
    assert f"item {bad.pk}: ItemError" in run.error
    bad.refresh_from_db()
    assert "cannot be judged" in bad.flags["judge_errors"]["tiny"]


def test_truncated_inputs_are_flagged_on_the_item(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    Item.objects.filter(pk=project.items.first().pk).update(prompt="LONG prompt")
    use_fake_judge(monkeypatch, FakeJudge())
    _run_all(judging.judge_run_start(project=project, judge=judge, enqueue=False))
    assert Item.objects.filter(flags__truncated__tiny=True).count() == 1


def test_a_bad_configuration_fails_the_run_with_its_message(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    use_fake_judge(monkeypatch, FakeJudge(broken="model path /nope does not exist"))
    run = judging.judge_run_start(project=project, judge=judge, enqueue=False)
    _run_all(run)
    assert run.status == JudgeRun.Status.FAILED
    assert run.error == "model path /nope does not exist"


def test_a_cancelled_run_skips_its_remaining_batches(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    fake = use_fake_judge(monkeypatch, FakeJudge())
    run = judging.judge_run_start(project=project, judge=judge, enqueue=False)
    batches = judging.judge_run_batches(run)
    run_batch(run.pk, batches[0])
    assert judging.judge_run_cancel(run=run)
    assert run_batch(run.pk, batches[1]) is None
    assert len(fake.calls) == 1
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.CANCELLED


def test_a_second_run_judges_only_items_without_a_verdict(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    use_fake_judge(monkeypatch, FakeJudge())
    _run_all(judging.judge_run_start(project=project, judge=judge, enqueue=False))
    with pytest.raises(judging.JudgingError, match="already has"):
        judging.judge_run_start(project=project, judge=judge, enqueue=False)


def test_a_new_rubric_version_makes_a_new_prompt_version_to_judge(
    project: Any, judge: Judge, monkeypatch: Any
) -> None:
    from models_gpu.prompts import DEFAULT_PAIRWISE_TEMPLATE

    use_fake_judge(monkeypatch, FakeJudge())
    _run_all(judging.judge_run_start(project=project, judge=judge, enqueue=False))
    rubric = judging.rubric_update(
        project=project, template=DEFAULT_PAIRWISE_TEMPLATE + "\nBe strict."
    )
    run = judging.judge_run_start(project=project, judge=judge, enqueue=False)
    assert (rubric.version, run.prompt_version, run.total) == (1, "rubric-v1", 5)


def test_a_rubric_without_a_placeholder_is_refused_with_its_name(project: Any) -> None:
    with pytest.raises(judging.JudgingError, match="response_b"):
        judging.rubric_update(project=project, template="Compare {prompt}: {response_a}. Answer:")


def test_imported_judges_cannot_be_run(project: Any) -> None:
    imported = Judge.objects.create(name="gpt-4", backend=Judge.Backend.IMPORTED)
    with pytest.raises(judging.JudgingError, match="imported"):
        judging.judge_run_start(project=project, judge=imported)


def test_every_aspect_gets_a_verdict_when_the_judge_asks_per_aspect(
    project: Any, monkeypatch: Any
) -> None:
    judge = Judge.objects.create(name="panel", aspect_mode="per_aspect")
    use_fake_judge(monkeypatch, FakeJudge())
    _run_all(judging.judge_run_start(project=project, judge=judge, enqueue=False))
    assert set(Judgment.objects.filter(judge=judge).values_list("aspect", flat=True)) == set(
        project.aspects
    )


def test_a_tagging_run_stores_tags_that_the_routing_pool_reads(
    project: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    import torch
    from transformers import LlamaForCausalLM

    import models_gpu
    from annotate.services.routing import routing_pool
    from models_gpu import JudgeSpec
    from models_gpu.judges import load_judge
    from tests.models_gpu.conftest import build_tokenizer, save_tiny, tiny_config

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    folder = save_tiny(tmp_path, LlamaForCausalLM(tiny_config(len(tokenizer))), tokenizer)
    monkeypatch.setattr(
        models_gpu, "load_judge", lambda spec: load_judge(JudgeSpec(model=folder)), raising=False
    )
    judge = Judge.objects.create(name="tagger", items_per_task=3)
    run = judging.judge_run_start(project=project, judge=judge, kind="tags", enqueue=False)
    _run_all(run)
    assert (run.status, run.done, run.kind) == (JudgeRun.Status.SUCCEEDED, 5, "tags")
    item = project.items.first()
    assert {"subject", "safety", "expertise"} <= set(item.tags) and item.tags["_by"] == "tagger"
    with pytest.raises(judging.JudgingError, match="already has tags"):
        judging.judge_run_start(project=project, judge=judge, kind="tags", enqueue=False)
    Judgment.objects.bulk_create(
        Judgment(
            item=i,
            kind="ai",
            source="tagger",
            task_type="pairwise",
            value={"strength": 1},
            judge=judge,
            prompt_version="v",
        )
        for i in project.items.all()
    )
    names = routing_pool(project=project).pool.features.categorical_names
    assert any(name.startswith("safety") for name in names)
