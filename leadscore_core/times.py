"""Times with and without a UTC offset: one clock for every value, never a guessed zone.

An export may write ``2026-01-05T09:30:00+01:00``, ``2026-01-05 08:30:00Z`` or
``2026-01-05 09:30`` (no offset: in the exporter's own clock). The typed tables hold naive
timestamps in one clock:

- a value with an offset is converted to UTC;
- a value without one is read in the declared ``timezone`` (a profile's or a source
  setting's) and converted to UTC; with nothing declared it is kept as written, *unless*
  values with an offset stand beside it (in the same file or another file of the same
  table): then it is 09:30 UTC or 09:30 in the others' offset, and nothing decides which,
  so the row is quarantined with both readings (:func:`offset_problems`).

No Dagster imports here: cleaning and the API read times alike.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

# An offset after a time of day: Z, UTC/GMT, +01, +0100, +01:00 (a date alone has none:
# the "-13" of 2026-01-13 is its day).
OFFSET_PATTERN = (r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*"
                  r"(?P<offset>[zZ]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$")
UTC_TEXT = "%Y-%m-%d %H:%M:%S+00:00"


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/Berlin``, ``UTC``), else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as "
                         f"'Europe/Berlin' or 'UTC')") from exc
    return name


def offsets(values: pd.Series) -> pd.Series:
    """The UTC offset each value is written with (``+01:00``, ``Z``), null where it has none."""
    found = values.astype("string").str.strip().str.extract(OFFSET_PATTERN)["offset"]
    return found.astype("string")


def parse_times(values: pd.Series, fmt: str | None = None) -> pd.Series:
    """Naive timestamps: a value with an offset in UTC, one without as written (NaT where
    the text is no time)."""
    text = values.astype("string")
    has = offsets(text).notna().to_numpy(bool)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if (~has).any():
        plain = pd.to_datetime(text[~has], format=fmt or "mixed", errors="coerce")
        out[~has] = plain.astype("datetime64[ns]")
    if has.any():
        shifted = text[has].str.replace(r"\s*(UTC|GMT)$", "Z", regex=True)
        aware = pd.to_datetime(shifted, format=fmt or "mixed", utc=True, errors="coerce")
        out[has] = aware.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return out


def in_timezone(values: pd.Series, timezone: str, fmt: str | None = None) -> pd.Series:
    """Text of times without an offset read in ``timezone``, rewritten in UTC with its
    offset (``2026-03-01 09:30:00+00:00``); values with an offset are kept; a local time
    the zone skips or repeats (a daylight-saving change) becomes ``invalid``, never moved."""
    text = values.astype("string")
    todo = text.notna() & offsets(text).isna()
    if not todo.any():
        return text
    local = pd.to_datetime(text[todo], format=fmt or "mixed", errors="coerce")
    aware = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    utc = aware.dt.tz_convert("UTC").dt.strftime(UTC_TEXT).astype("string")
    out = text.copy()
    out[todo] = utc.fillna("invalid")
    return out


def offset_problems(values: pd.Series) -> pd.Series:
    """Per value without an offset while others have one: why it cannot be placed on the
    clock, with both readings; null elsewhere (nothing to decide)."""
    text = values.astype("string")
    found = offsets(text)
    plain = text.notna() & found.isna()
    if not found.notna().any() or not plain.any():
        return pd.Series(pd.NA, index=values.index, dtype="string")
    written = found.dropna()
    common = written.value_counts().index[0]
    times = parse_times(text[plain])
    shift = _offset_delta(common)
    other = (f"in {common} like the values that have one"
             if shift is not None and shift != pd.Timedelta(0)
             else "in the exporter's own time zone (unknown)")
    reasons = pd.Series(pd.NA, index=values.index, dtype="string")
    for index, when in times.items():
        value = text[index]
        if pd.isna(when):
            continue
        second = (f"{(when - shift):%Y-%m-%d %H:%M} UTC if written {other}"
                  if shift is not None and shift != pd.Timedelta(0)
                  else f"another time if written {other}")
        reasons[index] = (
            f"{value!r} has no UTC offset but {len(written):,} other value(s) have one "
            f"({common}): it is {when:%Y-%m-%d %H:%M} UTC if written in UTC, {second}; "
            f"declare `timezone` in the profile or source settings")
    return reasons


def _offset_delta(offset: str) -> pd.Timedelta | None:
    if offset.upper() in ("Z", "UTC", "GMT"):
        return pd.Timedelta(0)
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    try:
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    except ValueError:
        return None
    return sign * pd.Timedelta(hours=hours, minutes=minutes)
