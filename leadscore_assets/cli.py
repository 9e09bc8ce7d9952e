"""``leadscore``: what a person does by hand (sample exports, row counts, demo, serving)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from leadscore_core.settings import get_settings


@click.group()
def main() -> None:
    """leadscore: lead scores, plan recommendations and churn risk from business exports."""


@main.command("counts")
def counts() -> None:
    """Print the warehouse's row count per table."""
    import duckdb

    from leadscore_core.warehouse import table_row_counts

    settings = get_settings()
    if not settings.warehouse.exists():
        raise click.ClickException(f"no warehouse yet at {settings.warehouse}")
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        rows = table_row_counts(conn)
    width = max((len(f"{s}.{t}") for s, t, _ in rows), default=10)
    for schema, table, n in rows:
        click.echo(f"{schema + '.' + table:<{width}}  {n:>12,}")


@main.command("quarantine")
@click.argument("source", required=False,
                type=click.Choice(["leads", "payments", "invoices", "customers"]))
@click.option("--show", type=click.IntRange(min=0), default=0,
              help="Also print this many quarantined rows (file, row, rule, field, value).")
def quarantine(source: str | None, show: int) -> None:
    """What cleaning set aside: rows per source, file and rule, and rows removed by rule;
    and the fields the features stage set aside (a customer's amount in several currencies)."""
    import duckdb

    from leadscore_assets.features.snapshot import MONEY_SET_ASIDE

    settings = get_settings()
    if not settings.warehouse.exists():
        raise click.ClickException(f"no warehouse yet at {settings.warehouse}")
    sources = [source] if source else ["leads", "payments", "invoices", "customers"]
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        tables = {t for (t,) in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'quarantine'").fetchall()}
        for name in sources:
            if name not in tables:
                click.echo(f"{name}: not cleaned yet")
                continue
            click.echo(f"{name}:")
            for file, rule, n in conn.execute(
                    f"SELECT _source_file, rule, count(*) FROM quarantine.{name} "
                    "GROUP BY ALL ORDER BY ALL").fetchall():
                click.echo(f"  quarantined  {rule:<26} {n:>10,}  {file}")
            if "removed_rows" in tables:
                for rule, n in conn.execute(
                        "SELECT rule, rows FROM quarantine.removed_rows WHERE source = ? "
                        "ORDER BY rule", [name]).fetchall():
                    click.echo(f"  removed      {rule:<26} {n:>10,}")
            for file, row, rule, field, value in conn.execute(
                    f"SELECT _source_file, _row_number, rule, field, value "
                    f"FROM quarantine.{name} ORDER BY ALL LIMIT ?", [show]).fetchall():
                click.echo(f"    {file}:{row}  {rule}  {field}={value!r}")
            # a customer kept, with one field set aside (an amount in several currencies)
            fields = MONEY_SET_ASIDE if name == "customers" else None
            if fields and fields.split(".")[1] in tables:
                for file, rule, n in conn.execute(
                        f"SELECT _source_file, rule, count(*) FROM {fields} "
                        "GROUP BY ALL ORDER BY ALL").fetchall():
                    click.echo(f"  field set aside  {rule:<22} {n:>10,}  {file}")
                for file, row, rule, field, value in conn.execute(
                        f"SELECT _source_file, _row_number, rule, field, value FROM {fields} "
                        "ORDER BY ALL LIMIT ?", [show]).fetchall():
                    click.echo(f"    {file}:{row}  {rule}  {field}={value!r}")


@main.command("models")
@click.argument("model", required=False)
def models(model: str | None) -> None:
    """List registered model versions with their aliases and held-out metrics, the live
    evidence on a challenger scored in the champion's shadow, and the champion's estimate."""
    from leadscore_core.registry import (
        CHAMPION,
        MODELS,
        PRIMARY_METRIC,
        TAG_CANDIDATE,
        TAG_CANDIDATE_REASON,
        TAG_GATE,
        ModelRegistry,
        registered_name,
    )
    from leadscore_core.shadow import gate_evidence

    registry = ModelRegistry(get_settings().mlflow_uri)
    names = [model] if model else list(MODELS)
    for name in names:
        try:
            versions = registry.versions(name)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
        click.echo(f"{MODELS.get(name.replace('-', '_'), name)}  "
                   f"(champion history: {', '.join(registry.history(name)) or '-'})")
        if not versions:
            click.echo("  no versions yet")
            continue
        for v in versions:
            task = v.tags.get("leadscore.task", "binary")
            metric = PRIMARY_METRIC.get(task, "roc_auc")
            score = v.metrics.get(metric)
            baseline = v.metrics.get(f"baseline_{metric}")
            figures = (f"{metric} {score:.4f}" if score is not None else f"{metric} -") + (
                f"  baseline {baseline:.4f}" if baseline is not None else "")
            click.echo(f"  v{v.version:<4} {v.created:%Y-%m-%d %H:%M}  "
                       f"{v.tags.get(TAG_CANDIDATE, 'lightgbm'):<9} {figures:<34} "
                       f"{','.join(v.aliases) or '-':<38} {v.tags.get(TAG_GATE, '')}"
                       + (f"  profile {v.tags['leadscore.profile']}"
                          if v.tags.get("leadscore.profile") else ""))
            if v.tags.get(TAG_CANDIDATE_REASON):
                click.echo(f"         {v.tags[TAG_CANDIDATE_REASON]}")
        # beside the held-out figures: live evidence on the challenger, the champion's estimate
        key = registered_name(name)
        short = next(k for k, v in MODELS.items() if v == key)
        champion, challenger = registry.by_alias(short, CHAMPION), registry.challenger(short)
        evidence = gate_evidence(
            get_settings().root / "monitoring", short,
            str(champion.version) if champion else None,
            str(challenger.version) if challenger else None)
        if challenger is not None and evidence.live is None:
            click.echo(f"  live v{challenger.version}: scored in the shadow of the champion; "
                       "no evidence published yet (monitoring/shadow_evidence)")
        for line in evidence.lines():
            click.echo(line)
        if short == "plan":
            click.echo(plan_prices_line())


def plan_prices_line() -> str:
    """The plan catalogue's prices as the service shows them, and the currency they are in."""
    from leadscore_core.money import PaymentCurrencies, payment_currencies_path
    from leadscore_core.plans import PlanCatalogue

    settings = get_settings()
    catalogue = PlanCatalogue.load(settings.plan_catalogue_path)
    currency = PaymentCurrencies(payment_currencies_path(settings.serving_snapshot),
                                 catalogue.currency).plan_prices
    prices = ", ".join(
        f"{p['plan']} {currency.text(float(p['monthly_price']))} a month "
        f"({currency.text(float(p['first_month_price']))} with the setup fee)"
        for p in catalogue.price_list(currency))
    return f"  prices: {prices}\n  currency: {currency.description}"


@main.command("rollback")
@click.argument("model")
def rollback(model: str) -> None:
    """Move MODEL's ``champion`` alias back to the previous champion."""
    from leadscore_core.registry import ModelRegistry, RollbackError, registered_name

    try:
        name = registered_name(model)
        before, after = ModelRegistry(get_settings().mlflow_uri).rollback(name)
    except (KeyError, RollbackError) as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    click.echo(f"{name}: champion moved from version {before} back to version {after}")


def _land_source(source: str, files: tuple[Path, ...], *, again: bool, run_log,
                 instance=None) -> tuple[int, int, int]:
    """Land ``files`` (default: the inbox) of ``source``, one line per file; returns
    (landed, already landed, failed)."""
    import shutil

    from leadscore_assets.ingest.assets import land_file
    from leadscore_assets.ingest.landing import LandingZone
    from leadscore_assets.resources import warehouse_resource
    from leadscore_assets.runlog import QUIET_CONSOLE

    settings = get_settings()
    landing = LandingZone.from_settings(settings)
    inbox = landing.inbox(source)
    inbox.mkdir(parents=True, exist_ok=True)
    names = []
    for path in files:
        if path.resolve().parent != inbox.resolve():
            shutil.copy2(path, inbox / path.name)
        names.append(path.name)
    names = names or [f.name for f in landing.list_files(source)]
    warehouse = warehouse_resource(settings)
    ledger = landing.ledger()
    landed = known = failed = 0
    for name in names:
        earlier = ledger.find(source, landing.sha256(source, name))
        if earlier is not None and not again:
            known += 1
            same = "" if earlier.file == name else f" as {earlier.file}"
            click.echo(f"{name}: already landed{same} ({earlier.rows:,} rows, "
                       f"{earlier.landed_at}); nothing landed (--again to land it anyway)")
            continue
        result = land_file(source, name, landing=landing, warehouse=warehouse,
                           instance=instance, run_config={"loggers": QUIET_CONSOLE})
        run_log.write_events(result)
        if result.success:
            landed += 1
            [event] = result.asset_materializations_for_node(f"raw__{source}")
            meta = {k: v.value for k, v in event.metadata.items()}
            line = f"{name}: {meta['rows_landed']:,} rows -> raw.{source}"
            if source == "payments":
                line += f" (kept {_counts(meta.get('objects_kept'))}; skipped " \
                        f"{_counts(meta.get('objects_skipped'))})"
            if meta.get("malformed_rows"):
                line += f", {meta['malformed_rows']:,} malformed row(s) set aside"
            click.echo(line)
            if meta.get("warning"):
                click.echo(f"{name}: WARNING: {meta['warning'].split(': ', 1)[-1]}")
            continue
        failed += 1
        for step_event in result.all_events:
            if step_event.is_step_failure:
                data = step_event.step_failure_data
                user = data.user_failure_data
                reason = (user.description if user and user.description
                          else data.error.message.strip().splitlines()[-1] if data.error
                          else "failed")
                copy = user.metadata.get("quarantined_path") if user else None
                where = f" (copy: {copy.value})" if copy is not None else ""
                click.echo(f"{name}: FAILED: {reason.removeprefix(name + ': ')}{where}")
    return landed, known, failed


def _counts(counts: dict | None) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted((counts or {}).items())) or "none"


