"""The distillation strategies, as data: one registry entry per strategy.

An entry says everything the pipeline needs to know about a strategy: its params
key and report label, its plot style, which loss terms it trains with and which
teacher layers its patient loss pairs. Config validation, the stages, the report,
the sweep table and the benchmarks read this registry, and dvc.yaml names no
strategy. The names of the paper's four appear elsewhere only where the paper is
reproduced as laid out: the report's paper tables and comparisons (pkd/report)
and the larger-teacher study's PKD rows (pkd/study.py).

Adding a strategy is one `register(Strategy(...))` (README, "Add your own strategy").
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pkd.errors import ConfigError
from pkd.layers import LAYER_MAPS, check_student_depth, layer_map

LayerMap = Callable[[int, int], list[int]]


@dataclass(frozen=True)
class Strategy:
    """One way to train a student.

    soft_labels: trains with the soft-label loss L_DS (so `alpha` may be > 0).
    layers: the patient loss's teacher layer map, by name in pkd.layers.LAYER_MAPS or as a
        function (teacher depth N, student depth M) -> M-1 teacher layer numbers;
        None: no patient loss (`beta` must be 0).
    """

    name: str
    label: str
    soft_labels: bool = False
    layers: str | LayerMap | None = None
    color: str = "tab:green"
    marker: str = "D"

    @property
    def patient(self) -> bool:
        return self.layers is not None

    @property
    def reads_teacher(self) -> bool:
        """Whether its students read the teacher cache (False: labels only, the FT stage)."""
        return self.soft_labels or self.patient

    def teacher_layers(self, teacher_depth: int, student_depth: int) -> list[int] | None:
        """The teacher layers (1-based) that student layers 1..M-1 learn from; None without a patient loss."""
        if self.layers is None:
            return None
        if isinstance(self.layers, str):
            return layer_map(self.layers, teacher_depth, student_depth)
        check_student_depth(teacher_depth, student_depth)
        layers = list(self.layers(teacher_depth, student_depth))
        if len(layers) != student_depth - 1 or not all(1 <= i < teacher_depth for i in layers):
            raise ConfigError(
                f"strategy '{self.name}': its layer map gave {layers} for a {student_depth}-layer student of a "
                f"{teacher_depth}-layer teacher; it must give {student_depth - 1} layers in 1..{teacher_depth - 1}"
            )
        return layers


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add a strategy (or replace one of the same name); returns it."""
    if isinstance(strategy.layers, str) and strategy.layers not in LAYER_MAPS:
        raise ConfigError(f"strategy '{strategy.name}': unknown layer map '{strategy.layers}'; "
                          f"allowed: {', '.join(LAYER_MAPS)}")
    if not strategy.name.isidentifier():
        raise ConfigError(f"strategy name '{strategy.name}' must be an identifier (it is a params.yaml key)")
    _REGISTRY[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered strategy, in registration order (the report's row order)."""
    return tuple(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown strategy '{name}'; allowed: {', '.join(_REGISTRY)}") from None


def label(name: str) -> str:
    return get_strategy(name).label if name in _REGISTRY else name


# The paper's four (PKD.md, "Strategies").
register(Strategy("ft", "FT", color="tab:gray", marker="s"))
register(Strategy("kd", "KD", soft_labels=True, color="tab:blue", marker="o"))
register(Strategy("pkd_skip", "PKD-Skip", soft_labels=True, layers="skip", color="tab:red", marker="^"))
register(Strategy("pkd_last", "PKD-Last", soft_labels=True, layers="last", color="tab:orange", marker="v"))
