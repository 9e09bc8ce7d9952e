"""Number and date formats decided from the evidence in a whole file, never guessed.

An export written by a spreadsheet in Manchester and one written in Munich can hold the same
bytes for different values: ``01/02/2011`` is the 1st of February or the 2nd of January,
``1,234`` is a thousand or one point two. This module looks at every value of a field and
asks whether any of them can be read only one way:

- a date ``13/01/2011`` has its day first, ``01/13/2011`` its month first; ``2011-01-13`` is
  unambiguous; a date whose day equals its month reads the same both ways.
- a number ``2.55`` or ``1,234.50`` has a decimal point, ``150,00`` or ``1.234,50`` a decimal
  comma; ``1,234`` and ``1.234`` (one separator, then exactly three digits) allow both.

A field with evidence one way is decided that way. A field with no evidence of its own takes
the decimal mark the file's other number fields show (one export, one program, one locale).
A declared format (a profile's ``date_order``/``decimal``/``thousands`` or a source setting)
is used where the evidence is consistent with it; evidence against it is a
:class:`FormatError` naming the file, the field and a value. Where values allow two readings
and nothing decides or declares one, the file is refused with both readings shown: a silent
pick would be a wrong value on every such row. Evidence both ways within one field (some
values only day-first, others only month-first) is refused the same way.

The decision is a small JSON document stored with every raw row of the file (``_formats``);
cleaning reads each value with its file's decision (:func:`number_sql`, :func:`date_sql`):
a value the decided format cannot read is quarantined with its row, never re-guessed.

Everything is vectorised (Arrow regular expressions over whole columns): the evidence over
541,909 Online Retail lines costs a fraction of parsing them. No Dagster imports here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

DateOrder = Literal["dmy", "mdy", "ymd"]
T = TypeVar("T")
DECIMAL_MARKS = (".", ",")
# Thousands separators in use: comma, point, apostrophe (Swiss), spaces (French, no-break).
THOUSANDS_MARKS = (",", ".", "'", " ", "\u00a0", "\u202f")
SPACES = " \u00a0\u202f"
ORDER_WORDS = {"dmy": "day first", "mdy": "month first", "ymd": "year first"}
MARK_WORDS = {".": "read with a decimal point", ",": "read with a decimal comma"}
EXAMPLES = 3

# -- number shapes (on trimmed text, sign allowed) ---------------------------------------------
_SIGN = r"^[+-]?"
_EXP = r"(?:[eE][+-]?\d+)?$"
# one separator then exactly three digits: a thousands group or a decimal with three places
_ONE_DOT_GROUP = _SIGN + r"\d{1,3}\.\d{3}$"
_ONE_COMMA_GROUP = _SIGN + r"\d{1,3},\d{3}$"
# readable only with a decimal point
_DOT_ONLY = [
    _SIGN + r"\d*\.\d+" + _EXP,                                   # 2.55, .5, 1234.567, 1.5e-3
    _SIGN + r"\d{1,3}(?:,\d{3})+\.\d+$",                          # 1,234.50
    _SIGN + r"\d{1,3}(?:,\d{3}){2,}$",                            # 1,234,567
    _SIGN + r"\d{1,3}(?:[' " + SPACES + r"]\d{3})+\.\d+$",            # 1'234.50
]
# readable only with a decimal comma
_COMMA_ONLY = [
    _SIGN + r"\d*,\d+$",                                          # 150,00, 83807,86, ,5
    _SIGN + r"\d{1,3}(?:\.\d{3})+,\d+$",                          # 1.234,50
    _SIGN + r"\d{1,3}(?:\.\d{3}){2,}$",                           # 1.234.567
    _SIGN + r"\d{1,3}(?:[' " + SPACES + r"]\d{3})+,\d+$",             # 1 234,50
]
_SEPARATORS = r"\d.,'" + SPACES
_NUMBERISH = rf"^[+-]?[{_SEPARATORS}]*\d[{_SEPARATORS}]*(?:[eE][+-]?\d+)?$"

# -- date shapes ---------------------------------------------------------------------------------
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?)?$"
_DAY_MONTH = r"^(\d{1,2})([/.\-])(\d{1,2})[/.\-](\d{4}|\d{2})" + _TIME
_ISO = r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T].*)?$"


class FormatError(ValueError):
    """A field whose format the evidence cannot decide, or contradicts what was declared."""


@dataclass(frozen=True)
class Declared:
    """Formats a profile or a source setting declares (``None``: decide from the evidence)."""

    date_order: DateOrder | None = None
    decimal: str | None = None
    thousands: str | None = None
    delimiter: str | None = None
    timezone: str | None = None   # of created times written without a UTC offset
    encoding: str | None = None

    @classmethod
    def of(cls, source: Mapping[str, Any] | Any | None) -> Declared:
        """From a mapping or an object with those attributes (a profile)."""
        if source is None:
            return cls()
        get = source.get if isinstance(source, Mapping) else (
            lambda k, d=None: getattr(source, k, d))
        delimiter = get("delimiter")
        if delimiter in ("tab", "\\t"):
            delimiter = "\t"
        return cls(get("date_order"), get("decimal"), get("thousands"), delimiter,
                   get("timezone"), get("encoding"))


def _text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The distinct non-blank values, trimmed: evidence is about which values occur, and an
    export repeats its values (541,909 Online Retail prices hold 1,630 distinct ones)."""
    if isinstance(values, pa.ChunkedArray):
        values = pc.unique(values)
    distinct = pc.unique(pc.utf8_trim_whitespace(pc.unique(values).cast(pa.string())))
    return distinct.filter(pc.and_(pc.is_valid(distinct), pc.not_equal(distinct, "")))


