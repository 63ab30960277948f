"""Tasks from the user's own data: CSV, TSV, JSON Lines or Parquet files, or any `datasets` dataset.

A custom task is one entry of params.yaml's `data.custom_tasks`: where its
splits are, which columns hold the text(s) and the label, and, optionally, the
label order, regression and the main metric. No file is renamed or rewritten:
CSV and TSV are read as UTF-8 text by the csv module, the other formats by
`datasets`' own loaders, and the columns are mapped onto the common schema
(pkd.data.schema).

Labels are read from train and put in a stable order (numeric when every label
is a number, else alphabetical), unless `labels` declares the order. The
resulting TaskInfo travels with the prepared data (`task.json`) and with every
saved model (`pkd_task_info`), so `pkd predict` prints the user's label names.

Every problem with the data ends in one DataFormatError or ConfigError that
names the file (and the line where there is one).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from pkd.errors import ConfigError, DataFormatError

from .tasks import TaskInfo

SOURCE_KIND = "custom"
# File suffix -> reader and its options: "csv" is ours (_read_delimited), the others `datasets`'
# builders. TSV is read without quoting, as GLUE's files are: a quote character is text, and a
# tab never occurs inside a field. CSV quoting is strict: an unclosed quote is an error, not a
# cell that swallows the rest of the file.
FORMATS = {
    ".csv": ("csv", {"strict": True}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
BINARY_METRICS = CLASSIFICATION_METRICS + ("matthews_corrcoef",)
REGRESSION_METRICS = ("pearson", "spearmanr")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class CustomTaskSpec:
    """One task of `data.custom_tasks`.

    train, dev, test: file paths; or, with `dataset`, split names of that dataset.
    dataset: a hub dataset id, or a local directory written by `save_to_disk` or holding
        Parquet/CSV/JSON files; read with `datasets.load_dataset` (`config`: its config name).
    text, text_pair, label: column names. labels: the class order (default: read from train).
    regression: a float target. main_metric: one of the task's metrics (default: the first).
    """

    train: str
    dev: str
    text: str
    label: str
    test: str | None = None
    dataset: str | None = None
    config: str | None = None
    text_pair: str | None = None
    # Names, as text; numbers are taken as names (`labels: [0, 1]` for a CSV's 0/1 labels).
    labels: list[str | bool | int | float] | None = None
    regression: bool = False
    main_metric: str | None = None
    # pydantic (pkd.pipeline.params) validates this dataclass as a params section: no unknown keys.
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid"}

    def __post_init__(self):
        if self.labels is not None and any(isinstance(n, bool) for n in self.labels):
            raise ConfigError(f"labels: true/false are not label names; quote them, e.g. ['false', 'true'] "
                              f"(got {self.labels})")
        if self.labels is not None:  # as the data's labels are (_label_key): " pos" is "pos", 1.0 is "1"
            object.__setattr__(self, "labels",
                               [n.strip() if isinstance(n, str) else _label_key(n) for n in self.labels])
        if self.regression and self.labels:
            raise ConfigError("labels: a regression task has no classes; remove labels or regression")
        if self.labels is not None and len(set(map(str, self.labels))) != len(self.labels):
            raise ConfigError(f"labels: must not repeat (got {self.labels})")
        if self.labels is not None and len(self.labels) < 2:
            raise ConfigError(f"labels: a classifier needs at least 2 classes (got {self.labels})")
        choices = self.metric_choices(len(self.labels) if self.labels else 3)
        if self.main_metric is not None and self.main_metric not in choices + ("matthews_corrcoef",):
            raise ConfigError(f"main_metric: unknown '{self.main_metric}'; allowed: {', '.join(choices)}")
        if self.main_metric == "matthews_corrcoef" and (self.regression or self.labels):
            kind = "a regression task has none" if self.regression else f"labels has {len(self.labels)}"
            _check_main_metric(self.main_metric, choices, kind)

    @property
    def splits(self) -> dict[str, str]:
        """{our split name: file path or dataset split}, test only when given."""
        return {name: getattr(self, name) for name in SPLITS if getattr(self, name) is not None}

    def metric_choices(self, num_labels: int) -> tuple[str, ...]:
        if self.regression:
            return REGRESSION_METRICS
        return BINARY_METRICS if num_labels == 2 else CLASSIFICATION_METRICS

    def local_files(self) -> list[Path]:
        """The files (or dataset directory) this task is read from; empty for a hub dataset."""
        if self.dataset is None:
            return [Path(p) for p in self.splits.values()]
        path = Path(self.dataset)
        return [path] if path.exists() else []

    def input_path(self) -> str | None:
        """The one path DVC hashes for this task (dvc.yaml's prepare dependency): the folder
        holding its files, or its dataset directory; None for a dataset on the hub."""
        files = self.local_files()
        if not files:
            return None
        if self.dataset is not None:
            return str(files[0])
        parents = {str(p.parent) for p in files}
        if len(parents) != 1:
            raise ConfigError(
                f"train/dev/test: a task's files must lie in one folder, which DVC tracks as the "
                f"task's input (got {', '.join(sorted(parents))})")
        return parents.pop()


def _check_main_metric(main_metric: str, choices: tuple[str, ...], kind: str) -> None:
    # Only main_metric can name a metric the task does not compute (Matthews' correlation beyond 2 classes).
    if main_metric not in choices:
        raise ConfigError(f"main_metric: '{main_metric}' needs 2 classes; {kind}; allowed: {', '.join(choices)}")


def task_info(name: str, spec: CustomTaskSpec, label_names: tuple[str, ...]) -> TaskInfo:
    metrics = spec.metric_choices(len(label_names))
    if spec.main_metric is not None:
        _check_main_metric(spec.main_metric, metrics,
                           f"task '{name}' has {len(label_names)} ({', '.join(label_names)})")
    return _custom_task(
        name=name,
        num_labels=1 if spec.regression else len(label_names),
        is_regression=spec.regression,
        metric_names=metrics,
        main_metric=spec.main_metric or metrics[0],
        has_pair=spec.text_pair is not None,
        label_names=() if spec.regression else label_names,
        dev_splits=("dev",),
        test_splits=("test",) if spec.test is not None else (),
    )


def _custom_task(**fields) -> TaskInfo:
    # Unlabelled test rows are predicted into predictions/<task>/<model>/test.tsv, by label name.
    return TaskInfo(**fields, glue_dir_name=None, hub_config=None, source_kind=SOURCE_KIND,
                    submission_files=tuple((split, split) for split in fields["test_splits"]),
                    submission_labels="score" if fields["is_regression"] else "name")


def task_info_to_dict(info: TaskInfo) -> dict:
    """What a prepared dataset and a saved model record of their task (`task_info_from_dict` reads it)."""
    keys = ("name", "num_labels", "is_regression", "metric_names", "main_metric", "has_pair",
            "label_names", "dev_splits", "test_splits")
    record = asdict(info)
    return {k: list(record[k]) if isinstance(record[k], tuple) else record[k] for k in keys}


def task_info_from_dict(record: dict) -> TaskInfo:
    return _custom_task(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})


# ---------------------------------------------------------------- reading


@dataclass
class _Split:
    """One split as read: its rows (column -> values) and how to point at a row in messages."""

    where: str  # file path or "<dataset>[<split>]"
    columns: dict[str, list] = field(default_factory=dict)
    first_line: int | None = 2  # file line of row 0 (CSV/TSV: after the header); None: rows
    class_names: tuple[str, ...] | None = None  # a `datasets` ClassLabel's names, in its order
    lines: list[int] | None = None  # file line of each row, where a cell may span lines (CSV)
    header: list[str] | None = None  # every column of the file, where only the used ones are read

    def at(self, row: int) -> str:
        if self.lines is not None:
            return f"{self.where}:{self.lines[row]}"
        return f"{self.where}:{self.first_line + row}" if self.first_line is not None else f"{self.where}: row {row + 1}"


def _read_file(path: Path, columns: list[str]) -> _Split:
    """One file's rows; `columns` (text and label) are read as written, "007" not 7."""
    import datasets

    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: unknown file type '{path.suffix}'; allowed: {', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        raise ConfigError(f"{path}: the file is empty")
    builder, options = kind
    if builder == "csv":
        return _read_delimited(path, columns, options)
    if builder == "json":
        _utf8(path, path.read_bytes())  # pyarrow would fail on it later, in a traceback
    try:
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as err:  # noqa: BLE001  (the readers raise many types; the user needs the file and why)
        if "corresponds to no data" in str(err):  # a header and no rows
            raise ConfigError(f"{path}: no rows") from None
        raise ConfigError(f"{path}: cannot read as {builder}: {_root_cause(err)}") from None
    first_line = {"json": 1, "parquet": None}[builder]
    return _Split(str(path), ds.to_dict(), first_line)


def _root_cause(err: BaseException) -> str:
    # `datasets` wraps the reader's error in "An error occurred while generating the dataset".
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def _utf8(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFormatError(path, line, f"not UTF-8 (byte 0x{data[err.start]:02x}); save the file as UTF-8") from None


def _read_delimited(path: Path, columns: list[str], options: dict) -> _Split:
    """The `columns` of a CSV/TSV file, as text, with each row's first line. The other columns are
    never converted, so no type guessed for them can fail; "007" and "NA" stay text."""
    text = _utf8(path, path.read_bytes()).removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), **options)
    limit = csv.field_size_limit(2**31 - 1)  # a long document is a cell, not an error
    header, start = None, 1
    try:
        while not header:  # blank lines before the header are skipped, as after it
            start = reader.line_num + 1
            header = next(reader, None)
            if header is None:
                raise ConfigError(f"{path}: no header")
        for name in columns:
            if header.count(name) > 1:
                raise DataFormatError(path, start, f"column '{name}' appears {header.count(name)} times in the header")
        wanted = {name: header.index(name) for name in columns if name in header}
        out = {name: [] for name in wanted}
        lines = []
        while True:
            start = reader.line_num + 1
            record = next(reader, None)
            if record is None:
                break
            if not record:
                continue
            if len(record) > len(header):
                raise DataFormatError(path, start, f"{len(record)} fields, but the header has {len(header)}")
            for name, i in wanted.items():
                out[name].append(record[i] if i < len(record) else None)
            lines.append(start)
    except csv.Error as err:  # e.g. a quote never closed: the row where it opens
        raise DataFormatError(path, start, f"cannot read as {path.suffix[1:].upper()}: {err}") from None
    finally:
        csv.field_size_limit(limit)
    if not lines:
        raise ConfigError(f"{path}: no rows")
    return _Split(str(path), out, lines=lines, header=header)


def _read_dataset(spec: CustomTaskSpec) -> dict[str, _Split]:
    import datasets

    local = Path(spec.dataset)
    try:
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
            loaded = datasets.load_from_disk(str(local))  # written by save_to_disk
        else:
            loaded = datasets.load_dataset(spec.dataset, spec.config)
    except Exception as err:  # noqa: BLE001  (as above: hub, disk and format errors alike)
        reason = " ".join(str(err).split())[:300]
        raise ConfigError(f"dataset: cannot load '{spec.dataset}': {reason}") from None
    if isinstance(loaded, datasets.Dataset):
        raise ConfigError(f"dataset: '{spec.dataset}' is one split; train, dev need a dataset with named splits")
    out = {}
    for ours, theirs in spec.splits.items():
        if theirs not in loaded:
            raise ConfigError(f"{ours}: dataset '{spec.dataset}' has no split '{theirs}'; "
                              f"it has: {', '.join(loaded)}")
        split = _Split(f"{spec.dataset}[{theirs}]", loaded[theirs].to_dict(), None)
        feature = loaded[theirs].features.get(spec.label)
        if isinstance(feature, datasets.ClassLabel) and not spec.regression:
            # Class ids become the dataset's class names; the hub's -1 is a row without a label.
            split.class_names = tuple(feature.names)
            split.columns[spec.label] = [None if v is None or v < 0 else feature.names[v]
                                         for v in split.columns[spec.label]]
        out[ours] = split
    return out


def _texts(split: _Split, column: str) -> list[str]:
    values = split.columns[column]
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
            raise _error(split, row, f"column '{column}' is empty")
    return [str(v) for v in values]


def _label_key(value) -> str | None:
    """A label as the name it gets: None for a missing one (unlabelled test rows)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1.0 from a JSON or Parquet column is class "1"
    text = str(value).strip()
    return text or None


def _as_number(name: str) -> float | None:
    # "nan" is no number to sort by: NaN compares false with everything, so its place would be arbitrary.
    try:
        value = float(name)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _stable_order(names: set[str]) -> tuple[str, ...]:
    numbers = {n: _as_number(n) for n in names}
    if all(v is not None for v in numbers.values()):
        return tuple(sorted(names, key=lambda n: (numbers[n], n)))
    return tuple(sorted(names))


def _one_number_many_ways(names: set[str]) -> list[str]:
    """Labels that are one number written differently ("1", "01", "1.0"): likely one class."""
    by_value: dict[float, list[str]] = {}
    for name in names:
        if (value := _as_number(name)) is not None:
            by_value.setdefault(value, []).append(name)
    return next((sorted(group) for _, group in sorted(by_value.items()) if len(group) > 1), [])


def _error(split: _Split, row: int, problem: str) -> Exception:
    if split.first_line is None:
        return ConfigError(f"{split.at(row)}: {problem}")
    path, line = split.at(row).rsplit(":", 1)
    return DataFormatError(path, int(line), problem)


def _columns(spec: CustomTaskSpec) -> list[str]:
    return [c for c in (spec.text, spec.text_pair, spec.label) if c]


def read_custom_task(name: str, spec: CustomTaskSpec):
    """(DatasetDict in the common schema, TaskInfo) for one custom task; raises naming the file."""
    import datasets

    from .schema import UNLABELLED, rows_to_dataset

    bars = not datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # reading takes seconds; a bad file's error stays one line
    try:
        splits = _read_dataset(spec) if spec.dataset is not None else {
            ours: _read_file(Path(path), _columns(spec)) for ours, path in spec.splits.items()}
    finally:
        if bars:
            datasets.enable_progress_bars()
    wanted = [spec.text] + ([spec.text_pair] if spec.text_pair else [])
    for ours, split in splits.items():
        present = split.header or list(split.columns)
        needed = wanted + ([spec.label] if ours != "test" else [])
        missing = [c for c in needed if c not in split.columns]
        if missing:
            raise ConfigError(f"{split.where}: no column {', '.join(repr(c) for c in missing)}; "
                              f"its columns: {', '.join(present)}")
        if not split.columns[spec.text]:
            raise ConfigError(f"{split.where}: no rows")
    labels = {ours: [_label_key(v) for v in split.columns.get(spec.label, [None] * len(split.columns[spec.text]))]
              for ours, split in splits.items()}
    for ours in ("train", "dev"):
        row = next((i for i, key in enumerate(labels[ours]) if key is None), None)
        if row is not None:
            raise _error(splits[ours], row, f"column '{spec.label}' is empty (only test rows may be unlabelled)")
    if spec.regression:
        label_names: tuple[str, ...] = ()
        encode = _regression_target
    else:
        same = [] if spec.labels or splits["train"].class_names else _one_number_many_ways(set(labels["train"]))
        if same:
            raise ConfigError(f"{splits['train'].where}: column '{spec.label}' writes one number as "
                              f"{', '.join(repr(n) for n in same)}; write each class one way, or declare the classes in labels")
        label_names = (tuple(map(str, spec.labels)) if spec.labels else splits["train"].class_names
                       or _stable_order(set(labels["train"])))
        if len(label_names) < 2:
            raise ConfigError(f"{splits['train'].where}: column '{spec.label}' has a single class "
                              f"{list(label_names)}; a classifier needs at least 2")
        ids = {n: i for i, n in enumerate(label_names)}
        if spec.dataset is not None and "test" in labels and "-1" not in ids:  # the hub's unlabelled row
            labels["test"] = [None if key == "-1" else key for key in labels["test"]]

        def encode(split, row, key):
            if key not in ids:
                seen = "declared in labels" if spec.labels else "seen in train"
                raise _error(split, row, f"label '{key}' was never {seen} ({', '.join(label_names)})")
            return ids[key]

    info = task_info(name, spec, label_names)
    datasets_ = {}
    for ours, split in splits.items():
        texts_a = _texts(split, spec.text)
        texts_b = _texts(split, spec.text_pair) if spec.text_pair else [None] * len(texts_a)
        rows = []
        for row, key in enumerate(labels[ours]):
            label = (math.nan if spec.regression else UNLABELLED) if key is None else encode(split, row, key)
            rows.append({"text_a": texts_a[row], "text_b": texts_b[row], "label": label})
        datasets_[ours] = rows_to_dataset(rows, info)
    from datasets import DatasetDict

    return DatasetDict(datasets_), info


def _regression_target(split: _Split, row: int, key: str) -> float:
    try:
        value = float(key)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _error(split, row, f"regression target '{key}' is not a number")
    return value
