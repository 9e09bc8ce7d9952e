"""Rows that do not fit, marked from Arrow's parse, exactly as the csv module marks them."""

from __future__ import annotations

import random

import pytest

from leadscore_assets.ingest.csvfiles import _read_marked, _read_python

HEADER = ["id", "name", "amount", "note"]


def body(rows: list[str], newline: str = "\n") -> str:
    return newline.join([",".join(HEADER), *rows]) + newline


@pytest.mark.parametrize(("name", "text"), [
    ("one field too many", body(["1,a,2.5,x", "2,b,3.5,y,extra", "3,c,4,z"])),
    ("fields missing", body(["1,a,2.5,x", "2,b", "3", "4,d,5,w"])),
    ("a NUL byte", body(["1,a,2.5,x", "2,b\x00b,3.5,y", "3,c,4,\x00"])),
    ("ragged and NUL", body(["1,a\x00,2.5,x,more", "2,b\x00b,3.5,y", "3,c", "4,d,5,e"])),
    ("quoted fields", body(['1,"a, with comma",2.5,"say ""hi"""', '2,"b",3.5', '3,"",,'])),
    ("CRLF", body(["1,a,2.5,x", "2,b,3.5,y,z", "3,\x00,1,2"], "\r\n")),
    ("CR", body(["1,a,2.5,x", "2,b,3.5,y,z", "3,c,1,2"], "\r")),
    ("no final line break", body(["1,a,2.5,x", "2,b"]).rstrip("\n")),
    ("text beyond ASCII", body(["1,Café £,2,5", "2,naïve,3,€,x", "3,日本,4,\x00"])),
    ("first and last rows bad", body(["1,a", "2,b,3,4", "5,c,6,7,8"])),
    ("every row bad", body(["1,a", "2", "3,b,c,d,e"])),
])
def test_marked_rows_are_the_csv_modules(name: str, text: str) -> None:
    marked = _read_marked(text.encode(), HEADER, ",")
    assert marked is not None, name
    expected = _read_python(text, HEADER, ",")
    assert marked[1] == expected[1] > 0
    assert marked[0].equals(expected[0]), (marked[0].to_pylist(), expected[0].to_pylist())


@pytest.mark.parametrize(("name", "text"), [
    ("a blank line", body(["1,a,2.5,x", "", "2,b", "3,c,4,z"])),
    ("a line break in a value", body(['1,"a\nb",2.5,x', "2,b", "3,c,4,z"])),
    ("a quote never closed", body(["1,a,2.5,x", '2,"b,3.5,y', "3,c,4,z"])),
])
def test_where_lines_cannot_be_told_the_csv_module_reads(name: str, text: str) -> None:
    """Blank lines and line breaks inside values shift lines from record numbers: the
    marked read declines (the csv module reads the file), or gives the very same rows."""
    marked = _read_marked(text.encode(), HEADER, ",")
    if marked is not None:
        expected = _read_python(text, HEADER, ",")
        assert marked[1] == expected[1]
        assert marked[0].equals(expected[0]), name


def test_random_files_mark_the_same_rows() -> None:
    """Files without blank lines (a blank line is no record to either reader)."""
    rng = random.Random(10)
    pieces = ["1", "2.5", "abc", "", '"q,uoted"', '"a ""b"""', "é", "\x00", "x\x00y", " "]
    for _ in range(200):
        rows = []
        for _ in range(rng.randint(1, 30)):
            width = rng.choice([4, 4, 4, 4, 3, 5, 1, 7])
            rows.append(",".join(rng.choice(pieces) for _ in range(width)) or "abc")
        text = body(rows, rng.choice(["\n", "\r\n"]))
        marked = _read_marked(text.encode(), HEADER, ",")
        expected = _read_python(text, HEADER, ",")
        assert marked is not None, text
        assert marked[1] == expected[1], text
        assert marked[0].equals(expected[0]), text
