"""Editorial pages that need no account: the public proposal form for readers from the
field, and the pages behind mailed links (confirm a proposal, answer a question, approve a
final text, read as an external reviewer). Each link opens only its own object."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from editorial import overview, services
from editorial.forms import AnswerForm, ApprovalForm, PublicPitchForm, ReviewForm, choices
from editorial.models import Recommendation, Rubric
from editorial.text import render_markdown
from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import ConfirmForm
from magazine.security import client_address
from magazine.urls import external_url
from magazine.views import show_domain_error

bp = Blueprint("editorial_public", __name__)


def _link_error(error: DomainError):
    db.session.rollback()
    return render_template("editorial/public/link_error.html", message=error.message), 404


@bp.route("/propose", methods=["GET", "POST"])
def propose():
    form = PublicPitchForm()
    form.rubric.choices = choices(_("— I don't know —"), [
        (r.id, r.name) for r in services.active_rubrics()])
    if form.validate_on_submit():
        try:
            services.submit_public_pitch(
                name=form.name.data, email=form.email.data, title=form.title.data,
                summary=form.summary.data, organisation=form.organisation.data or "",
                rubric=db.session.get(Rubric, form.rubric.data) if form.rubric.data else None,
                estimated_words=form.estimated_words.data, honeypot=form.website.data or "",
                client_address=client_address(),
            )
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            return render_template("editorial/public/check_mail.html", email=form.email.data)
    return render_template("editorial/public/propose.html", form=form
                           ), 400 if form.errors else 200


@bp.route("/propose/confirm/<token>", methods=["GET", "POST"])
def confirm_pitch(token: str):
    """GET shows a button, POST confirms: mail scanners that follow links confirm nothing."""
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            pitch = services.confirm_public_pitch(token)
        except DomainError as error:
            return _link_error(error)
        db.session.commit()
        return render_template("editorial/public/confirmed.html", pitch=pitch)
    try:
        services.open_link(token, services.LinkPurpose.CONFIRM_PITCH)
    except DomainError as error:
        return _link_error(error)
    return render_template("editorial/public/confirm.html", form=form)


@bp.route("/propose/answer/<token>", methods=["GET", "POST"])
def answer_pitch(token: str):
    try:
        pitch = services.pitch_for_answer(token)
    except DomainError as error:
        return _link_error(error)
    form = AnswerForm()
    if form.validate_on_submit():
        try:
            services.answer_pitch_info(token, form.answer.data)
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            flash(_("Thank you! Your answer is with the board."), "success")
            return redirect(url_for("core.home"))
    return render_template("editorial/public/answer.html", pitch=pitch, form=form
                           ), 400 if form.errors else 200


@bp.route("/approve/<token>", methods=["GET", "POST"])
def approval(token: str):
    try:
        article = services.article_for_approval(token)
    except DomainError as error:
        return _link_error(error)
    form = ApprovalForm()
    if form.validate_on_submit():
        approved = form.approve.data
        try:
            services.answer_approval(token, approved=approved, comment=form.comment.data or "")
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            flash(_("Thank you! The text goes to layout.") if approved else
                  _("Thank you! Your remarks are with the copy editor."), "success")
            return redirect(url_for("core.home"))
    return render_template(
        "editorial/public/approval.html", article=article, form=form,
        body=render_markdown(article.current.body if article.current else ""),
    ), 400 if form.errors else 200


@bp.route("/review/<token>", methods=["GET", "POST"])
def review(token: str):
    """An external reader's page: the text of the round and the form, nothing else."""
    try:
        reading = services.review_by_link(token)
    except DomainError as error:
        return _link_error(error)
    form = ReviewForm(obj=reading if reading.submitted_at and not form_posted() else None)
    if form.validate_on_submit():
        try:
            services.submit_review(
                reading, token=token, recommendation=Recommendation(form.recommendation.data),
                comments_for_author=form.comments_for_author.data,
                confidential_note=form.confidential_note.data or "")
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            flash(_("Thank you! Your reading is with the editor-in-chief."), "success")
            return redirect(url_for("editorial_public.review", token=token))
    revision = reading.round.revision or reading.round.article.current
    return render_template(
        "editorial/review.html", review=reading, form=form,
        body=render_markdown(revision.body if revision else ""),
    ), 400 if form.errors else 200


def form_posted() -> bool:
    return request.method == "POST"


@bp.route("/editorial-calendar/<token>.ics")
def calendar_feed(token: str):
    """A person's deadlines as an iCalendar feed, at a secret address (no login: calendar
    apps cannot log in)."""
    user = overview.user_for_feed(token)
    if user is None:
        return render_template("editorial/public/link_error.html",
                               message=_("This calendar address is not valid.")), 404
    body = overview.ical_feed(user, url_for_item=lambda endpoint, values: external_url(
        endpoint, **values))
    response = make_response(body)
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'inline; filename="redactie.ics"'
    return response
