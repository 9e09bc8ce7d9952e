"""Read one landed export into the text columns of its raw table.

``read_export(source, path, profiles)`` returns an :class:`Export`: an Arrow table (and the
same as a pandas frame) with exactly the raw table's columns except the lineage columns the
asset adds (it does include ``_row_number``), every value text as it was in the file, null
only where the file had no value. A file that cannot be read raises :class:`UnreadableFile`
whose message names the file and what is wrong; the caller quarantines it.

The invoice reader is the hot path (exports of millions of lines): it hands the bytes to
Arrow's multi-threaded CSV parser with every column typed as text, never a Python loop.

No Dagster imports here: the CLI and the benchmark read files the same way.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from leadscore_core.profiles import Profile, UnknownHeader, detect_profile
from leadscore_core.warehouse import INVOICE_COLUMNS, LINEAGE_COLUMNS, RAW_DDL

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 64 * 1024
STREAM_BLOCK_BYTES = 1 << 20
# Magic numbers of files people drop by mistake instead of the CSV/JSON export.
BINARY_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an OLE document (an .xls workbook?)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"PAR1": "a Parquet file",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ": "an xz archive",
}
OTHER_DELIMITERS = (";", "\t", "|")

# Stripe dashboard "unified payments" CSV export column -> raw column.
STRIPE_CSV_COLUMNS = {
    "id": "payment_id",
    "Created date (UTC)": "created",
    "Amount": "amount",
    "Amount Refunded": "amount_refunded",
    "Currency": "currency",
    "Status": "status",
    "Disputed Amount": "disputed",
    "Decline Reason": "failure_code",
    "Customer ID": "customer_id",
    "Customer Email": "customer_email",
    "PaymentIntent ID": "payment_intent",
    "Description": "description",
}
STRIPE_CSV_REQUIRED = ("id", "Created date (UTC)", "Amount", "Currency")
PAYMENT_OBJECTS = ("charge", "payment_intent")


class UnreadableFile(ValueError):
    """A landed file that cannot be read at all; the message names the file and the cause."""


@dataclass
class Export:
    """The rows of one export as text, in the column order of its raw table."""

    source: str
    table: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def frame(self) -> pd.DataFrame:
        return self.table.to_pandas()

    @property
    def rows(self) -> int:
        return self.table.num_rows


def raw_columns(source: str) -> list[str]:
    """Columns of ``raw.<source>`` that a reader fills: all but the lineage the asset adds."""
    names = re.findall(r"^\s*(\w+)\s+(?:VARCHAR|JSON|BIGINT|TIMESTAMP)\b", RAW_DDL[source], re.M)
    return [n for n in names if n not in LINEAGE_COLUMNS or n == "_row_number"]


def read_export(source: str, path: Path, profiles: dict[str, Profile]) -> Export:
    """Read ``path`` (a file landed for ``source``) into its raw columns; see the module doc."""
    path = Path(path)
    if source == "invoices":  # the large one: streamed, never held whole in Python
        export = _read_invoices(path)
    elif source in ("leads", "customers"):
        data = _load_bytes(path)
        export = _read_profiled(source, path, data, profiles)
        export.stats["compressed"] = data.compressed
    elif source == "payments":
        data = _load_bytes(path)
        export = _read_payments(path, data)
        export.stats["compressed"] = data.compressed
    else:
        raise ValueError(f"unknown source {source!r}")
    export.stats["rows"] = export.rows
    return export


# -- bytes -----------------------------------------------------------------------------------


@dataclass
class _Bytes:
    content: bytes
    compressed: bool


def _load_bytes(path: Path) -> _Bytes:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"{path.name}: cannot be opened ({exc.strerror or exc})") from exc
    if not content:
        raise UnreadableFile(f"{path.name}: empty file (0 bytes)")
    compressed = content[:2] == GZIP_MAGIC
    if compressed:
        try:
            content = gzip.decompress(content)
        except (EOFError, OSError, zlib.error) as exc:
            raise UnreadableFile(f"{path.name}: damaged or truncated gzip data ({exc})") from exc
        if not content:
            raise UnreadableFile(f"{path.name}: empty file (gzip holds 0 bytes)")
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM):]
    if content.isspace():
        raise UnreadableFile(f"{path.name}: empty file (only whitespace)")
    _refuse_binary(path, content)
    return _Bytes(content, compressed)


def _sniff(path: Path) -> _Bytes:
    """The first ``SNIFF_BYTES`` of the (decompressed) content, with the same checks."""
    try:
        with path.open("rb") as handle:
            compressed = handle.read(2) == GZIP_MAGIC
        opener = gzip.open if compressed else open
        with opener(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UnreadableFile(f"{path.name}: damaged or truncated gzip data ({exc})") from exc
    except OSError as exc:
        raise UnreadableFile(f"{path.name}: cannot be opened ({exc.strerror or exc})") from exc
    if not head:
        raise UnreadableFile(f"{path.name}: empty file (0 bytes)")
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM):]
    if len(head) < SNIFF_BYTES - len(UTF8_BOM) and (not head or head.isspace()):
        raise UnreadableFile(f"{path.name}: empty file (only whitespace)")
    _refuse_binary(path, head)
    return _Bytes(head, compressed)


def _refuse_binary(path: Path, content: bytes) -> None:
    for magic, what in BINARY_MAGIC.items():
        if content.startswith(magic):
            raise UnreadableFile(f"{path.name}: binary file, not a text export (looks like {what})")
    head = content[:SNIFF_BYTES]
    if b"\x00" in head:
        at = head.index(b"\x00")
        raise UnreadableFile(
            f"{path.name}: binary file, not a text export (NUL byte at offset {at})")
    control = sum(head.count(bytes([b])) for b in (*range(0, 9), *range(14, 32)))
    if control > max(8, len(head) // 100):
        raise UnreadableFile(
            f"{path.name}: binary file, not a text export ({control} control bytes in the "
            f"first {len(head):,})")


def _decode(content: bytes) -> tuple[str, str]:
    """(text, encoding): valid UTF-8 is UTF-8; anything else is a Windows-1252 export."""
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        # The five bytes cp1252 leaves undefined do occur in latin-1 files.
        return content.decode("latin-1"), "latin-1"


# -- CSV -------------------------------------------------------------------------------------


def _csv_header(path: Path, text_head: str) -> list[str]:
    try:
        header = next(csv.reader(io.StringIO(text_head)))
    except (StopIteration, csv.Error) as exc:
        raise UnreadableFile(f"{path.name}: no CSV header line ({exc})") from exc
    if len(header) == 1:
        for delimiter in OTHER_DELIMITERS:
            if delimiter in header[0]:
                shown = {"\t": "tab", ";": "semicolon", "|": "pipe"}[delimiter]
                raise UnreadableFile(
                    f"{path.name}: wrong delimiter: the header is one column "
                    f"{header[0][:60]!r}; the file looks {shown}-separated, expected commas")
    dupes = sorted(n for n, c in Counter(header).items() if c > 1)
    if dupes:
        raise UnreadableFile(f"{path.name}: header repeats column(s) {dupes}")
    return header


def _csv_options(header: list[str], *, block_size: int,
                 newlines_in_values: bool) -> dict[str, Any]:
    """All columns as text; an empty field is null (no value in the file), nothing else is."""
    return {
        "read_options": pacsv.ReadOptions(column_names=header, skip_rows=1,
                                          block_size=block_size),
        "parse_options": pacsv.ParseOptions(newlines_in_values=newlines_in_values),
        "convert_options": pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True),
    }


def _parse_csv(path: Path, utf8: bytes, header: list[str]) -> pa.Table:
    try:
        return pacsv.read_csv(io.BytesIO(utf8), **_csv_options(
            header, block_size=8 << 20, newlines_in_values=True))
    except pa.ArrowInvalid as exc:
        raise _explain_csv_error(path, utf8, header, exc) from exc


def _explain_csv_error(path: Path, utf8: bytes, header: list[str],
                       exc: Exception) -> UnreadableFile:
    """Find the record Arrow rejected (Arrow does not say which) with the csv module."""
    reader = csv.reader(io.StringIO(utf8.decode("utf-8"), newline=""))
    next(reader, None)
    for number, row in enumerate(reader, start=1):
        if len(row) != len(header):
            return UnreadableFile(
                f"{path.name}: row {number} (line {reader.line_num}) has {len(row)} fields, "
                f"the header has {len(header)}: {','.join(row)[:120]!r}")
    return UnreadableFile(f"{path.name}: unreadable CSV ({exc})")


def _row_numbers(n: int) -> pa.Array:
    return pa.array(np.arange(1, n + 1, dtype=np.int64))


def _rows_as_json(table: pa.Table, header: list[str]) -> list[str]:
    """Each row as one JSON object of every column (text, null where the file had none)."""
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False)
            for row in zip(*columns, strict=True)]


# -- leads and customers ---------------------------------------------------------------------


def _read_profiled(source: str, path: Path, data: _Bytes,
                   profiles: dict[str, Profile]) -> Export:
    text, encoding = _decode(data.content)
    header = _csv_header(path, text[:SNIFF_BYTES])
    try:
        profile = detect_profile(header, profiles, source)
    except UnknownHeader as exc:
        raise UnreadableFile(f"{path.name}: {exc}") from exc
    utf8 = data.content if encoding == "utf-8" else text.encode("utf-8")
    table = _parse_csv(path, utf8, header)
    records = _rows_as_json(table, header)
    n = table.num_rows

    def pick(column: str | None) -> pa.Array:
        if column is None or column not in header:
            return pa.nulls(n, pa.string())
        return table.column(column).combine_chunks()

    out = pa.table({
        "profile": pa.array([profile.name] * n, pa.string()),
        "record_id": pick(profile.id.column),
        "created_at": pick(profile.created_at.column if profile.created_at else None),
        "email": pick(profile.email),
        "label": pick(profile.label.column if profile.label else None),
        "record": pa.array(records, pa.string()),
        "_row_number": _row_numbers(n),
    })
    return Export(source, out.select(raw_columns(source)), {
        "format": "csv", "encoding": encoding, "profile": profile.name,
        "columns": len(header)})


# -- invoices --------------------------------------------------------------------------------


def _read_invoices(path: Path) -> Export:
    head = _sniff(path)
    header = _csv_header(path, _decode(head.content)[0])
    missing = [c for c in INVOICE_COLUMNS if c not in header]
    if missing:
        raise UnreadableFile(
            f"{path.name}: not an invoice export: missing required column(s) {missing} "
            f"(header: {header[:10]})")
    encoding = "utf-8"
    try:
        # Streaming small blocks lets decompression overlap parsing; Arrow checks the
        # UTF-8 itself. Line breaks inside quoted values would stop the parallel split, so
        # they are only allowed on the slow path below.
        # compression from the bytes: input_stream would otherwise guess from the name
        stream = (pa.input_stream(str(path), compression="gzip") if head.compressed
                  else pa.memory_map(str(path)))
        table = pacsv.read_csv(stream, **_csv_options(
            header, block_size=STREAM_BLOCK_BYTES, newlines_in_values=False))
    except pa.ArrowInvalid:
        data = _load_bytes(path)
        text, encoding = _decode(data.content)
        table = _parse_csv(path, text.encode("utf-8") if encoding != "utf-8" else data.content,
                           header)
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableFile(f"{path.name}: damaged or truncated data ({exc})") from exc
    n = table.num_rows
    cols = {raw: table.column(name) for name, raw in INVOICE_COLUMNS.items()}
    cols["_encoding"] = pa.repeat(pa.scalar(encoding), n)  # type: ignore[assignment]
    cols["_row_number"] = _row_numbers(n)  # type: ignore[assignment]
    out = pa.table(cols).select(raw_columns("invoices"))
    extra = [c for c in header if c not in INVOICE_COLUMNS]
    return Export("invoices", out, {"format": "csv", "encoding": encoding,
                                    "compressed": head.compressed, "ignored_columns": extra})


# -- payments --------------------------------------------------------------------------------


def _read_payments(path: Path, data: _Bytes) -> Export:
    try:
        text = data.content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    stripped = (text or "").lstrip()
    if text is not None and stripped[:1] in ("[", "{"):
        objects, raw_format = _stripe_json(path, text)
        return _stripe_objects(path, objects, raw_format)
    return _stripe_csv(path, data)


def _stripe_json(path: Path, text: str) -> tuple[list[Any], str]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several documents: JSON Lines
            return _json_lines(path, text), "jsonl"
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos} of {len(text)})"
        cause = "truncated JSON" if exc.pos >= len(text.rstrip()) - 1 else "invalid JSON"
        raise UnreadableFile(f"{path.name}: {cause} at {where}: {exc.msg}") from exc
    if isinstance(doc, list):
        return doc, "json_array"
    if not isinstance(doc, dict):
        raise UnreadableFile(f"{path.name}: JSON holds a {type(doc).__name__}, not Stripe objects")
    if doc.get("object") == "list" and isinstance(doc.get("data"), list):
        return doc["data"], "json_list_page"
    if "object" in doc:  # a single object: one line of JSON Lines
        return [doc], "jsonl"
    if doc and all(isinstance(v, dict) for v in doc.values()):
        return list(doc.values()), "json_mapping"
    raise UnreadableFile(
        f"{path.name}: JSON object is neither a Stripe object, an API list page nor a mapping "
        f"of objects (keys: {list(doc)[:8]})")


def _json_lines(path: Path, text: str) -> list[Any]:
    objects = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            objects.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UnreadableFile(
                f"{path.name}: JSON Lines: line {lineno} is not valid JSON at column "
                f"{exc.colno}: {exc.msg}") from exc
    return objects


def _stripe_objects(path: Path, objects: Iterable[Any], raw_format: str) -> Export:
    rows: list[dict[str, str | None]] = []
    skipped: Counter[str] = Counter()
    for number, obj in enumerate(objects, start=1):
        kind = obj.get("object") if isinstance(obj, dict) else None
        event_id = None
        if kind == "event":
            inner = (obj.get("data") or {}).get("object")
            inner_kind = inner.get("object") if isinstance(inner, dict) else None
            if inner_kind not in PAYMENT_OBJECTS:
                skipped[f"event:{inner_kind}"] += 1
                continue
            event_id, raw, obj, kind = obj.get("id"), obj, inner, inner_kind
        else:
            raw = obj
        if kind not in PAYMENT_OBJECTS:
            skipped[str(kind) if isinstance(obj, dict) else type(obj).__name__] += 1
            continue
        row = _stripe_columns(obj, kind)
        row.update(event_id=event_id, raw_object=json.dumps(raw, ensure_ascii=False),
                   _row_number=number)  # type: ignore[arg-type]
        rows.append(row)
    columns = raw_columns("payments")
    table = pa.table({
        c: pa.array([r.get(c) for r in rows], pa.int64() if c == "_row_number" else pa.string())
        for c in columns
    })
    table = table.set_column(columns.index("amount_unit"), "amount_unit",
                             pa.array(["minor"] * len(rows), pa.string()))
    table = table.set_column(columns.index("raw_format"), "raw_format",
                             pa.array([raw_format] * len(rows), pa.string()))
    return Export("payments", table, {
        "format": raw_format, "encoding": "utf-8", "objects": sum(skipped.values()) + len(rows),
        "kept": dict(Counter(r["object_type"] for r in rows)), "skipped": dict(skipped)})


def _text(value: Any) -> str | None:
    """A JSON scalar as text the way JSON writes it (``true``, ``2000``); objects as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _ref(value: Any) -> str | None:
    """An id field that Stripe may have expanded into the object it names."""
    return _text(value.get("id")) if isinstance(value, dict) else _text(value)


