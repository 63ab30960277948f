"""Static description of every task the pipeline knows about: one record per task.

Everything that differs between tasks lives here, so the readers (``glue_tsv``,
``hub``), the sources and the leaderboard writer (``pkd.evaluation.evaluate``) hold no
per-task tables of their own, and a new GLUE-format task is one entry below.

Label orders follow the Hugging Face ``nyu-mll/glue`` ClassLabel ids so that a
model trained from a GLUE download and one trained from the hub agree on what
class 1 means.
"""

from __future__ import annotations

from dataclasses import dataclass

from pkd.errors import ConfigError

# What a row of a GLUE submission file holds for one prediction.
SUBMISSION_LABELS = ("id", "name", "score")  # class id, class name, regression score (3 decimals)


@dataclass(frozen=True)
class TsvLayout:
    """Where one GLUE TSV file keeps its fields: header names, or 0-based indices without a header.

    Header names, not positions, wherever the file has a header, so the
    11/12/16-column variants of MNLI's files all read the same.
    """

    text_a: str | int
    text_b: str | int | None
    label: str | int | None  # None: unlabelled test split
    header: bool = True
    n_fields: int | None = None  # only for headerless files


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
    # nyu-mll/glue text columns, in the order text_a[, text_b].
    hub_columns: tuple[str, ...] = ()
    # The classic GLUE download: each split's file inside glue_dir_name, the layout of the
    # labelled (train/dev) and unlabelled (test) files, and whether a labelled file stores
    # the class id ("0", "1") rather than the class name ("entailment").
    tsv_files: tuple[tuple[str, str], ...] = ()
    tsv_labelled: TsvLayout | None = None
    tsv_test: TsvLayout | None = None
    tsv_label_ids: bool = False
    # The GLUE leaderboard: each unlabelled split's file name (no ".tsv"), and what its
    # rows hold (one of SUBMISSION_LABELS).
    submission_files: tuple[tuple[str, str], ...] = ()
    submission_labels: str = "id"
    # Leaderboard splits no task trains for that travel with this task's data (MNLI:
    # "ax", the diagnostic set its model predicts, and "wnli", submitted as a majority class).
    leaderboard_extras: tuple[str, ...] = ()

    def __post_init__(self):
        # A new task's table entry is checked here, at import, not when its data is first read.
        if self.submission_labels not in SUBMISSION_LABELS:
            raise ValueError(f"task {self.name!r}: submission_labels must be one of {SUBMISSION_LABELS}")
        texts = 2 if self.has_pair else 1
        if self.hub_columns and len(self.hub_columns) != texts:
            raise ValueError(f"task {self.name!r}: hub_columns must name {texts} text column(s)")
        for layout in (self.tsv_labelled, self.tsv_test):
            if layout is not None and (layout.text_b is not None) != self.has_pair:
                raise ValueError(f"task {self.name!r}: a TSV layout's text_b must be set iff the task has pairs")

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train",) + self.dev_splits + self.test_splits

    @property
    def hub_column_map(self) -> dict[str, str]:
        """nyu-mll/glue column -> our text column."""
        return dict(zip(self.hub_columns, ("text_a", "text_b")))

    def tsv_file(self, split: str) -> str:
        return dict(self.tsv_files)[split]

    def tsv_layout(self, split: str) -> TsvLayout | None:
        return self.tsv_test if split in self.test_splits else self.tsv_labelled

    def submission_name(self, split: str) -> str:
        try:
            return dict(self.submission_files)[split]
        except KeyError:
            raise ValueError(f"task {self.name!r} has no GLUE submission file for split {split!r}") from None


_DEV = ("dev",)
_TEST = ("test",)


def _glue(name, dir_name, label_names, metrics, main, has_pair, *, hub, tsv, tsv_label_ids,
          tsv_test=None, submission_labels="id", dev=_DEV, test=_TEST, submission_files=None,
          leaderboard_extras=()):
    regression = not label_names
    splits = ("train",) + dev + test
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
        hub_columns=hub,
        tsv_files=tuple((split, f"{split}.tsv") for split in splits),
        tsv_labelled=tsv,
        # Test files have a header and no label column; most name their text columns as train does.
        tsv_test=tsv_test or (TsvLayout(tsv.text_a, tsv.text_b, None) if tsv else None),
        tsv_label_ids=tsv_label_ids,
        submission_files=submission_files or tuple((split, dir_name) for split in test),
        submission_labels="score" if regression else submission_labels,
        leaderboard_extras=leaderboard_extras,
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


