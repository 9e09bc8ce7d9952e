"""Quality bars: the four reference models trained from the public data sets, held-out scored.

Used by ``leadscore evaluate``, ``bench/bench_models.py`` and ``tests/test_quality_bars.py``.
The files are typed here the way the cleaning stage types them (the shipped profiles for
leads and customers; the invoice rules that matter for features: lines with a customer,
no bad-debt ``A`` invoices, positive unit price, ``C`` invoices kept as returns), so the
figures can be reproduced without running the pipeline first.

No Dagster imports here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from leadscore_assets.features.activity import (
    ACTIVITY_FEATURES,
    activity_training_set,
    churn_cutoffs,
)
from leadscore_assets.features.leads import lead_feature_kinds, lead_features
from leadscore_assets.features.snapshot import snapshot_feature_kinds, snapshot_features
from leadscore_assets.models.training import TrainConfig, TrainedModel, train_model
from leadscore_core.estimation import rank_roc_auc
from leadscore_core.profiles import load_profiles

FILES = {
    "telco_snapshot_churn": "telco_customer_churn.csv",
    "xeducation_conversion": "xeducation_leads.csv",
    "codepro_conversion": "codepro_leadscoring.csv",
    "retail_activity_churn": "online_retail_uci.csv.gz",
}
BARS = {
    "telco_snapshot_churn": 0.845,
    "xeducation_conversion": 0.88,
    "codepro_conversion": 0.82,
    "retail_activity_churn": 0.75,
}


@dataclass
class QualityResult:
    name: str
    bar: float
    trained: TrainedModel
    feature_seconds: float
    train_seconds: float
    seed_roc_aucs: list[float] = field(default_factory=list)
    # The same model trained with tuning the other way (``run_quality(..., other=...)``)
    other: TrainedModel | None = None
    other_seconds: float = 0.0

    @property
    def roc_auc(self) -> float:
        return self.trained.metrics["roc_auc"]

    @property
    def baseline_roc_auc(self) -> float:
        return self.trained.baseline_metrics["roc_auc"]

    @property
    def cv_roc_auc(self) -> float:
        """Cross-validated ROC-AUC of the chosen settings on the training part."""
        return self.trained.cv["cv_score"]

    @property
    def passed(self) -> bool:
        return self.roc_auc >= self.bar

    def roc_auc_interval(self, resamples: int = 400, level: float = 0.95,
                         seed: int = 0) -> tuple[float, float]:
        """Percentile bootstrap interval of the held-out ROC-AUC over the held-out rows.

        A few thousand held-out rows pin a ROC-AUC down to about +-0.01-0.02: the interval
        says whether a shortfall against a bar is beyond what another slice could show.
        Each resample's ROC-AUC is the rank-sum one (``roc_auc_score``'s value, without its
        per-call checks).
        """
        y = np.asarray(self.trained.holdout_labels)
        proba = np.asarray(self.trained.holdout_proba)
        score = proba if proba.ndim == 1 else proba[:, 1]
        rng = np.random.default_rng(seed)
        values = []
        for _ in range(resamples):
            pick = rng.integers(0, len(y), len(y))
            if y[pick].min() != y[pick].max():
                values.append(float(rank_roc_auc(rankdata(score[pick]), y[pick])[0]))
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(low), float(high)


# -- typing the public files -------------------------------------------------------------------


def read_text_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    # pandas names an unnamed first column "Unnamed: 0"; the export's header has it blank.
    return frame.rename(columns={c: "" for c in frame.columns if c.startswith("Unnamed: 0")})


def typed_profile_frame(path: Path, profile_name: str) -> tuple[pd.DataFrame, dict, dict]:
    """A leads/customers export typed by its shipped profile: (frame, kinds, original names)."""
    text = read_text_csv(path)
    resolved = load_profiles()[profile_name].resolve(list(text.columns))
    typed = resolved.type_frame(text).frame
    return typed, resolved.feature_columns, resolved.original_names


def clean_leads(path: Path, profile_name: str) -> tuple[pd.DataFrame, dict, dict]:
    typed, kinds, names = typed_profile_frame(path, profile_name)
    frame = typed.rename(columns={"record_id": "lead_id", "label": "converted"})
    frame.insert(1, "profile", profile_name)
    return frame.drop_duplicates("lead_id"), kinds, names


def clean_customers(path: Path, profile_name: str) -> tuple[pd.DataFrame, dict, dict]:
    typed, kinds, names = typed_profile_frame(path, profile_name)
    frame = typed.rename(columns={"record_id": "customer_id", "label": "churned"})
    frame.insert(1, "profile", profile_name)
    return frame.drop_duplicates("customer_id"), kinds, names


def clean_invoices(path: Path) -> pd.DataFrame:
    """Invoice lines in the layout of ``clean.invoices`` (only what features need)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    customer = raw["CustomerID"].str.strip().str.replace(r"\.0+$", "", regex=True)
    invoice = raw["InvoiceNo"].str.strip().str.upper()
    price = pd.to_numeric(raw["UnitPrice"], errors="coerce")
    quantity = pd.to_numeric(raw["Quantity"], errors="coerce")
    keep = (customer != "") & ~invoice.str.startswith("A") & (price > 0) & quantity.notna()
    raw = raw[keep].drop_duplicates()
    out = pd.DataFrame({
        "invoice_no": invoice[raw.index],
        "stock_code": raw["StockCode"].str.strip(),
        "quantity": quantity[raw.index].astype(int),
        "invoice_date": pd.to_datetime(raw["InvoiceDate"], format="mixed"),
        "unit_price": price[raw.index],
        "customer_id": customer[raw.index],
        "country": raw["Country"].str.strip(),
        "is_return": invoice[raw.index].str.startswith("C"),
    })
    out["line_total"] = out["quantity"] * out["unit_price"]
    return out.reset_index(drop=True)


