"""Which teacher layers a PKD student learns from (docs/method.md, "Which teacher layers").

Layers are numbered 1..N as in the paper; HF `hidden_states[i]` is the output
of layer i and `hidden_states[0]` the embeddings. Student layers 1..M-1 are
matched; neither model's last layer is (the soft-label loss covers it).
"""
from __future__ import annotations

from pkd.errors import ConfigError


def layer_map(strategy: str, teacher_depth: int, student_depth: int) -> list[int]:
    """Teacher layer numbers (1-based) that student layers 1..M-1 learn from.

    PKD-Skip: I(j) = floor(j * N / M). When M divides N this is the paper's
    j * N / M (12 -> 6 gives 2,4,6,8,10). Otherwise the floor still yields M-1
    distinct, increasing layers below N, because consecutive values differ by
    N / M > 1 and the largest is N - ceil(N / M) < N.
    PKD-Last: I(j) = N - M + j (12 -> 6 gives 7..11).

    Raises ConfigError for an unknown map, M < 2 or M >= N.
    """
    if strategy not in LAYER_MAPS:
        raise ConfigError(f"unknown layer map '{strategy}'; allowed: {', '.join(LAYER_MAPS)}")
    check_student_depth(teacher_depth, student_depth)
    return LAYER_MAPS[strategy](teacher_depth, student_depth)


def check_student_depth(teacher_depth: int, student_depth: int) -> None:
    """A patient loss needs a student of 2..N-1 layers (it pairs layers 1..M-1 below the top)."""
    if student_depth < 2:
        raise ConfigError(f"a PKD student needs at least 2 layers (got {student_depth})")
    if student_depth >= teacher_depth:
        raise ConfigError(f"student depth {student_depth} must be smaller than the teacher depth {teacher_depth}")


def skip_layers(n: int, m: int) -> list[int]:
    """PKD-Skip: every (N/M)-th teacher layer, floor(j * N / M) for j = 1..M-1."""
    return [j * n // m for j in range(1, m)]


def last_layers(n: int, m: int) -> list[int]:
    """PKD-Last: the M-1 teacher layers just below the last, N - M + j for j = 1..M-1."""
    return [n - m + j for j in range(1, m)]


# Layer maps by name: a strategy in pkd.method.strategies names one (or none).
LAYER_MAPS = {"skip": skip_layers, "last": last_layers}

