"""Articles: writing (every save a revision), sanitising hostile text, Word import on a real
file, comparing versions, images checked by Pillow, review rounds with readers by account
and by link, and the author's approval by link."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from html.parser import HTMLParser

import docx
import pytest
from PIL import Image

from editorial import services
from editorial.models import (
    Article,
    ArticleState,
    Consent,
    Recommendation,
    RevisionKind,
)
from editorial.text import render_markdown, side_by_side, word_count
from magazine.clock import frozen
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.roles import Role
from tests.conftest import link_in
from tests.editorial.conftest import make_article
from tests.factories import make_user

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def picture(size=(1200, 800), fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 170, 110)).save(buffer, format=fmt)
    return buffer.getvalue()


def word_file(*paragraphs: str, heading: str = "Wennen in kleine stapjes") -> bytes:
    document = docx.Document()
    document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    document.add_paragraph("Eerste tip", style="List Bullet")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- text

class Tags(HTMLParser):
    """The tags and attributes a browser would see."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


HOSTILE = ('Hallo <script>alert(1)</script> **vet** <img src=x onerror=alert(2)>\n\n'
           '[klik](javascript:alert(3)) <a href="https://ok.example" onclick="x()">ok</a>\n\n'
           '<iframe src="https://evil.example"></iframe> [goed](https://goed.example)')


def assert_harmless(html: str) -> None:
    for tag, attrs in Tags(html).found:
        assert tag not in {"script", "img", "iframe", "style", "object"}, tag
        assert not any(name.startswith("on") for name in attrs), attrs
        assert not attrs.get("href", "").lower().startswith("javascript"), attrs


def test_hostile_markdown_is_rendered_harmless():
    html = str(render_markdown(HOSTILE))
    assert_harmless(html)
    assert "<strong>vet</strong>" in html
    assert ("a", {"href": "https://goed.example", "rel": "noopener noreferrer nofollow"}) in \
        Tags(html).found


def test_hostile_html_is_cleaned_by_the_sanitiser():
    from editorial.text import sanitise

    html = sanitise('<p onclick="x()">a<script>b</script><img src=x onerror=y>'
                    '<a href="javascript:alert(1)">c</a><iframe></iframe></p>')
    assert_harmless(html)
    assert "b" not in html.replace("<p>", "")


def test_markdown_keeps_structure_and_counts_words():
    text = "# Titel\n\nEen *korte* zin.\n\n- een\n- twee\n"
    html = str(render_markdown(text))
    assert "<h1>Titel</h1>" in html and "<em>korte</em>" in html and "<li>een</li>" in html
    assert word_count(text) == 6


def test_side_by_side_escapes_the_text():
    table = str(side_by_side("<b>oud</b>", "<script>nieuw</script>", "1", "2"))
    assert "<script>" not in table and "&lt;script&gt;" in table


# ---------------------------------------------------------------- revisions

def test_every_save_is_a_revision_and_the_text_locks_when_submitted(people):
    article = Article(title="Slapen", author=people.author, target_words=800,
                      state=ArticleState.COMMISSIONED)
    db.session.add(article)
    first = services.save_revision(article, actor=people.author, body="Eerste versie.")
    assert services.save_revision(article, actor=people.author, body="Eerste versie.") is None
    second = services.save_revision(article, actor=people.author, body="Tweede, langere versie.",
                                    note="Langer")
    assert (first.number, second.number, second.word_count) == (1, 2, 3)
    assert second.kind == RevisionKind.DRAFT
    with pytest.raises(PermissionDenied):
        services.save_revision(article, actor=people.board, body="Van iemand anders")
    services.move_article(article, ArticleState.DRAFT_SUBMITTED, actor=people.author)
    with pytest.raises(PermissionDenied):
        services.save_revision(article, actor=people.author, body="Nog snel iets")


