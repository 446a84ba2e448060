"""Issues: deadlines worked back from the print date, the flatplan's arithmetic and order,
and the guard before the printer."""

from __future__ import annotations

from datetime import date

import pytest

from editorial import services
from editorial.models import ArticleImage, ArticleState, Consent, IssueState
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from tests.editorial.conftest import make_article
from tests.factories import make_issue


def test_deadlines_are_worked_back_from_the_print_date(app_context):
    deadlines = services.derive_deadlines(date(2027, 3, 1))
    assert deadlines == {
        "copy_deadline": date(2027, 1, 18), "board_meeting": date(2027, 1, 25),
        "layout_deadline": date(2027, 2, 1), "proof_deadline": date(2027, 2, 15),
        "printer_deadline": date(2027, 2, 22), "dispatch_cutoff": date(2027, 2, 24),
    }


def test_offsets_come_from_the_setting(app, app_context, monkeypatch):
    from magazine.config import ConfigError, _offsets

    offsets = _offsets("copy_deadline=60, proof_deadline=10")
    assert offsets["copy_deadline"] == 60 and offsets["board_meeting"] == 35
    with pytest.raises(ConfigError):
        _offsets("printing=3")
    monkeypatch.setitem(app.config, "ISSUE_DEADLINE_OFFSETS", offsets)
    assert services.derive_deadlines(date(2027, 3, 1))["copy_deadline"] == date(2026, 12, 31)


def test_create_an_issue_with_one_deadline_edited(people):
    issue = services.create_issue(actor=people.chief, volume=4, number=1,
                                  print_date=date(2027, 3, 1), theme="Taal in de kinderopvang",
                                  deadlines={"copy_deadline": date(2027, 1, 10)})
    db.session.commit()
    assert issue.code == "4.1" and issue.state == IssueState.PLANNED
    assert issue.copy_deadline == date(2027, 1, 10)
    assert issue.proof_deadline == date(2027, 2, 15)


def test_issue_rules(people):
    services.create_issue(actor=people.chief, volume=4, number=1, print_date=date(2027, 3, 1))
    with pytest.raises(DomainError) as error:
        services.create_issue(actor=people.chief, volume=4, number=1,
                              print_date=date(2027, 6, 1))
    assert error.value.field == "number"
    with pytest.raises(DomainError) as error:
        services.create_issue(actor=people.chief, volume=4, number=2,
                              print_date=date(2027, 6, 1), page_budget=30)
    assert error.value.field == "page_budget"
    with pytest.raises(DomainError) as error:
        services.create_issue(actor=people.chief, volume=4, number=3,
                              print_date=date(2027, 6, 1),
                              deadlines={"proof_deadline": date(2027, 6, 2)})
    assert error.value.field == "proof_deadline"
    with pytest.raises(PermissionDenied):
        services.create_issue(actor=people.board, volume=4, number=4,
                              print_date=date(2027, 6, 1))


def test_page_estimate_from_words_and_images(app_context):
    assert services.estimate_pages(0, 0) == 1
    assert services.estimate_pages(650, 0) == 1
    assert services.estimate_pages(651, 0) == 2
    assert services.estimate_pages(1300, 2) == 3
    assert services.estimate_pages(1300, 3) == 4


def test_flatplan_total_running_and_warnings(people, issue):
    issue.page_budget = 12
    services.add_slot(issue, actor=people.chief, label="Cover en inhoud", pages=2)
    article = make_article(people.author, words=1300)
    slot = services.add_slot(issue, actor=people.copy, article=article)
    assert slot.pages == 2 and not slot.pages_set_by_hand
    assert article.issue_id == issue.id
    plan = services.flatplan_of(issue)
    assert (plan.total, plan.running) == (4, [2, 4])
    assert plan.multiple_of_four and plan.under_budget
    assert plan.warnings() == ["8 pagina's nog vrij in het budget van 12."] or \
        plan.warnings() == ["8 pages still free in the budget of 12."]
    services.set_slot_pages(slot, 11, actor=people.chief)
    plan = services.flatplan_of(issue)
    assert plan.total == 13 and plan.over_budget and not plan.multiple_of_four
    assert len(plan.warnings()) == 2


