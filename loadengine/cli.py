"""The command line. It only translates: flags + environment + profile -> a frozen plan,
then one call. Every option is taken as text and validated in ``settings`` so that bad
input always gets one line naming the value and what is allowed, and exit code 2.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Annotated, Any

import typer

from loadengine.core import stop as stop_module
from loadengine.core.dsn import DEFAULT_AMQP_URL, DsnError, parse_dsn
from loadengine.core.spec import generated
from loadengine.core.status import Exit, RunError, exit_for_signal
from loadengine.core.stop import StopFlag
from loadengine.pipeline import commands as pipeline_commands
from loadengine.settings import (
    FIELDS,
    MAX_TARGET_CPS,
    Field,
    SettingsError,
    load_workload,
    resolve,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Drive a precise rate of row changes per second into MySQL/MariaDB.",
)
schema_app = typer.Typer(
    no_args_is_help=True, help="Manage a workload's tables (the inventory's by default)."
)
app.add_typer(schema_app, name="schema")

Opt = Annotated[str | None, typer.Option()]


def _option(f: Field) -> inspect.Parameter:
    """The ``run`` option of one setting, from the settings table."""
    help_text = f"{f.help} [{f.allowed}]" if f.allowed and f.switch != "on" else f.help
    if f.switch == "pair":
        flag = f"{f.flag}/--no-{f.flag.removeprefix('--')}"
        ann: Any = Annotated[bool | None, typer.Option(flag, help=help_text)]
    elif f.switch == "on":
        ann = Annotated[bool, typer.Option(f.flag, help=help_text)]
    else:
        ann = Annotated[str | None, typer.Option(f.flag, help=help_text)]
    default = False if f.switch == "on" else None
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann
    )


def run(ctx: typer.Context, profile: str | None = None, **options: Any) -> None:
    """Run a load: paced row changes, live lines, a summary and a results file."""
    on_only = {f.name for f in FIELDS if f.switch == "on"}
    flags = {k: (True if v else None) if k in on_only else v for k, v in options.items()}
    plan = resolve(flags, os.environ, profile)
    from loadengine.run.runner import execute  # the driver loads only when a run starts

    out = sys.stderr if plan.output == "-" else sys.stdout
    raise typer.Exit(execute(plan, out, ctx.obj))


run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter(
            "profile",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None,
                typer.Option("--profile", help="built-in profile name, or a TOML file"),
            ],
        ),
        *(_option(f) for f in FIELDS),
    ]
)
app.command("run")(run)


@app.command("suite")
def suite_cmd(
    name: Annotated[
        str, typer.Argument(help="Built-in suite name (standard) or a TOML file")
    ] = "standard",
    quick: Annotated[bool, typer.Option(help="Short version for CI (~2 min)")] = False,
    repeat: Annotated[str, typer.Option(help="Runs per scenario (median and spread)")] = "1",
    results_dir: Annotated[str | None, typer.Option(help="Where results go")] = None,
    dsn: Annotated[str | None, typer.Option(help="Server DSN (default: embedded)")] = None,
) -> None:
    """Run a performance suite; exit 5 when a scenario fails its thresholds, 1 on a crash."""
    from loadengine.settings import parse_int as _int
    from loadengine.tools import suite

    n = _int("--repeat", repeat, 1, "from 1 to 100", 100)
    if dsn:
        parse_dsn(dsn)
    raise typer.Exit(suite.run_suite(name, quick, results_dir, n, dsn, _say))


@app.command("search")
def search_cmd(
    start_cps: Annotated[str, typer.Option(help="First target")] = "1000",
    max_cps: Annotated[str, typer.Option(help="Never try above this")] = "200000",
    factor: Annotated[str, typer.Option(help="Step-up factor")] = "2",
    resolution: Annotated[str, typer.Option(help="Stop when within this fraction")] = "0.05",
    max_trials: Annotated[str, typer.Option(help="Trial budget")] = "12",
    duration: Annotated[str, typer.Option(help="Seconds per trial")] = "10",
    workers: Annotated[str | None, typer.Option()] = None,
    batch_size: Annotated[str | None, typer.Option()] = None,
    mix: Annotated[str | None, typer.Option()] = None,
    min_efficiency: Annotated[str, typer.Option(help="Threshold")] = "0.99",
    max_p99_ms: Annotated[str | None, typer.Option(help="Threshold")] = "250",
    max_error_rate: Annotated[str | None, typer.Option(help="Threshold")] = "0.001",
    max_capture_lag_ms: Annotated[
        str | None, typer.Option(help="Threshold (follows binlog)")
    ] = None,
    sink: Annotated[
        str | None, typer.Option(help="Follow this RabbitMQ sink in every trial (run --sink)")
    ] = None,
    max_e2e_lag_ms: Annotated[str | None, typer.Option(help="Threshold (with --sink)")] = None,
    max_sink_loss: Annotated[str | None, typer.Option(help="Threshold (with --sink)")] = None,
    pipeline: Annotated[
        bool,
        typer.Option(help="Search the reference pipeline's capacity (server, Debezium, sink)"),
    ] = False,
    results_dir: Annotated[str | None, typer.Option()] = None,
    dsn: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Find the highest target CPS that passes the thresholds (step up, then bisect).
    With --sink (or --pipeline) a trial passes only if the pipeline keeps up too."""
    from loadengine.settings import parse_float
    from loadengine.settings import parse_int as _int
    from loadengine.tools import suite

    keys = {
        "start_cps": _int("--start-cps", start_cps, 1, ">= 1"),
        "max_cps": _int("--max-cps", max_cps, 1, f"from 1 to {MAX_TARGET_CPS:,}", MAX_TARGET_CPS),
        "factor": parse_float("--factor", factor, 1.01),
        "resolution": parse_float("--resolution", resolution, 0.001),
        "max_trials": _int("--max-trials", max_trials, 1, ">= 1"),
    }
    values: dict[str, object] = {"duration": _int("--duration", duration, 1, ">= 1")}
    for k, v in (
        ("workers", workers),
        ("batch_size", batch_size),
        ("mix", mix),
        ("min_efficiency", min_efficiency),
        ("max_p99_ms", max_p99_ms),
        ("max_error_rate", max_error_rate),
        ("max_capture_lag_ms", max_capture_lag_ms),
        ("sink", sink),
        ("max_e2e_lag_ms", max_e2e_lag_ms),
        ("max_sink_loss", max_sink_loss),
    ):
        if v is not None:
            values[k] = v
    if pipeline or sink:
        values.setdefault("max_sink_loss", "0")
        values.setdefault("sink_timeout", "30")
    if max_capture_lag_ms is not None:
        values["follow_binlog"] = True
    checked = {k: v for k, v in values.items() if k not in ("follow_binlog", "sink_timeout")}
    resolve(checked | {"duration_s": duration}, {}, None)  # every value, before any trial
    if dsn:
        parse_dsn(dsn)
    loaded = suite.search_suite(values, keys, pipeline)
    code = suite.run_loaded(loaded, False, results_dir, 1, dsn, _say)
    raise typer.Exit(code)


