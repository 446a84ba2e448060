"""The editorial area (redactie): issues and their flatplan, rubrics, pitches and articles.

Views parse the form, call one service, turn a DomainError into a message, commit and
redirect. Who may see what is decided by the services' helpers; someone else's object is a
404, never a hint that it exists."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from editorial import jobs as _jobs  # noqa: F401  (registers the scheduled job)
from editorial import overview, package, services
from editorial.forms import (
    AcceptPitchForm,
    AnswerForm,
    ArticleEditForm,
    AskInfoForm,
    CommentForm,
    DeclinePitchForm,
    DeclineReasonForm,
    DeferPitchForm,
    ImageEditForm,
    ImageForm,
    IssueEditForm,
    IssueForm,
    MoveForm,
    PitchForm,
    ReaderForm,
    ReviewForm,
    RubricForm,
    SlotEditForm,
    SlotForm,
    SlotPagesForm,
    UploadForm,
    VoteForm,
    WriteForm,
    choices,
)
from editorial.models import (
    Article,
    ArticleImage,
    ArticleState,
    Consent,
    DeclineReason,
    FlatplanSlot,
    Issue,
    IssueState,
    Pitch,
    PitchState,
    Recommendation,
    Review,
    Rubric,
    Vote,
)
from editorial.states import (
    ARTICLE_STATE_LABELS,
    FINAL_ARTICLE_STATES,
    ISSUE_STATE_LABELS,
    PITCH_STATE_LABELS,
)
from editorial.text import render_markdown, side_by_side, word_count
from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import ConfirmForm
from magazine.models import User, UserRole
from magazine.roles import EDITORIAL_ROLES, Role
from magazine.security import roles_required
from magazine.urls import external_url
from magazine.views import show_domain_error

bp = Blueprint("editorial", __name__, url_prefix="/editorial")

CHIEF = frozenset({Role.EDITOR_IN_CHIEF})
PLANNERS = services.PLANNING_ROLES
OVERVIEW = services.OVERVIEW_ROLES
BOARD = services.BOARD_ROLES


@bp.before_request
@roles_required(EDITORIAL_ROLES)
def _editorial_roles_only():
    """Every page here is for the board, authors and reviewers."""


@bp.context_processor
def _labels():
    return {"PITCH_STATE_LABELS": PITCH_STATE_LABELS, "ARTICLE_STATE_LABELS":
            ARTICLE_STATE_LABELS, "ISSUE_STATE_LABELS": ISSUE_STATE_LABELS,
            "today": services.today_local(), "confirm_form": ConfirmForm(formdata=None),
            "EDITORIAL_OVERVIEW": OVERVIEW | {Role.ADMIN}, "EDITORIAL_CHIEF": CHIEF | {Role.ADMIN},
            "EVENT_LABELS": EVENT_LABELS, "RECOMMENDATION_LABELS": RECOMMENDATION_LABELS}


READER_EVENTS = frozenset({"article.readers_assigned", "article.reviewed"})
RECOMMENDATION_LABELS = {
    Recommendation.ACCEPT: _l("Accept"),
    Recommendation.MINOR: _l("Minor changes"),
    Recommendation.MAJOR: _l("Major changes"),
    Recommendation.REJECT: _l("Do not publish"),
}


EVENT_LABELS = {
    "pitch.submitted": _l("Proposal submitted"),
    "pitch.received": _l("Proposal received through the public form"),
    "pitch.confirmed": _l("Proposer confirmed the e-mail address"),
    "pitch.voted": _l("Vote cast"),
    "pitch.commented": _l("Message in the discussion"),
    "article.commissioned": _l("Article commissioned"),
    "article.commented": _l("Message in the discussion"),
    "article.saved": _l("Text saved"),
    "article.image_added": _l("Image added"),
    "article.readers_assigned": _l("Reader assigned"),
    "article.image_updated": _l("Image details changed"),
    "article.updated": _l("Details changed"),
    "issue.pdf_uploaded": _l("PDF of the issue uploaded"),
    "article.image_removed": _l("Image removed"),
    "article.reviewed": _l("Reading received"),
    "issue.created": _l("Issue planned"),
    "issue.updated": _l("Issue details changed"),
    "issue.slot_added": _l("Slot added to the flatplan"),
    "issue.slot_removed": _l("Slot removed from the flatplan"),
    "issue.slot_changed": _l("Slot changed"),
    "issue.reordered": _l("Flatplan reordered"),
    "dispatch.locked": _l("Mailing list locked for dispatch"),
}


def me() -> User:
    return current_user._get_current_object()


def attempt(action: Callable[[], object], success: str | None = None,
            form=None) -> bool:
    """Run one service call: commit and flash `success`, or roll back and show why not."""
    try:
        action()
    except DomainError as error:
        db.session.rollback()
        if form is not None:
            show_domain_error(form, error)
        else:
            flash(error.message, "error")
        return False
    db.session.commit()
    if success:
        flash(success, "success")
    return True


def form_errors_flash(form) -> None:
    for errors in form.errors.values():
        for error in errors:
            flash(error, "error")


# ---------------------------------------------------------------- home

@bp.route("/")
def index():
    """My work: what waits on me, due when (overdue in red)."""
    user = me()
    pitches = db.session.scalars(services.visible_pitches(
        user, states=list(services.OPEN_PITCH_STATES)).limit(8)).all()
    articles = db.session.scalars(services.visible_articles(user).where(
        Article.state.not_in(list(FINAL_ARTICLE_STATES))).limit(12)).all()
    return render_template(
        "editorial/index.html", roles=user.roles, pitches=pitches, articles=articles,
        issues=services.upcoming_issues()[:4], can_plan=user.has_any_role(CHIEF),
        work=overview.my_work(user),
        feed_url=external_url("editorial_public.calendar_feed",
                              token=overview.feed_token(user)),
    )


@bp.route("/board")
@roles_required(OVERVIEW)
def board():
    """The board's overview: every article in the pipeline, by state."""
    return render_template("editorial/board.html", columns=overview.board_columns())