def test_slots_move_up_and_down_and_reorder_whole(people, issue):
    a = services.add_slot(issue, actor=people.chief, label="A")
    b = services.add_slot(issue, actor=people.chief, label="B")
    c = services.add_slot(issue, actor=people.chief, label="C")
    services.move_slot(c, -1, actor=people.chief)
    assert [s.label for s in issue.slots] == ["A", "C", "B"]
    services.move_slot(a, -1, actor=people.chief)  # the top stays the top
    assert [s.label for s in issue.slots] == ["A", "C", "B"]
    services.reorder_slots(issue, [b.id, a.id, c.id], actor=people.chief)
    assert [s.label for s in issue.slots] == ["B", "A", "C"]
    with pytest.raises(DomainError):
        services.reorder_slots(issue, [b.id, a.id], actor=people.chief)
    with pytest.raises(PermissionDenied):
        services.move_slot(a, 1, actor=people.board)
    services.remove_slot(b, actor=people.chief)
    assert [(s.label, s.position) for s in issue.slots] == [("A", 0), ("C", 1)]


def test_an_article_is_placed_once(people, issue):
    article = make_article(people.author)
    services.add_slot(issue, actor=people.chief, article=article)
    other = make_issue(volume=3, number=3)
    with pytest.raises(DomainError):
        services.add_slot(other, actor=people.chief, article=article)


def go_to_layout(issue, chief):
    services.move_issue(issue, IssueState.COPY_CLOSED, actor=chief)
    services.move_issue(issue, IssueState.IN_LAYOUT, actor=chief)


def test_the_printer_waits_for_press_ready_articles_and_fitting_pages(people, issue):
    issue.page_budget = 8
    article = make_article(people.author, state=ArticleState.PROOF, words=1300)
    services.add_slot(issue, actor=people.chief, label="Cover", pages=2)
    services.add_slot(issue, actor=people.chief, article=article, pages=5)
    go_to_layout(issue, people.chief)
    with pytest.raises(DomainError) as error:
        services.move_issue(issue, IssueState.AT_PRINTER, actor=people.chief)
    assert "Wennen met ouders" in error.value.message and "4" in error.value.message
    services.move_article(article, ArticleState.PRESS_READY, actor=people.copy)
    issue.slots[1].pages = 6
    services.move_issue(issue, IssueState.AT_PRINTER, actor=people.chief)
    assert issue.state == IssueState.AT_PRINTER
    services.move_issue(issue, IssueState.PUBLISHED, actor=people.chief)
    assert article.state == ArticleState.PUBLISHED


def test_press_ready_is_refused_while_an_image_lacks_credit_or_consent(people):
    article = make_article(people.author, state=ArticleState.PROOF)
    image = ArticleImage(article=article, filename="buiten.jpg", content_type="image/jpeg",
                         width=800, height=600, data=b"x", caption="Spelen in de regen",
                         credit="", consent=Consent.ON_FILE)
    db.session.add(image)
    with pytest.raises(DomainError, match=r"buiten\.jpg"):
        services.move_article(article, ArticleState.PRESS_READY, actor=people.copy)
    image.credit, image.consent = "Foto: Lies Goossens", Consent.MISSING
    with pytest.raises(DomainError):
        services.move_article(article, ArticleState.PRESS_READY, actor=people.copy)
    image.consent = Consent.NOT_NEEDED
    services.move_article(article, ArticleState.PRESS_READY, actor=people.copy)
    assert article.state == ArticleState.PRESS_READY


def test_deferring_an_article_takes_it_out_of_the_flatplan(people, issue):
    article = make_article(people.author, state=ArticleState.IN_LAYOUT)
    services.add_slot(issue, actor=people.chief, article=article)
    services.move_article(article, ArticleState.DEFERRED, actor=people.chief)
    db.session.commit()
    assert article.slot is None and article.issue_id is None and issue.slots == []


def test_copy_close_moves_an_unready_article_to_a_later_issue(people, issue):
    article = make_article(people.author, state=ArticleState.COPYEDITING)
    services.add_slot(issue, actor=people.chief, article=article)
    later = make_issue(volume=3, number=9, print_date=date(2027, 6, 1))
    with pytest.raises(PermissionDenied):
        services.update_article(article, actor=people.copy, title="x", summary="",
                                rubric=None, target_words=800, deadline=None, issue=later)
    services.update_article(article, actor=people.chief, title="Wennen met ouders",
                            summary="", rubric=None, target_words=800,
                            deadline=later.copy_deadline, issue=later)
    db.session.commit()
    assert article.issue == later and article.slot is None and issue.slots == []
    assert article.deadline == date(2027, 4, 20)


def test_estimated_pages_follow_the_text_until_set_by_hand(people, issue):
    article = make_article(people.author, state=ArticleState.COMMISSIONED, words=100)
    slot = services.add_slot(issue, actor=people.chief, article=article)
    assert slot.pages == 1
    services.save_revision(article, actor=people.author, body=" ".join(["woord"] * 1400))
    assert slot.pages == 3
    services.set_slot_pages(slot, 2, actor=people.chief)
    services.save_revision(article, actor=people.author, body=" ".join(["woord"] * 2400))
    assert slot.pages == 2
