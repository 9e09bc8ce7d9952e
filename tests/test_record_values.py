"""Leads and customers on real exports: an unreadable feature value and a time that cannot be
placed on the clock are quarantined with file, row, field and value; the other rows land."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.clean.records import clean_records
from leadscore_assets.ingest.readers import UnreadableFile, read_export
from leadscore_core.profiles import load_profiles

PROFILES = load_profiles()
CODEPRO_ROWS = 120


def landed(path: Path, source: str, declared: dict | None = None,
           at: str = "2026-01-01") -> pd.DataFrame:
    raw = read_export(source, path, PROFILES, declared).frame.copy()
    raw["_source_file"], raw["_ingested_at"] = path.name, pd.Timestamp(at)
    return raw


def write_rows(path: Path, header: list[str], rows: list[list[str]],
               delimiter: str = ",") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


# -- unreadable feature values ---------------------------------------------------------------


def test_unreadable_telco_values_are_quarantined_with_field_and_value(
        shared_data: Path, tmp_path: Path) -> None:
    header, rows = read_rows(shared_data / "telco_customer_churn.csv")
    col = {name: i for i, name in enumerate(header)}
    broken = {4: ("MonthlyCharges", "n/a"), 9: ("tenure", "twelve"),
              14: ("SeniorCitizen", "maybe")}
    for at, (name, value) in broken.items():
        rows[at][col[name]] = value
    path = write_rows(tmp_path / "telco_broken.csv", header, rows)

    result, _ = clean_records(landed(path, "customers"), "customers", PROFILES["telco"])

    q = result.quarantine.set_index("_row_number")
    assert sorted(q.index) == sorted(at + 1 for at in broken)
    for at, (name, value) in broken.items():
        row = q.loc[at + 1]
        assert (row["_source_file"], row["field"], row["value"]) == (
            "telco_broken.csv", name, value)
        assert row["rule"] == ("invalid_flag" if name == "SeniorCitizen" else "invalid_number")
    assert result.quarantined == {"invalid_number": 2, "invalid_flag": 1}
    # every other customer lands, with the values of the file
    clean = result.clean.set_index("customer_id")
    assert len(clean) == len(rows) - len(broken)
    assert not set(rows[at][col["customerID"]] for at in broken) & set(clean.index)
    first = rows[0]
    assert clean.loc[first[col["customerID"]], "monthly_charges"] == float(
        first[col["MonthlyCharges"]])
    assert result.accounted == result.rows_in == len(rows)


def test_a_value_its_files_decimal_comma_cannot_read_is_shown_as_written(
        shared_data: Path, tmp_path: Path) -> None:
    header, rows = read_rows(shared_data / "telco_customer_churn.csv")
    col = {name: i for i, name in enumerate(header)}
    rows = rows[:300]
    for row in rows:  # a German spreadsheet's copy: semicolons, decimal commas
        for name in ("MonthlyCharges", "TotalCharges"):
            row[col[name]] = row[col[name]].replace(".", ",")
    rows[7][col["MonthlyCharges"]] = "29,85 €"  # a currency sign in a number field
    path = write_rows(tmp_path / "telco_de.csv", header, rows, delimiter=";")

    result, _ = clean_records(landed(path, "customers"), "customers", PROFILES["telco"])

    q = result.quarantine
    assert q[["_row_number", "rule", "field", "value"]].values.tolist() == [
        [8, "invalid_number", "MonthlyCharges", "29,85 €"]]
    clean = result.clean.set_index("customer_id")
    assert clean.loc[rows[0][col["customerID"]], "monthly_charges"] == 29.85
    assert len(clean) == 299


# -- times with and without a UTC offset -----------------------------------------------------


@pytest.fixture(scope="module")
def codepro(shared_data: Path) -> tuple[list[str], list[list[str]]]:
    header, rows = read_rows(shared_data / "codepro_leadscoring.csv")
    return header, rows[:CODEPRO_ROWS]


def with_offset(rows: list[list[str]], which, offset: str = "+05:30") -> list[list[str]]:
    out = [list(r) for r in rows]
    for i, row in enumerate(out):
        if which(i):
            row[1] = row[1].replace(" ", "T") + offset
    return out


def created(result) -> pd.Series:
    frame = result.clean
    return pd.Series(frame["created_at"].to_numpy(), index=frame["lead_id"].astype(str).tolist())


def assert_created_at(result, expected: pd.Series) -> None:
    """The clean leads' creation times, by lead id, are ``expected``."""
    pd.testing.assert_series_equal(created(result).sort_index(), expected.sort_index(),
                                   check_names=False, check_freq=False)


def original_times(rows: list[list[str]]) -> pd.Series:
    return pd.Series(pd.to_datetime([r[1] for r in rows]), index=[r[0] for r in rows])