@bp.route("/calendar")
@roles_required(OVERVIEW)
def calendar():
    return render_template("editorial/calendar.html",
                           deadlines=overview.calendar(services.today_local()))


@bp.route("/search")
def search():
    args = request.args
    words, author = args.get("q", "").strip(), args.get("author", "").strip()
    rubric_id, issue_id = args.get("rubric", type=int), args.get("issue", type=int)
    state = args.get("state", "")
    searched = any([words, author, rubric_id, issue_id, state])
    pitches, articles = overview.search(me(), words=words, author=author, rubric_id=rubric_id,
                                        state=state, issue_id=issue_id) if searched else ([], [])
    all_issues = db.session.scalars(sa.select(Issue).order_by(Issue.print_date.desc())).all()
    return render_template(
        "editorial/search.html", pitches=pitches, articles=articles, searched=searched,
        words=words, author=author, rubric_id=rubric_id, issue_id=issue_id, state=state,
        rubrics=overview.rubrics_all(), all_issues=all_issues, PitchState=PitchState,
        ArticleState=ArticleState,
    )


@bp.route("/issues/<int:issue_id>/package.zip")
@roles_required(PLANNERS)
def issue_package(issue_id: int):
    issue = db.get_or_404(Issue, issue_id)
    response = make_response(package.print_package(issue))
    response.headers["Content-Type"] = "application/zip"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="kinderopvang-magazine-{issue.code}-drukpakket.zip"')
    return response


@bp.route("/issues/<int:issue_id>/pdf", methods=["GET", "POST"])
@roles_required(OVERVIEW)
def issue_pdf(issue_id: int):
    issue = db.get_or_404(Issue, issue_id)
    if request.method == "POST":
        form = UploadForm()
        file = form.file.data
        if not form.validate() or file is None or not getattr(file, "filename", ""):
            flash(_("Choose the PDF of the issue."), "error")
        else:
            attempt(lambda: package.upload_issue_pdf(issue, actor=me(), filename=file.filename,
                                                     data=file.read()),
                    _("The PDF of issue %(code)s is saved.", code=issue.code))
        return redirect(url_for("editorial.issue_detail", issue_id=issue.id))
    if not issue.pdf_filename:
        abort(404)
    response = make_response(issue.pdf_data)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="{issue.pdf_filename}"'
    return response


# ---------------------------------------------------------------- issues

def _issue_choices(form_field, empty: str) -> None:
    form_field.choices = choices(empty, [
        (issue.id, f"{issue.code} · {issue.theme}" if issue.theme else issue.code)
        for issue in services.upcoming_issues()
    ])


def _rubric_choices(form_field, empty: str) -> None:
    form_field.choices = choices(empty, [(r.id, r.name) for r in services.active_rubrics()])


@bp.route("/issues")
@roles_required(OVERVIEW)
def issues():
    all_issues = db.session.scalars(
        sa.select(Issue).order_by(Issue.print_date.desc(), Issue.id.desc())
    ).all()
    return render_template("editorial/issues.html", issues=all_issues,
                           can_plan=me().has_any_role(CHIEF))


def _deadlines(form) -> dict:
    return {name: getattr(form, name).data for name in services.DEADLINE_FIELDS}


@bp.route("/issues/new", methods=["GET", "POST"])
@roles_required(CHIEF)
def issue_new():
    form = IssueForm()
    if form.validate_on_submit():
        created: list[Issue] = []
        if attempt(lambda: created.append(services.create_issue(
            actor=me(), volume=form.volume.data, number=form.number.data,
            print_date=form.print_date.data, theme=form.theme.data or "",
            is_special=form.is_special.data, page_budget=form.page_budget.data,
            deadlines=_deadlines(form),
        )), form=form):
            flash(_("Issue %(code)s is planned.", code=created[0].code), "success")
            return redirect(url_for("editorial.issue_detail", issue_id=created[0].id))
    return render_template("editorial/issue_form.html", form=form, issue=None,
                           offsets=services.current_app.config["ISSUE_DEADLINE_OFFSETS"]
                           ), 400 if form.errors else 200