def test_copy_editing_is_a_revision_like_any_other(people):
    article = make_article(people.author, state=ArticleState.COPYEDITING)
    revision = services.save_revision(article, actor=people.copy, body="Nagelezen tekst.")
    assert revision.kind == RevisionKind.COPYEDIT and revision.saved_by == people.copy
    with pytest.raises(PermissionDenied):
        services.save_revision(article, actor=people.author, body="Auteur mag nu niet")


def test_a_real_word_file_becomes_the_next_revision(people):
    article = make_article(people.author, state=ArticleState.COMMISSIONED)
    data = word_file("Een kind dat went, heeft tijd nodig.", "Ouders ook!")
    revision = services.import_docx(article, actor=people.author, data=data,
                                    filename="wennen.docx")
    assert revision.kind == RevisionKind.UPLOAD and revision.number == 2
    assert "# Wennen in kleine stapjes" in revision.body
    assert "Een kind dat went, heeft tijd nodig." in revision.body
    assert "- Eerste tip" in revision.body or "* Eerste tip" in revision.body
    with pytest.raises(DomainError) as error:
        services.import_docx(article, actor=people.author, data=b"%PDF-1.4 not word")
    assert error.value.field == "file"
    with pytest.raises(DomainError):
        services.import_docx(article, actor=people.author, data=b"PK\x03\x04broken zip")


# ---------------------------------------------------------------- images

def test_only_real_images_of_sane_size_are_accepted(people):
    article = make_article(people.author)
    image = services.add_image(article, actor=people.author, filename="../../buiten spelen.jpg",
                               data=picture(), caption="Spelen", credit="Foto: Lies")
    assert (image.content_type, image.width, image.height) == ("image/jpeg", 1200, 800)
    assert image.filename == "buiten_spelen.jpg" and image.consent == Consent.MISSING
    assert services.add_image(article, actor=people.copy, filename="a.png",
                              data=picture(fmt="PNG")).content_type == "image/png"
    for data in (b"GIF89a not really", b"<svg onload=alert(1)>", picture(size=(120, 90)),
                 picture()[:200], picture(fmt="GIF")):
        with pytest.raises(DomainError) as error:
            services.add_image(article, actor=people.author, filename="x.jpg", data=data)
        assert error.value.field == "file"
    with pytest.raises(PermissionDenied):
        services.add_image(article, actor=people.board, filename="x.jpg", data=picture())


# ---------------------------------------------------------------- review

def submitted(people):
    article = make_article(people.author, state=ArticleState.DRAFT_SUBMITTED)
    return article


def test_chief_assigns_readers_and_rounds_follow_submissions(people, outbox):
    article = submitted(people)
    with frozen(NOW):
        board_review = services.assign_reader(article, actor=people.chief, reader=people.board,
                                              due_date=date(2026, 12, 1))
        external = services.assign_reader(article, actor=people.chief, name="Hilde Claeys",
                                          email="hilde@extern.example",
                                          due_date=date(2026, 12, 1))
        db.session.commit()
    assert article.state == ArticleState.IN_REVIEW
    assert board_review.round is external.round and external.round.number == 1
    with pytest.raises(DomainError):
        services.assign_reader(article, actor=people.chief, reader=people.author,
                               due_date=date(2026, 12, 1))
    with pytest.raises(PermissionDenied):
        services.assign_reader(article, actor=people.board, reader=people.reviewer,
                               due_date=date(2026, 12, 1))
    # The external reader reads by link, without an account.
    mail = outbox("hilde@extern.example")[-1]
    token = link_in(mail, "/review/").rsplit("/", 1)[1]
    with frozen(NOW):
        services.submit_review(external, token=token, recommendation=Recommendation.MAJOR,
                               comments_for_author="Graag meer voorbeelden uit de praktijk.",
                               confidential_note="Het slot is zwak.")
        with pytest.raises(PermissionDenied):
            services.submit_review(board_review, token=token, recommendation=Recommendation.MINOR,
                                   comments_for_author="x")
        with pytest.raises(PermissionDenied):
            services.submit_review(board_review, actor=people.reviewer,
                                   recommendation=Recommendation.MINOR, comments_for_author="x")
        services.submit_review(board_review, actor=people.board,
                               recommendation=Recommendation.MINOR,
                               comments_for_author="Mooi; kort de inleiding in.",
                               confidential_note="Vertrouwelijk: ken de auteur.")
        services.move_article(article, ArticleState.REVISIONS_REQUESTED, actor=people.chief)
        db.session.commit()
    assert article.rounds[0].closed_at is not None
    with pytest.raises(DomainError):
        services.review_by_link(token)
    decision = outbox("author@example.org")[-1]
    assert "herwerken" in decision.subject
    assert "Graag meer voorbeelden" in decision.body_text
    assert "Het slot is zwak" not in decision.body_text
    assert "Vertrouwelijk" not in decision.body_text
    # The author revises and resubmits: a new round.
    services.save_revision(article, actor=people.author, body="Herwerkte tekst met voorbeelden.")
    services.move_article(article, ArticleState.DRAFT_SUBMITTED, actor=people.author)
    with frozen(NOW):
        services.assign_reader(article, actor=people.chief, reader=people.board,
                               due_date=date(2026, 12, 10))
    assert [r.number for r in article.rounds] == [1, 2]
    assert article.rounds[1].revision.number == 2
    # Accepted: the copy editors hear there is copy to edit.
    services.move_article(article, ArticleState.ACCEPTED, actor=people.chief)
    db.session.commit()
    assert [m.template for m in outbox("copy@example.org")] == ["editorial_copy_ready"]


