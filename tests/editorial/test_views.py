"""The editorial pages over HTTP: forms, buttons, messages next to fields, and who sees
what."""

from __future__ import annotations

import re
from datetime import date

import sqlalchemy as sa

from editorial import services
from editorial.models import Article, Issue, Pitch, PitchState, Rubric
from magazine.db import db
from magazine.roles import Role
from tests.conftest import get_user, link_in
from tests.editorial.conftest import make_article, make_pitch
from tests.factories import make_issue, make_user


def test_chief_plans_an_issue_with_worked_back_deadlines(app, login_as):
    chief = login_as(Role.EDITOR_IN_CHIEF)
    page = chief.get("/editorial/issues/new")
    assert page.status_code == 200 and b"42" in page.data
    response = chief.post("/editorial/issues/new", data={
        "volume": "5", "number": "1", "theme": "Buitenspelen", "print_date": "2027-03-01",
        "page_budget": "32"})
    assert response.status_code == 302
    with app.app_context():
        issue = db.session.scalar(sa.select(Issue))
        assert issue.copy_deadline == date(2027, 1, 18)
        issue_id = issue.id
    detail = chief.get(f"/editorial/issues/{issue_id}")
    assert detail.status_code == 200 and "Buitenspelen" in detail.text
    again = chief.post("/editorial/issues/new", data={
        "volume": "5", "number": "1", "print_date": "2027-06-01", "page_budget": "30"})
    assert again.status_code == 400
    assert re.search(r'class="error" id="page_budget-error"', again.text)


def test_flatplan_buttons_work_without_javascript(app, login_as):
    copy_editor = login_as(Role.COPY_EDITOR)
    with app.app_context():
        issue = make_issue(volume=2, number=3)
        issue_id = issue.id
    for label in ("Cover", "Editoriaal", "Achterkant"):
        assert copy_editor.post(f"/editorial/issues/{issue_id}/slots",
                                data={"label": label, "pages": "1"}).status_code == 302
    with app.app_context():
        ids = [s.id for s in db.session.get(Issue, issue_id).slots]
    copy_editor.post(f"/editorial/issues/{issue_id}/slots/{ids[2]}/move",
                     data={"direction": "up"})
    copy_editor.post(f"/editorial/issues/{issue_id}/slots/{ids[0]}/pages", data={"pages": "2"})
    page = copy_editor.get(f"/editorial/issues/{issue_id}")
    assert page.text.index("Achterkant") < page.text.index("Editoriaal")
    assert "multiple of 4" not in page.text and "veelvoud van 4" not in page.text
    response = copy_editor.post(f"/editorial/issues/{issue_id}/slots/order",
                                data={"order": f"{ids[1]},{ids[0]},{ids[2]}"},
                                headers={"Accept": "application/json"})
    assert response.json == {"ok": True}
    with app.app_context():
        assert [s.label for s in db.session.get(Issue, issue_id).slots] == [
            "Editoriaal", "Cover", "Achterkant"]
    board = login_as(Role.BOARD_MEMBER)
    assert board.post(f"/editorial/issues/{issue_id}/slots",
                      data={"label": "X"}).status_code == 403
    assert "Move up" not in board.get(f"/editorial/issues/{issue_id}").text


def test_public_proposal_from_form_to_agenda(app, client, outbox, login_as):
    login_as(Role.EDITOR_IN_CHIEF, email="chief@example.org")
    page = client.get("/propose")
    assert page.status_code == 200 and 'name="website"' in page.text
    response = client.post("/propose", data={
        "name": "Sara De Smet", "email": "sara@example.org", "title": "Slapen in de crèche",
        "summary": "Hoe wij slaapritmes van thuis respecteren in een groep van negen."})
    assert response.status_code == 200 and "sara@example.org" in response.text
    path = link_in(outbox("sara@example.org")[0], "/propose/confirm/")
    assert client.get(path).status_code == 200  # a button, nothing confirmed yet
    with app.app_context():
        assert services.agenda() == []
    assert client.post(path).status_code == 200
    with app.app_context():
        assert [p.title for p in services.agenda()] == ["Slapen in de crèche"]
    assert client.post(path).status_code == 404


def test_public_form_shows_errors_next_to_fields(client):
    response = client.post("/propose", data={"name": "", "email": "geen-adres", "title": "X",
                                              "summary": "kort"})
    assert response.status_code == 400
    assert 'id="email-error"' in response.text and 'id="name-error"' in response.text


