"""``leadscore profile draft``: a starter profile from a file, used with no other setting."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from click.testing import CliRunner

from leadscore_assets.clean.assets import clean_source
from leadscore_assets.cli import main
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.draft import draft_profile
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.resources import warehouse_resource
from leadscore_core.profiles import load_profiles
from leadscore_core.settings import Settings
from leadscore_core.warehouse import read_table

ACCOUNTS = ("account_ref;joined;seats;monthly_fee;region;left_us\n"
            + "".join(f"A{i:03d};{(i % 28) + 1:02d}/0{(i % 9) + 1}/2024;{i % 7 + 1};"
                      f"{1000 + i},{i % 100:02d};{['north', 'south', 'east'][i % 3]};"
                      f"{'yes' if i % 4 == 0 else 'no'}\n" for i in range(120)))


def test_a_draft_of_telco_matches_the_shipped_profile(shared_data: Path) -> None:
    drafted = draft_profile(shared_data / "telco_customer_churn.csv", "customers")
    shipped = load_profiles()["telco"]
    assert drafted["id"] == {"column": "customerID"}
    assert drafted["label"] == {"column": "Churn"}
    assert sorted(drafted["features"]["numeric"]) == sorted(shipped.features.numeric)
    assert sorted(drafted["features"]["boolean"]) == sorted(shipped.features.boolean)
    assert sorted(drafted["features"]["categorical"]) == sorted(shipped.features.categorical)


def test_a_drafted_profile_is_used_with_no_other_setting(settings: Settings) -> None:
    inbox = settings.inbox("customers")
    inbox.mkdir(parents=True)
    path = inbox / "accounts.csv"
    path.write_text(ACCOUNTS)
    os.utime(path, (1_600_000_000, 1_600_000_000))
    out = CliRunner().invoke(main, ["profile", "draft", str(path), "--source", "customers"])
    assert out.exit_code == 0, out.output
    written = settings.user_profiles_dir / "accounts.yaml"
    drafted = yaml.safe_load(written.read_text())
    assert drafted["id"] == {"column": "account_ref"}
    assert drafted["label"] == {"column": "left_us"}
    assert drafted["created_at"] == {"column": "joined"}
    assert (drafted["decimal"], drafted["delimiter"], drafted["date_order"]) == (",", ";", "dmy")
    assert drafted["features"]["numeric"] == ["seats", "monthly_fee"]

    landing = LandingZone.from_settings(settings)
    warehouse = warehouse_resource(settings)
    assert land_file("customers", "accounts.csv", landing=landing, warehouse=warehouse).success
    with warehouse.get_connection() as conn:
        raw = read_table(conn, "raw.customers")
    result, _, extra = clean_source("customers", raw, settings)
    assert extra == {"profile": "accounts", "profile_chosen": "the latest landed file's"}
    clean = result.clean.set_index("customer_id")
    assert len(clean) == 120 and result.accounted == 120
    assert clean.loc["A005", "monthly_fee"] == 1005.05
    assert str(clean.loc["A005", "created_at"]) == "2024-06-06 00:00:00"
    assert bool(clean.loc["A004", "churned"]) is True


def test_evaluate_trains_and_holds_out_on_a_file_with_its_profile(shared_data: Path) -> None:
    out = CliRunner().invoke(main, ["evaluate", "--file",
                                    str(shared_data / "telco_customer_churn.csv"),
                                    "--profile", "telco"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("telco_customer_churn.csv (profile telco): held-out ROC-AUC ")
    roc_auc = float(out.output.split("held-out ROC-AUC ")[1].split(",")[0])
    assert roc_auc > 0.8
    assert "1,409 held out" in out.output