@bp.route("/issues/<int:issue_id>/edit", methods=["GET", "POST"])
@roles_required(CHIEF)
def issue_edit(issue_id: int):
    issue = db.get_or_404(Issue, issue_id)
    form = IssueEditForm(obj=issue)
    if form.validate_on_submit() and attempt(lambda: services.update_issue(
        issue, actor=me(), theme=form.theme.data or "", is_special=form.is_special.data,
        print_date=form.print_date.data, page_budget=form.page_budget.data,
        deadlines={k: v or getattr(issue, k) for k, v in _deadlines(form).items()},
    ), _("The issue is saved."), form=form):
        return redirect(url_for("editorial.issue_detail", issue_id=issue.id))
    return render_template("editorial/issue_form.html", form=form, issue=issue,
                           offsets=None), 400 if form.errors else 200


@bp.route("/issues/<int:issue_id>")
@roles_required(OVERVIEW)
def issue_detail(issue_id: int):
    issue = db.get_or_404(Issue, issue_id)
    slot_form = SlotForm(formdata=None)
    placeable = services.placeable_articles()
    slot_form.article.choices = choices(_("— no article —"), [
        (a.id, f"{a.title} ({ARTICLE_STATE_LABELS[a.state]})") for a in placeable])
    _rubric_choices(slot_form.rubric, _("— none —"))
    return render_template(
        "editorial/issue_detail.html", issue=issue, plan=services.flatplan_of(issue),
        slot_form=slot_form, is_planner=me().has_any_role(PLANNERS),
        can_plan=me().has_any_role(PLANNERS) and issue.state in services.PLANNABLE_ISSUE_STATES,
        moves=services.issue_moves_for(issue, me()),
        printer_problems=services.printer_problems(issue),
        timeline=services.timeline("issue", issue.id), move_form=MoveForm(formdata=None),
        pages_form=SlotPagesForm(formdata=None), upload_form=UploadForm(formdata=None),
    )


@bp.route("/issues/<int:issue_id>/move", methods=["POST"])
@roles_required(PLANNERS)
def issue_move(issue_id: int):
    issue = db.get_or_404(Issue, issue_id)
    form = MoveForm()
    try:
        target = IssueState(form.to.data)
    except ValueError:
        abort(400)
    attempt(lambda: services.move_issue(issue, target, actor=me(), note=form.note.data or ""),
            _("Issue %(code)s: %(state)s.", code=issue.code, state=ISSUE_STATE_LABELS[target]))
    return redirect(url_for("editorial.issue_detail", issue_id=issue.id))


@bp.route("/issues/<int:issue_id>/slots", methods=["POST"])
@roles_required(PLANNERS)
def slot_add(issue_id: int):
    issue = db.get_or_404(Issue, issue_id)
    form = SlotForm()
    form.article.choices = choices("", [(a.id, a.title) for a in services.placeable_articles()])
    _rubric_choices(form.rubric, "")
    if not form.validate():
        form_errors_flash(form)
    else:
        article = db.session.get(Article, form.article.data) if form.article.data else None
        rubric = db.session.get(Rubric, form.rubric.data) if form.rubric.data else None
        attempt(lambda: services.add_slot(issue, actor=me(), label=form.label.data or "",
                                          rubric=rubric, article=article,
                                          pages=form.pages.data),
                _("The slot is added to the flatplan."))
    return redirect(url_for("editorial.issue_detail", issue_id=issue.id, _anchor="flatplan"))


def _slot(issue_id: int, slot_id: int) -> FlatplanSlot:
    slot = db.get_or_404(FlatplanSlot, slot_id)
    if slot.issue_id != issue_id:
        abort(404)
    return slot


@bp.route("/issues/<int:issue_id>/slots/<int:slot_id>/pages", methods=["POST"])
@roles_required(PLANNERS)
def slot_pages(issue_id: int, slot_id: int):
    slot = _slot(issue_id, slot_id)
    form = SlotPagesForm()
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.set_slot_pages(slot, form.pages.data, actor=me()))
    return redirect(url_for("editorial.issue_detail", issue_id=issue_id, _anchor="flatplan"))


@bp.route("/issues/<int:issue_id>/slots/<int:slot_id>/edit", methods=["GET", "POST"])
@roles_required(PLANNERS)
def slot_edit(issue_id: int, slot_id: int):
    slot = _slot(issue_id, slot_id)
    form = SlotEditForm(obj=slot)
    _rubric_choices(form.rubric, _("— none —"))
    if request.method == "GET":
        form.rubric.data = slot.rubric_id
    if form.validate_on_submit() and attempt(lambda: services.update_slot(
            slot, actor=me(), label=form.label.data or "",
            rubric=db.session.get(Rubric, form.rubric.data) if form.rubric.data else None,
            pages=form.pages.data), _("The slot is saved."), form=form):
        return redirect(url_for("editorial.issue_detail", issue_id=issue_id,
                                _anchor=f"slot-{slot_id}"))
    title = slot.article.title if slot.article else (slot.label or _("Slot"))
    return render_template("editorial/simple_form.html", form=form, title=title,
                           back=url_for("editorial.issue_detail", issue_id=issue_id)
                           ), 400 if form.errors else 200


