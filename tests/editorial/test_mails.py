"""Every editorial mail renders in Dutch and English: a subject line, the links it promises,
and nothing left of the template."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace as NS

import pytest

from magazine.mail import render_mail

PERSON = NS(name="Katrien Wouters", email="k@example.org")
ISSUE = NS(code="3.2", theme="Buitenspelen", layout_deadline=date(2027, 2, 1))
ARTICLE = NS(title="Wennen", author=NS(name="Fatima", email="f@example.org"), target_words=900,
             deadline=date(2027, 1, 15), issue=ISSUE, rubric=NS(name="Tools"), word_count=850)
PITCH = NS(title="Slapen", proposer_name="Sara", proposer_email="s@example.org",
           proposer_organisation="De Pluim", summary="Over slapen.",
           deferred_until=date(2027, 2, 1))
REVIEW = NS(reader_name="Hilde", due_date=date(2027, 1, 20),
            recommendation=NS(value="minor"))
ITEM = NS(title="Wennen", due=date(2027, 1, 15), what="Write and submit")
URL = "http://localhost/x"

CONTEXTS = {
    "editorial_article_commissioned": dict(article=ARTICLE, chief=PERSON, article_url=URL),
    "editorial_article_decision": dict(article=ARTICLE, decision="revisions_requested",
                                       note="Graag korter.", reviews=["Mooi."],
                                       article_url=URL),
    "editorial_article_deferred": dict(article=ARTICLE, note="", article_url=URL),
    "editorial_copy_ready": dict(article=ARTICLE, person=PERSON, note="", article_url=URL),
    "editorial_article_submitted": dict(article=ARTICLE, person=PERSON, article_url=URL),
    "editorial_author_approval": dict(article=ARTICLE, approval_url=URL, article_url=URL),
    "editorial_author_commented": dict(article=ARTICLE, person=PERSON, note="Titel?",
                                       article_url=URL),
    "editorial_mention": dict(person=PERSON, actor=PERSON, title="Wennen", body="@k", url=URL),
    "editorial_pitch_confirm": dict(pitch=PITCH, confirm_url=URL, valid_days=3),
    "editorial_pitch_new": dict(pitch=PITCH, person=PERSON, pitch_url=URL),
    "editorial_reminder": dict(item=ITEM, name="Fatima", overdue=False, url=URL, days=2),
    "editorial_review_received": dict(review=REVIEW, person=PERSON, article=ARTICLE,
                                      article_url=URL),
    "editorial_review_request": dict(review=REVIEW, article=ARTICLE, chief=PERSON,
                                     review_url=URL, external=True),
}
DECISIONS = [
    dict(decision="accepted", note="Welkom!", article=NS(**vars(ARTICLE))),
    dict(decision="declined", note="Recent behandeld."),
    dict(decision="deferred", note=""),
    dict(decision="needs_info", note="Welke leeftijd?", answer_url=URL,
         answer_by=date(2027, 1, 5)),
]


@pytest.mark.parametrize("locale", ["nl_BE", "en"])
@pytest.mark.parametrize("template", sorted(CONTEXTS))
def test_each_mail_renders(app_context, template, locale):
    subject, body = render_mail(template, locale, **CONTEXTS[template])
    assert subject and "{" not in subject
    assert URL in body and "{{" not in body and "{%" not in body


@pytest.mark.parametrize("locale", ["nl_BE", "en"])
@pytest.mark.parametrize("context", DECISIONS, ids=lambda c: c["decision"])
def test_each_pitch_decision_says_what_happens_now(app_context, context, locale):
    subject, body = render_mail("editorial_pitch_decision", locale, pitch=PITCH, chief=PERSON,
                                **context)
    assert PITCH.title in subject
    if context["note"]:
        assert context["note"] in body
    if context["decision"] == "needs_info":
        assert URL in body
