"""Command line (`flask --app wsgi …`): demo data, users, the scheduler and its jobs.

`db upgrade` comes from Flask-Migrate (Alembic)."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from magazine.db import db
from magazine.errors import DomainError
from magazine.roles import Role


def register_cli(app: Flask) -> None:
    demo = AppGroup("demo", help="Demo data.")
    users = AppGroup("users", help="Accounts.")
    jobs = AppGroup("jobs", help="Scheduled jobs, run by hand.")

    @demo.command("load")
    def demo_load() -> None:
        """Load the demo accounts and sample content (safe to run again)."""
        from magazine.demo import load_demo

        click.echo(load_demo().summary())

    @users.command("create")
    @click.argument("email")
    @click.option("--role", "roles", multiple=True, required=True,
                  type=click.Choice([role.value for role in Role]),
                  help="A role to give; repeat for several.")
    @click.option("--password", default=None,
                  help="Without it, an invitation to choose a password is mailed.")
    @click.option("--name", default=None, help="Full name (default: the part before @).")
    def users_create(email: str, roles: tuple[str, ...], password: str | None,
                     name: str | None) -> None:
        """Create an account with one or more roles."""
        from magazine.auth import services

        name = name or email.split("@")[0]
        role_set = {Role(value) for value in roles}
        try:
            if password is None:
                user = services.invite_user(email, name, role_set, actor=None)
            else:
                user = services.create_user(email, name, password, roles=role_set,
                                            verified=True)
        except DomainError as error:
            db.session.rollback()
            raise click.ClickException(error.message) from error
        db.session.commit()
        how = "invitation mailed" if password is None else "can log in now"
        click.echo(f"created {user.email} ({', '.join(sorted(roles))}): {how}")

    @app.cli.command("scheduler")
    def scheduler() -> None:
        """Run the scheduled jobs (its own process; stop with Ctrl-C or SIGTERM)."""
        from magazine.jobs import run_scheduler

        run_scheduler(app)

    @jobs.command("list")
    def jobs_list() -> None:
        """The jobs the scheduler runs."""
        from magazine.jobs import JOBS

        for job in JOBS.values():
            click.echo(f"{job.name:20} {job.trigger}  {job.description}")

    @jobs.command("run")
    @click.argument("name")
    @click.option("--again", is_flag=True,
                  help="Run even if this period's run is done (the work itself still "
                       "happens once).")
    def jobs_run(name: str, again: bool) -> None:
        """Run one job now, with a progress bar and a one-line summary."""
        import contextlib

        from magazine.jobruns import forced
        from magazine.jobs import JOBS, Progress

        job = JOBS.get(name)
        if job is None:
            raise click.ClickException(
                f"no job named {name!r}; the jobs are: {', '.join(sorted(JOBS))}"
            )
        bar = None

        def start(total: int) -> None:
            nonlocal bar
            bar = click.progressbar(length=total, label=name, file=sys.stderr)
            bar.__enter__()

        def advance(n: int) -> None:
            if bar is not None:
                bar.update(n)

        try:
            with forced() if again else contextlib.nullcontext():
                result = job.run(Progress(start=start, advance=advance))
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        click.echo(result.summary())

    @app.cli.command("dispatch")
    @click.argument("issue")
    @click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
                  help="Where to write the mailing file (CSV); the print-run summary goes "
                       "next to it as …-summary.csv.")
    def dispatch_command(issue: str, out: str) -> None:
        """Dispatch ISSUE (its code, e.g. 3.2, or id): lock its mailing list (once) and write
        the printer's mailing file."""
        from pathlib import Path

        from subscriptions import dispatch

        found = dispatch.find_issue(issue)
        if found is None:
            raise click.ClickException(f"no issue {issue!r} (give its code, e.g. 3.2)")
        try:
            result = dispatch.dispatch_issue(found)
        except DomainError as error:
            db.session.rollback()
            raise click.ClickException(error.message) from error
        with click.progressbar(length=dispatch.dispatch_lines_count(found),
                               label=f"mailing file {found.code}", file=sys.stderr) as bar:
            run = dispatch.write_mailing_file(found, Path(out), progress=bar.update)
            bar.update(max(bar.length - bar.pos, 0))
        click.echo(result.summary())
        click.echo(f"{out}: {run.addresses} addresses, {run.copies} copies "
                   f"(summary in {dispatch.summary_path(Path(out))})")

    app.cli.add_command(demo)
    app.cli.add_command(users)
    app.cli.add_command(jobs)
