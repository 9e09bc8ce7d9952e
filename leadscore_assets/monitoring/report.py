"""Drift reports for people: a self-contained HTML page, a JSON summary, a markdown table.

The HTML has no external assets (inline CSS, histograms as inline SVG), so it opens from disk,
from a mail attachment or from an artifact store alike. No Dagster imports.
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path

from leadscore_assets.monitoring.drift import TEST_LABELS, DriftResult, FeatureDrift, Histogram

REF_COLOUR = "#4c78a8"
CUR_COLOUR = "#f58518"


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def markdown_table(result: DriftResult, limit: int = 30) -> str:
    """The per-feature table, most drifted first (for Dagster metadata)."""
    lines = [
        "| feature | type | test | statistic | threshold | drifted | PSI | missing ref → cur "
        "| new categories |",
        "|---|---|---|---:|---:|:---:|---:|---:|---|",
    ]
    rows = list(result.features)
    for extra in (result.prediction, result.label):
        if extra is not None:
            rows.append(extra)
    for f in rows[:limit]:
        name = f"**{f.feature}**" if f.important else f.feature
        if f is result.prediction:
            name = f"{f.feature} (prediction)"
        elif f is result.label:
            name = f"{f.feature} (label)"
        new = ", ".join(f.new_categories[:5]) + (" …" if len(f.new_categories) > 5 else "")
        lines.append(
            f"| {name} | {f.kind} | {f.test} | {_fmt(f.statistic)} | {f.threshold:g} | "
            f"{'yes' if f.drifted else 'no'} | {_fmt(f.psi, 3)} | "
            f"{f.missing_reference:.1%} → {f.missing_current:.1%} | {new} |"
        )
    if len(rows) > limit:
        lines.append(f"| … {len(rows) - limit} more in the HTML report | | | | | | | | |")
    return "\n".join(lines)


def verdict_text(result: DriftResult) -> str:
    if result.dataset_drifted:
        return "DRIFT: " + "; ".join(result.reasons)
    return (f"no dataset drift ({len(result.drifted_features)} of {len(result.features)} "
            f"features drifted, {result.share_drifted:.0%} < {result.share_threshold:.0%})")


def json_summary(result: DriftResult, **context: object) -> dict:
    """The summary as a JSON-ready dict, with context (model, version, window) on top."""
    return {**{k: _plain(v) for k, v in context.items()}, **result.summary()}


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def histogram_svg(hist: Histogram | None, width: int = 360, height: int = 120) -> str:
    """Grouped bars, reference vs current shares; inline SVG."""
    if hist is None or not hist.labels:
        return "<em>no values</em>"
    n = len(hist.labels)
    top = max(max(hist.reference, default=0), max(hist.current, default=0)) or 1.0
    pad_bottom, pad_top = 18, 6
    plot_h = height - pad_bottom - pad_top
    slot = width / n
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i, label in enumerate(hist.labels):
        for j, (share, colour) in enumerate(((hist.reference[i], REF_COLOUR),
                                             (hist.current[i], CUR_COLOUR))):
            h = plot_h * share / top
            x = i * slot + j * bar
            y = pad_top + plot_h - h
            tip = html.escape(f"{label}: {'reference' if j == 0 else 'current'} {share:.1%}")
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{tip}</title></rect>')
    for i in (0, n - 1) if n > 1 else (0,):
        anchor = "start" if i == 0 else "end"
        x = 0 if i == 0 else width
        parts.append(f'<text x="{x}" y="{height - 4}" font-size="10" text-anchor="{anchor}">'
                     f"{html.escape(hist.labels[i][:24])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _feature_row(f: FeatureDrift, role: str = "") -> str:
    cls = "drift" if f.drifted else "ok"
    name = html.escape(f.feature) + (" ★" if f.important else "") + (f" ({role})" if role else "")
    new = html.escape(", ".join(f.new_categories[:10]))
    return (
        f'<tr class="{cls}"><td>{name}</td><td>{f.kind}</td>'
        f"<td>{html.escape(TEST_LABELS.get(f.test, f.test))}</td>"
        f"<td>{_fmt(f.statistic)}</td><td>{f.threshold:g}</td><td>{_fmt(f.score, 3)}</td>"
        f"<td>{'yes' if f.drifted else 'no'}</td><td>{_fmt(f.psi, 3)}</td>"
        f"<td>{f.missing_reference:.1%} → {f.missing_current:.1%}"
        f"{' ⚠' if f.missing_drifted else ''}</td><td>{new}</td>"
        f"<td>{histogram_svg(f.histogram)}</td></tr>"
    )


def render_html(result: DriftResult, title: str, context: dict[str, object] | None = None) -> str:
    """The full report as one HTML document."""
    context = context or {}
    facts = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(_plain(v)))}</dd>"
                    for k, v in context.items())
    verdict_cls = "drift" if result.dataset_drifted else "ok"
    rows = [_feature_row(f) for f in result.features]
    if result.prediction is not None:
        rows.append(_feature_row(result.prediction, "prediction"))
    if result.label is not None:
        rows.append(_feature_row(result.label, "label"))
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
          vertical-align: middle; }}
tr.drift td:first-child {{ border-left: 4px solid #d62728; }}
tr.ok td:first-child {{ border-left: 4px solid #2ca02c; }}
.verdict {{ padding: 8px 12px; display: inline-block; border-radius: 4px; }}
.verdict.drift {{ background: #fde0df; }} .verdict.ok {{ background: #e0f3e0; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }}
dt {{ font-weight: 600; }}
.key span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict {verdict_cls}">{html.escape(verdict_text(result))}</p>
<dl>{facts}<dt>reference rows</dt><dd>{result.n_reference:,}</dd>
<dt>current rows</dt><dd>{result.n_current:,}</dd>
<dt>drifted share</dt><dd>{result.share_drifted:.1%} (threshold {result.share_threshold:.0%})</dd>
<dt>top features</dt><dd>{html.escape(", ".join(result.top_features) or "n/a")}</dd>
<dt>generated</dt><dd>{generated}</dd></dl>
<p class="key"><span style="background:{REF_COLOUR}"></span>reference
<span style="background:{CUR_COLOUR}"></span>current · ★ top feature by importance ·
score: 1 at the test's threshold, higher is more drift</p>
<table><thead><tr><th>feature</th><th>type</th><th>test</th><th>statistic</th>
<th>threshold</th><th>score</th><th>drifted</th><th>PSI</th><th>missing ref → cur</th>
<th>new categories</th><th>distribution</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
</body></html>
"""


def write_report(result: DriftResult, directory: Path, stem: str, title: str,
                 context: dict[str, object] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.json`` into ``directory``; returns both paths.

    Written to a temporary name first and renamed, so a reader never sees half a report.
    """
    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / f"{stem}.html"
    json_path = directory / f"{stem}.json"
    for path, text in (
        (html_path, render_html(result, title, context)),
        (json_path, json.dumps(json_summary(result, **(context or {})), indent=2,
                               default=str)),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return html_path, json_path