def _distinct_matching(values: pa.ChunkedArray | pa.Array, pattern: str) -> pa.Array:
    """The distinct trimmed values (:func:`_text`) of the shape ``pattern`` describes."""
    text = _text(values)
    return text.filter(pc.match_substring_regex(text, pattern))


def _one_way(first: object, second: object, first_reading: T, second_reading: T) -> T | None:
    """The reading the evidence allows when only one kind is seen (``first`` or ``second``
    evidence); None when neither or both are."""
    if first and not second:
        return first_reading
    if second and not first:
        return second_reading
    return None


def _refuse_conflicts(file: str, field: str, what: str, only: Mapping[str, list[str]],
                      found: str | None, declared: str | None, words: Mapping[str, str]) -> None:
    """Raise :class:`FormatError` when a field has values readable only one way beside
    values readable only the other (``only``: reading -> such values), or its evidence
    (``found``) contradicts the ``declared`` reading; ``what`` names the kind of reading."""
    (first, first_values), (second, second_values) = only.items()
    if first_values and second_values:
        raise FormatError(
            f"{file}: field {field!r} mixes {what}s: {first_values[0]!r} can only be "
            f"{words[first]}, {second_values[0]!r} only {words[second]}")
    if declared and found and found != declared:
        raise FormatError(
            f"{file}: field {field!r} contradicts the declared {what} {declared!r} "
            f"({words[declared]}): {only[found][0]!r} can only be {words[found]}")


def _two_readings(file: str, field: str, value: str, count: int, setting: str,
                  readings: tuple[str, str]) -> FormatError:
    """The refusal of a field whose values read two ways with nothing to decide (``value``
    one of ``count`` such, ``readings`` what it means each way), naming the ``setting``
    that would decide."""
    return FormatError(
        f"{file}: field {field!r} can be read two ways and nothing decides: {value!r} is "
        f"{readings[0]} or {readings[1]} ({count:,} such distinct value(s)); declare "
        f"`{setting}` in the profile or source settings")


def _any(values: pa.Array, patterns: Sequence[str]) -> pa.Array:
    mask = pc.match_substring_regex(values, patterns[0])
    for pattern in patterns[1:]:
        mask = pc.or_(mask, pc.match_substring_regex(values, pattern))
    return mask


def _examples(values: pa.Array, mask: pa.Array) -> list[str]:
    return values.filter(mask).slice(0, EXAMPLES).to_pylist()


# -- numbers -------------------------------------------------------------------------------------


@dataclass
class NumberEvidence:
    """How the values of one number field can be read."""

    field: str
    dot: list[str]          # values readable only with a decimal point (examples)
    comma: list[str]        # values readable only with a decimal comma
    dot_count: int
    comma_count: int
    ambiguous: list[str]    # one separator then three digits: 1,234 or 1.234
    ambiguous_count: int
    groups: set[str]        # thousands separators seen in the values

    @property
    def mark(self) -> str | None:
        return _one_way(self.dot_count, self.comma_count, ".", ",")


def number_evidence(field: str, values: pa.ChunkedArray | pa.Array) -> NumberEvidence:
    text = _distinct_matching(values, _NUMBERISH)
    ambiguous = _any(text, [_ONE_DOT_GROUP, _ONE_COMMA_GROUP])
    dot = pc.and_(_any(text, _DOT_ONLY), pc.invert(ambiguous))
    comma = pc.and_(_any(text, _COMMA_ONLY), pc.invert(ambiguous))
    groups = set()
    for mark in THOUSANDS_MARKS[2:]:
        if pc.any(pc.match_substring(text, mark)).as_py():
            groups.add(" " if mark in SPACES else mark)
    return NumberEvidence(
        field, _examples(text, dot), _examples(text, comma), pc.sum(dot).as_py() or 0,
        pc.sum(comma).as_py() or 0, _examples(text, ambiguous),
        pc.sum(ambiguous).as_py() or 0, groups)


