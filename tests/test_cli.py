"""The command line contract: demo load, users create, jobs run, scheduler."""

from __future__ import annotations

import sqlalchemy as sa

from magazine.db import db
from magazine.demo import DEMO_PASSWORD, DEMO_PEOPLE, demo_email
from magazine.jobs import JOBS, build_scheduler
from magazine.models import User
from magazine.roles import Role
from tests.conftest import get_user, log_in


def test_demo_load_makes_one_login_per_role_and_is_safe_to_repeat(app, runner, client):
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "8 created" in first.output
    second = runner.invoke(args=["demo", "load"])
    assert "0 created, 8 already there" in second.output
    with app.app_context():
        # One login per role; the generated subscribers of the demo have other addresses.
        logins = sa.select(sa.func.count()).select_from(User).where(
            User.email.like("%@demo.example"))
        assert db.session.scalar(logins) == len(Role)
    for role in Role:
        assert set(DEMO_PEOPLE) == set(Role)
        other = app.test_client()
        response = log_in(other, demo_email(role), DEMO_PASSWORD)
        assert response.status_code == 302, role
        assert other.get("/account").status_code == 200


def test_users_create_with_password(app, runner):
    result = runner.invoke(args=["users", "create", "Chief@Example.org", "--role",
                                 "editor_in_chief", "--role", "board_member",
                                 "--password", "a-long-enough-password"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = get_user("chief@example.org")
        assert user.roles == {Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER}
        assert user.is_verified


def test_users_create_without_password_mails_an_invitation(app, runner, outbox):
    result = runner.invoke(args=["users", "create", "new@example.org", "--role", "author"])
    assert result.exit_code == 0, result.output
    [mail] = outbox("new@example.org")
    assert mail.template == "invitation"
    assert "http://localhost/invitation/" in mail.body_text


def test_users_create_refuses_bad_input_clearly(app, runner):
    unknown_role = runner.invoke(args=["users", "create", "a@example.org", "--role", "king"])
    assert unknown_role.exit_code != 0 and "king" in unknown_role.output
    weak = runner.invoke(args=["users", "create", "a@example.org", "--role", "author",
                               "--password", "short"])
    assert weak.exit_code != 0 and "10" in weak.output
    runner.invoke(args=["users", "create", "b@example.org", "--role", "author",
                        "--password", "a-long-enough-password"])
    twice = runner.invoke(args=["users", "create", "b@example.org", "--role", "author",
                                "--password", "a-long-enough-password"])
    assert twice.exit_code != 0
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_jobs_run_prints_a_one_line_summary(runner):
    result = runner.invoke(args=["jobs", "run", "outbox"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("outbox:")


def test_jobs_run_unknown_name_lists_the_jobs(runner):
    result = runner.invoke(args=["jobs", "run", "nope"])
    assert result.exit_code != 0
    assert "outbox" in result.output


def test_scheduler_has_every_job_once(app):
    run = build_scheduler(app)
    jobs = run.scheduler.get_jobs()
    assert sorted(job.id for job in jobs) == sorted(JOBS)
    assert all(job.max_instances == 1 for job in jobs)


def test_cli_lists_the_contract_commands(runner):
    output = runner.invoke(args=["--help"]).output
    for command in ("db", "demo", "users", "scheduler", "jobs"):
        assert command in output


def test_housekeeping_removes_only_what_is_no_longer_needed(app, runner, client):
    from datetime import timedelta

    from magazine.clock import shifted
    from magazine.models import LoginAttempt, UserSession
    from tests.factories import make_user

    with app.app_context():
        make_user(email="kim@example.org")
    log_in(client, "kim@example.org", "wrong-password-1")
    log_in(client, "kim@example.org")
    with shifted(timedelta(days=2)):
        fresh = app.test_client()
        log_in(fresh, "kim@example.org")
        result = runner.invoke(args=["jobs", "run", "housekeeping"])
        assert "2 old login attempts" in result.output
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 1
            assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 2
        assert fresh.get("/account").status_code == 200