@main.command("land")
@click.argument("source", type=click.Choice(["leads", "payments", "invoices", "customers",
                                                 "predictions"]))
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--again", is_flag=True,
              help="Land files whose bytes have landed before too (replaces their rows).")
def land(source: str, files: tuple[Path, ...], again: bool) -> None:
    """Land FILES (default: every file in the inbox) into raw.SOURCE now, without the daemon.

    A file outside the inbox is copied into it first (never moved). Bytes that have landed
    before, by any path (this command, the demo, the sensors), land nothing unless --again.
    Runs are recorded in the Dagster instance when DAGSTER_HOME is set; Dagster's events go
    to a log file under data/logs/.
    """
    import os

    import dagster as dg

    from leadscore_assets.runlog import RunLog

    settings = get_settings()
    if not files and not any(settings.inbox(source).glob("*")):
        raise click.ClickException(f"nothing to land: {settings.inbox(source)} is empty")
    run_log = RunLog(settings.root, f"land-{source}")
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    with run_log.capturing():
        _, _, failed = _land_source(source, files, again=again, run_log=run_log,
                                    instance=instance)
    click.echo(f"log: {run_log.path}")
    if failed:
        raise click.ClickException(
            f"{failed} file(s) could not be landed (copies and reasons in "
            f"{settings.quarantine(source)})")


