"""Reading client files in batches: CSV (any delimiter, UTF-8 with or without BOM, or Latin-1),
JSON (an array of objects), JSON Lines and XLSX.

`inspect_file` looks at a file without reading it whole and fails, naming the file and the
problem, when it cannot be read at all. `iter_batches` then streams it as lists of `RawRow`s, so
memory stays flat however large the file is (a JSON array is the exception: the format has no
record boundaries, so it is parsed whole; use JSON Lines for very large exports).

Row numbers are what a person sees: the spreadsheet row for CSV and XLSX (the header is row 1,
the first record row 2), the line for JSON Lines, the 1-based position for a JSON array.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from ..errors import SourceUnreadable
from ..inputs import has_nul, without_nul
from .normalise import canonical_field

FORMATS = ("csv", "json", "jsonl", "xlsx")
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".json": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".xlsx": "xlsx", ".xlsm": "xlsx",
}
_SNIFF_BYTES = 64 * 1024
csv.field_size_limit(10 * 1024 * 1024)


@dataclass(frozen=True)
class RawRow:
    row_number: int
    values: dict[str, Any]  # original header → value, as read
    error: str | None = None  # a record that could not be parsed (bad JSON line)


@dataclass
class FilePlan:
    path: Path
    display_name: str
    format: str
    headers: list[str] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","

    @property
    def mapping(self) -> dict[str, str | None]:
        """original header → canonical field (None: an extra column kept in contact_info)."""
        return {h: canonical_field(h) for h in self.headers}


def inspect_file(path: Path, display_name: str | None = None, format: str | None = None) -> FilePlan:
    """Decide how to read `path`; raise SourceUnreadable if it cannot be read at all."""
    name = display_name or str(path)
    if not path.is_file():
        raise SourceUnreadable(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise SourceUnreadable(f"{name}: the file is empty")
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    fmt = format or _detect_format(path, head)
    if fmt not in FORMATS:
        raise SourceUnreadable(f"{name}: unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt != "xlsx" and b"\x00" in head:
        raise SourceUnreadable(f"{name}: this looks like a binary file, not {fmt.upper()} text")

    plan = FilePlan(path=path, display_name=name, format=fmt)
    if fmt == "xlsx":
        plan.headers = _xlsx_headers(plan)
    elif fmt == "csv":
        plan.encoding = _detect_encoding(path, head)
        text_head = head.decode(plan.encoding, errors="replace")
        if plan.encoding == "utf-8-sig":
            text_head = text_head.lstrip("\ufeff")
        plan.delimiter = _detect_delimiter(text_head)
        first_line = next(csv.reader(io.StringIO(text_head), delimiter=plan.delimiter), [])
        plan.headers = [h.strip() for h in first_line]
    else:
        plan.encoding = _detect_encoding(path, head)
        plan.headers = _json_headers(plan)

    if not any(plan.headers):
        raise SourceUnreadable(f"{name}: no header row found")
    if "name" not in plan.mapping.values():
        from .normalise import ALIASES

        raise SourceUnreadable(
            f"{name}: no name column. Found columns {plan.headers[:12]}; "
            f"one of them must be a name ({', '.join(sorted(ALIASES['name']))})"
        )
    return plan


def iter_batches(plan: FilePlan, batch_rows: int) -> Iterator[list[RawRow]]:
    rows = {"csv": _csv_rows, "json": _json_rows, "jsonl": _jsonl_rows, "xlsx": _xlsx_rows}[plan.format](plan)
    while batch := list(islice(rows, batch_rows)):
        yield [_refuse_nul(row) for row in batch]


def _refuse_nul(row: RawRow) -> RawRow:
    """PostgreSQL stores no NUL character in text or jsonb: such a row is a reject naming the column
    (its raw record kept with each NUL written as `\\u0000`), not a failure of the whole file."""
    if row.error:
        return row
    try:  # the common case, all keys and values text: one C-level scan per row
        if "\x00" not in "".join(row.values) and "\x00" not in "".join(row.values.values()):
            return row
    except TypeError:  # numbers, nested JSON
        if not has_nul(row.values):
            return row
    column = next(str(k) for k, v in row.values.items() if has_nul(k) or has_nul(v))
    return RawRow(row.row_number, without_nul(row.values),
                  error=f"has a NUL character (\\u0000) in column {without_nul(column)!r}")


# --- detection -----------------------------------------------------------------------------------

def _detect_format(path: Path, head: bytes) -> str:
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension:
        return by_extension
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    return "csv"


def _detect_encoding(path: Path, head: bytes) -> str:
    """UTF-8 (BOM or not) if the whole file decodes as UTF-8, else Latin-1 (which decodes anything).

    The check streams the file through an incremental decoder: flat memory, ~1 GB/s.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _detect_delimiter(text_head: str) -> str:
    sample = "\n".join(text_head.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        return max(",;\t|", key=first.count) if first else ","


# --- CSV -----------------------------------------------------------------------------------------

def _csv_rows(plan: FilePlan) -> Iterator[RawRow]:
    with plan.path.open("r", encoding=plan.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=plan.delimiter)
        headers = [h.strip() for h in next(reader, [])]
        width = len(headers)
        for index, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(cells) > width:
                yield RawRow(index, dict(zip(headers, cells)),
                             error=f"has {len(cells)} fields but the header has {width}")
                continue
            yield RawRow(index, dict(zip(headers, cells)))


# --- JSON and JSON Lines ---------------------------------------------------------------------------

def _json_headers(plan: FilePlan) -> list[str]:
    headers: dict[str, None] = {}
    for row in islice(_json_rows(plan) if plan.format == "json" else _jsonl_rows(plan), 200):
        headers.update(dict.fromkeys(row.values))
    return list(headers)


def _json_rows(plan: FilePlan) -> Iterator[RawRow]:
    try:
        with plan.path.open("r", encoding=plan.encoding) as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceUnreadable(f"{plan.display_name}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        # {"clients": [...]} is common in exports: take the single list it holds
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise SourceUnreadable(f"{plan.display_name}: expected a JSON array of client objects")
        data = lists[0]
    if not isinstance(data, list):
        raise SourceUnreadable(f"{plan.display_name}: expected a JSON array of client objects")
    for index, item in enumerate(data, start=1):
        if isinstance(item, dict):
            yield RawRow(index, item)
        else:
            yield RawRow(index, {"value": item}, error=f"is a JSON {type(item).__name__}, not an object")


def _jsonl_rows(plan: FilePlan) -> Iterator[RawRow]:
    with plan.path.open("r", encoding=plan.encoding) as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RawRow(line_number, {"line": line.rstrip("\n")[:2000]}, error=f"is not valid JSON ({exc.msg})")
                continue
            if isinstance(item, dict):
                yield RawRow(line_number, item)
            else:
                yield RawRow(line_number, {"value": item}, error=f"is a JSON {type(item).__name__}, not an object")


# --- XLSX ----------------------------------------------------------------------------------------

def _open_workbook(plan: FilePlan):
    import openpyxl

    try:
        return openpyxl.load_workbook(plan.path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for a broken file
        raise SourceUnreadable(f"{plan.display_name}: not a readable XLSX workbook ({exc})") from exc


def _xlsx_headers(plan: FilePlan) -> list[str]:
    workbook = _open_workbook(plan)
    try:
        for row in workbook.worksheets[0].iter_rows(values_only=True):
            if any(v is not None and str(v).strip() for v in row):
                return [str(v).strip() if v is not None else "" for v in row]
        return []
    finally:
        workbook.close()


def _xlsx_rows(plan: FilePlan) -> Iterator[RawRow]:
    workbook = _open_workbook(plan)
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        headers: list[str] | None = None
        for index, cells in enumerate(rows, start=1):
            if not any(v is not None and str(v).strip() for v in cells):
                continue
            if headers is None:
                headers = [str(v).strip() if v is not None else "" for v in cells]
                continue
            values = {h: _cell_text(v) for h, v in zip(headers, cells) if h}
            yield RawRow(index, values)
    finally:
        workbook.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
