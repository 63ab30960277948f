"""Readers for the classic GLUE download layout.

``<glue_dir>/<GLUE_DIR_NAME>/{train,dev,test}.tsv`` (MNLI: ``dev_matched``,
``dev_mismatched``, ``test_matched``, ``test_mismatched``). Which file holds
which split, and which column of it holds which field, is each task's
``TaskInfo`` (``tsv_files``, ``tsv_labelled``, ``tsv_test``, ``tsv_label_ids``).

GLUE text contains stray ``"`` characters, so lines are split on ``\\t`` by
hand instead of going through a csv reader that would merge rows across
quotes. Every malformed row is an error naming ``file:line``; nothing is
dropped or merged, so the number of rows returned always equals the number of
data lines in the file.
"""

from __future__ import annotations

import math
from pathlib import Path

from datasets import Dataset, DatasetDict

from pkd.errors import DataFormatError
from .schema import UNLABELLED, majority_rows, rows_to_dataset
from .tasks import AX_TASK, DIAGNOSTIC_SPLIT, WNLI_SPLIT, WNLI_TASK, TaskInfo, TsvLayout, get_task


def _label_parser(info: TaskInfo):
    if info.is_regression:
        def parse(s: str) -> float:
            value = float(s)  # ValueError is turned into a DataFormatError by the caller
            if not math.isfinite(value):
                raise ValueError(s)
            return value
        return parse
    if info.tsv_label_ids:
        mapping = {str(i): i for i in range(info.num_labels)}
    else:
        mapping = {name: i for i, name in enumerate(info.label_names)}
    return mapping.__getitem__


def split_path(glue_dir: str | Path, task: str | TaskInfo, split: str) -> Path:
    info = get_task(task)
    if info.source_kind != "glue":
        raise ValueError(f"task {info.name!r} is not a GLUE task; it has no GLUE files")
    if split not in info.splits:
        raise ValueError(
            f"task {info.name!r} has no split {split!r}; allowed: {', '.join(info.splits)}")
    return Path(glue_dir) / info.glue_dir_name / info.tsv_file(split)


def _iter_lines(path: Path):
    """Yield (1-based line number, text) splitting on ``\\n`` only.

    Binary iteration avoids universal-newline handling, which would split a
    row at a stray ``\\r`` inside the text. A final newline does not produce
    an extra empty line.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            # utf-8-sig drops a BOM; only the first line can carry one.
            encoding = "utf-8-sig" if lineno == 1 else "utf-8"
            try:
                yield lineno, raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataFormatError(path, lineno, f"not valid UTF-8 ({exc.reason})") from None


def _resolve(layout: TsvLayout, header: list[str] | None, path: Path):
    """Turn the layout into field indices and the expected field count."""
    if not layout.header:
        return layout.text_a, layout.text_b, layout.label, layout.n_fields
    names = [h.strip() for h in header]

    def index(name):
        if name is None:
            return None
        if name not in names:
            raise DataFormatError(path, 1, f"header lacks column {name!r} (found: {names})")
        return names.index(name)

    return index(layout.text_a), index(layout.text_b), index(layout.label), len(names)


def read_glue_split(glue_dir: str | Path, task: str | TaskInfo, split: str) -> list[dict]:
    """Read one split of a GLUE download into rows of the common schema."""
    info = get_task(task)
    path = split_path(glue_dir, info, split)
    if not path.is_file():
        raise FileNotFoundError(f"GLUE file not found: {path}")
    layout = info.tsv_layout(split)
    parse_label = _label_parser(info)

    lines = _iter_lines(path)
    header = None
    if layout.header:
        first = next(lines, None)
        if first is None:
            raise DataFormatError(path, 1, "file is empty, expected a header line")
        header = first[1].split("\t")
    ia, ib, il, n_fields = _resolve(layout, header, path)

    rows: list[dict] = []
    n_data_lines = 0
    for lineno, line in lines:
        n_data_lines += 1
        fields = line.split("\t")
        if len(fields) != n_fields:
            raise DataFormatError(
                path, lineno, f"expected {n_fields} tab-separated fields, got {len(fields)}"
            )
        if il is None:
            label = float(UNLABELLED) if info.is_regression else UNLABELLED
        else:
            raw_label = fields[il].strip()
            try:
                label = parse_label(raw_label)
            except (KeyError, ValueError):
                raise DataFormatError(path, lineno, f"unknown label {raw_label!r}") from None
        rows.append({
            "idx": len(rows),
            "text_a": fields[ia],
            "text_b": fields[ib] if ib is not None else None,
            "label": label,
        })
    if not rows:
        # An empty split would be saved by prepare and fail later, far from its cause.
        where = "after its header" if layout.header else "in the file"
        raise DataFormatError(path, 1, f"no data rows {where}; every split needs at least one example")
    # Guard against any future change that would drop or merge rows.
    assert len(rows) == n_data_lines, (path, len(rows), n_data_lines)
    return rows


def leaderboard_extras(glue_dir: str | Path, task: str | TaskInfo = "mnli") -> dict[str, Dataset]:
    """MNLI's companions on the GLUE leaderboard, where the download has them.

    "ax": the diagnostic set (diagnostic/diagnostic.tsv, unlabelled), predicted
    by the MNLI model. "wnli": WNLI's test rows labelled with WNLI train's
    majority class (WNLI/train.tsv and test.tsv). Both are optional, as test files are.
    Only those in ``task``'s ``leaderboard_extras`` are read.
    """
    info = get_task(task)
    wanted = info.leaderboard_extras
    extras = {}
    (diagnostic,) = AX_TASK.test_splits
    if DIAGNOSTIC_SPLIT in wanted and split_path(glue_dir, AX_TASK, diagnostic).is_file():
        extras[DIAGNOSTIC_SPLIT] = rows_to_dataset(read_glue_split(glue_dir, AX_TASK, diagnostic), info)
    if WNLI_SPLIT in wanted and split_path(glue_dir, WNLI_TASK, "test").is_file():
        train = [row["label"] for row in read_glue_split(glue_dir, WNLI_TASK, "train")]
        test = read_glue_split(glue_dir, WNLI_TASK, "test")
        extras[WNLI_SPLIT] = rows_to_dataset(majority_rows(train, test), info)
    return extras


def load_glue_dir(glue_dir: str | Path, task: str | TaskInfo) -> DatasetDict:
    """Load train, dev split(s) and, when present, test split(s) of one task (MNLI: and AX, WNLI)."""
    info = get_task(task)
    splits = {}
    for split in info.splits:
        if split in info.test_splits and not split_path(glue_dir, info, split).is_file():
            continue  # test files are optional; train/dev are required
        splits[split] = rows_to_dataset(read_glue_split(glue_dir, info, split), info)
    if info.leaderboard_extras:
        splits.update(leaderboard_extras(glue_dir, info))
    return DatasetDict(splits)