@bp.route("/issues/<int:issue_id>/slots/<int:slot_id>/move", methods=["POST"])
@roles_required(PLANNERS)
def slot_move(issue_id: int, slot_id: int):
    slot = _slot(issue_id, slot_id)
    offset = -1 if request.form.get("direction") == "up" else 1
    attempt(lambda: services.move_slot(slot, offset, actor=me()))
    return redirect(url_for("editorial.issue_detail", issue_id=issue_id,
                            _anchor=f"slot-{slot_id}"))


@bp.route("/issues/<int:issue_id>/slots/<int:slot_id>/remove", methods=["POST"])
@roles_required(PLANNERS)
def slot_remove(issue_id: int, slot_id: int):
    slot = _slot(issue_id, slot_id)
    attempt(lambda: services.remove_slot(slot, actor=me()), _("The slot is removed."))
    return redirect(url_for("editorial.issue_detail", issue_id=issue_id, _anchor="flatplan"))


@bp.route("/issues/<int:issue_id>/slots/order", methods=["POST"])
@roles_required(PLANNERS)
def slot_order(issue_id: int):
    """The whole order at once, as sent by the drag-and-drop script."""
    issue = db.get_or_404(Issue, issue_id)
    form = ConfirmForm()
    if not form.validate():
        abort(400)
    try:
        ids = [int(part) for part in request.form.get("order", "").split(",") if part]
    except ValueError:
        abort(400)
    ok = attempt(lambda: services.reorder_slots(issue, ids, actor=me()))
    if request.accept_mimetypes.best == "application/json":
        return {"ok": ok}, 200 if ok else 409
    return redirect(url_for("editorial.issue_detail", issue_id=issue_id, _anchor="flatplan"))


# ---------------------------------------------------------------- rubrics, reasons

@bp.route("/rubrics", methods=["GET", "POST"])
@roles_required(CHIEF)
def rubrics():
    form = RubricForm()
    if form.validate_on_submit() and attempt(lambda: services.save_rubric(
        None, actor=me(), name=form.name.data, description=form.description.data or "",
        active=form.active.data), _("The rubric is added."), form=form):
        return redirect(url_for("editorial.rubrics"))
    all_rubrics = db.session.scalars(sa.select(Rubric).order_by(Rubric.position, Rubric.name))
    return render_template("editorial/rubrics.html", form=form, rubrics=list(all_rubrics)
                           ), 400 if form.errors else 200


@bp.route("/rubrics/<int:rubric_id>", methods=["GET", "POST"])
@roles_required(CHIEF)
def rubric_edit(rubric_id: int):
    rubric = db.get_or_404(Rubric, rubric_id)
    form = RubricForm(obj=rubric)
    if form.validate_on_submit() and attempt(lambda: services.save_rubric(
        rubric, actor=me(), name=form.name.data, description=form.description.data or "",
        active=form.active.data), _("The rubric is saved."), form=form):
        return redirect(url_for("editorial.rubrics"))
    return render_template("editorial/simple_form.html", form=form, title=rubric.name,
                           back=url_for("editorial.rubrics")), 400 if form.errors else 200


@bp.route("/decline-reasons", methods=["GET", "POST"])
@roles_required(CHIEF)
def decline_reasons():
    form = DeclineReasonForm()
    if form.validate_on_submit() and attempt(lambda: services.save_decline_reason(
        None, actor=me(), title=form.title.data, text=form.text.data,
        active=form.active.data), _("The reason is added."), form=form):
        return redirect(url_for("editorial.decline_reasons"))
    reasons = db.session.scalars(sa.select(DeclineReason).order_by(DeclineReason.title))
    return render_template("editorial/decline_reasons.html", form=form, reasons=list(reasons)
                           ), 400 if form.errors else 200


@bp.route("/decline-reasons/<int:reason_id>", methods=["GET", "POST"])
@roles_required(CHIEF)
def decline_reason_edit(reason_id: int):
    reason = db.get_or_404(DeclineReason, reason_id)
    form = DeclineReasonForm(obj=reason)
    if form.validate_on_submit() and attempt(lambda: services.save_decline_reason(
        reason, actor=me(), title=form.title.data, text=form.text.data,
        active=form.active.data), _("The reason is saved."), form=form):
        return redirect(url_for("editorial.decline_reasons"))
    return render_template("editorial/simple_form.html", form=form, title=reason.title,
                           back=url_for("editorial.decline_reasons")
                           ), 400 if form.errors else 200