def _say(line: str) -> None:
    print(line, flush=True)


@app.command("report")
def report_cmd(
    results: Annotated[list[str], typer.Argument(help="One or more results files")],
    output: Annotated[str, typer.Option(help="HTML file to write")] = "report.html",
    png: Annotated[str | None, typer.Option(help="Also write the charts as PNGs here")] = None,
) -> None:
    """Charts over time in one self-contained HTML page (needs loadengine[report])."""
    from loadengine.tools import report_html

    try:
        n = report_html.write(results, output, png)
    except report_html.ReportError as exc:
        raise SettingsError(str(exc)) from None
    print(f"report: {output} ({n} charts)")


@app.command("sink-check")
def sink_check_cmd(
    results_file: Annotated[str, typer.Argument(help="The run's results file (ledger beside it)")],
    amqp_url: Annotated[str, typer.Option(help="RabbitMQ URL")] = DEFAULT_AMQP_URL,
    queue_prefix: Annotated[
        str, typer.Option(help="Queue = prefix + table")
    ] = "inventory.inventory.",
    tables: Annotated[
        str, typer.Option(help="Tables to read (add loadengine_heartbeat for lag)")
    ] = "customers,orders",
    quiet: Annotated[
        str, typer.Option(help="Stop after this many seconds without a message")
    ] = "2",
    timeout: Annotated[str, typer.Option(help="Seconds to read at most")] = "60",
    output: Annotated[str | None, typer.Option(help="Write the check's results here")] = None,
) -> None:
    """Drain Debezium events from queues (it consumes them) and check them against the
    run's change ledger: lost, duplicated, extra, out of order per key, message age.
    Exit 0 when nothing was lost or wrong, 6 otherwise."""
    from loadengine.settings import parse_float
    from loadengine.verify import sink_amqp

    quiet_s = parse_float("--quiet", quiet, 0.1, 3600.0)
    seconds = parse_float("--timeout", timeout, 0.1, 86_400.0)
    queues = [queue_prefix + t.strip() for t in tables.split(",") if t.strip()]
    try:
        res = sink_amqp.run(results_file, amqp_url, queues, quiet_s, seconds, output)
    except sink_amqp.SinkError as exc:
        raise SettingsError(str(exc)) from None
    print(sink_amqp.summary_line(res))
    raise typer.Exit(Exit.OK if res["clean"] else Exit.SINK)


