"""Read one landed export into the text columns of its raw table.

``read_export(source, path, profiles, declared)`` returns an :class:`Export`: an Arrow table
(and the same as a pandas frame) with exactly the raw table's columns except the lineage
columns the asset adds (it does include ``_row_number``), every value text as it was in the
file, null only where the file had no value. Two columns say how to read the text:
``_formats`` (the decimal mark and thousands separator of each number field and the day-month
order of each date field, decided from the whole file by :mod:`.formats`) and ``_malformed``
(a record that could not be split into the header's fields: quarantined by cleaning, the
other rows go on). A file that cannot be read at all raises :class:`UnreadableFile` whose
message names the file and what is wrong; the caller quarantines it.

The invoice reader is the hot path (exports of millions of lines): it hands the bytes to
Arrow's multi-threaded CSV parser with every column typed as text, never a Python loop.

No Dagster imports here: the CLI and the benchmark read files the same way.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore_assets.ingest import formats
from leadscore_assets.ingest.csvfiles import (
    CsvTable,
    UnreadableFile,
    decide_delimiter,
    load_content,
    parse_header,
    read_csv,
    sniff_content,
)
from leadscore_assets.ingest.formats import Declared, FormatError
from leadscore_core.predlog import entry_problem
from leadscore_core.profiles import Profile, UnknownHeader, as_text, detect_profile
from leadscore_core.times import check_timezone
from leadscore_core.warehouse import INVOICE_COLUMNS, LINEAGE_COLUMNS, raw_column_types

__all__ = ["Export", "UnreadableFile", "raw_columns", "read_export", "STRIPE_CSV_COLUMNS"]

# Stripe dashboard "unified payments" CSV export column -> raw column.
STRIPE_CSV_COLUMNS = {
    "id": "payment_id",
    "Created date (UTC)": "created",
    "Amount": "amount",
    "Amount Refunded": "amount_refunded",
    "Currency": "currency",
    "Status": "status",
    "Captured": "captured",
    "Disputed Amount": "disputed",
    "Decline Reason": "failure_code",
    "Customer ID": "customer_id",
    "Customer Email": "customer_email",
    "PaymentIntent ID": "payment_intent",
    "Description": "description",
}
STRIPE_CSV_REQUIRED = ("id", "Created date (UTC)", "Amount", "Currency")
PAYMENT_OBJECTS = ("charge", "payment_intent")


@dataclass
class Export:
    """The rows of one export as text, in the column order of its raw table."""

    source: str
    table: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The rows as a frame of text (dictionary-encoded constants decoded)."""
        table = pa.table({
            name: (column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column)
            for name, column in zip(self.table.column_names, self.table.columns, strict=True)})
        return table.to_pandas()

    @property
    def rows(self) -> int:
        return self.table.num_rows


def raw_columns(source: str) -> list[str]:
    """Columns of ``raw.<source>`` that a reader fills: all but the lineage the asset adds."""
    return [n for n in raw_column_types(source)
            if n not in LINEAGE_COLUMNS or n == "_row_number"]


def read_export(source: str, path: Path, profiles: dict[str, Profile],
                declared: Mapping[str, Any] | Declared | None = None) -> Export:
    """Read ``path`` (a file landed for ``source``) into its raw columns; see the module doc.

    ``declared``: the source's format settings (``date_order``, ``decimal``, ``thousands``,
    ``delimiter``); for leads and customers the detected profile's own declarations win.
    """
    path = Path(path)
    declared = declared if isinstance(declared, Declared) else Declared.of(declared)
    try:
        if source == "invoices":  # the large one: streamed, never held whole in Python
            export = _read_invoices(path, declared)
        elif source in ("leads", "customers"):
            export = _read_profiled(source, path, profiles, declared)
        elif source == "payments":
            export = _read_payments(path, declared)
        elif source == "predictions":
            export = _read_predictions(path)
        else:
            raise ValueError(f"unknown source {source!r}")
    except FormatError as exc:
        raise UnreadableFile(str(exc)) from exc
    export.stats["rows"] = export.rows
    return export


def decide_formats(file: str, table: pa.Table, numbers: Mapping[str, str],
                   dates: Mapping[str, str], declared: Declared) -> str:
    """``_formats`` of a file: raw field -> its decided format (JSON); see :mod:`.formats`.

    ``numbers`` and ``dates`` map the raw field name to the file's column name.
    """
    good = table.select(list(dict.fromkeys([*numbers.values(), *dates.values(), "_malformed"])))
    if good.column("_malformed").null_count < good.num_rows:
        good = good.filter(pa.compute.is_null(good.column("_malformed")))
    decision: dict[str, Any] = {}
    decision.update(_rename(formats.decide_numbers(
        file, {column: good.column(column) for column in numbers.values()}, declared),
        numbers))
    decision.update(_rename(formats.decide_dates(
        file, {column: good.column(column) for column in dates.values()}, declared), dates))
    return formats.dumps(decision)