# -- the four models ---------------------------------------------------------------------------


# Each builder types its file and builds the features once: (train(config), seconds taken).
Trainer = Callable[[TrainConfig], TrainedModel]


def _telco(data: Path) -> tuple[Trainer, float]:
    t0 = time.perf_counter()
    customers, kinds, names = clean_customers(data / FILES["telco_snapshot_churn"], "telco")
    frame = snapshot_features(customers, None)
    features = snapshot_feature_kinds(kinds, frame)
    return (lambda config: train_model(frame, name="telco_snapshot_churn", task="binary",
                                       label="churned", features=features, config=config,
                                       original_names=names)), time.perf_counter() - t0


def _leads(key: str, profile: str):
    def build(data: Path) -> tuple[Trainer, float]:
        t0 = time.perf_counter()
        leads, kinds, names = clean_leads(data / FILES[key], profile)
        frame = lead_features(leads, None)
        features = lead_feature_kinds(kinds, frame)
        has_time = frame["created_at"].notna().any()
        return (lambda config: train_model(
            frame, name=key, task="binary", label="converted", features=features,
            config=config, original_names=names,
            time_column="created_at" if has_time else None)), time.perf_counter() - t0
    return build


# Stacked cutoffs repeat customers, and a year of history holds few distinct moments: small
# trees, many rows per leaf and half the features per tree keep the model from memorising.
ACTIVITY_OVERRIDES = {
    "grid": [{"num_leaves": 4, "min_data_in_leaf": 100},
             {"num_leaves": 7, "min_data_in_leaf": 200}],
    "base_params": {**TrainConfig().base_params, "feature_fraction": 0.5},
}


def _retail(data: Path) -> tuple[Trainer, float]:
    t0 = time.perf_counter()
    invoices = clean_invoices(data / FILES["retail_activity_churn"])
    frame = activity_training_set(invoices, churn_cutoffs(invoices, horizon_days=90, count=4))
    return (lambda config: train_model(
        frame, name="retail_activity_churn", task="binary", label="churned",
        features=ACTIVITY_FEATURES, config=replace(config, **ACTIVITY_OVERRIDES),
        group_column="cutoff", entity_column="customer_id")), time.perf_counter() - t0


BUILDERS = {
    "telco_snapshot_churn": _telco,
    "xeducation_conversion": _leads("xeducation_conversion", "xeducation"),
    "codepro_conversion": _leads("codepro_conversion", "codepro"),
    "retail_activity_churn": _retail,
}


def run_quality(data: Path, names: list[str] | None = None,
                config: TrainConfig | None = None, seeds: int = 0,
                other: TrainConfig | None = None) -> list[QualityResult]:
    """Build features and train each named model (default: all four) from ``data``.

    ``seeds``: also train with seeds 0 .. seeds-1 and keep each one's held-out ROC-AUC
    (``QualityResult.seed_roc_aucs``). The seed draws the held-out slice of a stratified
    random split (and the model's own sampling); a time or group split keeps its slice, so
    there only the model's randomness varies. The bar is judged on ``config`` alone.
    ``other``: also train each model with this configuration (e.g. tuning the other way) on
    the same features and split (``QualityResult.other``, ``other_seconds``).
    """
    config = config or TrainConfig()
    results = []
    for name in names or list(BUILDERS):
        path = data / FILES[name]
        if not path.is_file():
            raise FileNotFoundError(f"{name}: data file not found: {path}")
        train, feature_seconds = BUILDERS[name](data)
        t0 = time.perf_counter()
        trained = train(config)
        result = QualityResult(name, BARS[name], trained, feature_seconds,
                               time.perf_counter() - t0)
        result.seed_roc_aucs = [train(replace(config, seed=s)).metrics["roc_auc"]
                                for s in range(seeds)]
        if other is not None:
            t0 = time.perf_counter()
            result.other = train(other)
            result.other_seconds = time.perf_counter() - t0
        results.append(result)
    return results