@app.command("compare")
def compare_cmd(
    baseline: Annotated[str, typer.Argument(help="Results file or folder")],
    contender: Annotated[str, typer.Argument(help="Results file or folder")],
    fail_on: Annotated[
        str | None, typer.Option(help="Tolerances, e.g. 'achieved_cps<-5%,latency_p99>+20%'")
    ] = None,
    format: Annotated[str, typer.Option(help="table | markdown | json")] = "table",
) -> None:
    """Compare two runs (or result folders); exit 1 on a regression beyond tolerance."""
    from loadengine.tools import compare

    if format not in ("table", "markdown", "json"):
        raise SettingsError(f"--format {format!r}: allowed: table, markdown, json")
    try:
        rules = compare.parse_rules(fail_on if fail_on is not None else compare.DEFAULT_FAIL_ON)
        result = compare.compare_paths(baseline, contender, rules)
    except compare.CompareError as exc:
        raise SettingsError(str(exc)) from None
    print(compare.render(result, format))
    raise typer.Exit(1 if result["regression"] else 0)


@app.command("audit")
def audit_cmd(
    results_file: Annotated[str, typer.Argument(help="A results file from 'loadengine run'")],
    dsn: Annotated[str | None, typer.Option(help="Server DSN (default: the run's)")] = None,
) -> None:
    """Audit a finished run: its binary-log window against its change ledger."""
    from loadengine.run import report
    from loadengine.server.binlog import BinlogError
    from loadengine.server.database import DatabaseError
    from loadengine.verify import audit

    try:
        result = audit.audit_file(results_file, dsn or os.environ.get("LOADENGINE_DSN"))
    except audit.AuditInputError as exc:
        raise SettingsError(str(exc)) from None
    except (BinlogError, DatabaseError) as exc:
        print(f"error: audit failed: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(report.audit_line(result))
    raise typer.Exit(Exit.OK if result["clean"] else Exit.AUDIT)


def _schema_dsn(dsn: str | None) -> str:
    from loadengine.core.dsn import dsn_from_parts

    text = dsn or os.environ.get("LOADENGINE_DSN") or dsn_from_parts(dict(os.environ))
    if not text:
        raise SettingsError(
            "--dsn: required (or LOADENGINE_DSN); e.g. mysql://root@127.0.0.1:3306/inventory"
        )
    return text


def _schema(action: str, dsn: str | None, workload: str | None) -> None:
    from loadengine.server import schema_admin
    from loadengine.server.database import DatabaseError

    name = workload or os.environ.get("LOADENGINE_WORKLOAD") or "inventory"
    spec = load_workload(name)
    target = parse_dsn(_schema_dsn(dsn))
    try:
        status = getattr(schema_admin, action)(target, generated(spec))
    except DatabaseError as exc:
        print(f"error: {target.redacted()}: {exc.error_class}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    counts = ", ".join(f"{t} {n}" for t, n in status.row_counts) or "-"
    state = "ready" if status.ready else f"missing: {', '.join(status.missing)}"
    print(f"schema {target.redacted()}: {state}; rows: {counts}")
    if action == "status" and not status.ready:
        raise typer.Exit(1)


WorkloadOpt = Annotated[
    str | None,
    typer.Option(
        "--workload",
        help="whose tables: a built-in workload or a spec file (default inventory; "
        "also LOADENGINE_WORKLOAD)",
    ),
]


@schema_app.command("init")
def schema_init(dsn: Opt = None, workload: WorkloadOpt = None) -> None:
    """Create the database (if missing) and the workload's tables (the inventory's with
    Debezium's rows by default)."""
    _schema("init", dsn, workload)


@schema_app.command("reset")
def schema_reset(dsn: Opt = None, workload: WorkloadOpt = None) -> None:
    """Drop and recreate the workload's tables."""
    _schema("reset", dsn, workload)


@schema_app.command("status")
def schema_status(dsn: Opt = None, workload: WorkloadOpt = None) -> None:
    """Show whether the workload's tables are present, and row counts (exit 1 when
    missing)."""
    _schema("status", dsn, workload)


app.command("debezium")(pipeline_commands.debezium_cmd)
app.command("server")(pipeline_commands.server_cmd)
app.command("pipeline")(pipeline_commands.pipeline_cmd)


def main(argv: list[str] | None = None, stop: StopFlag | None = None) -> None:
    """One line and exit 2 for any bad input; no tracebacks for users. ``stop`` carries
    a signal received since start-up (``__main__`` installs the handlers first); only
    ``run`` keeps them, other commands get Python's defaults back."""
    args = sys.argv[1:] if argv is None else argv
    stop = stop or StopFlag()
    if not args or args[0] != "run":
        stop_module.restore_defaults()
        if stop.is_set:
            sys.exit(exit_for_signal(stop.signum))
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="loadengine", standalone_mode=False, obj=stop)
    except (SettingsError, DsnError) as exc:
        _die(str(exc), Exit.USAGE)
    except RunError as exc:
        _die(str(exc), exc.code)
    except typer.Abort:
        sys.exit(Exit.SIGINT)
    except typer.TyperException as exc:  # usage errors: unknown option, missing value...
        _die(exc.format_message().splitlines()[0], Exit.USAGE)
    sys.exit(code if isinstance(code, int) else 0)


def _die(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