# ---------------------------------------------------------------- pitches

def _pitch(pitch_id: int) -> Pitch:
    pitch = db.get_or_404(Pitch, pitch_id)
    if pitch.confirmed_at is None or not services.can_see_pitch(me(), pitch):
        abort(404)
    return pitch


@bp.route("/pitches")
def pitches():
    user = me()
    state = request.args.get("state", "")
    states = [PitchState(state)] if state in {s.value for s in PitchState} else None
    if user.has_any_role(OVERVIEW) and states is None:
        listed = services.agenda()
        heading = _("The board's agenda")
    else:
        listed = list(db.session.scalars(services.visible_pitches(user, states=states)))
        heading = _("Proposals") if user.has_any_role(OVERVIEW) else _("My proposals")
    return render_template("editorial/pitches.html", pitches=listed, heading=heading,
                           state=state, PitchState=PitchState,
                           can_submit=user.has_any_role(services.PITCH_SUBMIT_ROLES),
                           overview=user.has_any_role(OVERVIEW))


@bp.route("/pitches/new", methods=["GET", "POST"])
@roles_required(services.PITCH_SUBMIT_ROLES)
def pitch_new():
    form = PitchForm()
    _rubric_choices(form.rubric, _("— choose later —"))
    _issue_choices(form.target_issue, _("— no preference —"))
    created: list[Pitch] = []
    if form.validate_on_submit() and attempt(lambda: created.append(services.submit_pitch(
        actor=me(), title=form.title.data, summary=form.summary.data,
        rubric=db.session.get(Rubric, form.rubric.data) if form.rubric.data else None,
        proposed_author=form.proposed_author.data or "",
        estimated_words=form.estimated_words.data,
        target_issue=db.session.get(Issue, form.target_issue.data)
        if form.target_issue.data else None,
    )), _("Thank you! Your proposal is on its way to the board."), form=form):
        return redirect(url_for("editorial.pitch_detail", pitch_id=created[0].id))
    return render_template("editorial/pitch_form.html", form=form), 400 if form.errors else 200


@bp.route("/pitches/<int:pitch_id>")
def pitch_detail(pitch_id: int):
    pitch = _pitch(pitch_id)
    user = me()
    vote_form = VoteForm(formdata=None)
    mine = next((v for v in pitch.votes if v.voter_id == user.id), None)
    if mine:
        vote_form.vote.data, vote_form.reason.data = mine.vote.value, mine.reason
    accept_form = AcceptPitchForm(formdata=None)
    decline_form = DeclinePitchForm(formdata=None, prefix="decline")
    if user.has_any_role(CHIEF) and pitch.state == PitchState.ON_AGENDA:
        _fill_accept_choices(accept_form)
        accept_form.rubric.data = pitch.rubric_id
        accept_form.issue.data = pitch.target_issue_id
        accept_form.target_words.data = pitch.estimated_words or 1200
        # Most often the proposer writes it: preselect them (or prepare their invitation).
        if pitch.proposed_author in ("", pitch.proposer_name):
            if pitch.proposer_id and any(c.value == pitch.proposer_id
                                         for c in accept_form.author.choices):
                accept_form.author.data = pitch.proposer_id
            elif pitch.proposer_id is None:
                accept_form.invite_name.data = pitch.proposer_name
                accept_form.invite_email.data = pitch.proposer_email
        decline_form.reason.choices = choices(_("— write your own —"), [
            (r.id, r.title) for r in services.active_decline_reasons()])
    return render_template(
        "editorial/pitch_detail.html", pitch=pitch, vote_form=vote_form,
        comment_form=CommentForm(formdata=None), accept_form=accept_form,
        decline_form=decline_form, defer_form=DeferPitchForm(formdata=None, prefix="defer"),
        ask_form=AskInfoForm(formdata=None), move_form=MoveForm(formdata=None),
        answer_form=AnswerForm(formdata=None),
        is_proposer=services.is_proposer(pitch, user),
        moves=services.pitch_moves_for(pitch, user), counts=services.vote_counts(pitch),
        comments=services.thread(pitch=pitch), timeline=services.timeline("pitch", pitch.id),
        is_board=user.has_any_role(BOARD), is_chief=user.has_any_role(CHIEF),
        overview=user.has_any_role(OVERVIEW),
        reasons=services.active_decline_reasons(), Vote=Vote, PitchState=PitchState,
    )


def _fill_accept_choices(form: AcceptPitchForm) -> None:
    authors = db.session.scalars(
        sa.select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role.in_([Role.AUTHOR, Role.BOARD_MEMBER, Role.EDITOR_IN_CHIEF]))
        .distinct().order_by(User.name)
    ).all()
    form.author.choices = choices(_("— invite a new author below —"), [
        (u.id, f"{u.name} ({u.email})") for u in authors])
    _rubric_choices(form.rubric, _("— none —"))
    _issue_choices(form.issue, _("— the stock, no issue yet —"))


