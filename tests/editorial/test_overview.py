"""My work, the reminders job (once per deadline), search, the calendar feed, the print
package and the issue's PDF."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime

import icalendar
import pytest
import sqlalchemy as sa

from editorial import overview, package, services
from editorial.jobs import send_deadline_reminders
from editorial.models import ArticleState, IssueState, Recommendation
from magazine.clock import frozen
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.models import OutboxMail
from magazine.roles import Role
from tests.conftest import get_user, link_in
from tests.editorial.conftest import make_article, make_pitch

# Article deadlines in conftest: 15 January 2027.
BEFORE = datetime(2027, 1, 13, 8, 0, tzinfo=UTC)   # 2 days before
ON_TIME = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)  # 5 days before: too early for a reminder
AFTER = datetime(2027, 1, 18, 8, 0, tzinfo=UTC)    # 3 days after


def reminders() -> list[OutboxMail]:
    return list(db.session.scalars(sa.select(OutboxMail).where(
        OutboxMail.template == "editorial_reminder").order_by(OutboxMail.id)))


def test_my_work_lists_what_waits_on_each_person(people, issue):
    write = make_article(people.author, state=ArticleState.COMMISSIONED, title="Te schrijven")
    make_article(people.author, state=ArticleState.PUBLISHED, title="Al verschenen")
    copyedit = make_article(people.board, state=ArticleState.COPYEDITING, title="Na te lezen",
                            issue=issue)
    submitted = make_article(people.board, state=ArticleState.DRAFT_SUBMITTED, title="Binnen")
    review = services.assign_reader(submitted, actor=people.chief, reader=people.reviewer,
                                    due_date=date(2030, 1, 1))
    make_pitch(people.author, title="Nieuw voorstel")
    db.session.commit()
    assert [(i.title, i.due) for i in overview.my_work(people.author)] == [
        ("Te schrijven", write.deadline)]
    assert [(i.title, i.due) for i in overview.my_work(people.copy)] == [
        ("Na te lezen", issue.layout_deadline)]
    assert [(i.kind, i.due) for i in overview.my_work(people.reviewer)] == [
        ("read", review.due_date)]
    assert {i.title for i in overview.my_work(people.chief)} == {"Nieuw voorstel"}
    assert copyedit.id


def test_reminders_go_once_before_and_once_after(people):
    make_article(people.author, state=ArticleState.COMMISSIONED)
    with frozen(ON_TIME):
        assert send_deadline_reminders().sent == 0
    with frozen(BEFORE):
        first = send_deadline_reminders()
        second = send_deadline_reminders()
    assert (first.sent, second.sent, second.already) == (1, 0, 1)
    with frozen(AFTER):
        send_deadline_reminders()
        send_deadline_reminders()
    mails = reminders()
    assert [m.to_address for m in mails] == ["author@example.org"] * 2
    assert mails[0].subject.startswith("Herinnering") and mails[1].subject.startswith("Over tijd")
    assert "/editorial/articles/" in mails[1].body_text


def test_a_moved_deadline_gets_its_own_reminder_and_submitted_work_none(people):
    article = make_article(people.author, state=ArticleState.COMMISSIONED)
    with frozen(BEFORE):
        send_deadline_reminders()
    article.deadline = date(2027, 1, 14)
    db.session.commit()
    with frozen(BEFORE):
        assert send_deadline_reminders().sent == 1
    services.move_article(article, ArticleState.DRAFT_SUBMITTED, actor=people.author)
    db.session.commit()
    with frozen(AFTER):
        assert send_deadline_reminders().sent == 0


def test_external_readers_are_reminded_with_a_fresh_link(people, client):
    article = make_article(people.author, state=ArticleState.DRAFT_SUBMITTED)
    with frozen(datetime(2027, 1, 2, tzinfo=UTC)):
        services.assign_reader(article, actor=people.chief, name="Hilde Claeys",
                               email="hilde@extern.example", due_date=date(2027, 1, 15))
        db.session.commit()
    with frozen(BEFORE):
        assert send_deadline_reminders().sent == 1
    mail = reminders()[0]
    assert mail.to_address == "hilde@extern.example"
    path = link_in(mail, "/review/")
    with frozen(BEFORE):
        assert client.get(path).status_code == 200


def test_the_job_runs_from_the_command_line(app, runner):
    result = runner.invoke(args=["jobs", "run", "deadline-reminders"])
    assert result.exit_code == 0, result.output
    assert "deadline-reminders: 0 sent" in result.output


def test_search_by_words_author_rubric_state_and_issue(people, rubric, issue):
    article = make_article(people.author, title="Buitenspelen met peuters", issue=issue)
    article.rubric = rubric
    make_article(people.board, title="Slaap en rust")
    make_pitch(people.board, title="Buitenspelen in de winter", rubric=rubric)
    db.session.commit()
    pitches, articles = overview.search(people.chief, words="buitenspelen")
    assert [p.title for p in pitches] == ["Buitenspelen in de winter"]
    assert [a.title for a in articles] == ["Buitenspelen met peuters"]
    assert [a.title for a in overview.search(people.chief, author="fatima")[1]] == [
        "Buitenspelen met peuters"]
    assert overview.search(people.chief, rubric_id=rubric.id)[1] == [article]
    assert overview.search(people.chief, issue_id=issue.id) == ([], [article])
    assert overview.search(people.chief, state="on_agenda") == ([], [])
    # An author finds only their own things.
    assert overview.search(people.author, words="slaap") == ([], [])


def test_the_calendar_feed_holds_my_deadlines(app, login_as, client):
    author = login_as(Role.AUTHOR, email="feed@example.org")
    with app.app_context():
        make_article(get_user("feed@example.org"), state=ArticleState.COMMISSIONED,
                     title="Wennen")
    page = author.get("/editorial/").text
    assert "Wennen" in page and "/editorial-calendar/" in page
    feed_path = "/editorial-calendar/" + page.split("/editorial-calendar/")[1].split('"')[0]
    response = client.get(feed_path)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/calendar")
    events = icalendar.Calendar.from_ical(response.data).walk("VEVENT")
    assert [str(e["summary"]) for e in events] == ["Write and submit: Wennen"] or \
        [str(e["summary"]) for e in events] == ["Schrijf en dien in: Wennen"]
    assert events[0].decoded("dtstart") == date(2027, 1, 15)
    assert client.get(feed_path.replace(".ics", "x.ics")).status_code == 404


def test_the_print_package_holds_texts_images_flatplan_and_manifest(people, issue):
    from tests.editorial.test_articles import picture

    article = make_article(people.author, state=ArticleState.PROOF, title="Taal van thuis")
    services.add_image(article, actor=people.copy, filename="foto.jpg", data=picture(),
                       caption="Voorlezen", credit="Foto: An", consent=services.Consent.ON_FILE)
    services.add_slot(issue, actor=people.chief, label="Cover", pages=2)
    services.add_slot(issue, actor=people.chief, article=article, pages=2)
    data = package.print_package(issue)
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    assert {"02-taal-van-thuis/text.html", "02-taal-van-thuis/text.txt",
            "02-taal-van-thuis/images/01-foto.jpg", "02-taal-van-thuis/images/captions.txt",
            "flatplan.csv", "flatplan.html", "manifest.json"} <= names
    assert "consent: on_file" in archive.read("02-taal-van-thuis/images/captions.txt").decode()
    csv_text = archive.read("flatplan.csv").decode()
    assert "1,1,2,,Cover" in csv_text and "2,3,2" in csv_text
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["issue"] == "3.2" and manifest["pages"] == 4
    assert len(manifest["files"]) == len(names) - 1


def test_the_issue_pdf_is_uploaded_after_the_printer(people, issue):
    pdf = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    with pytest.raises(DomainError):
        package.upload_issue_pdf(issue, actor=people.chief, filename="x.pdf", data=pdf)
    issue.state = IssueState.PUBLISHED
    with pytest.raises(DomainError):
        package.upload_issue_pdf(issue, actor=people.chief, filename="x.pdf", data=b"not a pdf")
    with pytest.raises(PermissionDenied):
        package.upload_issue_pdf(issue, actor=people.board, filename="x.pdf", data=pdf)
    package.upload_issue_pdf(issue, actor=people.chief, filename="../KM 3.2.pdf", data=pdf)
    assert issue.pdf_filename == "KM_3.2.pdf" and issue.pdf_data == pdf


def test_overview_pages_render(app, login_as):
    chief = login_as(Role.EDITOR_IN_CHIEF, email="chef@example.org")
    with app.app_context():
        from tests.factories import make_issue

        issue = make_issue(volume=9, number=1)
        article = make_article(get_user("chef@example.org"), state=ArticleState.IN_REVIEW,
                               issue=issue)
        issue_id = issue.id
        assert article.id
    for path in ("/editorial/", "/editorial/board", "/editorial/calendar",
                 "/editorial/search?q=wennen", f"/editorial/issues/{issue_id}/package.zip"):
        assert chief.get(path).status_code == 200, path
    assert chief.get(f"/editorial/issues/{issue_id}/pdf").status_code == 404
    assert Recommendation.ACCEPT


def test_housekeeping_returns_deferred_pitches_and_forgets_unconfirmed_ones(people):
    from editorial.jobs import editorial_housekeeping
    from editorial.models import MagicLink, Pitch, PitchState

    deferred = make_pitch(people.author, title="Later bespreken")
    services.move_pitch(deferred, PitchState.ON_AGENDA, actor=people.chief)
    with frozen(datetime(2026, 11, 20, 9, tzinfo=UTC)):
        services.defer_pitch(deferred, actor=people.chief, until=date(2026, 12, 1))
        stranger = services.submit_public_pitch(
            name="Onbekend", email="x@example.org", title="Nooit bevestigd",
            summary="Een voorstel dat nooit bevestigd werd door de indiener.")
        db.session.commit()
    stranger_id = stranger.id
    with frozen(datetime(2026, 11, 30, 9, tzinfo=UTC)):
        early = editorial_housekeeping()
    assert early.back_on_agenda == 0 and early.unconfirmed_removed == 1
    with frozen(datetime(2026, 12, 1, 9, tzinfo=UTC)):
        result = editorial_housekeeping()
        again = editorial_housekeeping()
    assert (result.back_on_agenda, again.back_on_agenda) == (1, 0)
    db.session.expire_all()
    assert db.session.get(Pitch, deferred.id).state == PitchState.ON_AGENDA
    assert db.session.get(Pitch, stranger_id) is None
    last = services.timeline("pitch", deferred.id)[-1]
    assert last.actor_id is None and last.details["to"] == "on_agenda"
    with frozen(datetime(2027, 3, 1, tzinfo=UTC)):
        assert editorial_housekeeping().links_removed >= 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MagicLink)) == 0


def test_a_new_password_retires_the_calendar_address(people):
    token = overview.feed_token(people.author)
    assert overview.user_for_feed(token) == people.author
    with frozen(datetime(2027, 2, 1, tzinfo=UTC)):
        people.author.password_changed_at = datetime(2027, 2, 1, tzinfo=UTC)
    assert overview.user_for_feed(token) is None
    assert overview.user_for_feed(overview.feed_token(people.author)) == people.author
    assert overview.user_for_feed("1.2.forged") is None


def test_the_editorial_jobs_are_registered_for_the_scheduler(app):
    from magazine.jobs import JOBS

    assert {"deadline-reminders", "editorial-housekeeping"} <= set(JOBS)
