"""Static description of every task the pipeline knows about.

Label orders follow the Hugging Face ``nyu-mll/glue`` ClassLabel ids so that a
model trained from a GLUE download and one trained from the hub agree on what
class 1 means.
"""

from __future__ import annotations

from dataclasses import dataclass

from pkd.errors import ConfigError


@dataclass(frozen=True)
class TaskInfo:
    name: str
    num_labels: int  # 1 for regression (STS-B)
    is_regression: bool
    metric_names: tuple[str, ...]
    main_metric: str
    has_pair: bool
    label_names: tuple[str, ...]  # empty for regression
    dev_splits: tuple[str, ...]
    test_splits: tuple[str, ...]
    glue_dir_name: str | None  # directory inside a classic GLUE download
    hub_config: str | None  # config name of nyu-mll/glue
    source_kind: str  # "glue" or "builtin"

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train",) + self.dev_splits + self.test_splits


_DEV = ("dev",)
_TEST = ("test",)


def _glue(name, dir_name, label_names, metrics, main, has_pair, dev=_DEV, test=_TEST):
    regression = not label_names
    return TaskInfo(
        name=name,
        num_labels=1 if regression else len(label_names),
        is_regression=regression,
        metric_names=metrics,
        main_metric=main,
        has_pair=has_pair,
        label_names=label_names,
        dev_splits=dev,
        test_splits=test,
        glue_dir_name=dir_name,
        hub_config=name,
        source_kind="glue",
    )


def _builtin(name, label_names, has_pair):
    # Built-in tasks are generated with train/dev only: there is no hidden test set.
    return TaskInfo(
        name=name,
        num_labels=len(label_names),
        is_regression=False,
        metric_names=("accuracy",),
        main_metric="accuracy",
        has_pair=has_pair,
        label_names=label_names,
        dev_splits=_DEV,
        test_splits=(),
        glue_dir_name=None,
        hub_config=None,
        source_kind="builtin",
    )


_ALL = (
    _glue("cola", "CoLA", ("unacceptable", "acceptable"),
          ("matthews_corrcoef",), "matthews_corrcoef", False),
    _glue("sst2", "SST-2", ("negative", "positive"), ("accuracy",), "accuracy", False),
    _glue("mrpc", "MRPC", ("not_equivalent", "equivalent"),
          ("f1", "accuracy"), "accuracy", True),
    _glue("stsb", "STS-B", (), ("pearson", "spearmanr"), "pearson", True),
    _glue("qqp", "QQP", ("not_duplicate", "duplicate"),
          ("f1", "accuracy"), "accuracy", True),
    _glue("mnli", "MNLI", ("entailment", "neutral", "contradiction"),
          ("accuracy",), "accuracy", True,
          dev=("dev_matched", "dev_mismatched"),
          test=("test_matched", "test_mismatched")),
    _glue("qnli", "QNLI", ("entailment", "not_entailment"), ("accuracy",), "accuracy", True),
    _glue("rte", "RTE", ("entailment", "not_entailment"), ("accuracy",), "accuracy", True),
    _builtin("builtin_sentiment", ("negative", "positive"), has_pair=False),
    _builtin("builtin_pair", ("not_equivalent", "equivalent"), has_pair=True),
)

TASKS: dict[str, TaskInfo] = {t.name: t for t in _ALL}

# GLUE leaderboard files that no pipeline task trains for; they travel with MNLI's data.
# AX, the diagnostic set, is predicted by the MNLI model (GLUE: diagnostic/diagnostic.tsv,
# hub config "ax"). WNLI is submitted as WNLI train's majority class, as is customary.
DIAGNOSTIC_SPLIT = "ax"
WNLI_SPLIT = "wnli"
WNLI_TEST_SIZE = 146  # rows of GLUE's WNLI test.tsv
AX_TASK = _glue("ax", "diagnostic", TASKS["mnli"].label_names, ("accuracy",), "accuracy", True,
                dev=(), test=("diagnostic",))
WNLI_TASK = _glue("wnli", "WNLI", ("not_entailment", "entailment"), ("accuracy",), "accuracy", True)
GLUE_TASKS: tuple[str, ...] = tuple(t.name for t in _ALL if t.source_kind == "glue")
BUILTIN_TASKS: tuple[str, ...] = tuple(t.name for t in _ALL if t.source_kind == "builtin")


def get_task(name: str | TaskInfo) -> TaskInfo:
    if isinstance(name, TaskInfo):
        return name
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}") from None
