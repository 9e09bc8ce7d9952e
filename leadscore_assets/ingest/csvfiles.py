"""A delimited text export as text columns: encoding, delimiter, quoting, rows that do not fit.

:func:`read_csv` returns every record of a CSV (or semicolon-, tab-, pipe-separated) file as
Arrow text columns named by its header, exactly as written (null only for an empty field),
plus ``_row_number`` (1-based record number, blank lines skipped) and ``_malformed``: null
for a good record; for a record that cannot be one row of the table (more or fewer fields
than the header, a NUL byte in a field) a JSON object with its line, rule, field, reason and
fields, so the row is quarantined by cleaning while the good rows of the file go on.

What is decided from the bytes, not from the file's name:

- compression (gzip magic), byte-order mark (UTF-8, UTF-16 LE/BE, or UTF-16 without one),
  encoding (UTF-8 when it decodes, else the code page the evidence decides or the source
  declares: :mod:`.encodings`), line endings (LF, CRLF, CR);
- the delimiter: the candidate (comma, semicolon, tab, pipe) that splits the header into the
  most columns and the sampled records into as many fields as the header; a declared
  delimiter is used unless the file shows another one and the declared one splits nothing.

Arrow's multi-threaded parser reads the file; only when it finds a record that does not fit
(or a NUL byte) is the file read again, by Arrow's parser in one thread, which numbers the
records it skips, so each is marked in its place with its line. Where a line cannot be told
from a record's number (blank lines, line breaks inside values) the csv module reads it.

No Dagster imports here.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import igzip, isal_zlib

from leadscore_assets.ingest.encodings import EncodingProblem, decide_encoding, utf16_without_bom

GZIP_MAGIC = b"\x1f\x8b"
# Gzip is read by ISA-L (the zlib format, inflated about twice as fast as by zlib: most of
# the CPU of reading a gzipped export before parsing it). What it raises on damaged data:
GZIP_ERRORS = (EOFError, igzip.BadGzipFile, isal_zlib.error)
BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
SNIFF_BYTES = 64 * 1024
SNIFF_RECORDS = 200
STREAM_BLOCK_BYTES = 1 << 20
MISFITS = "misfits"
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
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

csv.field_size_limit(sys.maxsize)


class UnreadableFile(ValueError):
    """A landed file that cannot be read at all; the message names the file and the cause."""


@dataclass
class Content:
    """A file's bytes after decompression, with what the bytes say about them."""

    data: bytes          # without a byte-order mark
    compressed: bool
    bom: str | None      # encoding named by the byte-order mark
    transcoded: str | None = None  # UTF-16 found without a mark, given here as UTF-8


@dataclass
class CsvTable:
    """The records of one delimited file as text columns; see the module doc."""

    table: pa.Table
    header: list[str]
    encoding: str
    delimiter: str
    compressed: bool
    bom: str | None
    line_ending: str
    malformed: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"format": "csv", "encoding": self.encoding,
                "delimiter": DELIMITERS.get(self.delimiter, self.delimiter),
                "bom": self.bom or "none", "line_endings": self.line_ending,
                "compressed": self.compressed, "malformed_rows": self.malformed}


# -- bytes -----------------------------------------------------------------------------------