def _stripe_columns(obj: dict[str, Any], kind: str) -> dict[str, str | None]:
    customer = obj.get("customer")
    expanded_email = customer.get("email") if isinstance(customer, dict) else None
    if kind == "charge":
        email = ((obj.get("billing_details") or {}).get("email") or obj.get("receipt_email")
                 or expanded_email)
        failure = obj.get("failure_code")
        payment_intent = _ref(obj.get("payment_intent"))
        refunded, disputed = _text(obj.get("refunded")), _text(obj.get("disputed"))
        amount_refunded = _text(obj.get("amount_refunded"))
    else:
        email = obj.get("receipt_email") or expanded_email
        failure = (obj.get("last_payment_error") or {}).get("code")
        payment_intent = refunded = disputed = amount_refunded = None
    return {
        "object_type": kind,
        "payment_id": _text(obj.get("id")),
        "created": _text(obj.get("created")),
        "amount": _text(obj.get("amount")),
        "amount_refunded": amount_refunded,
        "currency": _text(obj.get("currency")),
        "status": _text(obj.get("status")),
        "refunded": refunded,
        "disputed": disputed,
        "failure_code": _text(failure),
        "customer_id": _ref(customer),
        "customer_email": _text(email),
        "payment_intent": payment_intent,
        "description": _text(obj.get("description")),
    }


