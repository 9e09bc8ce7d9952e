"""Text encodings decided from the bytes of real exports, or declared, never guessed: each
variant lands with the original's text, or is refused with both readings shown."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.ingest.readers import UnreadableFile, read_export
from leadscore_core.profiles import load_profiles
from tests.support.shared import online_retail_rows

PROFILES = load_profiles()
TEXT_COLUMNS = ["invoice_no", "stock_code", "description", "quantity", "invoice_date",
                "unit_price", "customer_id", "country", "_row_number"]
# the 32 Online Retail lines whose text is not ASCII (all "£"), and accented descriptions
# as a French or German shop would write them
ACCENTED = ["CAFÉ “DÉCOR” SET", "Crème brûlée dish – large", "Straßenfest Tüte", "Señal ½ off"]


@pytest.fixture(scope="module")
def retail(shared_data: Path) -> tuple[list[str], list[list[str]]]:
    header, rows = online_retail_rows(shared_data)
    pounds = [r for r in rows if not (r[2] + r[7]).isascii()]
    assert pounds and all("£" in r[2] for r in pounds)
    sample = rows[:300] + pounds
    for i, text in enumerate(ACCENTED):
        sample[10 + i][2] = text
    return header, sample


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def land(path: Path, source: str = "invoices", declared: dict | None = None,
         profiles=PROFILES):
    return read_export(source, path, profiles, declared)


def text_of(export) -> pd.DataFrame:
    return export.frame[TEXT_COLUMNS].reset_index(drop=True)


@pytest.fixture(scope="module")
def original(retail, tmp_path_factory) -> pd.DataFrame:
    header, rows = retail
    path = tmp_path_factory.mktemp("utf8") / "original.csv"
    path.write_bytes(csv_text(header, rows).encode("utf-8"))
    export = land(path)
    assert export.stats["encoding"] == "utf-8"
    return text_of(export)


@pytest.mark.parametrize(("name", "encode", "recorded"), [
    ("cp1252", lambda t: t.encode("cp1252"), "cp1252"),
    ("utf8_bom", lambda t: codecs.BOM_UTF8 + t.encode("utf-8"), "utf-8-sig"),
    ("utf16le_bom", lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"), "utf-16-le"),
    ("utf16be_bom", lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"), "utf-16-be"),
    ("utf16le_no_bom", lambda t: t.encode("utf-16-le"), "utf-16-le"),
    ("utf16be_no_bom", lambda t: t.encode("utf-16-be"), "utf-16-be"),
])
def test_online_retail_in_each_encoding_lands_the_original_text(
        name, encode, recorded, retail, original, tmp_path) -> None:
    header, rows = retail
    path = tmp_path / f"{name}.csv"
    path.write_bytes(encode(csv_text(header, rows, "\t" if "16" in name else ",")))
    export = land(path)
    assert export.stats["encoding"] == recorded
    pd.testing.assert_frame_equal(text_of(export), original)


def test_latin1_without_windows_characters_reads_the_same_as_windows_1252(
        retail, original, tmp_path) -> None:
    header, rows = retail
    plain = [r[:2] + [r[2].replace("“", '"').replace("”", '"').replace("–", "-")
                      .replace("½", "1/2")] + r[3:] for r in rows]
    path = tmp_path / "latin1.csv"
    path.write_bytes(csv_text(header, plain).encode("latin-1"))
    frame = land(path).frame
    assert list(frame["description"]) == [r[2] for r in plain]
    assert "Straßenfest Tüte" in set(frame["description"])


def test_latin9_euro_signs_are_refused_with_both_readings_until_declared(
        retail, tmp_path) -> None:
    header, rows = retail
    rows = [list(r) for r in rows[100:150]]  # ASCII lines, then a French shop's words
    for i, text in enumerate(["Crème brûlée dish", "Straßenfest Tüte", "Pâte à crêpes",
                              "GIFT CARD 10 € OFF"]):
        rows[i][2] = text
    path = tmp_path / "latin9.csv"
    path.write_bytes(csv_text(header, rows).encode("iso-8859-15"))
    with pytest.raises(UnreadableFile) as refused:
        land(path)
    message = str(refused.value)
    assert message.startswith("latin9.csv: the bytes can be read two ways and nothing "
                              "decides: line 5 reads")
    assert "GIFT CARD 10 ¤ OFF" in message and "GIFT CARD 10 € OFF" in message
    assert "declare `encoding`" in message

    declared = land(path, declared={"encoding": "iso-8859-15"})
    assert declared.stats["encoding"] == "iso8859-15"
    assert list(declared.frame["description"].iloc[:4]) == [r[2] for r in rows[:4]]


def test_a_declaration_the_bytes_contradict_is_an_error(retail, tmp_path) -> None:
    header, rows = retail
    path = tmp_path / "utf8.csv"
    path.write_bytes(csv_text(header, rows[:40] + rows[-3:]).encode("utf-8"))
    with pytest.raises(UnreadableFile, match=r"utf8\.csv: declared encoding 'cp1252' "
                                             r"contradicts the bytes, which are valid UTF-8: "
                                             r"line 12 reads '.*CAFÉ “DÉCOR”.*' in utf-8 or "
                                             r"'.*CAFÃ‰ â€œDÃ‰CORâ€.*' in cp1252"):
        land(path, declared={"encoding": "cp1252"})
    windows = tmp_path / "windows.csv"
    windows.write_bytes(csv_text(header, rows[:20]).encode("cp1252"))  # “DÉCOR” at 0x93/0x94
    with pytest.raises(UnreadableFile, match=r"the declared encoding 'latin-1' reads a "
                                             r"control character \(U\+0093\) on line 12"):
        land(windows, declared={"encoding": "latin-1"})


# -- names in East Asian code pages ----------------------------------------------------------

# customer names and cities as a Japanese or a Chinese CRM exports them: 100 distinct names
JAPANESE = ([f"{f} {g}" for g in ("太郎", "花子", "一郎", "美咲", "健太", "さくら", "翔太",
                                  "ゆい", "大輔", "あやか")
             for f in ("山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村", "小林",
                       "加藤")],
            ["東京都", "大阪府", "名古屋市", "札幌市", "福岡市", "京都市", "横浜市", "神戸市"])
CHINESE = ([f + g for g in ("伟", "芳", "娜", "洋", "静", "磊", "敏", "勇", "杰", "霞")
            for f in ("张", "王", "李", "刘", "陈", "杨", "赵", "黄", "周", "吴")],
           ["北京", "上海", "广州", "深圳", "成都", "杭州", "武汉", "西安", "南京"])


def telco_with_names(shared_data: Path, names: tuple[list[str], list[str]], n: int
                     ) -> tuple[list[str], list]:
    with (shared_data / "telco_customer_churn.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [row for _, row in zip(range(n), reader, strict=False)]
    people, cities = names
    return header + ["Name", "City"], [
        row + [people[i % len(people)], cities[i % len(cities)]] for i, row in enumerate(rows)]


@pytest.mark.parametrize(("encoding", "names", "recorded"), [
    ("shift_jis", JAPANESE, "cp932"), ("gb18030", CHINESE, "gb18030")])
def test_customer_names_in_east_asian_code_pages_land_as_written(
        encoding, names, recorded, shared_data, tmp_path) -> None:
    header, rows = telco_with_names(shared_data, names, 200)
    path = tmp_path / f"telco_{encoding}.csv"
    path.write_bytes(csv_text(header, rows).encode(encoding))
    export = land(path, "customers")
    assert export.stats["encoding"] == recorded
    landed = [json.loads(r) for r in export.frame["record"]]
    assert [(r["Name"], r["City"]) for r in landed] == [(r[-2], r[-1]) for r in rows]


def test_a_few_names_two_code_pages_read_alike_need_a_declared_encoding(
        shared_data, tmp_path) -> None:
    header, rows = telco_with_names(shared_data, (JAPANESE[0][:3], ["東京"]), 3)
    path = tmp_path / "three.csv"
    path.write_bytes(csv_text(header, rows).encode("shift_jis"))
    with pytest.raises(UnreadableFile) as refused:
        land(path, "customers")
    message = str(refused.value)
    assert "can be read two ways and nothing decides" in message
    assert "山田 太郎" in message  # the Japanese reading is shown beside the other one

    profiles = {**PROFILES, "telco": PROFILES["telco"].model_copy(
        update={"encoding": "shift_jis"})}
    export = land(path, "customers", profiles=profiles)
    assert [json.loads(r)["Name"] for r in export.frame["record"]] == JAPANESE[0][:3]


# -- a few words in a code page Windows-1252 also reads ----------------------------------------

def names_file(path: Path, names: list[str], encoding: str) -> Path:
    header = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
              "CustomerID", "Country"]
    rows = [[f"5{i:05d}", "85123A", name, "6", "2010-12-01 08:26:00", "2.55", "17850",
             "United Kingdom"] for i, name in enumerate(names)]
    path.write_bytes(csv_text(header, rows).encode(encoding))
    return path


@pytest.mark.parametrize(("encoding", "names", "windows_reading"), [
    ("cp1250", ["Plzeň", "České Budějovice", "Ústí nad Labem", "Hradec Králové"] * 8, "Plzeò"),
    ("cp1254", ["İstanbul", "İzmir", "Şanlıurfa", "Eskişehir", "Muğla"] * 6, "Ýstanbul"),
    ("cp1251", ["Москва"], "Ìîñêâà"),
    ("cp1250", ["Łódź"], "£ódŸ"),
    ("cp1253", ["Αθήνα"], "ÁèÞíá"),
])
def test_words_windows_1252_would_misread_are_refused_with_both_readings(
        encoding, names, windows_reading, tmp_path) -> None:
    path = names_file(tmp_path / f"{encoding}.csv", names, encoding)
    with pytest.raises(UnreadableFile) as refused:
        land(path)
    message = str(refused.value)
    assert "can be read two ways and nothing decides" in message
    assert windows_reading in message and "in cp1252 or" in message
    assert "declare `encoding`" in message

    declared = land(path, declared={"encoding": encoding})
    assert list(declared.frame["description"]) == names


@pytest.mark.parametrize(("names", "why"), [
    (["Gift Voucher £40.00", "Gift Voucher £20.00"], "Ł40.00 is a letter glued to a number"),
    (["Crème brûlée dish"], "Crčme brűlée is no language's alphabet"),
    (["Zürich Straßenfest Tüte", "CAFÉ “DÉCOR” SET"], "every Western code page reads these alike"),
])
def test_a_few_western_words_no_rival_reads_as_text_land_as_windows_1252(
        names, why, tmp_path) -> None:
    export = land(names_file(tmp_path / "few.csv", names, "cp1252"))
    assert export.stats["encoding"] == "cp1252", why
    assert list(export.frame["description"]) == names
