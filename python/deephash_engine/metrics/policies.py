"""Evaluation policies: the rules that the research code bases leave implicit, bundled and named.

An :class:`EvalPolicy` fixes four rules (see docs/policies.md for what each original code does):

- ``ties``: order inside a group of equal Hamming distances, ``"index"`` (database index, what a
  stable sort gives) or ``"expected"`` (exact expectation over uniformly random orders).
- ``normalize``: AP@k divided by the relevant items retrieved in the top k (``"retrieved"``) or by
  min(k, relevant items in the database) (``"min"``).
- ``empty``: what a query whose AP has a zero denominator contributes to mAP: ``"zero"`` or ``"skip"``.
- ``curve_empty``: the same for precision/recall at rank cut-offs, PR curves and Hamming-radius
  metrics, where a query is empty when the database holds no item relevant to it.

Explicit keyword arguments given to a metric override the policy's value for that call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ._inputs import EMPTY, NORMALIZE, TIES, choice


@dataclass(frozen=True)
class EvalPolicy:
    """The policies of one evaluation; ``name`` says where they came from."""

    name: str
    ties: str = "index"
    normalize: str = "retrieved"
    empty: str = "zero"
    curve_empty: str = "zero"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EVAL_POLICIES: dict[str, EvalPolicy] = {
    # The defaults of this package.
    "default": EvalPolicy("default"),
    # swuxyj/DeepHash-pytorch CalcTopMap: AP normalised by relevant items retrieved, queries with none
    # retrieved count 0; CalcTopMapWithPR keeps only queries with a relevant item for its curves.
    # Their argsort is not stable; here ties go by database index, and topk=None is the whole
    # database (their topK=-1 drops the last item).
    "deephash-pytorch": EvalPolicy("deephash-pytorch", "index", "retrieved", "zero", "skip"),
    # thuml/HashNet pytorch mean_average_precision: queries with no relevant item in the top R are
    # left out of the mean. HashNet has no curves; thulab/DeepHash's radius metrics score a query with
    # nothing inside the radius 0, and queries are kept for the curves.
    "hashnet": EvalPolicy("hashnet", "index", "retrieved", "skip", "zero"),
}


def resolve_policy(
    policy: str | EvalPolicy | None = None,
    *,
    ties: str | None = None,
    normalize: str | None = None,
    empty: str | None = None,
    curve_empty: str | None = None,
) -> EvalPolicy:
    """The policy named (or given), with any explicit policy overriding its value.

    When an override changes a preset's policy, the name becomes ``"<preset>+custom"`` so a report
    never claims a preset it did not follow.
    """
    if policy is None:
        base = EVAL_POLICIES["default"]
    elif isinstance(policy, EvalPolicy):
        base = policy
    elif isinstance(policy, str) and policy in EVAL_POLICIES:
        base = EVAL_POLICIES[policy]
    else:
        raise ValueError(
            f"policy must be one of {', '.join(repr(p) for p in EVAL_POLICIES)} or an EvalPolicy, got {policy!r}"
        )
    overrides = {
        "ties": None if ties is None else choice(ties, "ties", TIES),
        "normalize": None if normalize is None else choice(normalize, "normalize", NORMALIZE),
        "empty": None if empty is None else choice(empty, "empty", EMPTY),
        "curve_empty": None if curve_empty is None else choice(curve_empty, "curve_empty", EMPTY),
    }
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(base, k) != v}
    for field in ("ties", "normalize", "empty", "curve_empty"):
        choice(getattr(base, field), f"policy.{field}", {"ties": TIES, "normalize": NORMALIZE}.get(field, EMPTY))
    if not changed:
        return base
    name = base.name if base.name.endswith("+custom") else f"{base.name}+custom"
    return replace(base, name=name, **changed)