@bp.route("/pitches/<int:pitch_id>/vote", methods=["POST"])
@roles_required(BOARD)
def pitch_vote(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = VoteForm()
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.cast_vote(pitch, actor=me(), vote=Vote(form.vote.data),
                                           reason=form.reason.data or ""),
                _("Your vote is counted."))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id, _anchor="votes"))


@bp.route("/pitches/<int:pitch_id>/comments", methods=["POST"])
def pitch_comment(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = CommentForm()
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.add_comment(actor=me(), body=form.body.data, pitch=pitch))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id, _anchor="thread"))


@bp.route("/pitches/<int:pitch_id>/move", methods=["POST"])
def pitch_move(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = MoveForm()
    try:
        target = PitchState(form.to.data)
    except ValueError:
        abort(400)
    attempt(lambda: services.step_pitch(pitch, target, actor=me(), note=form.note.data or ""),
            _("The proposal is now: %(state)s.", state=PITCH_STATE_LABELS[target]))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id))


@bp.route("/pitches/<int:pitch_id>/answer", methods=["POST"])
def pitch_answer(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = AnswerForm()
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.answer_pitch_question(pitch, actor=me(),
                                                       answer=form.answer.data),
                _("Thank you! Your answer is with the board."))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id))


@bp.route("/pitches/<int:pitch_id>/accept", methods=["POST"])
@roles_required(CHIEF)
def pitch_accept(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = AcceptPitchForm()
    _fill_accept_choices(form)
    created: list[Article] = []
    if not form.validate():
        form_errors_flash(form)
        return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id, _anchor="decide"))
    commission = services.Commission(
        author=db.session.get(User, form.author.data) if form.author.data else None,
        invite_name=form.invite_name.data or "", invite_email=form.invite_email.data or "",
        rubric=db.session.get(Rubric, form.rubric.data) if form.rubric.data else None,
        target_words=form.target_words.data,
        issue=db.session.get(Issue, form.issue.data) if form.issue.data else None,
        deadline=form.deadline.data,
    )
    if attempt(lambda: created.append(services.accept_pitch(
            pitch, actor=me(), commission=commission, note=form.note.data or "")),
            _("Accepted: the article is commissioned and the author has been mailed.")):
        return redirect(url_for("editorial.article_detail", article_id=created[0].id))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id, _anchor="decide"))


@bp.route("/pitches/<int:pitch_id>/decline", methods=["POST"])
@roles_required(CHIEF)
def pitch_decline(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = DeclinePitchForm(prefix="decline")
    form.reason.choices = choices("", [(r.id, r.title) for r in
                                       services.active_decline_reasons()])
    if not form.validate():
        form_errors_flash(form)
    else:
        reason = db.session.get(DeclineReason, form.reason.data) if form.reason.data else None
        attempt(lambda: services.decline_pitch(pitch, actor=me(), reason=reason,
                                               text=form.text.data or ""),
                _("Declined; the proposer has been told why."))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id))


@bp.route("/pitches/<int:pitch_id>/defer", methods=["POST"])
@roles_required(CHIEF)
def pitch_defer(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = DeferPitchForm(prefix="defer")
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.defer_pitch(pitch, actor=me(), until=form.until.data,
                                             note=form.note.data or ""),
                _("Deferred; the proposer has been told until when."))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id))


@bp.route("/pitches/<int:pitch_id>/ask", methods=["POST"])
@roles_required(CHIEF)
def pitch_ask(pitch_id: int):
    pitch = _pitch(pitch_id)
    form = AskInfoForm()
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.ask_pitch_info(pitch, actor=me(),
                                                question=form.question.data),
                _("The question has been mailed to the proposer."))
    return redirect(url_for("editorial.pitch_detail", pitch_id=pitch.id))


# ---------------------------------------------------------------- articles

def _article(article_id: int) -> Article:
    article = db.get_or_404(Article, article_id)
    if not services.can_see_article(me(), article):
        abort(404)
    return article


@bp.route("/articles")
def articles():
    user = me()
    state = request.args.get("state", "")
    statement = services.visible_articles(user)
    if state in {s.value for s in ArticleState}:
        statement = statement.where(Article.state == ArticleState(state))
    return render_template("editorial/articles.html",
                           articles=db.session.scalars(statement).all(), state=state,
                           ArticleState=ArticleState, overview=user.has_any_role(OVERVIEW))