def load_content(path: Path) -> Content:
    """The whole file, decompressed, byte-order mark removed; refuses empty and binary files."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"{path.name}: cannot be opened ({exc.strerror or exc})") from exc
    if not raw:
        raise UnreadableFile(f"{path.name}: empty file (0 bytes)")
    compressed = raw[:2] == GZIP_MAGIC
    if compressed:
        try:
            raw = igzip.decompress(raw)
        except GZIP_ERRORS as exc:
            raise UnreadableFile(f"{path.name}: damaged or truncated gzip data ({exc})") from exc
        if not raw:
            raise UnreadableFile(f"{path.name}: empty file (gzip holds 0 bytes)")
    return _checked(path, raw, compressed, whole=True)


def sniff_content(path: Path) -> Content:
    """The first ``SNIFF_BYTES`` of the (decompressed) content, with the same checks."""
    try:
        with path.open("rb") as handle:
            compressed = handle.read(2) == GZIP_MAGIC
        opener = igzip.open if compressed else open
        with opener(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except GZIP_ERRORS as exc:
        raise UnreadableFile(f"{path.name}: damaged or truncated gzip data ({exc})") from exc
    except OSError as exc:
        raise UnreadableFile(f"{path.name}: cannot be opened ({exc.strerror or exc})") from exc
    if not head:
        raise UnreadableFile(f"{path.name}: empty file (0 bytes)")
    return _checked(path, head, compressed, whole=len(head) < SNIFF_BYTES)


def _checked(path: Path, data: bytes, compressed: bool, *, whole: bool) -> Content:
    bom = None
    for mark, encoding in BOMS:
        if data.startswith(mark):
            data, bom = data[len(mark):], encoding
            break
    if bom and bom.startswith("utf-16"):
        # transcode once: everything after this reads UTF-8
        try:
            data = data.decode(bom, errors="strict" if whole else "ignore").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"{path.name}: starts with a {bom} byte-order mark but is "
                                 f"not {bom} text ({exc.reason} at byte {exc.start})") from exc
    transcoded = None if bom else utf16_without_bom(data)
    if transcoded:
        try:
            data = data.decode(transcoded, errors="strict" if whole else "ignore").encode()
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"{path.name}: looks like {transcoded} text but is not "
                                 f"({exc.reason} at byte {exc.start})") from exc
    if whole and (not data or data.isspace()):
        raise UnreadableFile(f"{path.name}: empty file (only whitespace)")
    _refuse_binary(path, data)
    return Content(data, compressed, bom, transcoded)


def _refuse_binary(path: Path, content: bytes) -> None:
    for magic, what in BINARY_MAGIC.items():
        if content.startswith(magic):
            raise UnreadableFile(f"{path.name}: binary file, not a text export (looks like {what})")
    head = content[:SNIFF_BYTES]
    # A stray NUL in a text export is one bad row (quarantined with it); many control bytes
    # mean the file is not text at all.
    control = sum(head.count(bytes([b])) for b in (*range(0, 9), *range(14, 32)))
    if control > max(8, len(head) // 100):
        raise UnreadableFile(
            f"{path.name}: binary file, not a text export ({control} control bytes in the "
            f"first {len(head):,})")


def decode(path: Path, content: bytes, declared: str | None = None) -> tuple[str, str]:
    """(text, encoding), decided from the bytes or declared (:mod:`.encodings`)."""
    try:
        return decide_encoding(path.name, content, declared)
    except EncodingProblem as exc:
        raise UnreadableFile(str(exc)) from exc


def line_ending(text: str) -> str:
    at = text.find("\n")
    if at < 0:
        return "cr" if "\r" in text else "lf"
    return "crlf" if at > 0 and text[at - 1] == "\r" else (
        "cr" if "\r" in text[:at] else "lf")


# -- delimiter -------------------------------------------------------------------------------


def decide_delimiter(path: Path, head: str, declared: str | None = None) -> str:
    """The delimiter the header and the first records agree on (see the module doc)."""
    scores: dict[str, tuple[float, int]] = {}
    for delimiter in DELIMITERS:
        rows = list(_records(head, delimiter, SNIFF_RECORDS))
        if not rows:
            continue
        width = len(rows[0])
        body = rows[1:-1] if len(rows) > 2 else rows[1:]  # the last may be cut by the sniff
        fits = sum(len(r) == width for r in body) / len(body) if body else 1.0
        scores[delimiter] = (fits if width > 1 else 0.0, width)
    if not scores:
        raise UnreadableFile(f"{path.name}: no CSV header line")
    best = max(scores, key=lambda d: scores[d])
    if declared:
        if declared not in scores or (scores[declared][1] == 1 and scores[best][1] > 1):
            raise UnreadableFile(
                f"{path.name}: the declared delimiter {DELIMITERS.get(declared, declared)!r} "
                f"splits the header into one column, but the file is "
                f"{DELIMITERS[best]}-separated ({scores[best][1]} columns)")
        return declared
    return best


def _records(text: str, delimiter: str, limit: int) -> list[list[str]]:
    out = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if row:
                out.append(row)
            if len(out) >= limit:
                break
    except csv.Error:
        pass
    return out


def parse_header(path: Path, text_head: str, delimiter: str) -> list[str]:
    rows = _records(text_head, delimiter, 1)
    if not rows:
        raise UnreadableFile(f"{path.name}: no CSV header line")
    header = rows[0]
    dupes = sorted({n for n in header if header.count(n) > 1})
    if dupes:
        raise UnreadableFile(f"{path.name}: header repeats column(s) {dupes}")
    return header


# -- records ---------------------------------------------------------------------------------


def _arrow_options(header: list[str], delimiter: str, *, block_size: int,
                   newlines_in_values: bool, on_invalid) -> dict[str, Any]:
    """All columns as text; an empty field is null (no value in the file), nothing else is."""
    return {
        "read_options": pacsv.ReadOptions(column_names=header, skip_rows=1,
                                          block_size=block_size),
        "parse_options": pacsv.ParseOptions(delimiter=delimiter,
                                            newlines_in_values=newlines_in_values,
                                            invalid_row_handler=on_invalid),
        "convert_options": pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True),
    }


def _has_nul(table: pa.Table) -> bool:
    """A NUL byte anywhere in the text."""
    return _holds(table, b"\x00")


def _holds(table: pa.Table, *marks: bytes) -> bool:
    """One of ``marks`` anywhere in the text: memchr over each chunk's character buffer."""
    for column in table.columns:
        if not pa.types.is_string(column.type):
            continue
        for chunk in column.chunks:
            _, offsets, data = chunk.buffers()
            if data is None or len(chunk) == 0:
                continue
            bounds = np.frombuffer(offsets, dtype=np.int32)[[chunk.offset,
                                                            chunk.offset + len(chunk)]]
            used = memoryview(data)[int(bounds[0]):int(bounds[1])].tobytes()
            if any(used.find(mark) >= 0 for mark in marks):
                return True
    return False