def test_author_sees_own_pitch_and_article_only(app, login_as):
    author = login_as(Role.AUTHOR, email="author@example.org")
    with app.app_context():
        me = get_user("author@example.org")
        other = services.submit_pitch(actor=me, title="Eigen voorstel",
                                      summary="Een voorstel van de auteur zelf, lang genoeg.")
        db.session.commit()
        someone = make_user(roles={Role.BOARD_MEMBER})
        theirs = make_pitch(someone, title="Voorstel van iemand anders")
        own_article = make_article(me, title="Mijn artikel")
        their_article = make_article(someone, title="Niet van mij")
        ids = other.id, theirs.id, own_article.id, their_article.id
    assert author.get(f"/editorial/pitches/{ids[0]}").status_code == 200
    assert author.get(f"/editorial/pitches/{ids[1]}").status_code == 404
    assert author.get(f"/editorial/articles/{ids[2]}").status_code == 200
    assert author.get(f"/editorial/articles/{ids[3]}").status_code == 404
    listing = author.get("/editorial/pitches").text
    assert "Eigen voorstel" in listing and "iemand anders" not in listing
    assert "Niet van mij" not in author.get("/editorial/articles").text


def test_chief_decides_from_the_pitch_page(app, login_as, outbox):
    chief = login_as(Role.EDITOR_IN_CHIEF)
    with app.app_context():
        author = make_user(roles={Role.AUTHOR}, email="schrijver@example.org")
        pitch = make_pitch(author)
        db.session.add(Rubric(name="Tools"))
        db.session.commit()
        pitch_id, author_id = pitch.id, author.id
        issue = make_issue(volume=3, number=4, print_date=date(2027, 9, 1))
        issue_id = issue.id
    assert chief.post(f"/editorial/pitches/{pitch_id}/move",
                      data={"to": "on_agenda"}).status_code == 302
    page = chief.get(f"/editorial/pitches/{pitch_id}")
    assert "Accept and commission" in page.text or "Aanvaarden" in page.text
    response = chief.post(f"/editorial/pitches/{pitch_id}/accept", data={
        "author": str(author_id), "target_words": "900", "issue": str(issue_id)})
    assert response.status_code == 302 and "/editorial/articles/" in response.location
    with app.app_context():
        pitch = db.session.get(Pitch, pitch_id)
        assert pitch.state == PitchState.ACCEPTED
        assert pitch.article.deadline == date(2027, 7, 21)
    assert chief.get(response.location).status_code == 200
    assert [m.template for m in outbox("schrijver@example.org")] == [
        "editorial_pitch_decision", "editorial_article_commissioned"]


def test_a_forbidden_move_changes_nothing_and_says_why(app, login_as):
    board = login_as(Role.BOARD_MEMBER, email="lid@example.org")
    with app.app_context():
        pitch = make_pitch(get_user("lid@example.org"))
        pitch_id = pitch.id
    response = board.post(f"/editorial/pitches/{pitch_id}/move", data={"to": "accepted"},
                          follow_redirects=True)
    assert "flash-error" in response.text
    with app.app_context():
        assert db.session.get(Pitch, pitch_id).state == PitchState.SUBMITTED


def test_article_page_shows_word_count_against_target(app, login_as):
    chief = login_as(Role.EDITOR_IN_CHIEF, email="c@example.org")
    with app.app_context():
        article = make_article(get_user("c@example.org"), words=600)
        article_id = article.id
        assert db.session.get(Article, article_id).word_count == 600
    page = chief.get(f"/editorial/articles/{article_id}").text
    assert "600" in page and "1000" in page


def test_chief_edits_an_articles_details(app, login_as):
    chief = login_as(Role.EDITOR_IN_CHIEF, email="ed@example.org")
    with app.app_context():
        article = make_article(make_user(roles={Role.AUTHOR}))
        issue = make_issue(volume=7, number=1, print_date=date(2027, 9, 1))
        article_id, issue_id = article.id, issue.id
    assert chief.get(f"/editorial/articles/{article_id}/edit").status_code == 200
    response = chief.post(f"/editorial/articles/{article_id}/edit", data={
        "title": "Nieuwe titel", "summary": "", "target_words": "50", "issue": str(issue_id)})
    assert response.status_code == 400 and 'id="target_words-error"' in response.text
    response = chief.post(f"/editorial/articles/{article_id}/edit", data={
        "title": "Nieuwe titel", "summary": "", "target_words": "700", "issue": str(issue_id),
        "deadline": "2027-07-01"})
    assert response.status_code == 302
    with app.app_context():
        article = db.session.get(Article, article_id)
        assert (article.title, article.issue_id, article.deadline) == (
            "Nieuwe titel", issue_id, date(2027, 7, 1))


