"""Parse an uploaded CSV dataset safely: a header row, numeric feature columns, one integer
label column; every problem names its line and column (a 422, never a pickle hint)."""
import csv
import io
import math
from array import array

import numpy as np

from .uploads import BadUpload

MAX_COLUMNS = 100_000


def arrays_from_csv(data: bytes, label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """x (N, F) float64 and y (N,) int64 from CSV bytes (the upload's size is already capped)."""
    try:
        text = data.decode("utf-8-sig")  # a BOM from spreadsheet exports is not part of a name
    except UnicodeDecodeError as exc:
        raise BadUpload(f"the CSV is not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = _header(next(reader, None), label_column)
        label_index = header.index(label_column)
        features, labels = array("d"), array("q")
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines carry no row
            _add_row(row, reader.line_num, header, label_index, features, labels)
    except csv.Error as exc:
        raise BadUpload(f"line {reader.line_num}: malformed CSV: {exc}") from None
    if not labels:
        raise BadUpload("the CSV has a header but no data rows")
    x = np.frombuffer(features, dtype=np.float64).reshape(len(labels), len(header) - 1)  # (N, F)
    return x, np.frombuffer(labels, dtype=np.int64)  # (N,)


def _header(row: list[str] | None, label_column: str) -> list[str]:
    if not row:
        raise BadUpload("line 1: the CSV is empty; expected a header row naming the columns")
    names = [name.strip() for name in row]
    if len(names) > MAX_COLUMNS:
        raise BadUpload(f"line 1: {len(names)} columns; at most {MAX_COLUMNS} are allowed")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BadUpload(f"line 1: duplicate column name(s) {duplicates}")
    if label_column not in names:
        raise BadUpload(f"line 1: no label column {label_column!r} in the header {names[:20]}; "
                        "name it with the form field `label_column`")
    if len(names) < 2:
        raise BadUpload("line 1: the CSV needs at least one feature column besides the labels")
    return names


def _add_row(row: list[str], line: int, header: list[str], label_index: int,
             features: array, labels: array) -> None:
    if len(row) != len(header):
        raise BadUpload(f"line {line}: {len(row)} fields, but the header has {len(header)}")
    for index, cell in enumerate(row):
        if index == label_index:
            labels.append(_label(cell, line, header[index]))
        else:
            features.append(_number(cell, line, header[index]))


def _number(cell: str, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BadUpload(f"line {line}, column {column!r}: {cell[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise BadUpload(f"line {line}, column {column!r}: {cell[:40]!r} is not a finite number")
    return value


def _label(cell: str, line: int, column: str) -> int:
    text = cell.strip()
    try:
        value = int(text)
    except ValueError:
        value = None
        try:  # "3.0" from a spreadsheet is label 3; "2.5" is not a label
            number = float(text)
            value = int(number) if number.is_integer() else None
        except (ValueError, OverflowError):
            pass
    if value is None or value < 0 or value >= 2**31:
        raise BadUpload(f"line {line}, column {column!r}: {cell[:40]!r} is not a class label "
                        "(an integer >= 0)")
    return value
