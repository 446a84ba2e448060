"""Pitches: submitting (with and without an account), the agenda, votes, and each of the
chief's decisions with the mail the proposer gets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from editorial import services
from editorial.models import ArticleState, DeclineReason, Pitch, PitchState, Vote
from magazine.clock import frozen, shifted
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.models import AuditEvent, OutboxMail
from magazine.roles import Role
from tests.conftest import link_in
from tests.editorial.conftest import make_pitch

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def mails_to(address: str) -> list[OutboxMail]:
    return list(db.session.scalars(sa.select(OutboxMail).where(OutboxMail.to_address == address)
                                   .order_by(OutboxMail.id)))


def public_pitch(**overrides) -> Pitch | None:
    values = dict(name="Sara De Smet", email="sara@kinderdagverblijf.example",
                  title="Slapen in de crèche", organisation="Kinderdagverblijf De Pluim",
                  summary="Hoe wij slaapritmes van thuis respecteren in een groep van negen.",
                  client_address="203.0.113.9")
    values.update(overrides)
    return services.submit_public_pitch(**values)


def test_a_board_member_submits_a_pitch_that_reaches_the_agenda(people, rubric, issue):
    pitch = make_pitch(people.board, rubric=rubric, target_issue=issue, estimated_words=900)
    assert pitch.state == PitchState.SUBMITTED and pitch.confirmed_at is not None
    assert pitch in services.agenda()
    assert [e.action for e in services.timeline("pitch", pitch.id)] == ["pitch.submitted"]


def test_a_reviewer_cannot_submit_and_bad_input_is_refused(people):
    with pytest.raises(PermissionDenied):
        make_pitch(people.reviewer)
    with pytest.raises(DomainError) as error:
        services.submit_pitch(actor=people.author, title="Kort", summary="te kort")
    assert error.value.field == "summary"


def test_public_pitch_waits_for_the_mailed_link(people):
    with frozen(NOW):
        pitch = public_pitch()
        db.session.commit()
        assert pitch not in services.agenda()
        mail = mails_to("sara@kinderdagverblijf.example")[0]
        assert "Bevestig" in mail.subject
        token = link_in(mail, "/propose/confirm/").rsplit("/", 1)[1]
        services.confirm_public_pitch(token)
        db.session.commit()
    assert pitch in services.agenda()
    assert mails_to("chief@example.org"), "the chief hears of the new pitch"
    with pytest.raises(DomainError):
        services.confirm_public_pitch(token)  # once only


def test_public_confirmation_link_expires(people):
    with frozen(NOW):
        public_pitch()
        db.session.commit()
        token = link_in(mails_to("sara@kinderdagverblijf.example")[0],
                        "/propose/confirm/").rsplit("/", 1)[1]
    with frozen(NOW + timedelta(days=services.CONFIRM_LINK_DAYS, minutes=1)), \
            pytest.raises(DomainError, match=r"expired|verlopen"):
        services.confirm_public_pitch(token)


def test_public_pitches_are_rate_limited_per_address(app, people):
    limit = app.config["PUBLIC_PITCHES_PER_DAY"]
    with frozen(NOW):
        for n in range(limit):
            public_pitch(title=f"Voorstel {n}")
        with pytest.raises(DomainError) as error:
            public_pitch(title="Eén te veel")
        assert error.value.field == "email"
    with frozen(NOW + timedelta(days=1, minutes=1)):
        assert public_pitch(title="De volgende dag mag het weer") is not None


def test_the_honeypot_keeps_nothing_and_says_nothing(people):
    assert public_pitch(honeypot="http://spam.example") is None
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Pitch)) == 0
    assert mails_to("sara@kinderdagverblijf.example") == []


def test_board_votes_once_each_with_a_reason_when_against(people):
    pitch = make_pitch(people.author)
    services.cast_vote(pitch, actor=people.board, vote=Vote.FOR)
    with pytest.raises(DomainError) as error:
        services.cast_vote(pitch, actor=people.chief, vote=Vote.AGAINST)
    assert error.value.field == "reason"
    services.cast_vote(pitch, actor=people.board, vote=Vote.AGAINST, reason="Al verschenen")
    db.session.commit()
    assert services.vote_counts(pitch) == {Vote.FOR: 0, Vote.AGAINST: 1, Vote.ABSTAIN: 0}
    with pytest.raises(PermissionDenied):
        services.cast_vote(pitch, actor=people.author, vote=Vote.FOR)


def on_agenda(pitch, chief):
    services.move_pitch(pitch, PitchState.ON_AGENDA, actor=chief)
    db.session.commit()
    return pitch


def test_accepting_commissions_an_article_with_the_issue_copy_deadline(people, rubric, issue):
    pitch = on_agenda(make_pitch(people.board, target_issue=issue), people.chief)
    with frozen(NOW):
        article = services.accept_pitch(pitch, actor=people.chief, commission=services.Commission(
            author=people.author, rubric=rubric, target_words=1100, issue=issue))
        db.session.commit()
    assert pitch.state == PitchState.ACCEPTED
    assert article.state == ArticleState.COMMISSIONED
    assert article.deadline == issue.copy_deadline
    assert (article.author, article.rubric, article.target_words) == (people.author, rubric, 1100)
    proposer_mail = mails_to("board@example.org")[-1]
    assert "aanvaard" in proposer_mail.subject
    assert "Fatima El Amrani schrijft het artikel" in proposer_mail.body_text
    author_mail = mails_to("author@example.org")[-1]
    assert "/editorial/articles/" in author_mail.body_text


def test_accepting_with_a_new_author_invites_them(people):
    pitch = on_agenda(make_pitch(people.board), people.chief)
    with frozen(NOW):
        article = services.accept_pitch(pitch, actor=people.chief, commission=services.Commission(
            invite_name="Noor Peeters", invite_email="Noor@Onthaal.example"))
        db.session.commit()
    assert article.author.email == "noor@onthaal.example"
    assert article.author.has_role(Role.AUTHOR)
    templates = [m.template for m in mails_to("noor@onthaal.example")]
    assert templates == ["invitation", "editorial_article_commissioned"]
    assert article.deadline == date(2027, 1, 1)  # six weeks without an issue


def test_only_the_chief_accepts(people):
    pitch = on_agenda(make_pitch(people.author), people.chief)
    with pytest.raises(PermissionDenied):
        services.accept_pitch(pitch, actor=people.board,
                              commission=services.Commission(author=people.author))


def test_declining_mails_the_chosen_reason_and_the_chief_can_undo(people):
    reason = DeclineReason(title="Recent behandeld",
                           text="We schreven hier onlangs nog over in het magazine.")
    db.session.add(reason)
    pitch = on_agenda(make_pitch(people.author), people.chief)
    services.decline_pitch(pitch, actor=people.chief, reason=reason, text="Probeer het later.")
    db.session.commit()
    mail = mails_to("author@example.org")[-1]
    assert "niet opgenomen" in mail.subject
    assert "onlangs nog over" in mail.body_text and "Probeer het later." in mail.body_text
    assert "Voor jou is er niets meer te doen" in mail.body_text
    with pytest.raises(PermissionDenied):
        services.move_pitch(pitch, PitchState.SUBMITTED, actor=people.board)
    services.move_pitch(pitch, PitchState.SUBMITTED, actor=people.chief, note="Toch bespreken")
    assert pitch.state == PitchState.SUBMITTED


def test_declining_needs_a_reason(people):
    pitch = on_agenda(make_pitch(people.author), people.chief)
    with pytest.raises(DomainError):
        services.decline_pitch(pitch, actor=people.chief, reason=None, text=" ")
    assert pitch.state == PitchState.ON_AGENDA


def test_deferring_names_the_date(people):
    pitch = on_agenda(make_pitch(people.author), people.chief)
    with frozen(NOW):
        with pytest.raises(DomainError):
            services.defer_pitch(pitch, actor=people.chief, until=date(2026, 11, 1))
        services.defer_pitch(pitch, actor=people.chief, until=date(2027, 2, 1))
        db.session.commit()
    assert pitch.state == PitchState.DEFERRED and pitch.deferred_until == date(2027, 2, 1)
    assert "1 februari 2027" in mails_to("author@example.org")[-1].body_text


def test_asking_for_information_and_the_proposer_answers_by_link(people):
    with frozen(NOW):
        pitch = public_pitch()
        db.session.commit()
        services.confirm_public_pitch(link_in(mails_to(pitch.proposer_email)[0],
                                              "/propose/confirm/").rsplit("/", 1)[1])
        on_agenda(pitch, people.chief)
        services.ask_pitch_info(pitch, actor=people.chief, question="Hoe oud zijn de kinderen?")
        db.session.commit()
    mail = mails_to(pitch.proposer_email)[-1]
    assert "Hoe oud zijn de kinderen?" in mail.body_text
    token = link_in(mail, "/propose/answer/").rsplit("/", 1)[1]
    with shifted(timedelta(days=2)):
        services.answer_pitch_info(token, "Van 6 maanden tot 3 jaar.")
        db.session.commit()
    assert pitch.state == PitchState.SUBMITTED
    assert [c.body for c in services.thread(pitch=pitch)] == ["Van 6 maanden tot 3 jaar."]
    moves = [e for e in services.timeline("pitch", pitch.id) if e.action == "pitch.moved"]
    assert [(e.details["from"], e.details["to"]) for e in moves] == [
        ("submitted", "on_agenda"), ("on_agenda", "needs_info"), ("needs_info", "submitted")]
    with pytest.raises(DomainError):
        services.answer_pitch_info(token, "Nog eens")


def test_the_proposer_may_withdraw_but_not_decide(people):
    pitch = on_agenda(make_pitch(people.author), people.chief)
    with pytest.raises(PermissionDenied):
        services.move_pitch(pitch, PitchState.ACCEPTED, actor=people.author)
    services.move_pitch(pitch, PitchState.WITHDRAWN, actor=people.author)
    db.session.commit()
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "pitch.moved")
                               .order_by(AuditEvent.id.desc())).first()
    assert event.actor_id == people.author.id and event.details["to"] == "withdrawn"


def test_an_author_sees_only_their_own_pitches(people):
    own = make_pitch(people.author)
    other = make_pitch(people.board, title="Ouderbetrokkenheid")
    assert services.can_see_pitch(people.author, own)
    assert not services.can_see_pitch(people.author, other)
    assert db.session.scalars(services.visible_pitches(people.author)).all() == [own]


def test_mentions_mail_the_person(people):
    pitch = make_pitch(people.board)
    services.add_comment(actor=people.board, pitch=pitch,
                         body="Goed idee. @katrien.wouters wat denk jij? En @copy@example.org?")
    db.session.commit()
    assert [m.template for m in mails_to("chief@example.org")] == ["editorial_mention"]
    assert [m.template for m in mails_to("copy@example.org")] == ["editorial_mention"]
    assert mails_to("board@example.org") == []


def test_two_decisions_at_once_move_the_pitch_once(people):
    pitch = on_agenda(make_pitch(people.author), people.chief)
    # Another process declines it meanwhile; this session still holds the old state.
    db.session.execute(sa.update(Pitch).where(Pitch.id == pitch.id)
                       .values(state=PitchState.DECLINED)
                       .execution_options(synchronize_session=False))
    assert pitch.state == PitchState.ON_AGENDA
    with pytest.raises(DomainError, match=r"meanwhile|intussen"):
        services.defer_pitch(pitch, actor=people.chief, until=date(2030, 1, 1))
    db.session.expire(pitch)
    assert pitch.state == PitchState.DECLINED
    assert mails_to("author@example.org") == []