def test_copy_close_panel_defers_what_is_not_ready(app, login_as):
    chief = login_as(Role.EDITOR_IN_CHIEF, email="cc@example.org")
    with app.app_context():
        from editorial.models import ArticleState, IssueState

        issue = make_issue(volume=8, number=1, state=IssueState.COPY_CLOSED)
        article = make_article(make_user(roles={Role.AUTHOR}), state=ArticleState.COPYEDITING)
        services.add_slot(issue, actor=get_user("cc@example.org"), article=article)
        db.session.commit()
        issue_id, article_id = issue.id, article.id
    page = chief.get(f"/editorial/issues/{issue_id}").text
    assert 'id="copy-close"' in page and "Wennen met ouders" in page
    chief.post(f"/editorial/articles/{article_id}/move", data={"to": "deferred"})
    with app.app_context():
        assert db.session.get(Issue, issue_id).slots == []
    assert 'id="copy-close"' not in chief.get(f"/editorial/issues/{issue_id}").text


def test_a_proposer_with_an_account_answers_on_the_pitch_page(app, login_as):
    author = login_as(Role.AUTHOR, email="vraag@example.org")
    with app.app_context():
        chief = make_user(roles={Role.EDITOR_IN_CHIEF})
        pitch = make_pitch(get_user("vraag@example.org"))
        services.move_pitch(pitch, PitchState.ON_AGENDA, actor=chief)
        services.ask_pitch_info(pitch, actor=chief, question="Voor welke leeftijd?")
        db.session.commit()
        pitch_id = pitch.id
    assert f'action="/editorial/pitches/{pitch_id}/answer"' in author.get(
        f"/editorial/pitches/{pitch_id}").text
    author.post(f"/editorial/pitches/{pitch_id}/answer", data={"answer": "Baby's en peuters."})
    with app.app_context():
        assert db.session.get(Pitch, pitch_id).state == PitchState.SUBMITTED
        assert [c.body for c in services.thread(pitch=db.session.get(Pitch, pitch_id))] == [
            "Baby's en peuters."]


def test_decisions_need_their_own_form(app, login_as):
    chief = login_as(Role.EDITOR_IN_CHIEF, email="beslis@example.org")
    with app.app_context():
        pitch = make_pitch(make_user(roles={Role.AUTHOR}))
        services.move_pitch(pitch, PitchState.ON_AGENDA, actor=get_user("beslis@example.org"))
        db.session.commit()
        pitch_id = pitch.id
    response = chief.post(f"/editorial/pitches/{pitch_id}/move", data={"to": "accepted"},
                          follow_redirects=True)
    assert "flash-error" in response.text
    with app.app_context():
        assert db.session.get(Pitch, pitch_id).state == PitchState.ON_AGENDA
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Article)) == 0


def test_a_slot_gets_a_label_rubric_and_pages(app, login_as):
    planner = login_as(Role.COPY_EDITOR)
    with app.app_context():
        issue = make_issue(volume=6, number=2)
        rubric = Rubric(name="Column")
        db.session.add(rubric)
        db.session.commit()
        issue_id, rubric_id = issue.id, rubric.id
    planner.post(f"/editorial/issues/{issue_id}/slots", data={"label": "Advertentie"})
    with app.app_context():
        slot_id = db.session.get(Issue, issue_id).slots[0].id
    path = f"/editorial/issues/{issue_id}/slots/{slot_id}/edit"
    assert planner.get(path).status_code == 200
    assert planner.post(path, data={"label": "", "pages": "2"}).status_code == 400
    response = planner.post(path, data={"label": "Column van de maand",
                                        "rubric": str(rubric_id), "pages": "2"})
    assert response.status_code == 302
    with app.app_context():
        slot = db.session.get(Issue, issue_id).slots[0]
        assert (slot.label, slot.rubric_id, slot.pages, slot.pages_set_by_hand) == (
            "Column van de maand", rubric_id, 2, True)


def test_accept_form_prepares_the_readers_invitation(app, login_as, client, outbox):
    chief = login_as(Role.EDITOR_IN_CHIEF, email="prep@example.org")
    with app.app_context():
        pitch = services.submit_public_pitch(
            name="Sara Veld", email="sara.veld@example.org", title="Slapen",
            summary="Over slaapritmes in een groep van negen peuters.")
        pitch.confirmed_at = pitch.created_at
        services.move_pitch(pitch, PitchState.ON_AGENDA, actor=get_user("prep@example.org"))
        db.session.commit()
        pitch_id = pitch.id
    page = chief.get(f"/editorial/pitches/{pitch_id}").text
    assert 'value="Sara Veld"' in page and 'value="sara.veld@example.org"' in page
