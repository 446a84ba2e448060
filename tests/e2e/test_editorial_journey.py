"""The editorial pipeline in a real browser, from a reader's idea to the printer:
a pitch from the field is confirmed, accepted, written, reviewed, revised, accepted,
copy-edited, approved by the author, placed in an issue, and the issue goes to the printer.
Screenshots of the main pages land in tests/artifacts/ (editorial-*.png)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from editorial.models import Article, ArticleState, Issue, IssueState, Pitch, PitchState
from magazine.db import db
from magazine.roles import Role
from tests.conftest import ARTIFACTS, link_in
from tests.factories import DEFAULT_PASSWORD, make_issue, make_user

pytestmark = pytest.mark.browser

READER_EMAIL = "sara.veld@kinderdagverblijf.example"
TEXT_V1 = """# Slapen op eigen ritme

In onze leefgroep slapen de kinderen wanneer ze moe zijn, niet wanneer de klok het zegt.

Ouders vertellen bij het brengen hoe de nacht was. Wij schrijven het op een bordje bij het bed.
"""
TEXT_V2 = TEXT_V1 + """
## Wat ouders ervan vinden

Een mama vertelde: „Eindelijk slaapt ze 's avonds weer op tijd.” Dat hoorden we vaker.
"""


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"editorial-{name}.png"), full_page=True)


class Desk:
    """One browser context per person, logged in through the real login form."""

    def __init__(self, browser, live_server):
        self.browser, self.live_server, self.pages = browser, live_server, {}

    def __call__(self, email: str):
        if email not in self.pages:
            context = self.browser.new_context(viewport={"width": 1280, "height": 900},
                                               base_url=self.live_server)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/login")
            page.locator("#email").fill(email)
            page.locator("#password").fill(DEFAULT_PASSWORD)
            page.locator("main form button[type=submit]").click()
            page.wait_for_load_state()
            self.pages[email] = page
        return self.pages[email]

    def close(self):
        for page in self.pages.values():
            page.context.close()


def click_move(page, target: str) -> None:
    page.locator(f"form.moves-form button[name=to][value={target}]").click()
    page.wait_for_load_state()
    assert page.locator(".flash-error").count() == 0, page.locator(".flash-error").inner_text()


def write(page, article_id: int, text: str) -> None:
    page.goto(f"/editorial/articles/{article_id}/write")
    page.locator("#body").fill(text)
    page.locator("#save").click()
    page.wait_for_url(f"**/editorial/articles/{article_id}")


def review(page, article_id: int, advice: str, comment: str, confidential: str = "") -> None:
    page.goto("/editorial/reviews")
    page.locator("main table a").last.click()
    page.locator(f"input[name=recommendation][value={advice}]").check()
    page.locator("#comments_for_author").fill(comment)
    page.locator("#confidential_note").fill(confidential)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/editorial/reviews")


def ask_reader(page, article_id: int, reader_id: int) -> None:
    page.goto(f"/editorial/articles/{article_id}")
    page.locator("#reader").select_option(str(reader_id))
    page.locator("#due_date").fill((date.today() + timedelta(days=10)).isoformat())
    page.locator("form[action$='/readers'] button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator(".flash-success").count() == 1


def test_from_a_readers_idea_to_the_printer(app, browser, live_server, outbox):
    with app.app_context():
        chief = make_user(roles={Role.EDITOR_IN_CHIEF}, email="chief@journey.example",
                          name="Katrien Wouters")
        board = make_user(roles={Role.BOARD_MEMBER}, email="board@journey.example",
                          name="Jonas Claes")
        make_user(roles={Role.COPY_EDITOR}, email="copy@journey.example", name="Leen Maes")
        author = make_user(roles={Role.AUTHOR}, email="author@journey.example",
                           name="Fatima El Amrani")
        issue = make_issue(volume=4, number=1, print_date=date.today() + timedelta(days=60),
                           theme="Slaap en rust", page_budget=4)
        ids = {"author": author.id, "board": board.id, "issue": issue.id, "chief": chief.id}
    desk = Desk(browser, live_server)
    visitor = browser.new_context(viewport={"width": 1280, "height": 900},
                                  base_url=live_server).new_page()
    try:
        # 1. A reader from the field proposes an article, without an account.
        visitor.goto("/propose")
        visitor.locator("#name").fill("Sara Veld")
        visitor.locator("#email").fill(READER_EMAIL)
        visitor.locator("#organisation").fill("Kinderdagverblijf De Pluim")
        visitor.locator("#title").fill("Slapen op eigen ritme")
        visitor.locator("#summary").fill("Wij schaften de vaste middagdut af. Wat veranderde "
                                         "er voor kinderen, ouders en begeleiders?")
        shoot(visitor, "propose")
        visitor.locator("main form button[type=submit]").click()
        visitor.wait_for_load_state()
        assert READER_EMAIL in visitor.locator("main").inner_text()
        visitor.goto(link_in(outbox(READER_EMAIL)[0], "/propose/confirm/"))
        visitor.locator("main form button[type=submit]").click()
        visitor.wait_for_load_state()
        with app.app_context():
            pitch_id = db.session.scalar(sa.select(Pitch.id))

        # 2. The board discusses it; the chief puts it on the agenda and accepts it.
        board_page = desk("board@journey.example")
        board_page.goto(f"/editorial/pitches/{pitch_id}")
        board_page.locator("input[name=vote][value=for]").check()
        board_page.locator("#reason").fill("Herkenbaar voor veel groepen.")
        board_page.locator("form[action$='/vote'] button[type=submit]").click()
        board_page.wait_for_load_state()
        chief_page = desk("chief@journey.example")
        chief_page.goto("/editorial/pitches")
        chief_page.get_by_role("link", name="Slapen op eigen ritme").click()
        click_move(chief_page, "on_agenda")
        shoot(chief_page, "pitch-agenda")
        chief_page.locator("#author").select_option(str(ids["author"]))
        chief_page.locator("#issue").select_option(str(ids["issue"]))
        chief_page.locator("#target_words").fill("300")
        chief_page.locator("form[action$='/accept'] button[type=submit]").click()
        chief_page.wait_for_url("**/editorial/articles/*")
        article_id = int(chief_page.url.rsplit("/", 1)[1])
        assert any("aanvaard" in m.subject for m in outbox(READER_EMAIL))

        # 3. The author writes in the browser (with the live preview) and submits.
        author_page = desk("author@journey.example")
        author_page.goto(f"/editorial/articles/{article_id}/write")
        author_page.locator("#body").fill(TEXT_V1)
        author_page.locator("#live-preview h1").wait_for()
        assert "Slapen op eigen ritme" in author_page.locator("#live-preview h1").inner_text()
        shoot(author_page, "write")
        write(author_page, article_id, TEXT_V1)
        click_move(author_page, "draft_submitted")

        # 4. Review round 1: a board member asks for major changes.
        ask_reader(chief_page, article_id, ids["board"])
        review(board_page, article_id, "major", "Vertel ook wat ouders ervan vinden.",
               "Sterk idee; de tekst is nog kort.")
        shoot(board_page, "reviews")
        chief_page.goto(f"/editorial/articles/{article_id}")
        assert "Sterk idee" in chief_page.locator("#review").inner_text()
        click_move(chief_page, "revisions_requested")

        # 5. The author revises (the confidential note stays hidden) and resubmits.
        author_page.goto(f"/editorial/articles/{article_id}")
        assert "Vertel ook wat ouders" in author_page.locator("#review").inner_text()
        assert "Sterk idee" not in author_page.content()
        write(author_page, article_id, TEXT_V2)
        click_move(author_page, "draft_submitted")

        # 6. Review round 2: accept; the chief accepts the article.
        ask_reader(chief_page, article_id, ids["board"])
        review(board_page, article_id, "accept", "Mooi zo.")
        chief_page.goto(f"/editorial/articles/{article_id}")
        click_move(chief_page, "accepted")

        # 7. Copy editing is a revision like any other; then the author approves by link.
        copy_page = desk("copy@journey.example")
        copy_page.goto(f"/editorial/articles/{article_id}")
        click_move(copy_page, "copyediting")
        write(copy_page, article_id, TEXT_V2.replace("bordje bij het bed", "bordje bij het "
                                                                           "bedje"))
        copy_page.goto(f"/editorial/articles/{article_id}/compare?a=2&b=3")
        assert copy_page.locator("table.diff").count() == 1
        shoot(copy_page, "compare")
        copy_page.goto(f"/editorial/articles/{article_id}")
        click_move(copy_page, "author_approval")
        approval = [m for m in outbox("author@journey.example")
                    if m.template == "editorial_author_approval"][-1]
        visitor.goto(link_in(approval, "/approve/"))
        assert "bordje bij het bedje" in visitor.locator("article.prose").inner_text()
        visitor.locator("#approve").click()
        visitor.wait_for_load_state()

        # 8. Into the flatplan, through layout and proof to press ready.
        copy_page.goto(f"/editorial/issues/{ids['issue']}")
        copy_page.locator("#label").fill("Cover en inhoud")
        copy_page.locator("#pages").fill("2")
        copy_page.locator("form[action$='/slots'] button[type=submit]").click()
        copy_page.wait_for_load_state()
        copy_page.locator("#article").select_option(str(article_id))
        copy_page.locator("form[action$='/slots'] button[type=submit]").click()
        copy_page.wait_for_load_state()
        copy_page.locator("#label").fill("Achterflap")
        copy_page.locator("#pages").fill("1")
        copy_page.locator("form[action$='/slots'] button[type=submit]").click()
        copy_page.wait_for_load_state()
        assert "4" in copy_page.locator(".stats .stat-value").first.inner_text()
        # The back cover goes up one place with the keyboard-friendly button: order is 1-3-2.
        copy_page.locator("table.flatplan tbody tr").last.locator(
            "button[value=up]").click()
        copy_page.wait_for_load_state()
        rows = copy_page.locator("table.flatplan tbody tr")
        assert "Achterflap" in rows.nth(1).inner_text()
        for target in ("in_layout", "proof", "press_ready"):
            copy_page.goto(f"/editorial/articles/{article_id}")
            click_move(copy_page, target)

        # 9. The issue closes its copy, goes into layout, and to the printer.
        chief_page.goto(f"/editorial/issues/{ids['issue']}")
        for target in ("copy_closed", "in_layout", "at_printer"):
            click_move(chief_page, target)
        assert chief_page.locator(".flash-success").count() == 1
        shoot(chief_page, "issue-at-printer")
        with app.app_context():
            assert db.session.get(Issue, ids["issue"]).state == IssueState.AT_PRINTER
            article = db.session.get(Article, article_id)
            assert article.state == ArticleState.PRESS_READY
            assert [r.number for r in article.rounds] == [1, 2]
            assert db.session.get(Pitch, pitch_id).state == PitchState.ACCEPTED

        # The overviews, for the record.
        chief_page.goto("/editorial/")
        shoot(chief_page, "my-work")
        chief_page.goto("/editorial/board")
        shoot(chief_page, "board")
        chief_page.goto(f"/editorial/articles/{article_id}")
        shoot(chief_page, "article")
    finally:
        visitor.context.close()
        desk.close()


def test_demo_pages_look_right(app, browser, live_server):
    """The main editorial pages on the demo data, as the chief sees them (screenshots)."""
    from magazine.demo import load_demo

    with app.app_context():
        load_demo()
        production = db.session.scalar(sa.select(Issue).where(
            Issue.state == IssueState.IN_LAYOUT))
        in_review = db.session.scalar(sa.select(Article).where(
            Article.state == ArticleState.IN_REVIEW))
        on_agenda = db.session.scalar(sa.select(Pitch).where(
            Pitch.state == PitchState.ON_AGENDA))
        paths = {"demo-my-work": "/editorial/", "demo-agenda": "/editorial/pitches",
                 "demo-board": "/editorial/board", "demo-calendar": "/editorial/calendar",
                 "demo-issue": f"/editorial/issues/{production.id}",
                 "demo-article": f"/editorial/articles/{in_review.id}",
                 "demo-pitch": f"/editorial/pitches/{on_agenda.id}",
                 "demo-issues": "/editorial/issues"}
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server)
    page = context.new_page()
    try:
        page.goto("/login")
        page.locator("#email").fill("editor_in_chief@demo.example")
        page.locator("#password").fill("demo-password")
        page.locator("main form button[type=submit]").click()
        page.wait_for_load_state()
        for name, path in paths.items():
            response = page.goto(path)
            assert response.status == 200, path
            shoot(page, name)
        # A phone-sized look at the flatplan.
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(paths["demo-issue"])
        shoot(page, "demo-issue-phone")
    finally:
        context.close()
    # The author's and the reviewer's view.
    for role, path in (("author", "/editorial/"), ("reviewer", "/editorial/reviews")):
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      base_url=live_server)
        page = context.new_page()
        try:
            page.goto("/login")
            page.locator("#email").fill(f"{role}@demo.example")
            page.locator("#password").fill("demo-password")
            page.locator("main form button[type=submit]").click()
            page.wait_for_load_state()
            assert page.goto(path).status == 200
            shoot(page, f"demo-{role}")
            if role == "reviewer":
                page.locator("main table a").first.click()
                page.wait_for_load_state()
                shoot(page, "demo-reviewer-reading")
        finally:
            context.close()