def _rename(decided: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    back = {column: raw for raw, column in names.items()}
    return {back[column]: fmt for column, fmt in decided.items()}


def _constant(value: str | None, n: int) -> pa.Array:
    """One value on every row, dictionary-encoded: no copy per row (DuckDB reads the
    dictionary as it is)."""
    if value is None:
        return pa.nulls(n, pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)),
                                          pa.array([value], pa.string()))


# -- leads and customers ---------------------------------------------------------------------


def _rows_as_json(table: pa.Table, header: list[str]) -> list[str]:
    """Each good row as one JSON object of every column (text, null where the file had
    none); a malformed row as ``{}`` (its fields are in ``_malformed``)."""
    columns = [table.column(name).to_pylist() for name in header]
    bad = table.column("_malformed").is_null().to_pylist()
    return [json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False) if ok else "{}"
            for ok, row in zip(bad, zip(*columns, strict=True), strict=True)]


def _read_profiled(source: str, path: Path, profiles: dict[str, Profile],
                   declared: Declared) -> Export:
    head = sniff_content(path)
    json_lines = head.data.lstrip()[:1] == b"{"
    if json_lines:  # one submission per line (the form webhooks' spool, form-service exports)
        csvt = _records_table(path, _json_lines(path, _utf8(path, load_content(path).data)))
    else:
        # the header (ASCII in an export) names the profile, whose encoding reads the rest
        known = _header_profile(path, head.data, profiles, source, declared)
        csvt = read_csv(path, declared_delimiter=declared.delimiter,
                        declared_encoding=(known.encoding if known else None)
                        or declared.encoding)
    header = csvt.header
    try:
        profile = detect_profile(header, profiles, source)
    except UnknownHeader as exc:
        raise UnreadableFile(f"{path.name}: {exc}") from exc
    missing = profile.missing_columns(header)
    if missing:
        raise UnreadableFile(
            f"{path.name}: profile {profile.name!r} declares column(s) {missing} that the "
            f"file lacks (fix the profile, or the export)")
    own = Declared.of(profile)
    if own.delimiter and own.delimiter != csvt.delimiter and not json_lines:
        raise UnreadableFile(
            f"{path.name}: profile {profile.name!r} declares the delimiter {own.delimiter!r} "
            f"but the file is {csvt.describe()['delimiter']}-separated")
    declared = Declared(own.date_order or declared.date_order, own.decimal or declared.decimal,
                        own.thousands or declared.thousands, csvt.delimiter,
                        own.timezone or declared.timezone)
    table = csvt.table
    kinds = profile.resolve(header).kinds
    numbers = {c: c for c, kind in kinds.items() if kind == "numeric"}
    created = profile.created_at
    dates = {created.column: created.column} if created and not created.format else {}
    fmt = decide_formats(path.name, table, numbers, dates, declared)
    if declared.timezone and created:
        # kept with the file's decisions: cleaning reads its offset-less times in this zone
        try:
            zone = check_timezone(declared.timezone)
        except ValueError as exc:
            raise UnreadableFile(f"{path.name}: declared `timezone`: {exc}") from exc
        decision = formats.loads(fmt)
        decision.setdefault(created.column, {})["timezone"] = zone
        fmt = formats.dumps(decision)
    n = table.num_rows

    def pick(column: str | None) -> pa.Array:
        if column is None or column not in header:
            return pa.nulls(n, pa.string())
        return table.column(column).combine_chunks()

    out = pa.table({
        "profile": _constant(profile.name, n),
        "record_id": pick(profile.id.column),
        "created_at": pick(created.column if created else None),
        "email": pick(profile.email),
        "label": pick(profile.label.column if profile.label else None),
        "record": pa.array(_rows_as_json(table, header), pa.string()),
        "_formats": _constant(fmt, n),
        "_malformed": table.column("_malformed"),
        "_row_number": table.column("_row_number"),
    })
    return Export(source, out.select(raw_columns(source)), {
        **csvt.describe(), **({"format": "jsonl"} if json_lines else {}),
        "profile": profile.name, "columns": len(header), "formats": formats.loads(fmt)})


