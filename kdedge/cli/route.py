"""``kdedge route fit`` and ``kdedge route simulate``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kdedge import jsonout
from kdedge.cli.console import emit_json, info, percent, rich_tracker, stdout
from kdedge.cli.options import open_teacher, teacher_options

METRICS = (
    ("fallback_rate", "fallback"),
    ("clarify_rate", "clarify"),
    ("system_accuracy", "system acc."),
    ("bad_outcome_rate", "bad outcomes"),
    ("unsafe_false_accept_rate", "unsafe accepts"),
)


@click.group("route")
def command():
    """Fit the confidence/risk router on a holdout, and price its rates at your traffic.

    \b
    Examples:
      kdedge route fit bundle/ --data val.jsonl --target-fallback-rate 0.05 --out policy.json
      kdedge route simulate --report policy.json --requests-per-day 10e6 \\
          --student-cost 0.0002 --teacher-cost 0.003
    """


@command.command("fit")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labeled holdout.")
@click.option(
    "--target-fallback-rate", type=click.FloatRange(0, 1), help="Teacher share to stay in."
)
@click.option("--target-accuracy", type=click.FloatRange(0, 1), help="System accuracy to reach.")
@click.option(
    "--max-clarify-rate",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="At most this share of messages may get a clarifying question.",
)
@click.option(
    "--unsafe-weight",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Extra cost of a high-risk message answered by the student, in wrong answers.",
)
@click.option("--risk-label", "risk_labels", multiple=True, help="A high-risk label (repeat).")
@click.option("--risk-pattern", "risk_patterns", multiple=True, help="A high-risk regex (repeat).")
@click.option("--test-data", type=click.Path(path_type=Path), help="Also report on this set.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report.")
@click.option("--apply", is_flag=True, help="Write the fitted policy into the bundle manifest.")
@click.option("--artifact", help="Artifact to run  [default: best for this host]")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@teacher_options
def fit(
    bundle,
    data,
    target_fallback_rate,
    target_accuracy,
    max_clarify_rate,
    unsafe_weight,
    risk_labels,
    risk_patterns,
    test_data,
    out,
    apply,
    artifact,
    quiet,
    as_json,
    teacher_url,
    teacher_model,
    teacher_key_env,
    teacher_timeout,
):
    """Choose router thresholds on a labeled holdout for a target fallback rate or accuracy.

    Searches the confidence and risk thresholds and the low-confidence action (clarify or
    fallback), keeps policies within the target and --max-clarify-rate, and picks the best
    by system accuracy minus bad outcomes minus the weighted unsafe accepts. Reports it next
    to a plain confidence threshold at the same fallback rate. Without --teacher the teacher
    is assumed always right (an oracle); with it, every holdout message is sent to it.

    \b
    Examples:
      kdedge route fit bundle/ --data val.jsonl --target-fallback-rate 0.05 \\
          --risk-label report_fraud --risk-label freeze_account --out policy.json
      kdedge route fit bundle/ --data val.jsonl --target-accuracy 0.95 \\
          --teacher kdedge+http://127.0.0.1:8081 --test-data test.jsonl --apply
    """
    from kdedge.data.io import load_examples
    from kdedge.runtimes.loader import load
    from kdedge.runtimes.routefit import collect, evaluate_thresholds, fit_thresholds
    from kdedge.runtimes.router import RouterPolicy, read_policy

    rt = load(bundle, artifact=artifact)
    base = read_policy(None, rt.manifest)
    risk_labels = tuple(risk_labels) or base.risk_labels
    risk_patterns = tuple(risk_patterns) or base.risk_patterns
    teacher = open_teacher(teacher_url, teacher_model, teacher_key_env, teacher_timeout)
    track = rich_tracker(quiet or as_json)

    def gather(path):
        rows = load_examples(path)
        return collect(
            rt,
            [r.text for r in rows],
            [r.label for r in rows],
            risk_labels=risk_labels,
            risk_patterns=risk_patterns,
            teacher=teacher,
            track=track,
        )

    try:
        holdout, holdout_info = gather(data)
        result = fit_thresholds(
            holdout,
            target_fallback_rate=target_fallback_rate,
            target_accuracy=target_accuracy,
            max_clarify_rate=max_clarify_rate,
            unsafe_weight=unsafe_weight,
        )
        if test_data:
            test, test_info = gather(test_data)
            result.test = {
                **evaluate_thresholds(
                    test, result.thresholds, result.plain["confidence_threshold"], unsafe_weight
                ),
                "data": test_info,
            }
    finally:
        if teacher is not None:
            teacher.close()
    policy = RouterPolicy.from_dict(
        {
            **base.to_dict(),
            **result.thresholds,
            "risk_labels": risk_labels,
            "risk_patterns": risk_patterns,
        }
    )
    report = {
        "policy": policy.to_dict(),
        "fit": result.to_dict(),
        "holdout": holdout_info,
        "bundle": str(bundle),
        "artifact": rt.artifact.name,
    }
    if out:
        from kdedge.atomic import atomic_write_text

        atomic_write_text(out, jsonout.dumps(report, indent=2) + "\n")
    if apply:
        _apply(bundle, policy)
    if as_json:
        emit_json(report)
        return
    _render_fit(report, out, apply)


def _apply(bundle: Path, policy) -> None:
    from dataclasses import replace

    from kdedge.runtimes.bundle import read_manifest, write_manifest

    manifest = read_manifest(bundle)
    keep = {k: v for k, v in manifest.router.items() if k in ("oos_label", "rare_labels")}
    write_manifest(bundle, replace(manifest, router={**policy.to_dict(), **keep}))


def _render_fit(report: dict, out: Path | None, applied: bool) -> None:
    from rich.table import Table

    fit = report["fit"]
    h = report["holdout"]
    t = fit["thresholds"]
    info(
        f"holdout: {h['n']} messages · student accuracy {percent(h['student_accuracy'])} · "
        f"teacher: {h['teacher']}"
        + (
            f" ({percent(h['teacher_accuracy'])}, {h['teacher_failures']} failed calls)"
            if "teacher_accuracy" in h
            else ""
        )
    )
    stdout.print(
        f"fitted: confidence < {t['confidence_threshold']:.4f} → {t['low_confidence_action']},"
        f" risk ≥ {t['risk_threshold']:.4f} → fallback"
        f" · risk labels: {', '.join(report['policy']['risk_labels']) or 'none'}"
    )
    sets = [("holdout", fit["metrics"], fit["plain_threshold"], fit["student_only"])]
    if fit.get("test"):
        test = fit["test"]
        sets.append(("test", test["router"], test["plain_threshold"], test["student_only"]))
    for name, router, plain, student in sets:
        table = Table(
            title=f"{name}: router vs plain threshold "
            f"(confidence < {fit['plain_threshold']['confidence_threshold']:.4f})"
        )
        table.add_column("policy", no_wrap=True)
        for _, title in METRICS:
            table.add_column(title, justify="right")
        for label, m in (
            ("two-stage router", router),
            ("plain threshold", plain),
            ("student only", student),
        ):
            table.add_row(label, *(percent(m[key]) for key, _ in METRICS))
        stdout.print(table)
    if out:
        info(f"report → {out} (use it as --policy)")
    if applied:
        info(f"policy written into {report['bundle']}/manifest.json")


@command.command("simulate")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A `kdedge route fit` report: prices its router, plain threshold and student only.",
)
@click.option(
    "--fallback-rate",
    type=click.FloatRange(0, 1),
    multiple=True,
    help="Fallback rate(s) to price, instead of --report (repeat to compare).",
)
@click.option("--bad-outcome-rate", type=click.FloatRange(0, 1), help="With --fallback-rate.")
@click.option("--requests-per-day", type=click.FloatRange(0), required=True)
@click.option("--student-cost", type=click.FloatRange(0), required=True, help="USD per request.")
@click.option("--teacher-cost", type=click.FloatRange(0), required=True, help="USD per call.")
@click.option("--clarify-cost", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option(
    "--on",
    "on",
    type=click.Choice(["holdout", "test"]),
    default="holdout",
    show_default=True,
    help="Which set of a report's rates to price.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def simulate(
    report,
    fallback_rate,
    bad_outcome_rate,
    requests_per_day,
    student_cost,
    teacher_cost,
    clarify_cost,
    on,
    as_json,
):
    """Price routing rates at a traffic: daily/monthly cost, teacher calls, bad outcomes.

    \b
    Examples (the seed's planned 5% vs the 18% seen online, 10M requests/day):
      kdedge route simulate --fallback-rate 0.05 --fallback-rate 0.18 \\
          --requests-per-day 10e6 --student-cost 0.0002 --teacher-cost 0.003
      kdedge route simulate --report policy.json --requests-per-day 10e6 \\
          --student-cost 0.0002 --teacher-cost 0.003
    """
    from kdedge.errors import ConfigError
    from kdedge.runtimes.economics import compare

    if bool(report) == bool(fallback_rate):
        raise ConfigError("give either --report or --fallback-rate")
    if report:
        try:
            fit = json.loads(Path(report).read_text(encoding="utf-8"))["fit"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{report} is not a `kdedge route fit` report: {exc}") from exc
        if on == "test":
            if not fit.get("test"):
                raise ConfigError(f"{report} has no test-set results; fit with --test-data")
            sets = fit["test"]
            scenarios = {
                "router": sets["router"],
                "plain_threshold": sets["plain_threshold"],
                "student_only": sets["student_only"],
            }
        else:
            scenarios = {
                "router": fit["metrics"],
                "plain_threshold": fit["plain_threshold"],
                "student_only": fit["student_only"],
            }
    else:
        extra = {} if bad_outcome_rate is None else {"bad_outcome_rate": bad_outcome_rate}
        scenarios = {f"fallback {r:.1%}": {"fallback_rate": r, **extra} for r in fallback_rate}
    results = compare(
        scenarios,
        requests_per_day=requests_per_day,
        student_cost=student_cost,
        teacher_cost=teacher_cost,
        clarify_cost=clarify_cost,
    )
    if as_json:
        emit_json(results)
        return
    from rich.table import Table

    first = next(iter(results))
    table = Table(
        title=f"{requests_per_day:,.0f} requests/day · student ${student_cost}"
        f" · teacher ${teacher_cost} per call"
    )
    table.add_column("", no_wrap=True)
    for name in results:
        table.add_column(name, justify="right", no_wrap=True)
    rows = [
        ("fallback rate", lambda r: percent(r["fallback_rate"])),
        ("teacher calls/day", lambda r: f"{r['teacher_calls_per_day']:,.0f}"),
        ("cost/day", lambda r: f"${r['cost_per_day']:,.2f}"),
        ("cost/month", lambda r: f"${r['cost_per_month']:,.2f}"),
        (f"vs {first}, /month", lambda r: f"{r['vs_' + first]['cost_per_month']:+,.2f}"),
        ("bad outcomes/day", lambda r: _count(r.get("bad_outcomes_per_day"))),
        ("unsafe accepts/day", lambda r: _count(r.get("unsafe_false_accepts_per_day"))),
    ]
    for title, cell in rows:
        table.add_row(title, *(cell(r) for r in results.values()))
    stdout.print(table)


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"