# GLUE leaderboard files that no pipeline task trains for; they travel with MNLI's data.
# AX, the diagnostic set, is predicted by the MNLI model (GLUE: diagnostic/diagnostic.tsv,
# hub config "ax"). WNLI is submitted as WNLI train's majority class, as is customary.
DIAGNOSTIC_SPLIT = "ax"
WNLI_SPLIT = "wnli"
WNLI_TEST_SIZE = 146  # rows of GLUE's WNLI test.tsv

_PAIR = TsvLayout("sentence1", "sentence2", "label")

_ALL = (
    # CoLA train/dev have no header: source, label, original mark, sentence; test has one.
    _glue("cola", "CoLA", ("unacceptable", "acceptable"),
          ("matthews_corrcoef",), "matthews_corrcoef", False,
          hub=("sentence",), tsv=TsvLayout(3, None, 1, header=False, n_fields=4),
          tsv_test=TsvLayout("sentence", None, None), tsv_label_ids=True),
    _glue("sst2", "SST-2", ("negative", "positive"), ("accuracy",), "accuracy", False,
          hub=("sentence",), tsv=TsvLayout("sentence", None, "label"), tsv_label_ids=True),
    _glue("mrpc", "MRPC", ("not_equivalent", "equivalent"),
          ("f1", "accuracy"), "accuracy", True,
          hub=("sentence1", "sentence2"), tsv=TsvLayout("#1 String", "#2 String", "Quality"),
          tsv_label_ids=True),
    _glue("stsb", "STS-B", (), ("pearson", "spearmanr"), "pearson", True,
          hub=("sentence1", "sentence2"), tsv=TsvLayout("sentence1", "sentence2", "score"),
          tsv_label_ids=False),
    _glue("qqp", "QQP", ("not_duplicate", "duplicate"),
          ("f1", "accuracy"), "accuracy", True,
          hub=("question1", "question2"), tsv=TsvLayout("question1", "question2", "is_duplicate"),
          tsv_label_ids=True),
    # MNLI, QNLI and RTE store and are scored on label names; the others on ids or scores.
    _glue("mnli", "MNLI", ("entailment", "neutral", "contradiction"),
          ("accuracy",), "accuracy", True,
          hub=("premise", "hypothesis"), tsv=TsvLayout("sentence1", "sentence2", "gold_label"),
          tsv_label_ids=False, submission_labels="name",
          dev=("dev_matched", "dev_mismatched"),
          test=("test_matched", "test_mismatched"),
          submission_files=(("test_matched", "MNLI-m"), ("test_mismatched", "MNLI-mm"),
                            (DIAGNOSTIC_SPLIT, "AX"), (WNLI_SPLIT, "WNLI")),
          leaderboard_extras=(DIAGNOSTIC_SPLIT, WNLI_SPLIT)),
    _glue("qnli", "QNLI", ("entailment", "not_entailment"), ("accuracy",), "accuracy", True,
          hub=("question", "sentence"), tsv=TsvLayout("question", "sentence", "label"),
          tsv_label_ids=False, submission_labels="name"),
    _glue("rte", "RTE", ("entailment", "not_entailment"), ("accuracy",), "accuracy", True,
          hub=("sentence1", "sentence2"), tsv=_PAIR, tsv_label_ids=False, submission_labels="name"),
    _builtin("builtin_sentiment", ("negative", "positive"), has_pair=False),
    _builtin("builtin_pair", ("not_equivalent", "equivalent"), has_pair=True),
)

TASKS: dict[str, TaskInfo] = {t.name: t for t in _ALL}

# Readers of MNLI's leaderboard companions (see DIAGNOSTIC_SPLIT, WNLI_SPLIT above).
AX_TASK = _glue("ax", "diagnostic", TASKS["mnli"].label_names, ("accuracy",), "accuracy", True,
                hub=("premise", "hypothesis"), tsv=None,
                tsv_test=TsvLayout("sentence1", "sentence2", None), tsv_label_ids=False,
                submission_labels="name", dev=(), test=("diagnostic",),
                submission_files=(("diagnostic", "AX"),))
WNLI_TASK = _glue("wnli", "WNLI", ("not_entailment", "entailment"), ("accuracy",), "accuracy", True,
                  hub=("sentence1", "sentence2"), tsv=_PAIR, tsv_label_ids=True)
GLUE_TASKS: tuple[str, ...] = tuple(t.name for t in _ALL if t.source_kind == "glue")
BUILTIN_TASKS: tuple[str, ...] = tuple(t.name for t in _ALL if t.source_kind == "builtin")


def get_task(name: str | TaskInfo) -> TaskInfo:
    if isinstance(name, TaskInfo):
        return name
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}") from None