def _stripe_csv(path: Path, data: _Bytes) -> Export:
    text, encoding = _decode(data.content)
    header = _csv_header(path, text[:SNIFF_BYTES])
    missing = [c for c in STRIPE_CSV_REQUIRED if c not in header]
    if missing:
        raise UnreadableFile(
            f"{path.name}: neither Stripe JSON nor a Stripe payments CSV export: missing "
            f"column(s) {missing} (header: {header[:8]})")
    utf8 = data.content if encoding == "utf-8" else text.encode("utf-8")
    table = _parse_csv(path, utf8, header)
    n = table.num_rows
    raw_rows = _rows_as_json(table, header)
    out: dict[str, pa.Array] = {c: pa.nulls(n, pa.string()) for c in raw_columns("payments")}
    for name, raw in STRIPE_CSV_COLUMNS.items():
        if name in header:
            out[raw] = table.column(name).combine_chunks()
    out.update(
        object_type=pa.array(["charge"] * n, pa.string()),
        amount_unit=pa.array(["major"] * n, pa.string()),
        raw_format=pa.array(["csv"] * n, pa.string()),
        raw_object=pa.array(raw_rows, pa.string()),
        _row_number=_row_numbers(n),
    )
    return Export("payments", pa.table(out), {
        "format": "csv", "encoding": encoding, "objects": n, "kept": {"charge": n} if n else {},
        "skipped": {}})