@pytest.mark.parametrize(("offset", "hours"), [("+05:30", 5.5), ("Z", 0), (".250Z", 0)])
def test_times_with_an_offset_are_converted_to_utc(codepro, tmp_path: Path, offset: str,
                                                   hours: float) -> None:
    header, rows = codepro
    path = write_rows(tmp_path / "offsets.csv", header,
                      with_offset(rows, lambda i: True, offset))
    result, _ = clean_records(landed(path, "leads"), "leads", PROFILES["codepro"])
    assert result.quarantined == {}
    expected = original_times(rows) - pd.Timedelta(hours=hours)
    if offset.startswith("."):  # fractional seconds written before the Z
        expected = expected + pd.Timedelta(milliseconds=250)
    assert_created_at(result, expected)


def test_times_without_an_offset_beside_ones_with_are_quarantined_with_both_readings(
        codepro, tmp_path: Path) -> None:
    header, rows = codepro
    mixed = with_offset(rows, lambda i: i % 2 == 0)
    path = write_rows(tmp_path / "mixed.csv", header, mixed)
    result, _ = clean_records(landed(path, "leads"), "leads", PROFILES["codepro"])

    q = result.quarantine
    assert set(q["rule"]) == {"ambiguous_timezone"} and len(q) == CODEPRO_ROWS // 2
    assert set(q["_row_number"]) == {i + 1 for i in range(CODEPRO_ROWS) if i % 2}
    first = q.iloc[0]
    value = rows[int(first["_row_number"]) - 1][1]
    local = pd.Timestamp(value)
    assert first["field"] == "created_date"
    assert first["value"].startswith(f"{value!r} has no UTC offset")
    assert f"{local:%Y-%m-%d %H:%M} UTC if written in UTC" in first["value"]
    shifted = local - pd.Timedelta(hours=5, minutes=30)
    assert f"{shifted:%Y-%m-%d %H:%M} UTC if written in +05:30" in first["value"]
    # the rows with an offset land in UTC
    expected = (original_times(rows[::2]) - pd.Timedelta(hours=5, minutes=30)).sort_index()
    assert_created_at(result, expected)
    assert result.accounted == result.rows_in


def test_offsets_in_one_file_and_none_in_another_follow_a_declared_timezone(
        codepro, tmp_path: Path) -> None:
    header, rows = codepro
    plain = write_rows(tmp_path / "plain.csv", header, rows[:60])
    aware = write_rows(tmp_path / "aware.csv", header, with_offset(rows[60:], lambda i: True))
    raw_aware = landed(aware, "leads", at="2026-01-02")

    # nothing declared: the file without offsets cannot be placed on the clock
    both = pd.concat([landed(plain, "leads"), raw_aware], ignore_index=True)
    result, _ = clean_records(both, "leads", PROFILES["codepro"])
    assert result.quarantined == {"ambiguous_timezone": 60}
    assert set(result.quarantine["_source_file"]) == {"plain.csv"}

    # declared for the source (or in the profile), its times are read in that zone
    for declared, profile in (({"timezone": "Asia/Kolkata"}, PROFILES["codepro"]),
                              (None, PROFILES["codepro"].model_copy(
                                  update={"timezone": "Asia/Kolkata"}))):
        both = pd.concat([landed(plain, "leads", declared), raw_aware], ignore_index=True)
        result, _ = clean_records(both, "leads", profile)
        assert result.quarantined == {}
        expected = original_times(rows) - pd.Timedelta(hours=5, minutes=30)
        assert_created_at(result, expected)


def test_a_local_time_a_daylight_saving_change_repeats_is_never_moved(
        codepro, tmp_path: Path) -> None:
    header, rows = codepro
    rows = [list(r) for r in rows[:5]]
    rows[2][1] = "2021-10-31 02:30:00"  # Berlin's clocks went back at 03:00: twice that day
    path = write_rows(tmp_path / "berlin.csv", header, rows)
    result, _ = clean_records(landed(path, "leads", {"timezone": "Europe/Berlin"}), "leads",
                              PROFILES["codepro"])
    assert result.quarantine[["_row_number", "rule", "value"]].values.tolist() == [
        [3, "invalid_created_at", "2021-10-31 02:30:00"]]
    first = pd.Timestamp(rows[0][1])  # CET or CEST, from the zone's own rules
    offset = first.tz_localize("Europe/Berlin").utcoffset()
    assert created(result)[rows[0][0]] == first - offset


def test_an_unknown_declared_timezone_names_the_file(codepro, tmp_path: Path) -> None:
    header, rows = codepro
    path = write_rows(tmp_path / "leads.csv", header, rows[:3])
    with pytest.raises(UnreadableFile, match=r"leads\.csv: declared `timezone`: unknown time "
                                             r"zone 'Mars/Olympus'"):
        read_export("leads", path, PROFILES, {"timezone": "Mars/Olympus"})
