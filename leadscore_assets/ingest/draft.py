"""A starter source profile drafted from a file's header and values (``leadscore profile
draft FILE``), so that nobody writes one by hand.

Each column is read the way landing reads it (delimiter, encoding, decimal mark and date
order decided from the whole file by :mod:`.csvfiles` and :mod:`.formats`) and given a kind:
``boolean`` (every value is a true/false word), ``numeric`` (every value is a number in the
file's decided format), a date-time (a candidate created time), ``categorical`` (few distinct
values), or free text. Id, created-time, email and label candidates are suggested; the draft
says which were guessed so a person can check them. No Dagster imports here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from leadscore_assets.ingest import formats
from leadscore_assets.ingest.csvfiles import read_csv
from leadscore_core.profiles import snake
from leadscore_core.vocabulary import FALSE_WORDS, TRUE_WORDS

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DATE = r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4})([ T]\d{1,2}:\d{2}.*)?$"
LABEL_NAMES = re.compile(r"(churn|convert|label|target|outcome|won|complete|closed|bought|"
                         r"purchas|cancel)", re.I)
ID_NAMES = re.compile(r"(^|_|\b)(id|key|uuid)$|^id|_id$|ID$", re.I)
TIME_NAMES = re.compile(r"(date|time|created|submitted|signup|_at$)", re.I)
PLACEHOLDERS = ("Select", "N/A", "NA", "n/a", "-", "null", "NULL", "none", "None")
MAX_CATEGORIES = 50


@dataclass
class Column:
    name: str
    kind: str            # boolean | numeric | datetime | categorical | text | empty
    distinct: int
    filled: int
    unique: bool


def _values(column: pa.ChunkedArray) -> pa.Array:
    text = pc.utf8_trim_whitespace(column)
    text = text.filter(pc.and_(pc.is_valid(text), pc.not_equal(text, "")))
    kept = text.filter(pc.invert(pc.is_in(text, pa.array(PLACEHOLDERS))))
    return kept.combine_chunks() if isinstance(kept, pa.ChunkedArray) else kept


def _all(values: pa.Array, pattern: str) -> bool:
    return len(values) > 0 and bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())


def describe(name: str, column: pa.ChunkedArray, decided: dict | None) -> Column:
    values = _values(column)
    distinct = pc.unique(values)
    n = len(values)
    words = {w.lower() for w in distinct.to_pylist()}
    if n == 0:
        kind = "empty"
    elif words <= set(TRUE_WORDS) | set(FALSE_WORDS) and len(words) <= 2:
        kind = "boolean"
    elif decided and _all(values, formats.number_pattern(decided["decimal"],
                                                        decided["thousands"])):
        kind = "numeric"
    elif _all(values, DATE):
        kind = "datetime"
    elif len(distinct) <= max(MAX_CATEGORIES, n // 20) and len(distinct) < n:
        kind = "categorical"
    else:
        kind = "text"
    return Column(name, kind, len(distinct), n, n == len(column) and len(distinct) == n)


def draft_profile(path: Path, source: str = "leads", name: str | None = None) -> dict:
    """The profile (as a mapping ready for YAML) drafted from ``path``."""
    csvt = read_csv(Path(path))
    table = csvt.table
    header = csvt.header
    numberish: dict[str, dict | None] = {}
    for column in header:
        try:
            numberish[column] = formats.decide_numbers(
                path.name, {column: table.column(column)})[column]
        except formats.FormatError:
            numberish[column] = None
    columns = [describe(c, table.column(c), numberish.get(c)) for c in header]
    kinds = {c.name: c.kind for c in columns}

    def first(candidates: list[Column]) -> str | None:
        return candidates[0].name if candidates else None

    ids = [c for c in columns if c.unique and c.kind in ("text", "numeric", "categorical")]
    id_column = first([c for c in ids if ID_NAMES.search(c.name)] or ids)
    times = [c for c in columns if c.kind == "datetime"]
    created = first([c for c in times if TIME_NAMES.search(c.name)] or times)
    emails = [c for c in header if _all(_values(table.column(c)), EMAIL)]
    email = emails[0] if emails else None
    labels = [c for c in columns if c.kind == "boolean" and c.name != id_column]
    label = first([c for c in labels if LABEL_NAMES.search(c.name)] or labels[-1:])
    identity = {id_column, created, email, label} - {None}
    features = {"categorical": [], "numeric": [], "boolean": []}
    text = []
    for c in columns:
        if c.name in identity:
            continue
        if c.kind in features:
            features[c.kind].append(c.name)
        elif c.kind in ("text", "datetime"):
            text.append(c.name)
    profile: dict = {
        "name": name or snake(Path(path).name.split(".")[0]),
        "source": source,
        "description": f"drafted from {Path(path).name} ({table.num_rows:,} rows); check the "
                       "suggested id, created time, email and label",
        "detect": [c for c in header if c in identity][:2] + [
            c for c in header if c not in identity][:3],
        "id": {"column": id_column or header[0]},
    }
    if created:
        profile["created_at"] = {"column": created}
    if email:
        profile["email"] = email
    if label:
        profile["label"] = {"column": label}
    profile["features"] = {k: v for k, v in features.items() if v}
    if text:
        profile["text"] = text
    seen_placeholders = sorted({v for c in header for v in PLACEHOLDERS
                                if pc.any(pc.equal(table.column(c), v)).as_py()})
    if seen_placeholders:
        profile["placeholders"] = seen_placeholders
    number_columns = [c for c in header if kinds[c] == "numeric"]
    # the decimal mark the values show (columns of whole numbers show none)
    shown = {c: formats.number_evidence(c, table.column(c)).mark for c in number_columns}
    marks = set(shown.values()) - {None}
    if len(marks) == 1:
        profile["decimal"] = next(iter(marks))
        thousands = {numberish[c]["thousands"] for c, m in shown.items() if m and numberish[c]}
        if len(thousands) == 1:
            profile["thousands"] = next(iter(thousands))
    if created:
        try:
            order = formats.decide_dates(path.name, {created: table.column(created)})[created]
            if order["date_order"]:
                profile["date_order"] = order["date_order"]
        except formats.FormatError as exc:
            profile["description"] += f"; dates: {exc}"
    if csvt.delimiter != ",":
        profile["delimiter"] = csvt.delimiter
    return profile


def write_draft(profile: dict, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(f"{target} exists; choose another --name or --output")
    target.write_text("# Drafted by `leadscore profile draft`: check it, then keep it here.\n"
                      + yaml.safe_dump(profile, sort_keys=False, allow_unicode=True))
    return target