def _reading(value: str, decimal: str) -> str:
    """What ``value`` means with ``decimal`` as its decimal mark (for messages)."""
    other = "," if decimal == "." else "."
    return value.replace(other, "").replace(decimal, ".")


def decide_numbers(file: str, fields: Mapping[str, pa.ChunkedArray | pa.Array],
                   declared: Declared = Declared()) -> dict[str, dict[str, str | None]]:
    """Field -> ``{"decimal": ".", "thousands": ","}`` for every number field.

    Raises :class:`FormatError` on a mixed field, a contradicted declaration, or values
    that allow two readings with nothing to decide between them.
    """
    evidence = {name: number_evidence(name, values) for name, values in fields.items()}
    for ev in evidence.values():
        _refuse_conflicts(file, ev.field, "decimal mark", {".": ev.dot, ",": ev.comma},
                          ev.mark, declared.decimal, MARK_WORDS)
    file_marks = {ev.mark for ev in evidence.values() if ev.mark}
    decided: dict[str, dict[str, str | None]] = {}
    for name, ev in evidence.items():
        mark = ev.mark or declared.decimal or (
            next(iter(file_marks)) if len(file_marks) == 1 else None)
        if mark is None and ev.ambiguous_count:
            value = ev.ambiguous[0]
            raise _two_readings(file, name, value, ev.ambiguous_count, "decimal", (
                f"{_reading(value, ',')} with a decimal comma",
                f"{_reading(value, '.')} with a decimal point"))
        mark = mark or "."
        thousands = declared.thousands
        if thousands is None:
            # with one mark decided, the other can only group thousands; a space or an
            # apostrophe seen in the values groups them instead
            spaced = ev.groups - set(DECIMAL_MARKS)
            thousands = next(iter(spaced)) if len(spaced) == 1 else (
                "," if mark == "." else ".")
        elif thousands == mark:
            raise FormatError(f"{file}: declared thousands separator {thousands!r} is also "
                              f"the decimal mark of field {name!r}")
        decided[name] = {"decimal": mark, "thousands": thousands}
    return decided


def number_pattern(decimal: str, thousands: str | None) -> str:
    """A regular expression for the numbers a decided format reads (trimmed text)."""
    d = "\\." if decimal == "." else decimal
    if thousands is None:
        grouped = r"\d+"
    else:
        t = "[" + SPACES + "]" if thousands == " " else ("\\." if thousands == "." else thousands)
        grouped = rf"(?:\d{{1,3}}(?:{t}\d{{3}})+|\d+)"
    exp = r"(?:[eE][+-]?\d+)?" if decimal == "." else ""
    return rf"^[+-]?(?:{grouped}(?:{d}\d*)?|{d}\d+){exp}$"


def number_sql(column: str, fmt: Mapping[str, str | None] | None) -> str:
    """DuckDB expression: ``column`` as canonical number text (``1234.5``), NULL if unreadable.

    Without a decision (a raw row landed before formats were recorded) the text is kept.
    """
    trimmed = f"trim({column})"
    if not fmt:
        return trimmed
    decimal, thousands = fmt.get("decimal") or ".", fmt.get("thousands")
    out = trimmed
    if thousands:
        for mark in (SPACES if thousands == " " else thousands):
            out = f"replace({out}, '{_sql_quote(mark)}', '')"
    if decimal == ",":
        out = f"replace({out}, ',', '.')"
    pattern = _sql_quote(number_pattern(decimal, thousands))
    return f"CASE WHEN regexp_full_match({trimmed}, '{pattern}') THEN {out} END"


def canonical_numbers(values: pa.ChunkedArray | pa.Array,
                      fmt: Mapping[str, str | None] | None) -> pa.ChunkedArray:
    """Arrow version of :func:`number_sql`: canonical number text, null where unreadable
    (blank stays blank)."""
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    if not fmt:
        return text
    decimal, thousands = fmt.get("decimal") or ".", fmt.get("thousands")
    readable = pc.match_substring_regex(text, number_pattern(decimal, thousands))
    out = text
    if thousands:
        for mark in (SPACES if thousands == " " else thousands):
            out = pc.replace_substring(out, mark, "")
    if decimal == ",":
        out = pc.replace_substring(out, ",", ".")
    keep = pc.or_(readable, pc.equal(text, ""))
    return pc.if_else(keep, out, pa.scalar(None, pa.string()))


# -- dates ---------------------------------------------------------------------------------------