@main.group("profile")
def profile() -> None:
    """Source profiles: how a company's lead or customer export maps to the models."""


@profile.command("draft")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", type=click.Choice(["leads", "customers"]), default="leads",
              show_default=True)
@click.option("--name", default=None, help="Profile name (default: from the file name).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the YAML (default: data/profiles/<name>.yaml).")
def profile_draft(file: Path, source: str, name: str | None, output: Path | None) -> None:
    """Write a starter profile YAML from FILE's header and values: kinds inferred, id,
    created time, email and label suggested, decimal mark and date order found."""
    from leadscore_assets.ingest.csvfiles import UnreadableFile
    from leadscore_assets.ingest.draft import draft_profile, write_draft
    from leadscore_core.profiles import Profile

    try:
        drafted = draft_profile(file, source, name)
    except UnreadableFile as exc:
        raise click.ClickException(str(exc)) from exc
    Profile.model_validate(drafted)  # the draft is a profile the loader accepts
    target = output or get_settings().user_profiles_dir / f"{drafted['name']}.yaml"
    try:
        write_draft(drafted, target)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    features = drafted.get("features", {})
    click.echo(f"{target}: profile {drafted['name']!r} for {source}: id "
               f"{drafted['id']['column']!r}, created "
               f"{drafted.get('created_at', {}).get('column')!r}, email "
               f"{drafted.get('email')!r}, label {drafted.get('label', {}).get('column')!r}; "
               + ", ".join(f"{len(v)} {k}" for k, v in features.items())
               + (f"; decimal {drafted['decimal']!r}" if "decimal" in drafted else "")
               + (f"; date order {drafted['date_order']}" if "date_order" in drafted else ""))
    click.echo("check it, then land files of that shape: it is used with no other setting")