def _header_profile(path: Path, head: bytes, profiles: dict[str, Profile], source: str,
                    declared: Declared) -> Profile | None:
    """The profile the file's header line matches, read before its encoding is known (None
    when the header does not say: the file is then read with the source's declaration)."""
    text = head.decode("utf-8", errors="replace")
    try:
        header = parse_header(path, text, decide_delimiter(path, text, declared.delimiter))
        return detect_profile(header, profiles, source)
    except (UnreadableFile, UnknownHeader):
        return None


def _utf8(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path.name}: JSON Lines must be UTF-8 ({exc})") from exc


def _records_table(path: Path, objects: list[Any]) -> CsvTable:
    """JSON objects as a text table, as :func:`read_csv` gives a CSV file's: the header is
    every field name in first-seen order, a field a record lacks is null there, values are
    text as JSON writes them (:func:`as_text`)."""
    header: dict[str, None] = {}
    for number, obj in enumerate(objects, start=1):
        if not isinstance(obj, dict):
            raise UnreadableFile(f"{path.name}: JSON Lines: line {number} is a "
                                 f"{type(obj).__name__}, not an object of field values")
        header.update(dict.fromkeys(obj))
    names = list(header)
    n = len(objects)
    table = pa.table({
        **{name: pa.array([as_text(o.get(name)) for o in objects], pa.string())
           for name in names},
        "_malformed": pa.nulls(n, pa.string()),
        "_row_number": pa.array(np.arange(1, n + 1, dtype=np.int64)),
    })
    return CsvTable(table, names, "utf-8", ",", False, None, "\n")


def _read_with_columns(path: Path, declared: Declared, required: Iterable[str], not_what: str,
                       *, stream: bool = False) -> CsvTable:
    """:func:`read_csv` of a file whose layout is fixed: a header lacking a ``required``
    column is a file of another kind (``not_what`` says which it is not)."""
    csvt = read_csv(path, declared_delimiter=declared.delimiter, stream=stream,
                    declared_encoding=declared.encoding)
    missing = [c for c in required if c not in csvt.header]
    if missing:
        raise UnreadableFile(f"{path.name}: {not_what}: missing required column(s) {missing} "
                             f"(header: {csvt.header[:10]})")
    return csvt


# -- invoices --------------------------------------------------------------------------------

INVOICE_NUMBERS = {"quantity": "Quantity", "unit_price": "UnitPrice"}
INVOICE_DATES = {"invoice_date": "InvoiceDate"}


def _read_invoices(path: Path, declared: Declared) -> Export:
    csvt = _read_with_columns(path, declared, INVOICE_COLUMNS, "not an invoice export",
                              stream=True)
    header = csvt.header
    table = csvt.table
    fmt = decide_formats(path.name, table, INVOICE_NUMBERS, INVOICE_DATES, declared)
    n = table.num_rows
    cols = {raw: table.column(name) for name, raw in INVOICE_COLUMNS.items()}
    cols["_encoding"] = _constant(csvt.encoding, n)  # type: ignore[assignment]
    cols["_formats"] = _constant(fmt, n)  # type: ignore[assignment]
    cols["_malformed"] = table.column("_malformed")
    cols["_row_number"] = table.column("_row_number")
    out = pa.table(cols).select(raw_columns("invoices"))
    extra = [c for c in header if c not in INVOICE_COLUMNS]
    return Export("invoices", out, {**csvt.describe(), "ignored_columns": extra,
                                    "formats": formats.loads(fmt)})


# -- payments --------------------------------------------------------------------------------

# Objects that land as rows: payment attempts, and what changes one after the fact.
PAYMENT_OBJECTS = ("charge", "payment_intent")
ADJUSTMENT_OBJECTS = ("refund", "dispute")
LANDED_OBJECTS = PAYMENT_OBJECTS + ADJUSTMENT_OBJECTS
LIST_OBJECTS = ("list", "search_result")
MAX_WRAPPER_DEPTH = 4


def _read_payments(path: Path, declared: Declared) -> Export:
    content = load_content(path)
    try:
        text = content.data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    stripped = (text or "").lstrip()
    if text is not None and stripped[:1] in ("[", "{"):
        objects, raw_format = _stripe_json(path, text)
        export = _stripe_objects(path, objects, raw_format)
        export.stats["compressed"] = content.compressed
        return export
    return _stripe_csv(path, declared)


