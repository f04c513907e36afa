"""The command line. It only translates: flags + environment + profile -> a frozen plan,
then one call. Every option is taken as text and validated in ``settings`` so that bad
input always gets one line naming the value and what is allowed, and exit code 2.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from loadengine import stop as stop_module
from loadengine.dsn import DsnError, parse_dsn
from loadengine.settings import SettingsError, resolve
from loadengine.stop import StopFlag

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Drive a precise rate of row changes per second into MySQL/MariaDB.",
)
schema_app = typer.Typer(no_args_is_help=True, help="Manage the inventory schema.")
app.add_typer(schema_app, name="schema")

Opt = Annotated[str | None, typer.Option()]


@app.command()
def run(
    ctx: typer.Context,
    target_cps: Annotated[
        str | None, typer.Option(help="Changes/s, or 'max' (unthrottled)")
    ] = None,
    duration: Annotated[str | None, typer.Option(help="Measured seconds")] = None,
    warmup: Annotated[str | None, typer.Option(help="Seconds of load before measuring")] = None,
    workers: Annotated[str | None, typer.Option(help="Shards (OS processes)")] = None,
    batch_size: Annotated[str | None, typer.Option(help="Changes per transaction")] = None,
    log_interval: Annotated[str | None, typer.Option(help="Seconds between live lines")] = None,
    mix: Annotated[str | None, typer.Option(help="op=weight,... ")] = None,
    seed: Annotated[str | None, typer.Option(help="RNG seed")] = None,
    dsn: Annotated[str | None, typer.Option(help="mysql://user:pass@host:port/db")] = None,
    profile: Annotated[str | None, typer.Option(help="Profile name or TOML file")] = None,
    output: Annotated[str | None, typer.Option(help="Results file ('-' = stdout)")] = None,
    on_overload: Annotated[str | None, typer.Option(help="catch-up | drop | abort")] = None,
    keep_server: Annotated[bool, typer.Option(help="Leave the embedded server up")] = False,
    retries: Annotated[
        str | None, typer.Option(help="Retries per transaction (deadlock, lock wait, lost link)")
    ] = None,
    on_shard_failure: Annotated[str | None, typer.Option(help="abort | restart")] = None,
    protocol: Annotated[
        str | None, typer.Option(help="text (default) | prepared statements")
    ] = None,
    password_file: Annotated[
        str | None, typer.Option(help="Read the DB password from this file")
    ] = None,
    ssl_ca: Annotated[str | None, typer.Option(help="TLS: CA certificate file")] = None,
    ssl_cert: Annotated[str | None, typer.Option(help="TLS: client certificate")] = None,
    ssl_key: Annotated[str | None, typer.Option(help="TLS: client key")] = None,
    ssl_verify: Annotated[
        str | None, typer.Option(help="TLS: verify the server certificate (on|off)")
    ] = None,
    audit: Annotated[
        bool, typer.Option(help="Audit the run's binary-log window against the ledger")
    ] = False,
    follow_binlog: Annotated[
        bool, typer.Option(help="Tail the binary log during the run: capture lag")
    ] = False,
) -> None:
    """Run a load: paced row changes, live lines, a summary and a results file."""
    flags = {
        "target_cps": target_cps,
        "duration_s": duration,
        "warmup_s": warmup,
        "workers": workers,
        "batch_size": batch_size,
        "log_interval_s": log_interval,
        "mix": mix,
        "seed": seed,
        "dsn": dsn,
        "output": output,
        "on_overload": on_overload,
        "keep_server": True if keep_server else None,
        "retries": retries,
        "on_shard_failure": on_shard_failure,
        "protocol": protocol,
        "password_file": password_file,
        "ssl_ca": ssl_ca,
        "ssl_cert": ssl_cert,
        "ssl_key": ssl_key,
        "ssl_verify": ssl_verify,
        "audit": True if audit else None,
        "follow_binlog": True if follow_binlog else None,
    }
    plan = resolve(flags, os.environ, profile)
    from loadengine.runner import execute  # the driver loads only when a run starts

    out = sys.stderr if plan.output == "-" else sys.stdout
    raise typer.Exit(execute(plan, out, ctx.obj))


@app.command("audit")
def audit_cmd(
    results_file: Annotated[str, typer.Argument(help="A results file from 'loadengine run'")],
    dsn: Annotated[str | None, typer.Option(help="Server DSN (default: the run's)")] = None,
) -> None:
    """Audit a finished run: its binary-log window against its change ledger."""
    from loadengine import audit, report
    from loadengine.binlog import BinlogError
    from loadengine.database import DatabaseError

    try:
        result = audit.audit_file(results_file, dsn or os.environ.get("LOADENGINE_DSN"))
    except audit.AuditInputError as exc:
        raise SettingsError(str(exc)) from None
    except (BinlogError, DatabaseError) as exc:
        print(f"error: audit failed: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(report.audit_line(result))
    raise typer.Exit(0 if result["clean"] else 4)


def _schema_dsn(dsn: str | None) -> str:
    from loadengine.dsn import dsn_from_parts

    text = dsn or os.environ.get("LOADENGINE_DSN") or dsn_from_parts(dict(os.environ))
    if not text:
        raise SettingsError(
            "--dsn: required (or LOADENGINE_DSN); e.g. mysql://root@127.0.0.1:3306/inventory"
        )
    return text


def _schema(action: str, dsn: str | None) -> None:
    from loadengine import schema_admin
    from loadengine.database import DatabaseError

    target = parse_dsn(_schema_dsn(dsn))
    try:
        status = getattr(schema_admin, action)(target)
    except DatabaseError as exc:
        print(f"error: {target.redacted()}: {exc.error_class}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    counts = ", ".join(f"{t} {n}" for t, n in status.row_counts) or "-"
    state = "ready" if status.ready else f"missing: {', '.join(status.missing)}"
    print(f"schema {target.redacted()}: {state}; rows: {counts}")
    if action == "status" and not status.ready:
        raise typer.Exit(1)


@schema_app.command("init")
def schema_init(dsn: Opt = None) -> None:
    """Create the database (if missing) and the inventory tables with Debezium's rows."""
    _schema("init", dsn)


@schema_app.command("reset")
def schema_reset(dsn: Opt = None) -> None:
    """Drop and recreate the inventory tables."""
    _schema("reset", dsn)


@schema_app.command("status")
def schema_status(dsn: Opt = None) -> None:
    """Show whether the schema is present, and row counts (exit 1 when missing)."""
    _schema("status", dsn)


def main(argv: list[str] | None = None, stop: StopFlag | None = None) -> None:
    """One line and exit 2 for any bad input; no tracebacks for users. ``stop`` carries
    a signal received since start-up (``__main__`` installs the handlers first); only
    ``run`` keeps them, other commands get Python's defaults back."""
    from loadengine.runner import EXIT_BY_SIGNAL, RunError

    args = sys.argv[1:] if argv is None else argv
    stop = stop or StopFlag()
    if not args or args[0] != "run":
        stop_module.restore_defaults()
        if stop.is_set:
            sys.exit(EXIT_BY_SIGNAL.get(stop.signum or 2, 130))
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="loadengine", standalone_mode=False, obj=stop)
    except (SettingsError, DsnError) as exc:
        _die(str(exc), 2)
    except RunError as exc:
        _die(str(exc), exc.code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing value...
        _die(exc.format_message().splitlines()[0], 2)
    sys.exit(code if isinstance(code, int) else 0)


def _die(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
