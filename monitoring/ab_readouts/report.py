"""The readout pages: one self-contained HTML page per experiment and date (plots inline), and an index.

Plots (the shared renderer's Agg figures, ``training.shared.report``): the primary metric's cumulative relative
lift with its always-valid interval at every look, the primary metric per variant over time, and the observed
share of units per variant against the plan. The JSON record beside each page is the machine-readable readout;
the page shows the same numbers.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

from training.shared.report import document, figure, finite, html_table, percent_formatter, png_base64

STATUS_COLOURS = {"ship": "#1a7f37", "keep running": "#9a6700", "stop": "#cf222e", "invalid": "#6e7781",
                  "unregistered": "#6e7781", "mismatch": "#6e7781"}


def _plots(record: dict) -> list[tuple[str, str]]:

    history = record["history"]
    dates = [dt.date.fromisoformat(h["date"]) for h in history]
    variants = record["variants"]
    out = []

    fig = figure(8, 3.6, dpi=100, layout=None)
    ax = fig.subplots()
    for j, variant in enumerate(variants[1:]):
        lift = [h["lift"][j] for h in history]
        low = [h["ci_low"][j] for h in history]
        high = [h["ci_high"][j] for h in history]
        finite = [i for i in range(len(dates)) if None not in (lift[i], low[i], high[i])]
        if not finite:
            continue
        ds = [dates[i] for i in finite]
        ax.fill_between(ds, [low[i] for i in finite], [high[i] for i in finite], alpha=0.25,
                        label=f"{variant}: always-valid {1 - record['alpha']:.0%} interval")
        ax.plot(ds, [lift[i] for i in finite], marker=".", label=f"{variant}: cumulative lift")
    ax.axhline(0, color="black", lw=0.8)
    mde = record["min_detectable_effect"]
    ax.axhline(mde, color="grey", ls="--", lw=0.8, label=f"minimum detectable effect {mde:+.0%}")
    ax.axhline(-mde, color="grey", ls="--", lw=0.8)
    ax.set_ylabel(f"relative lift, {record['primary_metric']}")
    ax.yaxis.set_major_formatter(percent_formatter(1.0))
    ax.set_ylim(-4 * mde, 4 * mde)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    out.append(("Cumulative lift with its sequential interval", png_base64(fig, dpi=90)))

    fig = figure(10, 3.2, dpi=100, layout=None)
    axes = fig.subplots(1, 2)
    for i, variant in enumerate(variants):
        axes[0].plot(dates, [h["primary_mean"][i] for h in history], label=variant)
        total = [sum(h["units"]) for h in history]
        axes[1].plot(dates, [h["units"][i] / t if t else None for h, t in zip(history, total, strict=True)],
                     label=f"{variant} (planned {record['planned_weights'][i]:.0%})")
        axes[1].axhline(record["planned_weights"][i], color=f"C{i}", ls=":", lw=0.8)
    axes[0].set_title(f"{record['primary_metric']} per variant", fontsize=9)
    axes[1].set_title("share of exposed units per variant", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    out.append(("Per-variant metrics and split", png_base64(fig, dpi=90)))

    metrics = record["metrics"]
    names = list(metrics)
    fig = figure(2.6 * len(names), 2.8, dpi=100, layout=None)
    axes = fig.subplots(1, len(names))
    axes = axes if len(names) > 1 else [axes]
    for ax, name in zip(axes, names, strict=True):
        means = [metrics[name]["per_variant"][v]["mean"] or 0.0 for v in variants]
        ax.bar(variants, means, color=[f"C{i}" for i in range(len(variants))])
        ax.set_title(f"{name}\n({metrics[name]['unit']})", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    out.append(("Every metric per variant on the run date", png_base64(fig, dpi=90)))
    return out


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def _p(value) -> str:
    """A p-value, or n/a where it is undefined (no units yet: JSON keeps NaN as null)."""
    return "n/a" if value is None else f"{value:.3g}"


def _num(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"


STYLE = (  # beside the shared page style: the coloured status badge and the decision's reason
    ".status{color:#fff;padding:3px 10px;border-radius:4px;font-weight:bold}"
    ".reason{margin:.6em 0 1em;font-size:15px}small{color:#57606a}td,th{text-align:left}"
)


def render_readout(record: dict) -> str:
    """The HTML page of one readout record."""
    d = record["decision"]
    colour = STATUS_COLOURS.get(d["status"], "#6e7781")
    variants = record["variants"]
    parts = [
        f"<h1>{html.escape(record['name'])} <small>({html.escape(record['experiment_id'])})</small></h1>",
        f"<p>Readout of {record['run_date']} · data through {record['analysis_end']} · window "
        f"{record['start_date']}..{record['end_date']} (day {record['days_run']}"
        f"{', planned end reached' if record['planned_end_reached'] else ''}) · alpha {record['alpha']}</p>",
        f"<p><span class='status' style='background:{colour}'>{html.escape(d['status'].upper())}</span>"
        f"{' ' + html.escape(d['variant']) if d['variant'] else ''}</p>",
        f"<p class='reason'>{html.escape(d['reason'])}</p>",
    ]
    srm = record["srm"]
    parts.append("<h2>Split health</h2>")
    parts.append(html_table(
        ["variant", "units", "observed share", "planned share"],
        [[v, srm["counts"][i], _num(srm["observed_shares"][i]), _num(srm["expected_shares"][i])]
         for i, v in enumerate(variants)],
    ))
    parts.append(f"<p>Sequential SRM p = {_p(srm['sequential_p'])} (anytime-valid), chi-square p = "
                 f"{_p(srm['chi_square_p'])}; the split fails below {srm['alpha']}.</p>")
    if record.get("design"):
        d_ = record["design"]
        parts.append(f"<p>Design check: with the units so far and a control rate of {d_['control_rate']:.2%}, a "
                     f"{d_['min_detectable_effect']:.0%} relative lift would be found with probability "
                     f"{d_['fixed_horizon_power']:.0%} by a fixed-horizon test and at least "
                     f"{d_['sequential_power_at_this_look']:.0%} by the always-valid interval at this look.</p>")
    if record["units_in_two_variants_dropped"]:
        parts.append(f"<p>{record['units_in_two_variants_dropped']} unit(s) logged in two variants were left out "
                     "(their outcomes cannot be attributed).</p>")
    if record["registry_mismatches"]:
        parts.append("<p><b>Registry vs experiments table:</b> " + html.escape("; ".join(
            record["registry_mismatches"])) + "</p>")
    for title, png in _plots(record):
        parts.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{png}'>")
    parts.append("<h2>Metrics (always-valid, cumulative to the run date)</h2>")
    rows = []
    for name, m in record["metrics"].items():
        for v, s in m["sequential"].items():
            cuped = m["cuped"]
            rows.append([
                name, m["role"], m["unit"],
                " / ".join(f"{u}: {_num(m['per_variant'][u]['mean'])} (n={m['per_variant'][u]['n']})"
                           for u in variants),
                v, _pct(s["relative_lift"]), f"{_pct(s['ci_low'])}..{_pct(s['ci_high'])}",
                f"{_p(s['p_value_holm'])}",
                "" if cuped is None else f"{cuped['variance_reduction']:.1%}",
                "" if m["threshold"] is None else f"{m['threshold']:+.0%}: "
                + record["guardrails"].get(name, {}).get(v, ""),
            ])
    parts.append(html_table(["metric", "role", "unit", "per variant", "treatment", "relative lift",
                         "always-valid CI", "p (Holm)", "CUPED variance reduction", "guardrail"], rows))
    if record["fixed_horizon"]:
        parts.append("<h2>Fixed-horizon result on the planned end date</h2><p>Classical tests, valid only "
                     "because this is the planned end; reported beside the sequential decision, never instead "
                     "of it.</p>")
        rows = []
        for name, results in record["fixed_horizon"].items():
            for r in results:
                boot = ("" if r.get("bootstrap_ci_low") is None
                        else f"{_num(r['bootstrap_ci_low'])}..{_num(r['bootstrap_ci_high'])}")
                cuped = r.get("cuped")
                rows.append([name, r["variant"], r["test"], _num(r["control_mean"]), _num(r["treatment_mean"]),
                             _num(r["difference"]), f"{_num(r['ci_low'])}..{_num(r['ci_high'])}", boot,
                             _pct(r["relative_lift"]), f"{_p(r['p_value'])}", f"{_p(r['p_value_holm'])}",
                             "" if not cuped else f"{_num(cuped['difference'])} (p {_p(cuped['p_value'])}, "
                             f"var -{cuped['variance_reduction']:.1%})"])
        parts.append(html_table(["metric", "treatment", "test", "control", "treatment mean", "difference", "CI",
                             "bootstrap CI", "relative lift", "p", "p (Holm)", "CUPED difference"], rows))
    parts.append("<h2>Method</h2><ul>" + "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in record["method"].items()) + "</ul>")
    parts.append("<h2>Daily history</h2>")
    parts.append(html_table(
        ["date", "units", "SRM p", "lift", "always-valid CI", "p (Holm)", "status"],
        [[h["date"], " / ".join(map(str, h["units"])), f"{_p(h['srm_sequential_p'])}",
          " / ".join(_pct(x) for x in h["lift"]),
          " / ".join(f"{_pct(lo)}..{_pct(hi)}" for lo, hi in zip(h["ci_low"], h["ci_high"], strict=True)),
          " / ".join(f"{_p(p)}" for p in h["p_value_holm"]), h["status"]] for h in reversed(record["history"])],
    ))
    parts.append("<p><a href='../../dt=" + record["run_date"] + "/index.html'>all experiments</a> · "
                 "<a href='readout.json'>readout.json</a></p>")
    return document(f"{record['experiment_id']} {record['run_date']}", "".join(parts), STYLE)


def render_index(day: str, entries: list[dict]) -> str:
    """The index page: every experiment of the date with its status, reason and a link to its readout."""
    rows = []
    for e in entries:
        colour = STATUS_COLOURS.get(e["status"], "#6e7781")
        link = f"<a href='../{html.escape(e['experiment_id'])}/dt={day}/readout.html'>" \
               f"{html.escape(e['experiment_id'])}</a>" if e.get("page") else html.escape(e["experiment_id"])
        rows.append(
            f"<tr><td>{link}</td><td>{html.escape(e['name'])}</td><td><span class='status' "
            f"style='background:{colour}'>{html.escape(e['status'])}</span></td><td>"
            f"{html.escape(e.get('window', ''))}</td><td>{html.escape(e['reason'])}</td></tr>"
        )
    body = (
        f"<h1>A/B readouts of {day}</h1><table><tr><th>experiment</th><th>name</th><th>status</th>"
        f"<th>window</th><th>reason</th></tr>{''.join(rows)}</table>"
    )
    return document(f"A/B readouts {day}", body, STYLE)


def write_pages(root: Path, day: dt.date, records: list[dict], extra_entries: list[dict]) -> dict[str, str]:
    """Write each record's ``readout.json`` and ``readout.html`` and the date's index; return what was written."""
    written = {}
    entries = []
    for record in records:
        folder = root / record["experiment_id"] / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        record = finite(record)
        (folder / "readout.json").write_text(json.dumps(record, indent=2, allow_nan=False))
        (folder / "readout.html").write_text(render_readout(record))
        written[record["experiment_id"]] = str(folder / "readout.html")
        entries.append({
            "experiment_id": record["experiment_id"],
            "name": record["name"],
            "status": record["decision"]["status"],
            "variant": record["decision"]["variant"],
            "reason": record["decision"]["reason"],
            "window": f"{record['start_date']}..{record['end_date']} (day {record['days_run']})",
            "page": True,
        })
    entries.extend(extra_entries)
    index_dir = root / f"dt={day.isoformat()}"
    index_dir.mkdir(parents=True, exist_ok=True)
    (index_dir / "index.json").write_text(json.dumps({"date": day.isoformat(), "experiments": entries}, indent=2))
    (index_dir / "index.html").write_text(render_index(day.isoformat(), entries))
    written["index"] = str(index_dir / "index.html")
    return written