def _stripe_json(path: Path, text: str) -> tuple[list[Any], str]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several documents: JSON Lines
            objects: list[Any] = []
            for line in _json_lines(path, text):
                objects += unwrap_stripe(line)
            return objects, "jsonl"
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos} of {len(text)})"
        cause = "truncated JSON" if exc.pos >= len(text.rstrip()) - 1 else "invalid JSON"
        raise UnreadableFile(f"{path.name}: {cause} at {where}: {exc.msg}") from exc
    if not isinstance(doc, (dict, list)):
        raise UnreadableFile(f"{path.name}: JSON holds a {type(doc).__name__}, not Stripe objects")
    objects = unwrap_stripe(doc)
    if not objects:
        keys = list(doc)[:8] if isinstance(doc, dict) else f"a list of {len(doc)}"
        raise UnreadableFile(
            f"{path.name}: no Stripe object in this JSON (an object has an \"object\" field; "
            f"looked in lists, list and search pages and wrapper keys; top level: {keys})")
    return objects, _json_shape(doc)


def unwrap_stripe(doc: Any, depth: int = 0) -> list[Any]:
    """Every Stripe object in ``doc``: the object itself, the items of a list, of an API list
    or search page (``{"object": "list" | "search_result", "data": [...]}``), or the values
    under wrapper keys (Stripe's fixture files: ``{"resources": {"charge": {...}}}``)."""
    if isinstance(doc, list):
        return [o for item in doc for o in unwrap_stripe(item, depth)]
    if not isinstance(doc, dict):
        return []
    kind = doc.get("object")
    if kind in LIST_OBJECTS and isinstance(doc.get("data"), list):
        return [o for item in doc["data"] for o in unwrap_stripe(item, depth)]
    if isinstance(kind, str):
        return [doc]
    if depth >= MAX_WRAPPER_DEPTH:
        return []
    return [o for value in doc.values() if isinstance(value, (dict, list))
            for o in unwrap_stripe(value, depth + 1)]


def _json_shape(doc: Any) -> str:
    if isinstance(doc, list):
        return "json_array"
    kind = doc.get("object")
    if kind == "list":
        return "json_list_page"
    if kind == "search_result":
        return "json_search_page"
    if isinstance(kind, str):
        return "json_object"
    if all(isinstance(v, dict) and isinstance(v.get("object"), str) for v in doc.values()):
        return "json_mapping"
    return "json_wrapped"


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