def test_the_author_approves_by_link_or_sends_remarks(people, outbox):
    article = make_article(people.author, state=ArticleState.COPYEDITING)
    services.move_article(article, ArticleState.AUTHOR_APPROVAL, actor=people.copy)
    db.session.commit()
    token = link_in(outbox("author@example.org")[-1], "/approve/").rsplit("/", 1)[1]
    with pytest.raises(DomainError) as error:
        services.answer_approval(token, approved=False, comment="")
    assert error.value.field == "comment"
    services.answer_approval(token, approved=False, comment="De titel klopt niet meer.")
    db.session.commit()
    assert article.state == ArticleState.COPYEDITING
    assert [m.template for m in outbox("copy@example.org")] == ["editorial_author_commented"]
    with pytest.raises(DomainError):
        services.answer_approval(token, approved=True)
    services.move_article(article, ArticleState.AUTHOR_APPROVAL, actor=people.copy)
    db.session.commit()
    token = link_in(outbox("author@example.org")[-1], "/approve/").rsplit("/", 1)[1]
    services.answer_approval(token, approved=True)
    db.session.commit()
    assert article.state == ArticleState.READY_FOR_LAYOUT
    last = services.timeline("article", article.id)[-1]
    assert last.actor_id == people.author.id and last.details["to"] == "ready_for_layout"


# ---------------------------------------------------------------- views

def test_author_writes_previews_and_uploads_in_the_browser(app, login_as):
    client = login_as(Role.AUTHOR, email="schrijver@example.org")
    with app.app_context():
        from tests.conftest import get_user

        article = make_article(get_user("schrijver@example.org"),
                               state=ArticleState.COMMISSIONED)
        article_id = article.id
    page = client.get(f"/editorial/articles/{article_id}/write")
    assert page.status_code == 200 and "woord" in page.text
    preview = client.post(f"/editorial/articles/{article_id}/write",
                          data={"body": "# Kop\n\n<script>x</script>tekst", "preview": "1"})
    assert "<h1>Kop</h1>" in preview.text and "<script>x</script>" not in preview.text
    live = client.post(f"/editorial/articles/{article_id}/preview",
                       data={"body": "Een **twee** drie"})
    assert live.json == {"html": "<p>Een <strong>twee</strong> drie</p>\n", "words": 3}
    saved = client.post(f"/editorial/articles/{article_id}/write",
                        data={"body": "Mijn nieuwe tekst.", "save": "1"})
    assert saved.status_code == 302
    upload = client.post(f"/editorial/articles/{article_id}/upload",
                         data={"file": (io.BytesIO(word_file("Uit Word.")), "tekst.docx")},
                         content_type="multipart/form-data")
    assert upload.status_code == 302
    compare = client.get(f"/editorial/articles/{article_id}/compare?a=2&b=3")
    assert compare.status_code == 200 and "diff_add" in compare.text
    picture_upload = client.post(
        f"/editorial/articles/{article_id}/images",
        data={"file": (io.BytesIO(picture()), "foto.jpg"), "caption": "Buiten",
              "credit": "Foto: An", "consent": "not_needed"},
        content_type="multipart/form-data", follow_redirects=True)
    assert "foto.jpg" in picture_upload.text
    with app.app_context():
        image = db.session.get(Article, article_id).images[0]
        image_id = image.id
    served = client.get(f"/editorial/articles/{article_id}/images/{image_id}/file")
    assert served.headers["Content-Type"] == "image/jpeg"