@bp.route("/articles/<int:article_id>")
def article_detail(article_id: int):
    article = _article(article_id)
    user = me()
    reader_form = ReaderForm(formdata=None)
    is_chief = user.has_any_role(CHIEF)
    if is_chief:
        _fill_reader_choices(reader_form, article)
    current = article.current
    return render_template(
        "editorial/article_detail.html", article=article,
        moves=services.article_moves_for(article, user), move_form=MoveForm(formdata=None),
        comments=services.thread(article=article), comment_form=CommentForm(formdata=None),
        # Readers stay anonymous to the author: their steps show to the editors only.
        timeline=[event for event in services.timeline("article", article.id)
                  if user.has_any_role(OVERVIEW) or event.action not in READER_EVENTS],
        is_chief=is_chief, overview=user.has_any_role(OVERVIEW),
        is_author=services.is_author(article, user),
        can_write=services.can_edit_text(user, article),
        can_images=services.is_author(article, user) or user.has_any_role(
            services.IMAGE_ROLES),
        sees_confidential=user.has_any_role(services.CONFIDENTIAL_ROLES),
        body=render_markdown(current.body) if current else None,
        image_form=ImageForm(formdata=None), reader_form=reader_form,
        upload_form=UploadForm(formdata=None), Consent=Consent,
        image_forms={image.id: ImageEditForm(formdata=None, obj=image, prefix=f"i{image.id}")
                     for image in article.images},
    )


def _fill_reader_choices(form: ReaderForm, article: Article) -> None:
    readers = db.session.scalars(
        sa.select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role.in_(list(services.READER_ROLES)), User.id != article.author_id)
        .distinct().order_by(User.name)
    ).all()
    form.reader.choices = choices(_("— an external reader, below —"), [
        (u.id, u.name) for u in readers])


@bp.route("/articles/<int:article_id>/write", methods=["GET", "POST"])
def article_write(article_id: int):
    """Write in the browser. "Preview" shows the result without saving (works without
    JavaScript); a small script shows it live."""
    article = _article(article_id)
    if not services.can_edit_text(me(), article):
        flash(_("You cannot change this text now."), "error")
        return redirect(url_for("editorial.article_detail", article_id=article.id))
    form = WriteForm()
    preview = None
    if request.method == "GET":
        form.body.data = article.current.body if article.current else ""
    elif form.validate_on_submit():
        if form.preview.data:
            preview = render_markdown(form.body.data or "")
        else:
            saved: list = []
            if attempt(lambda: saved.append(services.save_revision(
                    article, actor=me(), body=form.body.data or "", note=form.note.data or "")),
                    form=form):
                flash(_("Saved as version %(n)d.", n=saved[0].number) if saved[0]
                      else _("Nothing changed since the last version."), "success")
                return redirect(url_for("editorial.article_detail", article_id=article.id))
    return render_template("editorial/article_write.html", article=article, form=form,
                           preview=preview, upload_form=UploadForm(formdata=None)
                           ), 400 if form.errors else 200


@bp.route("/articles/<int:article_id>/preview", methods=["POST"])
def article_preview(article_id: int):
    """The live preview: Markdown in, sanitised HTML and a word count out."""
    _article(article_id)
    form = ConfirmForm()
    if not form.validate():
        abort(400)
    body = request.form.get("body", "")[:200_000]
    return {"html": str(render_markdown(body)), "words": word_count(body)}


@bp.route("/articles/<int:article_id>/upload", methods=["POST"])
def article_upload(article_id: int):
    article = _article(article_id)
    form = UploadForm()
    file = form.file.data
    if not form.validate() or file is None or not getattr(file, "filename", ""):
        flash(_("Choose a Word file (.docx)."), "error")
    else:
        attempt(lambda: services.import_docx(article, actor=me(), data=file.read(),
                                             filename=file.filename),
                _("The Word file is now the newest version."))
    return redirect(url_for("editorial.article_detail", article_id=article.id))


@bp.route("/articles/<int:article_id>/compare")
def article_compare(article_id: int):
    article = _article(article_id)
    if not article.revisions:
        abort(404)
    last = article.revisions[-1].number
    old_number = request.args.get("a", max(last - 1, 1), type=int)
    new_number = request.args.get("b", last, type=int)
    old, new = services.revision_of(article, old_number), services.revision_of(article, new_number)
    if old is None or new is None:
        abort(404)
    table = side_by_side(old.body, new.body, _("Version %(n)d", n=old.number),
                         _("Version %(n)d", n=new.number))
    return render_template("editorial/article_compare.html", article=article, old=old, new=new,
                           table=table)


def _image(article: Article, image_id: int) -> ArticleImage:
    image = db.get_or_404(ArticleImage, image_id)
    if image.article_id != article.id:
        abort(404)
    return image


@bp.route("/articles/<int:article_id>/images", methods=["POST"])
def image_add(article_id: int):
    article = _article(article_id)
    form = ImageForm()
    file = form.file.data
    if not form.validate() or file is None or not getattr(file, "filename", ""):
        flash(_("Choose a picture."), "error")
    else:
        attempt(lambda: services.add_image(
            article, actor=me(), filename=file.filename, data=file.read(),
            caption=form.caption.data or "", credit=form.credit.data or "",
            consent=Consent(form.consent.data)), _("The picture is added."))
    return redirect(url_for("editorial.article_detail", article_id=article.id,
                            _anchor="images"))


