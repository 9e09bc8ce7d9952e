"""Property: a small table written with any mix of spreadsheet and locale conventions lands
with exactly its values, or is refused (or its rows quarantined) with a reason; never with
different values.

Each example writes random invoice lines with a random delimiter, decimal mark, thousands
separator, number of decimal places, day-month order and date separator, quoting, byte-order
mark, line endings and encoding, then reads and cleans the file as a landing would.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from leadscore_assets.clean.invoices import clean_invoices
from leadscore_assets.ingest.readers import UnreadableFile, read_export

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]
# cp1252-encodable, with every delimiter, a quote and a line break among them
TEXT = st.text(alphabet="abcXYZ 09,;|\t\"'£é€-\n", min_size=1, max_size=12).filter(
    lambda t: t.strip() != "")

line = st.fixed_dictionaries({
    "invoice_no": st.integers(500_000, 599_999).map(str),
    "stock_code": st.text(alphabet="ABC0123", min_size=1, max_size=6),
    "description": TEXT,
    "quantity": st.integers(1, 25_000),
    "date": st.datetimes(datetime(2009, 1, 1), datetime(2013, 12, 31)).map(
        lambda d: d.replace(second=0, microsecond=0)),
    "price_cents": st.integers(1, 12_345_678),
    "customer_id": st.integers(10_000, 99_999).map(str),
    "country": st.sampled_from(["United Kingdom", "France", "EIRE", "Côte d'Ivoire"]),
})

conventions = st.fixed_dictionaries({
    "delimiter": st.sampled_from([",", ";", "\t", "|"]),
    "decimal": st.sampled_from([".", ","]),
    "grouping": st.sampled_from([None, "other", " "]),
    "places": st.sampled_from([0, 1, 2, 3]),
    "order": st.sampled_from(["dmy", "mdy", "ymd"]),
    "date_separator": st.sampled_from(["/", ".", "-"]),
    "seconds": st.booleans(),
    "quoting": st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    "bom": st.booleans(),
    "newline": st.sampled_from(["\n", "\r\n"]),
    "encoding": st.sampled_from(["utf-8", "cp1252", "utf-16"]),
})


def number(value: Decimal, places: int, decimal: str, grouping: str | None) -> str:
    text = f"{value:.{places}f}"
    whole, _, fraction = text.partition(".")
    if grouping:
        mark = ("," if decimal == "." else ".") if grouping == "other" else grouping
        groups = []
        while len(whole) > 3:
            whole, groups = whole[:-3], [whole[-3:], *groups]
        whole = mark.join([whole, *groups])
    return whole + (decimal + fraction if fraction else "")


def date_text(d: datetime, c: dict) -> str:
    time = d.strftime("%H:%M:%S" if c["seconds"] else "%H:%M")
    if c["order"] == "ymd":
        return d.strftime("%Y-%m-%d ") + time
    s = c["date_separator"]
    first = ("%d{s}%m" if c["order"] == "dmy" else "%m{s}%d").format(s=s)
    return d.strftime(f"{first}{s}%Y ") + time


def write(path: Path, lines: list[dict], c: dict) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=c["delimiter"], quoting=c["quoting"],
                        lineterminator=c["newline"])
    writer.writerow(HEADER)
    for ln in lines:
        price = Decimal(ln["price_cents"]).scaleb(-2)
        writer.writerow([ln["invoice_no"], ln["stock_code"], ln["description"],
                         number(Decimal(ln["quantity"]), 0, c["decimal"], c["grouping"]),
                         date_text(ln["date"], c),
                         number(price, c["places"], c["decimal"], c["grouping"]),
                         ln["customer_id"], ln["country"]])
    text = buffer.getvalue()
    if c["encoding"] == "utf-16":
        data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    else:
        data = (codecs.BOM_UTF8 if c["bom"] and c["encoding"] == "utf-8" else b"") + text.encode(
            c["encoding"])
    path.write_bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line, min_size=1, max_size=12), c=conventions)
def test_original_values_or_a_reason_never_different_values(lines, c) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        write(path, lines, c)
        try:
            export = read_export("invoices", path, {})
        except UnreadableFile as exc:
            reason = str(exc)
            event("refused: " + reason.split(": ", 2)[1][:40])
            # a refused file names where: the field (a format), or the line whose bytes
            # two text encodings read differently (an encoding decides the whole file)
            assert reason.startswith("export.csv: "), reason
            assert "field" in reason or re.search(r"\bline \d+\b", reason), reason
            return
    raw = export.frame.copy()
    raw["_source_file"], raw["_ingested_at"] = "export.csv", pd.Timestamp("2026-01-01")
    result = clean_invoices(raw)
    assert result.accounted == len(lines)
    event(f"landed; quarantined rules: {sorted(result.quarantined)}")
    for row in result.clean.to_dict("records"):
        original = lines[int(row["_row_number"]) - 1]
        price = Decimal(original["price_cents"]).scaleb(-2)
        rounded = round(price, c["places"])
        assert Decimal(str(row['unit_price'])) == rounded, (row, original, c)
        assert row['quantity'] == original["quantity"]
        assert row['invoice_date'] == pd.Timestamp(original["date"]).floor(
            "s" if c["seconds"] else "min")
        assert row['description'] == original["description"].strip()
        assert (row["invoice_no"], row["stock_code"], row["customer_id"], row["country"]) == (
            original["invoice_no"], original["stock_code"].strip(), original["customer_id"],
            original["country"])
    # whatever did not land is quarantined with its rule, or removed as a duplicate
    assert set(result.quarantined) <= set(result.rule_counts)