@main.command("sample-data")
@click.option("--inbox", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Inbox root holding one folder per source (default: data/inbox).")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Same seed, same bytes.")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Multiplies every volume (200: millions of invoice lines).")
@click.option("--gzip", "gzip_invoices", is_flag=True,
              help="Write the invoice lines as .csv.gz.")
def sample_data(inbox: Path | None, seed: int, scale: float, gzip_invoices: bool) -> None:
    """Write a year of realistic sample exports for all four sources into the inbox."""
    from leadscore_assets.sample_data import write_sample_files

    root = inbox or get_settings().root / "inbox"
    try:
        written = write_sample_files(root, seed=seed, scale=scale, gzip_invoices=gzip_invoices)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    width = max(len(str(f.path)) for f in written)
    for f in written:
        click.echo(f"{f.source:<10} {str(f.path):<{width}}  {f.rows:>12,}")
    click.echo(f"{sum(f.rows for f in written):,} rows (JSON: objects or events) in "
               f"{len(written)} files under {root}")


@main.command("serve")
@click.option("--host", default=None, help="Interface to bind (default: LEADSCORE_API_HOST, "
                                            "127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: LEADSCORE_API_PORT, 8000).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes; each loads the models and follows the champion alias.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="One log line per request (costs throughput).")
def serve(host: str | None, port: int | None, workers: int, access_log: bool) -> None:
    """Serve the prediction API (Litestar on uvicorn); OpenAPI document at /schema."""
    import os
    import shutil

    import uvicorn

    settings = get_settings()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker counts its own requests; /metrics adds them up from this folder.
        metrics_dir = settings.root / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run("api.app:create_app", factory=True, host=host or settings.api_host,
                port=port or settings.api_port, workers=workers, access_log=access_log,
                log_level="info",
                # a worker still loading its models on a busy host is not taken for dead
                timeout_worker_healthcheck=120)


@main.command("demo")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Sample-data volume multiplier.")
@click.pass_context
def demo(ctx: click.Context, scale: float) -> None:
    """Sample exports (only if the whole inbox is empty), land every inbox file, run the
    main job; one line per file and per finished step, Dagster's events to a log file."""
    import os

    import dagster as dg

    from leadscore_assets.runlog import RunLog
    from leadscore_core.settings import SOURCES

    settings = get_settings()
    if not any(any(settings.inbox(s).glob("*")) for s in SOURCES if settings.inbox(s).is_dir()):
        ctx.invoke(sample_data, inbox=None, seed=7, scale=scale, gzip_invoices=False)
    from leadscore_assets.models.checks import CHAMPION_GATE

    run_log = RunLog(settings.root, "demo")
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    instance = instance or dg.DagsterInstance.ephemeral()
    with run_log.capturing():
        for source in SOURCES:
            if not any(settings.inbox(source).glob("*")):
                click.echo(f"== {source}: inbox empty, nothing to land")
                continue
            click.echo(f"== landing {source}")
            _land_source(source, (), again=False, run_log=run_log, instance=instance)

        from leadscore_assets.definitions import defs

        click.echo("== running the main job (clean, features, models, scores, drift)")
        job = defs.resolve_job_def("main")
        job = job.with_logger_defs(run_log.job_loggers(click.echo))
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        run_config=run_log.job_run_config())
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    checks = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    click.echo(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}; "
               f"{sum(c.passed for c in checks)}/{len(checks)} checks passed")
    for c in checks:
        if c.check_name == CHAMPION_GATE:  # the gate's verdict: promoted, or kept and why
            click.echo(f"  {c.asset_key.to_user_string()}: {c.description}")
        elif not c.passed:
            click.echo(f"  check failed: {c.asset_key.to_user_string()} {c.check_name}")
    ctx.invoke(counts)
    ctx.invoke(models, model=None)
    click.echo(f"exports: {settings.exports_dir}")
    click.echo(f"log: {run_log.path}")
    if failed:
        raise click.ClickException(f"steps failed: {', '.join(failed)} (see {run_log.path})")