@bp.route("/articles/<int:article_id>/images/<int:image_id>", methods=["POST"])
def image_edit(article_id: int, image_id: int):
    article = _article(article_id)
    image = _image(article, image_id)
    form = ImageEditForm(prefix=f"i{image.id}")
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.update_image(
            image, actor=me(), caption=form.caption.data or "", credit=form.credit.data or "",
            consent=Consent(form.consent.data)), _("The picture's details are saved."))
    return redirect(url_for("editorial.article_detail", article_id=article.id,
                            _anchor="images"))


@bp.route("/articles/<int:article_id>/images/<int:image_id>/remove", methods=["POST"])
def image_remove(article_id: int, image_id: int):
    article = _article(article_id)
    image = _image(article, image_id)
    attempt(lambda: services.remove_image(image, actor=me()), _("The picture is removed."))
    return redirect(url_for("editorial.article_detail", article_id=article.id,
                            _anchor="images"))


@bp.route("/articles/<int:article_id>/images/<int:image_id>/file")
def image_file(article_id: int, image_id: int):
    article = _article(article_id)
    image = _image(article, image_id)
    response = make_response(image.data)
    response.headers["Content-Type"] = image.content_type
    response.headers["Content-Disposition"] = f'inline; filename="{image.filename}"'
    return response


@bp.route("/articles/<int:article_id>/readers", methods=["POST"])
@roles_required(CHIEF)
def article_readers(article_id: int):
    article = _article(article_id)
    form = ReaderForm()
    _fill_reader_choices(form, article)
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.assign_reader(
            article, actor=me(), due_date=form.due_date.data,
            reader=db.session.get(User, form.reader.data) if form.reader.data else None,
            name=form.name.data or "", email=form.email.data or ""),
            _("The reader has been asked by mail."))
    return redirect(url_for("editorial.article_detail", article_id=article.id,
                            _anchor="review"))


@bp.route("/reviews")
def reviews():
    return render_template("editorial/reviews.html", reviews=services.my_reviews(me()))


@bp.route("/reviews/<int:review_id>", methods=["GET", "POST"])
def review_detail(review_id: int):
    """A reader's own page for one reading (by account)."""
    review = db.get_or_404(Review, review_id)
    if review.reader_id != me().id:
        abort(404)
    form = ReviewForm(obj=review if request.method == "GET" and review.submitted_at else None)
    if form.validate_on_submit() and attempt(lambda: services.submit_review(
            review, actor=me(), recommendation=Recommendation(form.recommendation.data),
            comments_for_author=form.comments_for_author.data,
            confidential_note=form.confidential_note.data or ""),
            _("Thank you! Your reading is with the editor-in-chief."), form=form):
        return redirect(url_for("editorial.reviews"))
    revision = review.round.revision or review.round.article.current
    return render_template(
        "editorial/review.html", review=review, form=form,
        body=render_markdown(revision.body if revision else ""), action=None,
    ), 400 if form.errors else 200


@bp.route("/articles/<int:article_id>/edit", methods=["GET", "POST"])
@roles_required(CHIEF)
def article_edit(article_id: int):
    article = _article(article_id)
    form = ArticleEditForm(obj=article)
    _rubric_choices(form.rubric, _("— none —"))
    form.issue.choices = choices(_("— the stock, no issue —"), [
        (i.id, f"{i.code} · {i.theme}" if i.theme else i.code)
        for i in services.upcoming_issues()])
    if request.method == "GET":
        form.rubric.data, form.issue.data = article.rubric_id, article.issue_id
    if form.validate_on_submit() and attempt(lambda: services.update_article(
            article, actor=me(), title=form.title.data, summary=form.summary.data or "",
            rubric=db.session.get(Rubric, form.rubric.data) if form.rubric.data else None,
            target_words=form.target_words.data, deadline=form.deadline.data,
            issue=db.session.get(Issue, form.issue.data) if form.issue.data else None),
            _("The article is saved."), form=form):
        return redirect(url_for("editorial.article_detail", article_id=article.id))
    return render_template("editorial/simple_form.html", form=form, title=article.title,
                           back=url_for("editorial.article_detail", article_id=article.id)
                           ), 400 if form.errors else 200


@bp.route("/articles/<int:article_id>/move", methods=["POST"])
def article_move(article_id: int):
    article = _article(article_id)
    form = MoveForm()
    try:
        target = ArticleState(form.to.data)
    except ValueError:
        abort(400)
    attempt(lambda: services.move_article(article, target, actor=me(),
                                          note=form.note.data or ""),
            _("The article is now: %(state)s.", state=ARTICLE_STATE_LABELS[target]))
    return redirect(url_for("editorial.article_detail", article_id=article.id))


@bp.route("/articles/<int:article_id>/comments", methods=["POST"])
def article_comment(article_id: int):
    article = _article(article_id)
    form = CommentForm()
    if not form.validate():
        form_errors_flash(form)
    else:
        attempt(lambda: services.add_comment(actor=me(), body=form.body.data, article=article))
    return redirect(url_for("editorial.article_detail", article_id=article.id,
                            _anchor="thread"))
