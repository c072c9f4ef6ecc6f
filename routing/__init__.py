"""Routing: decide which preference items humans should label and which keep their AI label.

Pure Python (numpy, scikit-learn); no Django. The ``annotate`` service turns results into rows.

Typical use::

    from routing import JudgeVerdicts, build_pool, make_policy, budget_to_items

    pool = build_pool(prompts=..., responses_a=..., responses_b=...,
                      judges=[JudgeVerdicts("gpt", probs), JudgeVerdicts.from_labels("pl", v)],
                      tags={"safety": [...]})                 # tags optional
    pool.ai.weights    # each judge's weight, estimated from agreement with 3+ judges, else None
    k = budget_to_items(judgments=600, overlap=3, available=len(pool))
    result = make_policy("learned", seed=0).route(pool, k, routed=routed, human_labels=labels)
    for d in result.decisions():   # index, route, score, rank, reason, policy, version
        ...
    curve = policy_curve(policy, pool, human_accuracy=0.9, budget=k, ...).to_dict()

    # Final label of items humans did not see: the AI label corrected by a model learned
    # from the human labels of routed items (see routing/relabel.py).
    state = RoutingState.of(len(pool), routed, human_labels)
    fixed = relabel_ai_labels(pool, state)   # .labels, .probs, .changed, .final(state)
"""

from __future__ import annotations

from routing.budget import Budget, budget_to_items, items_for_share
from routing.estimate import (
    Curve,
    ai_correct_probability,
    curve_from_ranking,
    estimated_accuracy,
    human_accuracy_from_agreement,
    pairwise_agreement,
    policy_curve,
)
from routing.features import (
    A_BETTER,
    B_BETTER,
    TIE,
    UNKNOWN,
    AILabels,
    Embedder,
    JudgeVerdicts,
    PoolFeatures,
    combine_judges,
    combine_votes,
    encode_tags,
    estimate_judge_weights,
    make_pool_features,
    minilm_embedder,
)
from routing.policies import (
    LearnedPolicy,
    Policy,
    RandomPolicy,
    RoutingDecision,
    RoutingResult,
    UncertaintyPolicy,
    fit_error_model,
    make_policy,
)
from routing.pool import RoutingPool, RoutingState, build_pool, combine_panel
from routing.relabel import (
    CorrectedPolicy,
    LabelModel,
    RelabelResult,
    fit_label_model,
    relabel_ai_labels,
)
from routing.rounds import RoundsResult, route_in_rounds
from routing.simulate import HyperPolicy

__all__ = [
    "A_BETTER",
    "B_BETTER",
    "TIE",
    "UNKNOWN",
    "AILabels",
    "Budget",
    "CorrectedPolicy",
    "Curve",
    "Embedder",
    "HyperPolicy",
    "JudgeVerdicts",
    "LabelModel",
    "LearnedPolicy",
    "Policy",
    "PoolFeatures",
    "RandomPolicy",
    "RelabelResult",
    "RoundsResult",
    "RoutingDecision",
    "RoutingPool",
    "RoutingResult",
    "RoutingState",
    "UncertaintyPolicy",
    "ai_correct_probability",
    "budget_to_items",
    "build_pool",
    "combine_judges",
    "combine_panel",
    "combine_votes",
    "curve_from_ranking",
    "encode_tags",
    "estimate_judge_weights",
    "estimated_accuracy",
    "fit_error_model",
    "fit_label_model",
    "human_accuracy_from_agreement",
    "items_for_share",
    "make_policy",
    "make_pool_features",
    "minilm_embedder",
    "pairwise_agreement",
    "policy_curve",
    "relabel_ai_labels",
    "route_in_rounds",
]