@main.command("evaluate")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("../shared/data"), show_default=True,
              help="Folder holding the public data sets.")
@click.option("--model", "names", multiple=True,
              help="Only this model (repeatable): telco_snapshot_churn, xeducation_conversion, "
                   "codepro_conversion, retail_activity_churn.")
@click.option("--file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A lead or customer export to train and hold out on.")
@click.option("--profile", "profile_name", default=None,
              help="The profile of --file (default: the one its header matches).")
@click.option("--seeds", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also train with seeds 0..N-1 and print the spread of the held-out "
                   "ROC-AUC (a new held-out slice per seed where the split is random).")
@click.option("--tuning", type=click.Choice(["both", "default", "on", "off"]),
              default="both", show_default=True,
              help="Train with LightGBM tuning off and on and print both (the bars judge "
                   "the default, LEADSCORE_TUNING), or only the default, on, or off.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Tuning's time budget per model in seconds "
                   "(default: LEADSCORE_TUNING_BUDGET_SECONDS).")
def evaluate(data_dir: Path, names: tuple[str, ...], seeds: int, file: Path | None,
             profile_name: str | None, tuning: str, budget: float | None) -> None:
    """Train the reference models on the public data sets; print held-out ROC-AUC vs bars,
    and (by default) the same with LightGBM tuning off and on, with the time each took.

    With --file (and optionally --profile): train on that lead or customer export as the
    pipeline would, and print its held-out metrics against the baseline."""
    from leadscore_assets.models.quality import (
        BUILDERS,
        format_table,
        format_tuning_table,
        run_quality,
    )
    from leadscore_assets.models.training import TrainConfig

    default = TrainConfig() if budget is None else TrainConfig(tuning_budget_seconds=budget)
    config = {"both": default, "default": default, "on": replace(default, tune=True),
              "off": replace(default, tune=False)}[tuning]
    other = replace(default, tune=not default.tune) if tuning == "both" else None

    if file is not None:
        from leadscore_assets.models.quality import evaluate_file

        try:
            used, trained = evaluate_file(file, profile_name, get_settings().user_profiles_dir,
                                          config)
        except (KeyError, ValueError) as exc:
            raise click.ClickException(str(exc.args[0] if exc.args else exc)) from exc
        split = trained.split
        click.echo(f"{file.name} (profile {used}): held-out ROC-AUC "
                   f"{trained.metrics['roc_auc']:.4f}, baseline "
                   f"{trained.baseline_metrics['roc_auc']:.4f}; "
                   f"{trained.row_counts['train']:,} training rows, "
                   f"{trained.row_counts['holdout']:,} held out ({split['kind']})")
        return

    unknown = sorted(set(names) - set(BUILDERS))
    if unknown:
        raise click.BadParameter(f"unknown model(s) {unknown}; known: {sorted(BUILDERS)}",
                                 param_hint="--model")
    try:
        results = run_quality(data_dir, list(names) or None, config, seeds=seeds, other=other)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    said = (f"on, budget {config.tuning_budget_seconds:g}s per model" if config.tune
            else "off")
    click.echo(f"LightGBM tuning {said}{' (the default)' if config.tune == default.tune else ''}")
    click.echo(format_table(results))
    for r in results:
        click.echo(f"{r.name}: features {r.feature_seconds:.1f}s, training "
                   f"{r.train_seconds:.1f}s, {r.trained.row_counts['train']:,} training rows, "
                   f"{r.trained.row_counts['holdout']:,} held out")
        if "tuning" in r.trained.cv:
            t = r.trained.cv["tuning"]
            click.echo(f"  tuning: {t['trials']} trials in {t['seconds']:.1f}s "
                       f"({t['stop_reason']}), CV {t['grid_cv_score']:.4f} -> "
                       f"{r.trained.cv['cv_score']:.4f}, LightGBM settings from {t['chosen']}")
    if other is not None:
        click.echo(f"\nWithout and with tuning (budget {default.tuning_budget_seconds:g}s per "
                   "model), same features and held-out rows:")
        click.echo(format_tuning_table(results))
    if not all(r.passed for r in results):
        raise SystemExit(1)