def _finish(table: pa.Table, malformed: list[str | None] | None) -> pa.Table:
    n = table.num_rows
    table = table.append_column("_malformed", pa.array(malformed, pa.string()) if malformed
                                else pa.nulls(n, pa.string()))
    return table.append_column("_row_number", pa.array(np.arange(1, n + 1, dtype=np.int64)))


def read_csv(path: Path, *, declared_delimiter: str | None = None,
             stream: bool = False, declared_encoding: str | None = None) -> CsvTable:
    """Read ``path`` (see the module doc). ``stream``: the file may be large; parse it while
    it is decompressed instead of holding its bytes (falls back to whole bytes for a file
    that is not UTF-8 or has rows that do not fit)."""
    plain = declared_encoding is None or codecs.lookup(declared_encoding).name == "utf-8"
    misfits = False  # the streamed parse found records that do not fit
    if stream and plain:
        head = sniff_content(path)
        head_text = head.data.decode("utf-8", errors="replace")
        if (head.bom is None or head.bom == "utf-8") and head.transcoded is None:
            delimiter = decide_delimiter(path, head_text, declared_delimiter)
            header = parse_header(path, head_text, delimiter)
            fast = _read_streamed(path, head, header, delimiter, head_text)
            if isinstance(fast, CsvTable):
                return fast
            misfits = fast == MISFITS
    content = load_content(path)
    named = content.bom or content.transcoded
    text, encoding = decode(path, content.data, None if named else declared_encoding)
    if named:
        encoding = named if named != "utf-8" else "utf-8-sig"
    delimiter = decide_delimiter(path, text[:SNIFF_BYTES], declared_delimiter)
    header = parse_header(path, text[:SNIFF_BYTES], delimiter)
    utf8 = content.data if encoding in ("utf-8", "utf-8-sig") or named else (
        text.encode("utf-8"))
    bad = 0

    def count(_row) -> str:
        nonlocal bad
        bad += 1
        return "skip"

    table = None
    if b"\x00" not in utf8 and not misfits:
        try:
            table = pacsv.read_csv(io.BytesIO(utf8), **_arrow_options(
                header, delimiter, block_size=8 << 20, newlines_in_values=True,
                on_invalid=count))
        except pa.ArrowInvalid:
            table = None
    malformed = 0
    if table is None or bad or misfits:
        marked = _read_marked(utf8, header, delimiter)
        table, malformed = marked or _read_python(text, header, delimiter)
    else:
        table = _finish(table, None)
    return CsvTable(table, header, encoding, delimiter, content.compressed, content.bom,
                    line_ending(text[:SNIFF_BYTES]), malformed)


def _read_streamed(path: Path, head: Content, header: list[str], delimiter: str,
                   head_text: str) -> CsvTable | str | None:
    """The streamed parse; ``MISFITS`` when records do not fit (read again whole, marked),
    None when Arrow cannot parse the stream (not UTF-8)."""
    bad = 0

    def count(_row) -> str:
        nonlocal bad
        bad += 1
        return "skip"

    # Streaming small blocks lets decompression overlap parsing; Arrow checks the UTF-8
    # itself. Line breaks inside quoted values would stop the parallel split, so they are
    # only allowed on the whole-bytes path.
    stream = igzip.open(path, "rb") if head.compressed else pa.memory_map(str(path))
    try:
        if head.bom == "utf-8":
            stream.read(len(codecs.BOM_UTF8))
        table = pacsv.read_csv(stream, **_arrow_options(
            header, delimiter, block_size=STREAM_BLOCK_BYTES, newlines_in_values=False,
            on_invalid=count))
    except pa.ArrowInvalid:
        return None
    except (*GZIP_ERRORS, OSError, pa.ArrowException) as exc:
        raise UnreadableFile(f"{path.name}: damaged or truncated data ({exc})") from exc
    finally:
        stream.close()
    if bad or _has_nul(table):
        return MISFITS
    return CsvTable(_finish(table, None), header, "utf-8-sig" if head.bom else "utf-8",
                    delimiter, head.compressed, head.bom, line_ending(head_text))


def _malformed_record(line: int, rule: str, field_name: str | None, reason: str,
                      fields: list[str]) -> str:
    """``_malformed`` of a record that cannot be one row (see the module doc)."""
    return json.dumps({"line": line, "rule": rule, "field": field_name,
                       "reason": f"line {line} {reason}", "fields": fields}, ensure_ascii=False)


