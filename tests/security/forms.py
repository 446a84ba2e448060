"""Finding the application's forms the way a browser does: log in, follow links, read the
`<form method="post">` elements of each page (their fields, hidden values and choices).

Used by tests/security/test_fuzz.py; kept apart so the fuzz test reads as what it checks."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from flask import Flask
from werkzeug.exceptions import HTTPException

# Links not to follow while looking for forms: downloads, and pages that end the session.
SKIP_SUFFIXES = (".csv", ".pdf", ".zip", ".svg", ".ics", ".docx", ".png", ".jpg", ".json")
SKIP_PREFIXES = ("/static/", "/logout", "/webhooks/", "/language")


@dataclass
class Field:
    name: str
    kind: str  # text, textarea, select, checkbox, radio, hidden, file, number, date, email, …
    value: str = ""
    options: list[str] = field(default_factory=list)
    multiple: bool = False


@dataclass
class Form:
    page: str  # the page the form was read from
    action: str  # where it posts (path and query)
    endpoint: str
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def csrf_token(self) -> str | None:
        token = self.fields.get("csrf_token")
        return token.value if token else None

    def signature(self) -> tuple:
        """Forms that differ only in free text are the same form for the fuzzer."""
        hidden = tuple(sorted((f.name, f.value) for f in self.fields.values()
                              if f.kind == "hidden" and f.name != "csrf_token"))
        return (self.endpoint, tuple(sorted(self.fields)), hidden)


class _PageParser(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.links: list[str] = []
        self.forms: list[tuple[str, dict[str, Field]]] = []
        self._form: dict[str, Field] | None = None
        self._select: Field | None = None
        self._textarea: Field | None = None
        self._option_value: str | None = None
        # Buttons that post their form elsewhere (`formaction`): (form's fields, action).
        self.form_actions: list[tuple[dict[str, Field], str]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            if a.get("method", "get").lower() == "post":
                self._form = {}
                self.forms.append((a.get("action") or self.page, self._form))
            else:
                self._form = None
        elif self._form is None:
            return
        elif tag in ("button", "input") and a.get("formaction"):
            self.form_actions.append((self._form, a["formaction"]))
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "image", "reset"):
                return
            name = a["name"]
            if kind in ("checkbox", "radio"):
                known = self._form.get(name)
                if known is None:
                    known = self._form[name] = Field(name, kind, multiple=kind == "checkbox")
                known.options.append(a.get("value", "on"))
                if "checked" in a and not known.value:
                    known.value = a.get("value", "on")
            else:
                self._form[name] = Field(name, kind, a.get("value", ""))
        elif tag == "select" and a.get("name"):
            self._select = self._form[a["name"]] = Field(a["name"], "select",
                                                         multiple="multiple" in a)
        elif tag == "option" and self._select is not None:
            self._option_value = a.get("value")
            if self._option_value is not None:
                self._select.options.append(self._option_value)
                if "selected" in a:
                    self._select.value = self._option_value
        elif tag == "textarea" and a.get("name"):
            self._textarea = self._form[a["name"]] = Field(a["name"], "textarea")

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea.value += data
        elif self._select is not None and self._option_value is None and data.strip():
            # <option>text</option> without a value posts its text.
            self._select.options.append(data.strip())

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            if self._select is not None and not self._select.value and self._select.options:
                self._select.value = self._select.options[0]
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "option":
            self._option_value = None


def post_endpoint(app: Flask, path: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        endpoint, _ = adapter.match(urlsplit(path).path, method="POST")
    except HTTPException:
        return None
    return endpoint


def get_endpoint(app: Flask, path: str) -> tuple[str, dict] | None:
    adapter = app.url_map.bind("localhost")
    try:
        return adapter.match(urlsplit(path).path, method="GET")
    except HTTPException:
        return None


def read_page(app: Flask, page: str, html: str) -> tuple[list[str], list[Form]]:
    parser = _PageParser(page)
    parser.feed(html)
    forms = []
    for action, fields in parser.forms + [(a, f) for f, a in parser.form_actions]:
        action = urljoin(page, action)
        parts = urlsplit(action)
        if parts.netloc not in ("", "localhost"):
            continue
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        endpoint = post_endpoint(app, path)
        if endpoint:
            forms.append(Form(page, path, endpoint, fields))
    links = []
    for href in parser.links:
        parts = urlsplit(urljoin(page, href))
        if parts.netloc not in ("", "localhost") or parts.scheme not in ("", "http"):
            continue
        if parts.path.startswith(SKIP_PREFIXES) or parts.path.endswith(SKIP_SUFFIXES):
            continue
        links.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return links, forms


def crawl(app: Flask, client, seeds: list[str], *, max_pages: int = 70,
          per_endpoint: int = 2) -> tuple[list[Form], dict[str, list]]:
    """Pages reachable from `seeds` by links (at most `per_endpoint` pages of each view), and
    the post forms on them; also the view arguments seen (ids of real objects)."""
    seen: set[str] = set()
    visits: dict[str, int] = {}
    queue = deque(seeds)
    forms: list[Form] = []
    args_seen: dict[str, list] = {}
    while queue and len(seen) < max_pages:
        page = queue.popleft()
        if page in seen:
            continue
        match = get_endpoint(app, page)
        if match is None:
            continue
        endpoint, view_args = match
        if visits.get(endpoint, 0) >= per_endpoint:
            continue
        visits[endpoint] = visits.get(endpoint, 0) + 1
        seen.add(page)
        for name, value in view_args.items():
            values = args_seen.setdefault(name, [])
            if value not in values:
                values.append(value)
        response = client.get(page)
        if response.status_code != 200 or "html" not in response.content_type:
            continue
        links, page_forms = read_page(app, page, response.get_data(as_text=True))
        forms.extend(page_forms)
        queue.extend(link for link in links if link not in seen)
        # Every object a page links to, visited or not: ids for the routes no page showed.
        for link in links:
            linked = get_endpoint(app, link)
            if linked and linked[1] and linked[1] not in args_seen.setdefault("*", []):
                args_seen["*"].append(linked[1])
    return forms, args_seen


def form_near(app: Flask, client, endpoint: str, url: str) -> Form | None:
    """The form posting to `endpoint` on the page of `url` or a page above it
    (/editorial/pitches/6/accept → /editorial/pitches/6 → /editorial/pitches)."""
    path = urlsplit(url).path
    while path.count("/") > 1:
        path = path.rsplit("/", 1)[0]
        if get_endpoint(app, path) is None:
            continue
        response = client.get(path)
        if response.status_code != 200 or "html" not in response.content_type:
            continue
        _, forms = read_page(app, path, response.get_data(as_text=True))
        matching = [form for form in forms if form.endpoint == endpoint]
        if matching:
            return matching[0]
    return None