@main.command("drift")
@click.argument("model", required=False)
def drift(model: str | None) -> None:
    """Print the latest drift verdict and performance estimate per model (from
    data/monitoring/<model>_drift.json and <model>_estimated.json)."""
    import json

    from leadscore_core.estimation import summary_lines
    from leadscore_core.registry import MODELS

    if model is not None and model not in MODELS:
        raise click.BadParameter(f"unknown model {model!r}; known: {', '.join(MODELS)}",
                                 param_hint="MODEL")
    folder = get_settings().root / "monitoring"
    shown = 0
    for name in [model] if model else list(MODELS):
        path = folder / f"{name}_drift.json"
        estimated = folder / f"{name}_estimated.json"
        if path.exists():
            summary = json.loads(path.read_text())
            shown += 1
            verdict = "DRIFT" if summary["dataset_drifted"] else "ok"
            click.echo(f"{name} v{summary.get('champion version', '?')}: {verdict}, "
                       f"{len(summary['drifted_features'])} of {len(summary['features'])} "
                       f"features drifted ({summary['share_drifted']:.0%}); "
                       f"{summary['n_current']:,} current vs {summary['n_reference']:,} "
                       "reference rows")
            for reason in summary["reasons"]:
                click.echo(f"  - {reason}")
            for f in summary["features"][:5]:
                stat = "n/a" if f["statistic"] is None else f"{f['statistic']:.4g}"
                click.echo(f"  {f['feature']:<32} {f['test']:<14} {stat}"
                           f"{'  drifted' if f['drifted'] else ''}")
            click.echo(f"  report: {path.with_suffix('.html')}")
        if estimated.exists():
            if not path.exists():
                shown += 1
                click.echo(f"{name}:")
            for line in summary_lines(json.loads(estimated.read_text())):
                click.echo(line)
    if not shown:
        raise click.ClickException(f"no drift report yet under {folder} (materialise "
                                   "monitoring/<model>_drift first)")
