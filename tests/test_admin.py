"""The admin grants and removes roles; every change is audited; the last admin stays."""

from __future__ import annotations

import sqlalchemy as sa

from magazine.db import db
from magazine.models import AuditEvent, User
from magazine.roles import Role
from tests.conftest import get_user, log_in
from tests.factories import make_user


def test_admin_grants_and_removes_roles(app, login_as):
    admin = login_as(Role.ADMIN)
    with app.app_context():
        person = make_user(roles={Role.SUBSCRIBER}, email="jan@example.org")
        person_id = person.id
    response = admin.post(f"/admin/users/{person_id}", data={"roles": ["board_member", "author"]})
    assert response.status_code == 302
    with app.app_context():
        assert get_user("jan@example.org").roles == {Role.BOARD_MEMBER, Role.AUTHOR}
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "user.roles_changed"))
        assert event.details == {"granted": ["author", "board_member"], "removed": ["subscriber"]}

    jan = app.test_client()
    log_in(jan, "jan@example.org")
    assert jan.get("/editorial/").status_code == 200
    admin.post(f"/admin/users/{person_id}", data={"roles": []})
    assert jan.get("/editorial/").status_code == 403


def test_unknown_role_is_refused_and_changes_nothing(app, login_as):
    admin = login_as(Role.ADMIN)
    with app.app_context():
        person_id = make_user(roles={Role.SUBSCRIBER}).id
    response = admin.post(f"/admin/users/{person_id}", data={"roles": ["emperor"]})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(User, person_id).roles == {Role.SUBSCRIBER}


def test_the_last_admin_keeps_the_admin_role(app, login_as):
    admin = login_as(Role.ADMIN, email="boss@example.org")
    with app.app_context():
        admin_id = get_user("boss@example.org").id
    response = admin.post(f"/admin/users/{admin_id}", data={"roles": ["author"]})
    assert response.status_code == 400
    assert "administrator" in response.get_data(as_text=True).lower() or "beheerder" in \
        response.get_data(as_text=True).lower()
    with app.app_context():
        assert Role.ADMIN in get_user("boss@example.org").roles


def test_admin_blocks_an_account_and_its_sessions_end(app, login_as):
    admin = login_as(Role.ADMIN)
    person = login_as(Role.SUBSCRIBER, email="jan@example.org")
    with app.app_context():
        person_id = get_user("jan@example.org").id
    admin.post(f"/admin/users/{person_id}/block", data={"blocked": "1"})
    assert person.get("/account").status_code == 302
    assert log_in(app.test_client(), "jan@example.org").status_code == 401
    admin.post(f"/admin/users/{person_id}/block", data={"blocked": "0"})
    assert log_in(app.test_client(), "jan@example.org").status_code == 302


def test_admin_cannot_block_themself(app, login_as):
    admin = login_as(Role.ADMIN, email="boss@example.org")
    with app.app_context():
        admin_id = get_user("boss@example.org").id
    admin.post(f"/admin/users/{admin_id}/block", data={"blocked": "1"})
    assert admin.get("/admin/").status_code == 200


def test_admin_invites_someone_with_roles(app, login_as, outbox):
    admin = login_as(Role.ADMIN)
    response = admin.post("/admin/users/invite", data={
        "name": "Nora Peeters", "email": "nora@example.org", "roles": ["reviewer"],
        "message": "Welkom in de leesgroep!"})
    assert response.status_code == 302
    [mail] = outbox("nora@example.org")
    assert "Welkom in de leesgroep!" in mail.body_text
    with app.app_context():
        assert get_user("nora@example.org").roles == {Role.REVIEWER}


def test_people_list_searches_by_name_email_and_role(app, login_as):
    admin = login_as(Role.ADMIN)
    with app.app_context():
        make_user(name="Griet Wauters", email="griet@example.org", roles={Role.AUTHOR})
        make_user(name="Tom Smet", email="tom@example.org", roles={Role.SUBSCRIBER})
    by_name = admin.get("/admin/?q=griet").get_data(as_text=True)
    assert "Griet Wauters" in by_name and "Tom Smet" not in by_name
    by_role = admin.get("/admin/?role=subscriber").get_data(as_text=True)
    assert "Tom Smet" in by_role and "Griet Wauters" not in by_role