@dataclass
class DateEvidence:
    field: str
    day_first: list[str]
    month_first: list[str]
    ambiguous: list[str]
    ambiguous_count: int

    @property
    def order(self) -> DateOrder | None:
        return _one_way(self.day_first, self.month_first, "dmy", "mdy")


def date_evidence(field: str, values: pa.ChunkedArray | pa.Array) -> DateEvidence:
    text = _distinct_matching(values, _DAY_MONTH)
    if len(text) == 0:
        return DateEvidence(field, [], [], [], 0)
    parts = pc.extract_regex(text, r"^(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})")
    a = pc.cast(pc.struct_field(parts, "a"), pa.int32())
    b = pc.cast(pc.struct_field(parts, "b"), pa.int32())
    day_first = pc.and_(pc.greater(a, 12), pc.less_equal(b, 12))
    month_first = pc.and_(pc.greater(b, 12), pc.less_equal(a, 12))
    ambiguous = pc.and_(pc.and_(pc.less_equal(a, 12), pc.less_equal(b, 12)), pc.not_equal(a, b))
    return DateEvidence(field, _examples(text, day_first), _examples(text, month_first),
                        _examples(text, ambiguous), pc.sum(ambiguous).as_py() or 0)


def _date_reading(value: str, order: str) -> str:
    m = re.match(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})", value)
    if not m:
        return value
    a, b, year = m.groups()
    day, month = (a, b) if order == "dmy" else (b, a)
    months = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]
    return f"{int(day)} {months[int(month) - 1]} {year}"


def decide_dates(file: str, fields: Mapping[str, pa.ChunkedArray | pa.Array],
                 declared: Declared = Declared()) -> dict[str, dict[str, str | None]]:
    """Field -> ``{"date_order": "dmy" | "mdy" | None}`` (None: no value needs an order)."""
    decided: dict[str, dict[str, str | None]] = {}
    for name, values in fields.items():
        ev = date_evidence(name, values)
        declared_order = declared.date_order if declared.date_order in ("dmy", "mdy") else None
        _refuse_conflicts(file, name, "date order", {"dmy": ev.day_first, "mdy": ev.month_first},
                          ev.order, declared_order, ORDER_WORDS)
        order = ev.order or declared_order
        if order is None and ev.ambiguous_count:
            value = ev.ambiguous[0]
            raise _two_readings(file, name, value, ev.ambiguous_count, "date_order", (
                f"{_date_reading(value, 'dmy')} (day first)",
                f"{_date_reading(value, 'mdy')} (month first); no value has a day above 12"))
        decided[name] = {"date_order": order}
    return decided


def date_formats(order: str | None) -> list[str]:
    """strptime formats a decided order reads (ISO dates always read)."""
    iso = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S",
           "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f",
           "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d"]
    if order is None:
        # no value needed an order (day equals month, or ISO): both read the same
        order = "dmy"
    first = "%d{s}%m" if order == "dmy" else "%m{s}%d"
    out = list(iso)
    for sep in ("/", ".", "-"):
        head = first.format(s=sep)
        for year in ("%Y", "%y"):
            date = f"{head}{sep}{year}"
            out += [f"{date} %H:%M:%S", f"{date} %H:%M", date, f"{date} %I:%M %p",
                    f"{date} %I:%M:%S %p"]
    return out


def date_sql(column: str, fmt: Mapping[str, str | None] | None,
             fallback: Sequence[str]) -> str:
    """DuckDB expression: ``column`` as a TIMESTAMP read with its decided order, else NULL.

    ``fallback`` are the formats for rows landed before formats were recorded.
    """
    formats = date_formats(fmt.get("date_order")) if fmt else list(fallback)
    listed = ", ".join(f"'{f}'" for f in formats)
    return f"TRY_STRPTIME(trim({column}), [{listed}])"


def _sql_quote(text: str) -> str:
    return text.replace("'", "''")


def dumps(decision: Mapping[str, Any]) -> str:
    return json.dumps(decision, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def canonical_dates(values: pd.Series, order: str | None) -> pd.Series:
    """Day-month dates (``01/02/2024 08:26``) rewritten as ISO text with the decided order;
    such a date the order cannot read becomes ``"invalid"``; other text is kept as it is."""
    text = values.astype("string").str.strip()
    slashed = text.str.match(_DAY_MONTH).fillna(False).astype(bool)
    out = values.astype("string").copy()
    if not slashed.any():
        return out
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in date_formats(order):
        if fmt.startswith("%Y"):
            continue
        todo = slashed & parsed.isna()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    iso = parsed.dt.strftime("%Y-%m-%d %H:%M:%S").astype("string")
    out[slashed] = iso[slashed].fillna("invalid")
    return out