def _nul_reason(name: str, value: str) -> str:
    return f"field {name!r} holds a NUL byte at position {value.index(chr(0)) + 1}"


def _read_marked(utf8: bytes, header: list[str], delimiter: str) -> tuple[pa.Table, int] | None:
    """What :func:`_read_python` gives, from Arrow's parser: the records that fit parsed by
    it, those that do not (a field too many or too few, a NUL byte) marked in place.

    Arrow numbers a record it skips only when it parses in one thread (still far quicker
    than the csv module). A record's line is its number plus the header's line where no
    line is blank and no value holds a line break; elsewhere (and where the csv module
    would split a skipped record otherwise) None: the caller reads with the csv module.
    """
    skipped: list[tuple[int | None, str]] = []

    def mark(row) -> str:
        skipped.append((row.number, row.text))
        return "skip"

    options = _arrow_options(header, delimiter, block_size=8 << 20, newlines_in_values=True,
                             on_invalid=mark)
    options["read_options"].use_threads = False
    try:
        good = pacsv.read_csv(io.BytesIO(utf8), **options)
    except pa.ArrowInvalid:
        return None
    if not skipped and not _has_nul(good):
        return _finish(good, None), 0
    if (utf8[:1] in (b"\n", b"\r") or b"\n\n" in utf8 or b"\n\r\n" in utf8
            or b"\r\r" in utf8 or any("\n" in name or "\r" in name for name in header)
            or any(number is None or "\n" in text or "\r" in text for number, text in skipped)
            or _holds(good, b"\n", b"\r")):
        return None
    width = len(header)
    problems: dict[int, str] = {}  # record number (1-based) -> its _malformed
    for number, text in skipped:
        record = number - 1  # Arrow counts the header line as row 1
        fields = next(csv.reader([text], delimiter=delimiter), [])
        if len(fields) == width:  # the csv module would read it as a row
            return None
        problems[record] = _malformed_record(
            record + 1, "ragged_row", None,
            f"has {len(fields)} field(s), the header has {width}", fields)
    n = good.num_rows + len(skipped)
    is_skipped = np.zeros(n, dtype=bool)
    is_skipped[[record - 1 for record in problems]] = True
    kept = np.flatnonzero(~is_skipped)  # record index of each row Arrow parsed
    rows = np.cumsum(~is_skipped) - 1  # the parsed row each record is, where it is one
    if _has_nul(good):
        nul = np.zeros(good.num_rows, dtype=bool)
        for column in good.columns:
            nul |= pc.fill_null(pc.match_substring(column, "\x00"), False).to_numpy(
                zero_copy_only=False)
        for row in np.flatnonzero(nul):
            values = [good.column(name)[int(row)].as_py() for name in header]
            name, value = next((name, value) for name, value in zip(header, values, strict=True)
                               if value is not None and "\x00" in value)
            record = int(kept[row]) + 1
            problems[record] = _malformed_record(
                record + 1, "nul_byte", name, _nul_reason(name, value),
                ["" if v is None else v for v in values])
        is_skipped[kept[nul]] = True
    rows[is_skipped] = 0
    table = good.take(pa.array(rows, mask=is_skipped))
    malformed: list[str | None] = [None] * n
    for record, problem in problems.items():
        malformed[record - 1] = problem
    return _finish(table, malformed), len(problems)


def _read_python(text: str, header: list[str], delimiter: str) -> tuple[pa.Table, int]:
    """Every record with its line: those that fit as text, the others as ``_malformed``."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next(reader, None)
    width = len(header)
    columns: list[list[str | None]] = [[] for _ in header]
    malformed: list[str | None] = []
    start = reader.line_num + 1
    bad = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a quote never closed: the rest is one broken record
            row, problem = [], ("unreadable_row", None, f"cannot be split into fields ({exc})")
        else:
            problem = None
        line, start = start, reader.line_num + 1
        if not row and problem is None:
            continue  # a blank line, skipped as Arrow skips it
        if problem is None and len(row) != width:
            problem = ("ragged_row", None,
                       f"has {len(row)} field(s), the header has {width}")
        if problem is None:
            for name, value in zip(header, row, strict=True):
                if "\x00" in value:
                    problem = ("nul_byte", name, _nul_reason(name, value))
                    break
        if problem:
            bad += 1
            malformed.append(_malformed_record(line, *problem, row))
            for column in columns:
                column.append(None)
            continue
        malformed.append(None)
        for column, value in zip(columns, row, strict=True):
            column.append(value if value != "" else None)
    table = pa.table({name: pa.array(values, pa.string())
                      for name, values in zip(header, columns, strict=True)})
    return _finish(table, malformed), bad