def evaluate_file(path: Path, profile: str | None = None, profiles_dir: Path | None = None,
                  config: TrainConfig | None = None) -> tuple[str, TrainedModel]:
    """Train on one lead or customer export the way the pipeline would, and hold out.

    The file is read and cleaned exactly as landing and ``clean/*`` do (formats decided from
    its values, the profile's typing and rules); ``profile`` defaults to the one its header
    matches. Returns (profile name, trained model with held-out and baseline metrics).
    """
    from leadscore_assets.clean.records import clean_records
    from leadscore_assets.ingest.readers import read_export

    profiles = load_profiles(profiles_dir)
    if profile is not None and profile not in profiles:
        raise KeyError(f"unknown profile {profile!r}; known: {', '.join(sorted(profiles))}")
    sources = [profiles[profile].source] if profile else ["leads", "customers"]
    export, source, error = None, None, None
    for source in sources:
        wanted = {profile: profiles[profile]} if profile else profiles
        try:
            export = read_export(source, path, wanted)
            break
        except ValueError as exc:
            error = exc
    if export is None:
        raise ValueError(str(error))
    chosen = profiles[export.stats["profile"]]
    raw = export.frame.copy()
    raw["_source_file"], raw["_ingested_at"] = path.name, pd.Timestamp("2026-01-01")
    result, resolved = clean_records(raw, source, chosen)
    kinds, names = resolved.feature_columns, resolved.original_names
    if source == "leads":
        frame = lead_features(result.clean, None)
        features, label = lead_feature_kinds(kinds, frame), "converted"
    else:
        frame = snapshot_features(result.clean, None)
        features, label = snapshot_feature_kinds(kinds, frame), "churned"
    has_time = source == "leads" and frame["created_at"].notna().any()
    trained = train_model(frame, name=f"{chosen.name}_{source}", task="binary", label=label,
                          features=features, config=config or TrainConfig(),
                          original_names=names, time_column="created_at" if has_time else None)
    return chosen.name, trained


def format_table(results: list[QualityResult]) -> str:
    head = (f"{'model':<24} {'held-out ROC-AUC':>16} {'95% bootstrap':>15} "
            f"{'baseline ROC-AUC':>16} {'bar':>6}  result  {'CV ROC-AUC (train part)':>23}  "
            f"held-out split")
    rows = [head, "-" * len(head)]
    for r in results:
        split = r.trained.split
        where = split["kind"] if split["kind"] == "stratified_random" else (
            f"{split['kind']}: {split['column']} >= {split['holdout_from'][:10]}")
        low, high = r.roc_auc_interval()
        rows.append(f"{r.name:<24} {r.roc_auc:>16.4f} {f'{low:.3f}-{high:.3f}':>15} "
                    f"{r.baseline_roc_auc:>16.4f} "
                    f"{r.bar:>6.3f}  {'pass' if r.passed else 'FAIL':<6}  "
                    f"{r.cv_roc_auc:>23.4f}  {where}")
    for r in results:
        if r.seed_roc_aucs:
            values = np.asarray(r.seed_roc_aucs)
            varies = ("held-out slice and model" if r.trained.split["kind"] == "stratified_random"
                      else "model only, same slice")
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            rows.append(f"{r.name}: over {len(values)} seeds ({varies}): mean "
                        f"{values.mean():.4f}, sd {sd:.4f}, "
                        f"{values.min():.4f}-{values.max():.4f}, "
                        f"{int((values >= r.bar).sum())}/{len(values)} at or above {r.bar:.3f}")
    return "\n".join(rows)


def format_tuning_table(results: list[QualityResult]) -> str:
    """Held-out ROC-AUC and training time without and with tuning, side by side (each
    result trained both ways: ``run_quality(..., other=...)``)."""
    head = (f"{'model':<24} {'untuned AUC':>11} {'tuned AUC':>9} {'change':>7}  "
            f"{'untuned CV':>10} {'tuned CV':>8}  {'untuned s':>9} {'tuned s':>7}  "
            f"{'trials':>6}  {'stop':<9} {'LightGBM from':<13} winner (untuned / tuned)")
    rows = [head, "-" * len(head)]
    for r in results:
        pairs = [(r.trained, r.train_seconds), (r.other, r.other_seconds)]
        (plain, plain_s), (tuned, tuned_s) = sorted(pairs, key=lambda p: p[0].tuning is not None)
        record = tuned.cv["tuning"]
        rows.append(
            f"{r.name:<24} {plain.metrics['roc_auc']:>11.4f} {tuned.metrics['roc_auc']:>9.4f} "
            f"{tuned.metrics['roc_auc'] - plain.metrics['roc_auc']:>+7.4f}  "
            f"{plain.cv['cv_score']:>10.4f} {tuned.cv['cv_score']:>8.4f}  "
            f"{plain_s:>9.1f} {tuned_s:>7.1f}  {record['trials']:>6}  "
            f"{record['stop_reason']:<9} {record['chosen']:<13} "
            f"{plain.selection.chosen} / {tuned.selection.chosen}")
    return "\n".join(rows)