def _read_predictions(path: Path) -> Export:
    """A sealed prediction-log file (JSON Lines, one entry a line): one row per entry; a line
    that is not an entry keeps its place as a row with ``_malformed`` (line, rule, reason)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path.name}: not UTF-8 at byte {exc.start}") from exc
    columns: dict[str, list[Any]] = {name: [] for name in raw_columns("predictions")}
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            problem = entry_problem(entry)
            rule = "invalid_entry"
        except json.JSONDecodeError as exc:
            entry, problem, rule = None, f"invalid JSON: {exc.msg}", "invalid_json"
        if problem is None:
            row = {"prediction_id": _text(entry.get("id")), "predicted_at": str(entry["time"]),
                   "model": str(entry["model"]), "version": str(entry["version"]),
                   "endpoint": str(entry["endpoint"]),
                   "inputs": json.dumps(entry["inputs"], ensure_ascii=False),
                   "outputs": json.dumps(entry["outputs"], ensure_ascii=False),
                   "_malformed": None}
        else:
            row = {"_malformed": json.dumps({"line": line, "rule": rule, "field": None,
                                             "reason": f"line {line}: {problem}",
                                             "fields": [raw[:500]]}, ensure_ascii=False)}
        for name, values in columns.items():
            values.append(line if name == "_row_number" else row.get(name))
    table = pa.table({name: pa.array(values, pa.int64() if name == "_row_number"
                                     else pa.string()) for name, values in columns.items()})
    malformed = sum(v is not None for v in columns["_malformed"])
    return Export("predictions", table, {"format": "jsonl", "encoding": "utf-8",
                                         "compressed": False, "malformed_rows": malformed})


def _stripe_objects(path: Path, objects: Iterable[Any], raw_format: str) -> Export:
    """Rows for charges, payment intents, refunds and disputes (bare or wrapped in events);
    every other object counted as skipped by its type."""
    rows: list[dict[str, str | None]] = []
    skipped: Counter[str] = Counter()
    for number, obj in enumerate(objects, start=1):
        kind = obj.get("object") if isinstance(obj, dict) else None
        event_id = None
        raw = obj
        if kind == "event":
            inner = (obj.get("data") or {}).get("object")
            inner_kind = inner.get("object") if isinstance(inner, dict) else None
            if inner_kind not in LANDED_OBJECTS:
                skipped[f"event:{inner_kind}"] += 1
                continue
            event_id, obj, kind = obj.get("id"), inner, inner_kind
        if kind not in LANDED_OBJECTS:
            skipped[str(kind) if isinstance(obj, dict) else type(obj).__name__] += 1
            continue
        row = _stripe_columns(obj, kind)
        row.update(event_id=event_id, raw_object=json.dumps(raw, ensure_ascii=False),
                   _row_number=number)  # type: ignore[arg-type]
        rows.append(row)
    columns = raw_columns("payments")
    n = len(rows)
    table = pa.table({
        c: pa.array([r.get(c) for r in rows], pa.int64() if c == "_row_number" else pa.string())
        for c in columns
    })
    table = table.set_column(columns.index("amount_unit"), "amount_unit", _constant("minor", n))
    table = table.set_column(columns.index("raw_format"), "raw_format", _constant(raw_format, n))
    kept = Counter(r["object_type"] for r in rows)
    return Export("payments", table, {
        "format": raw_format, "encoding": "utf-8", "objects": sum(skipped.values()) + n,
        "kept": dict(kept), "skipped": dict(skipped),
        "payments": sum(kept[k] for k in PAYMENT_OBJECTS)})


_text = as_text  # a JSON value as text the way JSON writes it (``true``, ``2000``)


def _ref(value: Any) -> str | None:
    """An id field that Stripe may have expanded into the object it names."""
    return _text(value.get("id")) if isinstance(value, dict) else _text(value)


def _stripe_columns(obj: dict[str, Any], kind: str) -> dict[str, str | None]:
    customer = obj.get("customer")
    expanded_email = customer.get("email") if isinstance(customer, dict) else None
    charge = payment_intent = refunded = disputed = amount_refunded = captured = None
    if kind == "charge":
        email = ((obj.get("billing_details") or {}).get("email") or obj.get("receipt_email")
                 or expanded_email)
        failure = obj.get("failure_code")
        payment_intent = _ref(obj.get("payment_intent"))
        refunded, disputed = _text(obj.get("refunded")), _text(obj.get("disputed"))
        amount_refunded = _text(obj.get("amount_refunded"))
        captured = _text(obj.get("captured"))
    elif kind == "payment_intent":
        email = obj.get("receipt_email") or expanded_email
        failure = (obj.get("last_payment_error") or {}).get("code")
    else:  # a refund or a dispute: it names the charge it changes
        email = None
        failure = obj.get("failure_reason") or obj.get("reason")
        charge = _ref(obj.get("charge"))
        payment_intent = _ref(obj.get("payment_intent"))
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
        "captured": captured,
        "charge": charge,
        "failure_code": _text(failure),
        "customer_id": _ref(customer),
        "customer_email": _text(email),
        "payment_intent": payment_intent,
        "description": _text(obj.get("description")),
    }


STRIPE_CSV_NUMBERS = {"amount": "Amount", "amount_refunded": "Amount Refunded",
                      "disputed": "Disputed Amount"}
STRIPE_CSV_DATES = {"created": "Created date (UTC)"}


def _stripe_csv(path: Path, declared: Declared) -> Export:
    csvt = _read_with_columns(path, declared, STRIPE_CSV_REQUIRED,
                              "neither Stripe JSON nor a Stripe payments CSV export")
    header = csvt.header
    table = csvt.table
    fmt = decide_formats(
        path.name, table, {k: v for k, v in STRIPE_CSV_NUMBERS.items() if v in header},
        {k: v for k, v in STRIPE_CSV_DATES.items() if v in header}, declared)
    n = table.num_rows
    out: dict[str, pa.Array] = {c: pa.nulls(n, pa.string()) for c in raw_columns("payments")}
    for name, raw in STRIPE_CSV_COLUMNS.items():
        if name in header:
            out[raw] = table.column(name).combine_chunks()
    good = _rows_as_json(table, header)
    out.update(
        object_type=_constant("charge", n),
        amount_unit=_constant("major", n),
        raw_format=_constant("csv", n),
        raw_object=pa.array(good, pa.string()),
        _formats=_constant(fmt, n),
        _malformed=table.column("_malformed").combine_chunks(),
        _row_number=table.column("_row_number").combine_chunks(),
    )
    return Export("payments", pa.table(out).select(raw_columns("payments")), {
        **csvt.describe(), "objects": n, "kept": {"charge": n} if n else {}, "skipped": {},
        "payments": n, "formats": formats.loads(fmt)})
