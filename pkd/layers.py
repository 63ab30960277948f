"""Which teacher layers a PKD student learns from (PKD.md, "Which teacher layers").

Layers are numbered 1..N as in the paper; HF `hidden_states[i]` is the output
of layer i and `hidden_states[0]` the embeddings. Student layers 1..M-1 are
matched; neither model's last layer is (the soft-label loss covers it).
"""
from __future__ import annotations

STRATEGIES = ("skip", "last")


def layer_map(strategy: str, teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layer numbers (1-based) that student layers 1..M-1 learn from.

    PKD-Skip: I(j) = floor(j * N / M). When M divides N this is the paper's
    j * N / M (12 -> 6 gives 2,4,6,8,10). Otherwise the floor still yields M-1
    distinct, increasing layers below N, because consecutive values differ by
    N / M > 1 and the largest is N - ceil(N / M) < N.
    PKD-Last: I(j) = N - M + j (12 -> 6 gives 7..11).

    Raises ValueError for an unknown strategy, M < 2 or M >= N.
    """
    n, m = teacher_layers, student_layers
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown layer strategy '{strategy}'; allowed: {', '.join(STRATEGIES)}")
    if m < 2:
        raise ValueError(f"a PKD student needs at least 2 layers (got {m})")
    if m >= n:
        raise ValueError(f"student depth {m} must be smaller than the teacher depth {n}")
    if strategy == "skip":
        return [j * n // m for j in range(1, m)]
    return [n - m + j for j in range(1, m)]


def layer_union(strategies: list[str], teacher_layers: int, student_layers: list[int]) -> list[int]:
    """Every teacher layer that a student of some depth in `student_layers` reads under `strategies`.

    The teacher cache stores these (PKD-Skip and PKD-Last, depths 6 and 3 of a
    12-layer teacher: 2, 4, 6, 7, 8, 9, 10, 11). Sorted, without repeats.
    """
    return sorted({i for s in strategies for m in student_layers for i in layer_map(s, teacher_layers, m)})
