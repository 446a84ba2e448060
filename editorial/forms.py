"""Editorial forms: the shape of the input. The rules of the domain are in the services."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional

from magazine.auth.forms import email_field, strip


def _int_or_none(value):
    return int(value) if value not in (None, "", "None") else None


def choices(empty_label, pairs) -> list[SelectChoice]:
    """Select options: a first 'nothing chosen' option, then `(id, label)` pairs."""
    return [SelectChoice("", empty_label), *(SelectChoice(value, label) for value, label in pairs)]


def id_select(label, **kwargs) -> SelectField:
    """A choice of an object by id; the view fills `choices`, '' means none."""
    return SelectField(label, coerce=_int_or_none, validate_choice=True, **kwargs)


class IssueForm(FlaskForm):
    volume = IntegerField(_l("Volume"), validators=[InputRequired(_l("Fill in the volume.")),
                                                     NumberRange(min=1, max=999)])
    number = IntegerField(_l("Number"), validators=[InputRequired(_l("Fill in the number.")),
                                                     NumberRange(min=1, max=99)])
    theme = StringField(_l("Theme"), validators=[Length(max=200)], filters=[strip])
    is_special = BooleanField(_l("Special issue (themanummer)"))
    print_date = DateField(_l("Print date"),
                           validators=[InputRequired(_l("Choose the print date."))])
    page_budget = IntegerField(_l("Page budget"), default=32,
                               description=_l("A multiple of 4."),
                               validators=[InputRequired(), NumberRange(min=4, max=400)])
    copy_deadline = DateField(_l("Copy deadline"), validators=[Optional()])
    board_meeting = DateField(_l("Board meeting"), validators=[Optional()])
    layout_deadline = DateField(_l("Layout deadline"), validators=[Optional()])
    proof_deadline = DateField(_l("Proof deadline"), validators=[Optional()])
    printer_deadline = DateField(_l("To the printer"), validators=[Optional()])
    dispatch_cutoff = DateField(
        _l("Dispatch cut-off"), validators=[Optional()],
        description=_l("The last day a subscriber's change still counts for this issue."))


class IssueEditForm(IssueForm):
    volume = None
    number = None


class SlotForm(FlaskForm):
    article = id_select(_l("Article"), validators=[Optional()])
    rubric = id_select(_l("Rubric"), validators=[Optional()])
    label = StringField(_l("Label"), validators=[Length(max=200)], filters=[strip],
                        description=_l("For a slot without an article: cover, editorial, "
                                       "advertisement …"))
    pages = IntegerField(_l("Pages"), validators=[Optional(), NumberRange(min=1, max=200)],
                         description=_l("Leave empty to estimate from the article."))


class SlotPagesForm(FlaskForm):
    pages = IntegerField(_l("Pages"), validators=[InputRequired(), NumberRange(min=1, max=200)])


class RubricForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Give the rubric a name.")),
                                               Length(max=100)], filters=[strip])
    description = StringField(_l("Description"), validators=[Length(max=500)], filters=[strip])
    active = BooleanField(_l("In use"), default=True)


class DeclineReasonForm(FlaskForm):
    title = StringField(_l("Short title"), validators=[DataRequired(), Length(max=100)],
                        filters=[strip])
    text = TextAreaField(_l("Text for the proposer"), validators=[DataRequired()],
                         filters=[strip])
    active = BooleanField(_l("In use"), default=True)


class PitchForm(FlaskForm):
    title = StringField(_l("Working title"), validators=[
        DataRequired(_l("Give your proposal a title.")), Length(max=200)], filters=[strip])
    summary = TextAreaField(
        _l("Summary"), validators=[DataRequired(_l("Tell us what the article is about.")),
                                   Length(max=5000)], filters=[strip],
        description=_l("What is it about, for whom, and why now?"))
    rubric = id_select(_l("Rubric"), validators=[Optional()])
    proposed_author = StringField(_l("Proposed author"), validators=[Length(max=200)],
                                  filters=[strip],
                                  description=_l("Leave empty if you write it yourself."))
    estimated_words = IntegerField(_l("Estimated length (words)"),
                                   validators=[Optional(), NumberRange(min=100, max=10000)])
    target_issue = id_select(_l("Target issue"), validators=[Optional()])


class PublicPitchForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(_l("Fill in your name.")),
                                                    Length(max=200)], filters=[strip],
                       render_kw={"autocomplete": "name"})
    email = email_field()
    organisation = StringField(_l("Where do you work? (optional)"),
                               validators=[Length(max=200)], filters=[strip])
    title = PitchForm.title
    summary = PitchForm.summary
    rubric = id_select(_l("Rubric (optional)"), validators=[Optional()])
    estimated_words = PitchForm.estimated_words
    # The honeypot: hidden from people by CSS and aria-hidden; robots fill it in.
    website = StringField(_l("Leave this field empty"), render_kw={"autocomplete": "off",
                                                                   "tabindex": "-1"})


class VoteForm(FlaskForm):
    vote = RadioField(_l("Your vote"), choices=[SelectChoice("for", _l("For")),
                                                SelectChoice("against", _l("Against")),
                                                SelectChoice("abstain", _l("Abstain"))],
                      validators=[InputRequired(_l("Choose your vote."))])
    reason = StringField(_l("Short reason"), validators=[Length(max=500)], filters=[strip])


class CommentForm(FlaskForm):
    body = TextAreaField(_l("Message"), validators=[DataRequired(_l("Write a message.")),
                                                    Length(max=5000)], filters=[strip],
                         description=_l("Mention someone with @firstname.lastname: they get "
                                        "a mail."))


class AcceptPitchForm(FlaskForm):
    author = id_select(_l("Author"), validators=[Optional()])
    invite_name = StringField(_l("…or a new author: name"), validators=[Length(max=200)],
                              filters=[strip])
    invite_email = StringField(_l("New author's e-mail"),
                               validators=[Optional(), Email(check_deliverability=False),
                                           Length(max=254)], filters=[strip])
    rubric = id_select(_l("Rubric"), validators=[Optional()])
    target_words = IntegerField(_l("Target words"), default=1200,
                                validators=[InputRequired(), NumberRange(min=100, max=10000)])
    issue = id_select(_l("Target issue"), validators=[Optional()])
    deadline = DateField(_l("Deadline"), validators=[Optional()],
                         description=_l("Empty: the copy deadline of the target issue."))
    note = TextAreaField(_l("Note for the proposer"), validators=[Length(max=2000)],
                         filters=[strip])


class DeclinePitchForm(FlaskForm):
    reason = id_select(_l("Reason"), validators=[Optional()])
    text = TextAreaField(_l("In your own words"), validators=[Length(max=2000)], filters=[strip])


class DeferPitchForm(FlaskForm):
    until = DateField(_l("Discuss again on"), validators=[InputRequired(_l("Choose a date."))])
    note = TextAreaField(_l("Note for the proposer"), validators=[Length(max=2000)],
                         filters=[strip])


class AskInfoForm(FlaskForm):
    question = TextAreaField(_l("Your question"),
                             validators=[DataRequired(_l("Write the question for the "
                                                         "proposer.")), Length(max=2000)],
                             filters=[strip])


class AnswerForm(FlaskForm):
    answer = TextAreaField(_l("Your answer"), validators=[DataRequired(_l("Write your answer.")),
                                                          Length(max=5000)], filters=[strip])


class MoveForm(FlaskForm):
    to = HiddenField()
    note = TextAreaField(_l("Note"), validators=[Length(max=2000)], filters=[strip])


class UploadForm(FlaskForm):
    file = FileField(_l("File"))


class ApprovalForm(FlaskForm):
    comment = TextAreaField(_l("Remarks for the copy editor"), validators=[Length(max=5000)],
                            filters=[strip],
                            description=_l("Only needed if something should still change."))
    approve = SubmitField(_l("I approve this text"))
    send_remarks = SubmitField(_l("Send my remarks"))


class WriteForm(FlaskForm):
    body = TextAreaField(_l("Text (Markdown)"), validators=[Length(max=200_000)],
                         description=_l("# for a title, ## for a subtitle, *italic*, **bold**, "
                                        "- for a list. An empty line starts a new paragraph."))
    note = StringField(_l("What changed? (optional)"), validators=[Length(max=500)],
                       filters=[strip])
    save = SubmitField(_l("Save this version"))
    preview = SubmitField(_l("Preview"))


CONSENT_CHOICES = [
    SelectChoice("missing", _l("Consent missing (recognisable children, no consent yet)")),
    SelectChoice("on_file", _l("Consent on file")),
    SelectChoice("not_needed", _l("Not needed (no recognisable children)")),
]


class ImageForm(FlaskForm):
    file = FileField(_l("Picture (JPEG, PNG or WebP)"))
    caption = StringField(_l("Caption"), validators=[Length(max=500)], filters=[strip])
    credit = StringField(_l("Credit"), validators=[Length(max=200)], filters=[strip],
                         description=_l("Who made the picture: “Foto: Name”."))
    consent = SelectField(_l("Consent of the parents"), choices=CONSENT_CHOICES,
                          default="missing")


class ImageEditForm(ImageForm):
    file = None


class ReaderForm(FlaskForm):
    reader = id_select(_l("Board member or reviewer"), validators=[Optional()])
    name = StringField(_l("…or an external reader: name"), validators=[Length(max=200)],
                       filters=[strip])
    email = StringField(_l("External reader's e-mail"),
                        validators=[Optional(), Email(check_deliverability=False),
                                    Length(max=254)], filters=[strip])
    due_date = DateField(_l("Due date"), validators=[InputRequired(_l("Choose a due date."))])


class ReviewForm(FlaskForm):
    recommendation = RadioField(_l("Your advice"), choices=[
        SelectChoice("accept", _l("Accept as it is")),
        SelectChoice("minor", _l("Minor changes")),
        SelectChoice("major", _l("Major changes")),
        SelectChoice("reject", _l("Do not publish")),
    ], validators=[InputRequired(_l("Choose your advice."))])
    comments_for_author = TextAreaField(
        _l("For the author"), validators=[DataRequired(_l("Write a few words for the author.")),
                                          Length(max=10_000)], filters=[strip],
        description=_l("The author reads this (without your name)."))
    confidential_note = TextAreaField(
        _l("Confidential note for the editors"), validators=[Length(max=5000)],
        filters=[strip], description=_l("Only the editors read this; never the author."))




class ArticleEditForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)],
                        filters=[strip])
    summary = TextAreaField(_l("Summary"), validators=[Length(max=5000)], filters=[strip])
    rubric = id_select(_l("Rubric"), validators=[Optional()])
    target_words = IntegerField(_l("Target words"),
                                validators=[InputRequired(), NumberRange(min=100, max=10000)])
    issue = id_select(_l("Issue"), validators=[Optional()],
                      description=_l("Another issue, or none (the stock): the article leaves "
                                     "its current flatplan."))
    deadline = DateField(_l("Deadline"), validators=[Optional()])


class SlotEditForm(FlaskForm):
    label = StringField(_l("Label"), validators=[Length(max=200)], filters=[strip])
    rubric = id_select(_l("Rubric"), validators=[Optional()])
    pages = IntegerField(_l("Pages"), validators=[InputRequired(), NumberRange(min=1, max=200)])
