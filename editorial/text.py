"""Article text: Markdown to safe HTML, word counts, Word import and comparing versions.

Authors write Markdown; what we show is rendered by markdown-it-py (CommonMark, raw HTML
off) and then cleaned by nh3 (the Rust `ammonia` sanitiser) with a short allow-list, so
that pasted or hostile text can never run script in an editor's browser. Word files are
converted by mammoth, which keeps the structure (headings, lists, emphasis) and drops the
styling.
"""

from __future__ import annotations

import difflib
import html as html_module
import io
import re

import mammoth
import nh3
from flask_babel import gettext as _
from markdown_it import MarkdownIt
from markupsafe import Markup

from magazine.errors import DomainError

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}
                       ).enable("table")

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "a",
    "ul", "ol", "li", "blockquote", "code", "pre", "table", "thead", "tbody", "tr", "th",
    "td", "sup", "sub",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}

WORD = re.compile(r"[\w’'-]*\w[\w’'-]*", re.UNICODE)
MAX_DOCX_BYTES = 10 * 1024 * 1024


def sanitise(html: str) -> str:
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes=URL_SCHEMES, link_rel="noopener noreferrer nofollow")


def render_markdown(text: str) -> Markup:
    """Markdown to HTML that is safe to put in a page."""
    return Markup(sanitise(_markdown.render(text or "")))  # nosec B704 # sanitised by nh3


def plain_text(text: str) -> str:
    """The text without markup (for the print package and word counts): blocks separated
    by a blank line, list items as "- item"."""
    html = _markdown.render(text or "")
    html = re.sub(r"<li>\s*(?:<p>)?", "- ", html)
    html = re.sub(r"(?:</p>)?\s*</li>\s*", "\n", html)
    html = re.sub(r"</(?:h[1-6]|p|blockquote|pre|ul|ol|table|tr)>", "\n\n", html)
    stripped = html_module.unescape(nh3.clean(html, tags=set(), attributes={}))
    lines = [line.strip() for line in stripped.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def word_count(text: str) -> int:
    return len(WORD.findall(plain_text(text)))


def docx_to_markdown(data: bytes) -> str:
    """A Word file (.docx) as Markdown. Refuses what is not a Word file."""
    if len(data) > MAX_DOCX_BYTES:
        raise DomainError(_("This Word file is too large (at most 10 MB)."), field="file")
    if not data.startswith(b"PK"):
        raise DomainError(_("This is not a Word file (.docx). Save it as .docx and try again."),
                          field="file")
    try:
        result = mammoth.convert_to_markdown(io.BytesIO(data))
    except Exception as exc:  # mammoth raises many kinds for a damaged file
        raise DomainError(_("This Word file cannot be read. Save it again as .docx and try "
                            "again."), field="file") from exc
    # mammoth escapes punctuation that Markdown would read as markup; keep it readable.
    text = re.sub(r"\\([.!()\-])", r"\1", result.value)
    # mammoth writes images inline as data: URIs; images are attached separately here.
    text = re.sub(r"!\[[^\]]*\]\(data:[^)]*\)", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def side_by_side(old: str, new: str, old_label: str, new_label: str) -> Markup:
    """Two versions next to each other, changed lines marked (difflib escapes the text)."""
    table = difflib.HtmlDiff(tabsize=4).make_table(
        (old or "").splitlines(), (new or "").splitlines(), old_label, new_label,
        context=False)
    # difflib writes every space as &nbsp;: give the browser its spaces back to wrap at.
    return Markup(table.replace("&nbsp;", " "))  # nosec B704 # difflib escapes &, < and >
