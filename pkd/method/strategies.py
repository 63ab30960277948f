"""The distillation strategies, as data: one registry entry per strategy.

An entry says everything the pipeline needs to know about a strategy: its params
key and report label, its plot style, which loss terms it trains with and which
teacher layers its patient loss pairs. Config validation, the stages, the report,
the sweep table and the benchmarks read this registry, and dvc.yaml names no
strategy. The names of the paper's four appear elsewhere only where the paper is
reproduced as laid out: the report's paper tables and comparisons (pkd/report)
and the larger-teacher study's PKD rows (pkd/cli/teacher_study.py).

Adding a strategy is one `register(Strategy(...))` (README, "Add your own strategy");
the report then adds it to Table 1, the paired differences, its figures and the
sweep table. The paper's layout of its own four (which table shows which, what it
claims) is data here too: `PAPER`, `KD`, `PKD`, `CLAIMS`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pkd.errors import ConfigError
from pkd.method.layer_maps import LAYER_MAPS, check_student_depth, layer_map

LayerMap = Callable[[int, int], list[int]]


@dataclass(frozen=True)
class Strategy:
    """One way to train a student.

    label: its name in the report's tables and figures.
    soft_labels: trains with the soft-label loss L_DS (so `alpha` may be > 0).
    layers: the patient loss's teacher layer map, by name in pkd.method.layer_maps.LAYER_MAPS or as a
        function (teacher depth N, student depth M) -> M-1 teacher layer numbers;
        None: no patient loss (`beta` must be 0).
    """

    name: str
    label: str
    soft_labels: bool = False
    layers: str | LayerMap | None = None
    color: str = "tab:green"
    marker: str = "D"
    description: str = ""  # what it trains with, for the report's captions

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


def label(name: str, projected: bool = False) -> str:
    """The strategy's name in tables and figures; "<label> + proj" for one trained with a learned
    projection (params.yaml's `strategies.<name>.projection`), so that an extension is never shown
    as the paper's method. An unregistered name is shown as it is."""
    if name not in _REGISTRY:
        return name
    return get_strategy(name).label + (" + proj" if projected else "")


def extras() -> tuple[str, ...]:
    """The registered strategies beyond the paper's four, in registration order: the report
    adds each to Table 1, the paired differences and its figures."""
    return tuple(s for s in _REGISTRY if s not in PAPER)


def comparisons() -> tuple[tuple[str, str], ...]:
    """(a, b) pairs the report tests seed by seed, a - b: the paper's claims among the
    registered strategies, then every extra strategy against each one registered before it."""
    registered = names()
    pairs = [(a, b) for a, b in CLAIMS if a in _REGISTRY and b in _REGISTRY]
    for extra in extras():
        pairs += [(extra, earlier) for earlier in registered[:registered.index(extra)]]
    return tuple(pairs)


# The paper's four (docs/method.md, "Strategies"), in the order of its tables.
register(Strategy("ft", "FT", color="tab:gray", marker="s", description="fine-tuned on labels"))
register(Strategy("kd", "KD", soft_labels=True, color="tab:blue", marker="o", description="soft labels"))
register(Strategy("pkd_skip", "PKD-Skip", soft_labels=True, layers="skip", color="tab:red", marker="^",
                  description="soft labels + patient loss on every (N/M)-th teacher layer"))
register(Strategy("pkd_last", "PKD-Last", soft_labels=True, layers="last", color="tab:orange", marker="v",
                  description="soft labels + patient loss on the last M-1 teacher layers below the top"))

PAPER = names()
KD = "kd"        # the paper's baseline distillation: soft labels, no patient loss
PKD = "pkd_skip"  # the paper's main method, "PKD" in its Table 1, Figure 2 and larger-teacher study
# What the paper claims, as (better, than) pairs; the report puts each to a paired test over seeds.
CLAIMS = ((PKD, KD), (PKD, "ft"), (KD, "ft"), (PKD, "pkd_last"))
