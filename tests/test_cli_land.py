"""``leadscore land`` as a person runs it: one line per file, the ledger every path shares,
Dagster's events in a log file, and sensors that request nothing for what the CLI landed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from leadscore_assets.cli import main
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.ingest.sensors import INBOX_SENSORS
from leadscore_core.settings import Settings

CHARGES = [{"id": f"ch_{i}", "object": "charge", "amount": 15000, "currency": "usd",
            "status": "succeeded", "receipt_email": f"c{i}@example.com", "created": 1700000000}
           for i in range(3)]
OLD = 1_600_000_000


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("LEADSCORE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    inbox = data / "inbox" / "payments"
    inbox.mkdir(parents=True)
    for name, content in {"charges.json": json.dumps(CHARGES),
                          "customers.json": json.dumps([{"id": "cus_1", "object": "customer"}]),
                          "cut.json": json.dumps(CHARGES)[:-20]}.items():
        (inbox / name).write_text(content)
        os.utime(inbox / name, (OLD, OLD))
    return data


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_land_prints_one_line_per_file_and_logs_the_rest(home: Path) -> None:
    out = run("land", "payments")
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert "charges.json: 3 rows -> raw.payments (kept charge 3; skipped none)" in lines
    assert "customers.json: 0 rows -> raw.payments (kept none; skipped customer 1)" in lines
    assert any(line.startswith("customers.json: WARNING: no payment in this file")
               for line in lines)
    [failed] = [line for line in lines if line.startswith("cut.json: FAILED: ")]
    assert "JSON at line 1 column" in failed
    assert f"(copy: {home / 'quarantine' / 'payments' / 'cut.json'})" in failed
    assert "Traceback" not in out.output and "dagster" not in out.output.lower()
    [log] = [line.removeprefix("log: ") for line in lines if line.startswith("log: ")]
    text = Path(log).read_text()
    assert "STEP_FAILURE" in text and "Failure" in text
    assert len(lines) <= 7, out.output


def test_known_bytes_land_nothing_by_any_name(home: Path) -> None:
    run("land", "payments", str(home / "inbox" / "payments" / "charges.json"))
    again = run("land", "payments", str(home / "inbox" / "payments" / "charges.json"))
    assert again.exit_code == 0
    assert again.output.startswith("charges.json: already landed (3 rows, ")
    copy = home.parent / "elsewhere" / "same_charges.json"
    copy.parent.mkdir()
    copy.write_text(json.dumps(CHARGES))
    renamed = run("land", "payments", str(copy))
    assert renamed.output.startswith("same_charges.json: already landed as charges.json")
    forced = run("land", "payments", "--again", str(copy))
    assert forced.output.startswith("same_charges.json: 3 rows -> raw.payments")


def test_sensors_request_no_run_for_what_the_cli_landed(home: Path) -> None:
    (home / "inbox" / "payments" / "cut.json").unlink()
    run("land", "payments")
    landing = LandingZone.from_settings(Settings())
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs()  # the CLI's runs are in this instance
        with dg.build_sensor_context(instance=instance,
                                     resources={"landing": landing}) as context:
            tick = INBOX_SENSORS["payments"](context)
    assert not tick.run_requests
    assert "no new files" in str(tick.skip_reason)