def test_confidential_notes_never_reach_the_author_page(app, login_as):
    author_client = login_as(Role.AUTHOR, email="a@example.org")
    chief_client = login_as(Role.EDITOR_IN_CHIEF, email="c@example.org")
    with app.app_context():
        from tests.conftest import get_user

        author, chief = get_user("a@example.org"), get_user("c@example.org")
        board = make_user(roles={Role.BOARD_MEMBER}, name="Lid Een")
        article = make_article(author, state=ArticleState.DRAFT_SUBMITTED)
        review = services.assign_reader(article, actor=chief, reader=board,
                                        due_date=date(2030, 1, 1))
        services.submit_review(review, actor=board, recommendation=Recommendation.MINOR,
                               comments_for_author="Voor de auteur bedoeld.",
                               confidential_note="GEHEIM-NOOT")
        db.session.commit()
        article_id = article.id
    # While the round is open the author sees no readings at all ...
    assert "Voor de auteur bedoeld." not in author_client.get(
        f"/editorial/articles/{article_id}").text
    with app.app_context():
        services.move_article(db.session.get(Article, article_id),
                              ArticleState.REVISIONS_REQUESTED, actor=get_user("c@example.org"))
        db.session.commit()
    # ... and after the decision the comments for them, never the confidential note.
    author_page = author_client.get(f"/editorial/articles/{article_id}").text
    assert "Voor de auteur bedoeld." in author_page
    assert "GEHEIM-NOOT" not in author_page and "Lid Een" not in author_page
    assert "GEHEIM-NOOT" in chief_client.get(f"/editorial/articles/{article_id}").text


def test_a_reader_opens_only_their_own_reading(app, login_as):
    reviewer = login_as(Role.REVIEWER, email="r@example.org")
    other = login_as(Role.REVIEWER, email="r2@example.org")
    with app.app_context():
        from tests.conftest import get_user

        chief = make_user(roles={Role.EDITOR_IN_CHIEF})
        article = make_article(make_user(roles={Role.AUTHOR}), state=ArticleState.DRAFT_SUBMITTED)
        review = services.assign_reader(article, actor=chief, reader=get_user("r@example.org"),
                                        due_date=date(2030, 1, 1))
        db.session.commit()
        review_id, article_id = review.id, article.id
    assert reviewer.get(f"/editorial/reviews/{review_id}").status_code == 200
    assert reviewer.get(f"/editorial/articles/{article_id}").status_code == 200
    assert other.get(f"/editorial/reviews/{review_id}").status_code == 404
    assert other.get(f"/editorial/articles/{article_id}").status_code == 404
    response = reviewer.post(f"/editorial/reviews/{review_id}", data={
        "recommendation": "accept", "comments_for_author": "Klaar voor druk."})
    assert response.status_code == 302


def test_plain_text_keeps_blocks_and_lists_for_the_print_package():
    from editorial.text import plain_text

    text = "# Titel\n\nEen *korte* zin & meer.\n\n- een\n- twee\n\n> citaat\n"
    assert plain_text(text) == "Titel\n\nEen korte zin & meer.\n\n- een\n- twee\n\ncitaat"
    assert word_count(text) == 8
