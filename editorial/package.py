"""The print package of an issue (one zip for the layout studio and the printer) and the
printed issue's PDF.

The zip holds, per placed article, its final text as HTML and as plain text and its images
with a captions file (caption, credit, consent status); the flatplan as CSV and as a
printable HTML page; and a manifest (JSON) listing every file with its SHA-256."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile

from flask import render_template
from flask_babel import gettext as _

from editorial.models import Issue, IssueState
from editorial.services import flatplan_of
from editorial.states import ARTICLE_STATE_LABELS
from editorial.text import plain_text, render_markdown
from magazine import audit
from magazine.clock import now_utc
from magazine.errors import DomainError, PermissionDenied
from magazine.models import User
from magazine.roles import Role

MAX_PDF_BYTES = 200 * 1024 * 1024


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50] or "artikel"


def print_package(issue: Issue) -> bytes:
    plan = flatplan_of(issue)
    buffer = io.BytesIO()
    manifest: dict = {"issue": issue.code, "theme": issue.theme,
                      "print_date": issue.print_date.isoformat(),
                      "made_at": now_utc().isoformat(), "pages": plan.total,
                      "page_budget": plan.budget, "files": []}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        def add(name: str, data: bytes | str) -> None:
            raw = data.encode() if isinstance(data, str) else data
            archive.writestr(name, raw)
            manifest["files"].append({"name": name, "bytes": len(raw),
                                      "sha256": hashlib.sha256(raw).hexdigest()})

        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["position", "first_page", "pages", "rubric", "title", "author",
                         "state", "words", "images"])
        first_page = 1
        for position, slot in enumerate(plan.slots, start=1):
            article = slot.article
            writer.writerow([
                position, first_page, slot.pages, slot.rubric.name if slot.rubric else "",
                article.title if article else slot.label,
                article.author.name if article else "",
                article.state.value if article else "", article.word_count if article else "",
                len(article.images) if article else "",
            ])
            first_page += slot.pages
            if article is None or article.current is None:
                continue
            folder = f"{position:02d}-{_slug(article.title)}"
            body = article.current.body
            add(f"{folder}/text.html", render_template(
                "editorial/package_article.html", article=article, body=render_markdown(body)))
            add(f"{folder}/text.txt", f"{article.title}\n{article.author.name}\n\n"
                                      f"{plain_text(body)}\n")
            captions = []
            for number, image in enumerate(article.images, start=1):
                name = f"{number:02d}-{image.filename}"
                add(f"{folder}/images/{name}", image.data)
                captions.append(f"{name}\n  caption: {image.caption}\n  credit: {image.credit}"
                                f"\n  consent: {image.consent.value}\n")
            if captions:
                add(f"{folder}/images/captions.txt", "\n".join(captions))
        add("flatplan.csv", rows.getvalue())
        add("flatplan.html", render_template("editorial/package_flatplan.html", issue=issue,
                                             plan=plan, labels=ARTICLE_STATE_LABELS))
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    return buffer.getvalue()


def upload_issue_pdf(issue: Issue, *, actor: User, filename: str, data: bytes) -> None:
    """The printed issue as a PDF, once published (digital subscribers get it later)."""
    if not actor.has_role(Role.EDITOR_IN_CHIEF):
        raise PermissionDenied(_("Only the editor-in-chief uploads the issue's PDF."))
    if issue.state not in (IssueState.AT_PRINTER, IssueState.PUBLISHED, IssueState.DISPATCHED):
        raise DomainError(_("The PDF is uploaded once the issue has gone to the printer."),
                          field="file")
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-2048:]:
        raise DomainError(_("This is not a complete PDF file."), field="file")
    if len(data) > MAX_PDF_BYTES:
        raise DomainError(_("This PDF is too large."), field="file")
    issue.pdf_data = data
    issue.pdf_filename = re.sub(r"[^\w.-]+", "_", filename.rsplit("/", 1)[-1])[-150:] or \
        f"kinderopvang-magazine-{issue.code}.pdf"
    audit.record("issue.pdf_uploaded", "issue", issue.id, actor=actor, bytes=len(data))
