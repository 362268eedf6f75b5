"""Rows to predict on from a file: .csv (an optional header row; a column named like the
label column is left out, so a dataset's own CSV can be classified), .npz (array `x`, or its
only array) or .json ({"x": rows} or a list of rows). Labelled data to evaluate on: .csv (a
header row naming the label column), .npz (`x` and `y`) or .json (a data source)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from .common import UsageError


def read_rows(path: str, label_column: str = "label") -> np.ndarray:
    """x (N, F) float64 from `path`; a UsageError naming what is wrong."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".npz", ".json"):
        raise UsageError(f"{path}: use a .csv, .npz or .json file")
    try:
        rows = _csv_rows(file, label_column) if suffix == ".csv" else \
            {".npz": _npz_rows, ".json": _json_rows}[suffix](file)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.size == 0:
        raise UsageError(f"{path}: expected rows of features (N, F), got shape {rows.shape}")
    return rows


def read_labelled(path: str, label_column: str = "label") -> dict[str, Any]:
    """What to evaluate on, as Client.evaluate's keyword arguments: {"x", "y"} from a .csv or
    .npz file, or {"data": source} from a .json data source; a UsageError naming the problem."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".npz", ".json"):
        raise UsageError(f"{path}: use a .csv (with a {label_column!r} column), .npz (x, y) or "
                         ".json (a data source) file")
    try:
        if suffix == ".json":
            return {"data": json.loads(file.read_text(encoding="utf-8"))}
        x, y = _labelled_csv(file, label_column) if suffix == ".csv" else _labelled_npz(file)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    if len(x) == 0:
        raise UsageError(f"{path}: no rows")
    return {"x": x, "y": y}


def _labelled_csv(file: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    header, rows = _csv_table(file)
    if header is None or label_column not in header:
        raise ValueError(f"needs a header row with a {label_column!r} column (--label-column)")
    table = _numbers(rows)  # (N, F + 1)
    label = header.index(label_column)
    return np.delete(table, label, axis=1), table[:, label]


def _labelled_npz(file: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(file, allow_pickle=False) as archive:
        if "x" not in archive.files or "y" not in archive.files:
            raise ValueError(f"needs arrays `x` and `y`, has {archive.files}")
        return np.asarray(archive["x"], dtype=np.float64), np.asarray(archive["y"])


def _csv_rows(file: Path, label_column: str) -> np.ndarray:
    header, rows = _csv_table(file)
    if header is not None and label_column in header:
        drop = header.index(label_column)
        rows = [row[:drop] + row[drop + 1:] for row in rows]
    return _numbers(rows)


def _csv_table(file: Path) -> tuple[list[str] | None, list[list[str]]]:
    """(the header row if the first row is not all numbers, else None; the other rows)."""
    with open(file, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and not _numeric(rows[0]):
        return [name.strip() for name in rows[0]], rows[1:]
    return None, rows


def _numbers(rows: list[list[str]]) -> np.ndarray:
    for line, row in enumerate(rows, start=1):
        if not _numeric(row):
            raise ValueError(f"row {line} is not all numbers: {row[:5]}")
    return np.array([[float(cell) for cell in row] for row in rows], dtype=np.float64)


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def _npz_rows(file: Path) -> np.ndarray:
    with np.load(file, allow_pickle=False) as archive:
        if "x" in archive.files:
            return np.asarray(archive["x"], dtype=np.float64)
        if len(archive.files) == 1:
            return np.asarray(archive[archive.files[0]], dtype=np.float64)
        raise ValueError(f"no array `x` among {archive.files}")


def _json_rows(file: Path) -> np.ndarray:
    doc = json.loads(file.read_text(encoding="utf-8"))
    rows = doc.get("x") if isinstance(doc, dict) else doc
    if rows is None:
        raise ValueError('expected {"x": [[...], ...]} or a list of rows')
    return np.asarray(rows, dtype=np.float64)
