"""Property-based security test: generated input posted to EVERY form and webhook.

The forms are found, not listed: every route of `app.url_map` that accepts POST is posted
to. Each role (and anonymous) logs in as the demo person of that role and follows links from
its start pages; every `<form method="post">` met is read (fields, hidden values, choices,
the CSRF token — CSRF protection is on for this test). Hypothesis then fills each form with
a mix of the page's own values and hostile ones (unicode, empty, huge, negative and absurd
numbers, malformed dates, e-mails, IBANs, VAT numbers, postcodes, NUL bytes, markup) and
posts it. A route whose form no page showed is posted to blind (ids of real objects seen
while crawling, generated fields) by a role that may use it (the access table).

What must hold after every post:
- never a 5xx (in tests an exception propagates, so it is caught and reported);
- a rejected post (4xx, a form shown again with errors, or a redirect with an error
  message) changed nothing: every table's content is the same as before;
- an accepted post leaves pages that still render (the page it redirects to is not a 5xx).

Bounded and deterministic: `derandomize=True`, a fixed number of examples per form, no
shrinking (a failure is reported with the values posted).
"""

from __future__ import annotations

import io
import re
import traceback
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from magazine.db import db
from magazine.roles import Role
from tests.security.forms import Field, Form, crawl, form_near, read_page
from tests.test_access import ACCESS, ANONYMOUS

EXAMPLES_PER_FORM = 8
DEMO_PASSWORD = "demo-password"  # nosec B105 # the documented demo logins

# Who fills a form when several roles see it: the least powerful first.
ROLE_ORDER = [ANONYMOUS, Role.SUBSCRIBER, Role.AUTHOR, Role.REVIEWER, Role.BOARD_MEMBER,
              Role.COPY_EDITOR, Role.EDITOR_IN_CHIEF, Role.COORDINATOR, Role.ADMIN]
SEEDS = {
    ANONYMOUS: ["/", "/plans", "/checkout", "/back-issues", "/propose", "/login", "/register",
                "/password/forgot", "/verify"],
    "staff": ["/", "/account", "/account/profile", "/account/password", "/account/delete",
              "/editorial/", "/editorial/pitches", "/editorial/articles", "/editorial/issues",
              "/editorial/reviews", "/editorial/rubrics", "/editorial/decline-reasons",
              "/editorial/pitches/new", "/editorial/issues/new",
              "/business/", "/business/subscriptions/", "/business/subscriptions/plans",
              "/business/subscriptions/promo-codes", "/business/subscriptions/back-issues",
              "/business/subscriptions/bank-statement",
              "/business/subscriptions/complimentary", "/business/subscriptions/dispatch/",
              "/admin/", "/admin/users/invite", "/plans", "/checkout", "/back-issues"],
}
# Forms whose success ends the session or the account: fuzzed last.
LAST = ("admin.user_detail", "admin.block_user", "auth.change_password",
        "subscriptions.delete_account", "auth.logout")
# Tables every request may touch (sessions seen, login attempts, job bookkeeping).
VOLATILE = {"user_sessions", "login_attempts", "job_runs", "job_claims"}

# --- hostile values ------------------------------------------------------------------------
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
HUGE = st.sampled_from(["x", "é", "😀", "<b>", "9", "a b"]).map(lambda s: s * 20_000)
NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["-1", "-0", "0", "1e309", "NaN", "-inf", "12,50", "-12,50", "1.000,00",
                     "٣", "²", " 7 ", "0x1F", "99999999999999999999999", "2147483648",
                     "-2147483649", "9223372036854775808"]),
)
DATES = st.one_of(
    st.dates().map(str),
    st.sampled_from(["2026-02-30", "2026-13-01", "0000-00-00", "31/12/2026", "9999-12-31",
                     "0001-01-01", "2026-1-1", "2026-W05", "morgen", "2026-02-29T25:61",
                     "2026-00", "2026-13", "-2026-01-01"]),
)
EMAILS = st.one_of(
    st.emails().map(str),
    st.sampled_from(["a@", "@b.be", "a@b@c.be", "a b@c.be", "x@localhost", "jürgen@bücher.be",
                     "a" * 300 + "@x.be", "subscriber@demo.example", "ADMIN@DEMO.EXAMPLE",
                     "x@[127.0.0.1]", "\"q\"@x.be"]),
)
IBANS = st.sampled_from(["BE71096123456769", "BE68539007547034", "be71 0961 2345 6769",
                         "NL91ABNA0417164300", "BE00", "XX", "BE71-0961-2345-6769"])
VATS = st.sampled_from(["BE0417497106", "BE 0417.497.106", "0417497106", "BE0123456789",
                        "NL123456789B01", "BE", "BE04174971060000", "BE1417497106"])
POSTCODES = st.sampled_from(["1000", "9000", "0000", "99999", "ABCD", "-1000", "1000 Brussel",
                             "L-1234", "1012 AB"])
SPECIAL = st.sampled_from(["\x00", "a\x00b", "\ufeff", "\u202e", "<script>alert(1)</script>",
                           "' OR 1=1 --", "%s%n", "{{7*7}}", "../../etc/passwd", "\r\n",
                           "   ", "+++090/9337/55493+++", "2026-000001"])
HOSTILE = st.one_of(st.just(""), TEXT, HUGE, NUMBERS, DATES, EMAILS, IBANS, VATS, POSTCODES,
                    SPECIAL)
FILES = st.tuples(st.binary(max_size=2048),
                  st.sampled_from(["a.docx", "a.png", "a.jpg", "a.pdf", "a.xml", "ü.txt", ""]))
GENERIC_NAMES = ["name", "email", "password", "amount", "note", "reason", "street", "postcode",
                 "city", "country", "date", "copies", "issues", "body", "id", "to", "iban",
                 "vat_number", "code", "title"]


def plausible(f: Field) -> st.SearchStrategy:
    """What a person could send: the page's own value or one of the offered choices."""
    own = st.just(f.value)
    if f.kind == "file":
        return st.one_of(FILES, st.none())
    if f.name == "csrf_token" or not f.options:
        return own
    choices = [own, st.sampled_from(f.options)]
    if f.multiple:
        choices.append(st.lists(st.sampled_from(f.options), unique=True, max_size=4))
    return st.one_of(*choices)


def hostile(f: Field) -> st.SearchStrategy:
    if f.kind == "file":
        return st.one_of(FILES, HOSTILE, st.none())
    return st.one_of(HOSTILE, st.none(), st.lists(HOSTILE, min_size=2, max_size=3))


def form_strategy(form: Form) -> st.SearchStrategy:
    """Up to three fields hostile (also none: the form as the page offers it), the others
    plausible, so each hostile value reaches the checks behind the form's own validation."""
    names = sorted(form.fields)

    @st.composite
    def values(draw):
        bad = draw(st.sets(st.sampled_from(names), max_size=3)) if names else set()
        return {name: draw(hostile(form.fields[name]) if name in bad
                           else plausible(form.fields[name]), label=name)
                for name in names}

    return values()


def to_post(values: dict) -> dict:
    data = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, tuple):
            data[name] = (io.BytesIO(value[0]), value[1])
        elif isinstance(value, list) and value and isinstance(value[0], tuple):
            data[name] = [(io.BytesIO(v[0]), v[1]) for v in value]
        else:
            data[name] = value
    return data


def shown(values: dict) -> str:
    def short(value):
        text = repr(value)
        return text if len(text) <= 60 else text[:40] + f"…({len(text)} chars)"
    return "{" + ", ".join(f"{k}: {short(v)}" for k, v in values.items()) + "}"


# --- what a request wrote ------------------------------------------------------------------
WRITE = re.compile(r'^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?',
                   re.IGNORECASE)


class CommittedWrites:
    """The tables a request changed for good: writes (rows affected) in transactions that
    were committed, read from the engine's events. Cheaper and stricter than comparing
    snapshots: an update to one column of one row counts too."""

    def __init__(self, engine):
        self.engine = engine
        self.pending: dict[int, set[str]] = {}
        self.committed: list[str] = []
        sa.event.listen(engine, "after_cursor_execute", self._executed)
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "rollback", self._rollback)

    def _executed(self, connection, cursor, statement, parameters, context, executemany):
        match = WRITE.match(statement)
        if match and match.group(1) not in VOLATILE and cursor.rowcount != 0:
            self.pending.setdefault(id(connection), set()).add(match.group(1))

    def _commit(self, connection):
        self.committed.extend(sorted(self.pending.pop(id(connection), ())))

    def _rollback(self, connection):
        self.pending.pop(id(connection), None)

    def take(self) -> list[str]:
        tables, self.committed = self.committed, []
        return tables

    def close(self):
        sa.event.remove(self.engine, "after_cursor_execute", self._executed)
        sa.event.remove(self.engine, "commit", self._commit)
        sa.event.remove(self.engine, "rollback", self._rollback)


def row_counts(app: Flask) -> dict[str, int]:
    """Every table's row count in one statement (a second, independent look)."""
    with app.app_context(), db.engine.connect() as connection:
        present = set(sa.inspect(connection).get_table_names())
        tables = [t for t in db.metadata.sorted_tables
                  if t.name in present and t.name not in VOLATILE]
        query = sa.union_all(*(sa.select(sa.literal(t.name).label("name"),
                                         sa.func.count().label("n")).select_from(t)
                               for t in tables))
        return dict(connection.execute(query).all())


# --- sessions ------------------------------------------------------------------------------
def new_client(app: Flask, who: str, number: int):
    # Each client its own address: the login throttle counts failures per address.
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.9.{number // 250}.{number % 250}"
    if who != ANONYMOUS:
        page = client.get("/login")
        _, forms = read_page(app, "/login", page.get_data(as_text=True))
        token = next(f.csrf_token for f in forms if f.endpoint == "auth.login")
        response = client.post("/login", data={"email": f"{who}@demo.example",
                                                "password": DEMO_PASSWORD, "csrf_token": token})
        assert response.status_code == 302, f"{who} cannot log in"
    return client


def verdict(client, response) -> str:
    """'rejected' or 'accepted', as a person would read the answer."""
    if 400 <= response.status_code < 500:
        return "rejected"
    if response.status_code == 200 and "html" in response.content_type:
        body = response.get_data(as_text=True)
        if 'class="error"' in body or "field-error" in body or "flash-error" in body:
            return "rejected"
    if response.status_code in (302, 303):
        with client.session_transaction() as session:
            flashes = session.pop("_flashes", [])
        if any(category == "error" for category, _ in flashes):
            return "rejected"
    return "accepted"


class Checker:
    def __init__(self, app: Flask):
        self.app = app
        self.failures: list[str] = []
        self.posts = 0
        self.outcomes: Counter = Counter()
        with app.app_context():
            self.writes = CommittedWrites(db.engine)

    def post(self, client, label: str, url: str, values: dict) -> None:
        self.writes.take()
        before = row_counts(self.app)
        self.posts += 1
        try:
            response = client.post(url, data=to_post(values))
        except Exception:
            raise AssertionError(f"{label}: exception on {shown(values)}\n"
                                 f"{traceback.format_exc(limit=-6)}") from None
        assert response.status_code < 500, f"{label}: {response.status_code} on {shown(values)}"
        outcome = verdict(client, response)
        written = self.writes.take()
        self.outcomes[outcome, bool(written)] += 1
        if outcome == "rejected":
            after = row_counts(self.app)
            counts = [f"{name} {before[name]} → {after[name]}" for name in before
                      if before[name] != after.get(name)]
            assert not written and not counts, (
                f"{label}: rejected ({response.status_code}) but wrote {written} "
                f"(row counts: {counts}) on {shown(values)}")
        location = response.headers.get("Location", "")
        if outcome == "accepted" and location.startswith(("/", "http://localhost/")):
            follow = client.get(location)
            assert follow.status_code < 500, f"{label}: {location} then {follow.status_code}"

    def fuzz(self, label: str, strategy: st.SearchStrategy, run: Callable[[dict], None],
             examples: int = EXAMPLES_PER_FORM) -> None:
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], print_blob=False,
                  suppress_health_check=list(HealthCheck))
        @given(values=strategy)
        def check(values):
            run(values)

        try:
            check()
        except AssertionError as failure:
            self.failures.append(str(failure))
        except Exception as failure:  # an error in the test itself: report, go on
            self.failures.append(f"{label}: {failure!r}")


def discover(app: Flask, clients: dict) -> tuple[dict[str, tuple[str, list[Form]]],
                                               dict[str, list]]:
    """Per POST endpoint: the role that fills it and its distinct forms; the ids seen."""
    found: dict[str, tuple[str, list[Form]]] = {}
    args_seen: dict[str, list] = {}
    for who in ROLE_ORDER:
        seeds = SEEDS[ANONYMOUS] if who == ANONYMOUS else SEEDS["staff"]
        if who == ANONYMOUS:
            seeds = seeds + token_pages(app)
        forms, seen = crawl(app, clients[who], seeds)
        for name, values in seen.items():
            known = args_seen.setdefault(name, [])
            known.extend(v for v in values if v not in known)
        for form in forms:
            if form.endpoint in found and found[form.endpoint][0] != who:
                continue
            role_forms = found.setdefault(form.endpoint, (who, []))[1]
            signatures = {f.signature() for f in role_forms}
            if form.signature() not in signatures and len(role_forms) < 2:
                role_forms.append(form)
    return found, args_seen


def token_pages(app: Flask) -> list[str]:
    """Pages behind mailed links, for a person made for the purpose."""
    from magazine.auth.services import make_reset_token
    from tests.factories import make_user

    with app.app_context():
        person = make_user(email="fuzz-links@example.org")
        pages = [f"/password/reset/{make_reset_token(person)}",
                 f"/invitation/{make_reset_token(person, 'invite')}"]
        db.session.remove()
    return pages


def candidate_urls(app: Flask, rule, args_seen: dict[str, list], tries: int = 8) -> list[str]:
    """URLs of `rule` with ids that belong together (as seen in one link), then mixed."""
    from flask import url_for

    wanted = set(rule.arguments)
    together = [{k: v for k, v in seen.items() if k in wanted}
                for seen in args_seen.get("*", []) if wanted <= seen.keys()]
    for attempt in range(tries):
        values = {}
        for name in rule.arguments:
            seen = args_seen.get(name, [])
            if seen:
                values[name] = seen[attempt % len(seen)]
            elif type(rule._converters[name]).__name__ == "IntegerConverter":
                values[name] = 1
            else:
                values[name] = "not-a-token"
        together.append(values)
    urls = []
    for values in together:
        with app.test_request_context():
            url = url_for(rule.endpoint, **values)
        if url not in urls:
            urls.append(url)
    return urls[:tries]


def post_rules(app: Flask) -> dict[str, object]:
    rules = {}
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and not rule.endpoint.startswith("payment_webhooks."):
            rules.setdefault(rule.endpoint, rule)
    return rules


def allowed_roles(endpoint: str) -> list[str]:
    access = ACCESS.get(endpoint)
    return [who for who in ROLE_ORDER if access is None or who in access.allowed]


@pytest.fixture
def demo_app(app, monkeypatch):
    from magazine.demo import load_demo

    with app.app_context():
        load_demo()
        db.session.commit()
        db.session.remove()
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    return app


def test_generated_input_to_every_form_never_errors_nor_half_writes(demo_app):
    app = demo_app
    clients = {who: new_client(app, who, number) for number, who in enumerate(ROLE_ORDER)}
    found, args_seen = discover(app, clients)
    rules = post_rules(app)
    # A route no crawled page showed a form for: look on the pages above it, for each role
    # that may use it, with ids of real objects.
    blind = {}
    for endpoint in sorted(set(rules) - set(found)):
        urls = candidate_urls(app, rules[endpoint], args_seen)
        for who in allowed_roles(endpoint)[:3]:
            form = next(filter(None, (form_near(app, clients[who], endpoint, url)
                                      for url in urls)), None)
            if form is not None:
                found[endpoint] = (who, [form])
                break
        else:
            blind[endpoint] = urls[0]
    checker = Checker(app)
    order = sorted(rules, key=lambda e: (e in LAST, LAST.index(e) if e in LAST else 0, e))
    try:
        for number, endpoint in enumerate(order, start=20):
            if endpoint in found:
                who, forms = found[endpoint]
                others = candidate_urls(app, rules[endpoint], args_seen)
                for form in forms:
                    fuzz_form(app, checker, endpoint, who, form, number, others)
            else:
                who = allowed_roles(endpoint)[0]
                client = new_client(app, who, number)
                url = blind[endpoint]
                _, home_forms = read_page(app, "/", client.get("/").get_data(as_text=True))
                token = next((f.csrf_token for f in home_forms if f.csrf_token), "")
                strategy = st.fixed_dictionaries(
                    {"csrf_token": st.just(token)},
                    optional={name: HOSTILE for name in GENERIC_NAMES})
                label = f"{endpoint} as {who} (blind: {url})"

                def run(values, client=client, url=url, label=label):
                    checker.post(client, label, url, values)

                checker.fuzz(label, strategy, run, examples=3)
    finally:
        checker.writes.close()
    print(f"\n{checker.posts} posts to {len(rules)} routes; by a form: {len(found)}; "
          f"blind: {sorted(blind)}; outcomes (verdict, wrote): {dict(checker.outcomes)}")
    assert checker.failures == [], "\n\n".join(checker.failures)


def fuzz_form(app: Flask, checker: Checker, endpoint: str, who: str, form: Form,
              number: int, others: list[str]) -> None:
    client = new_client(app, who, number)
    # The page again in this session: its own CSRF token and current values.
    page = client.get(form.page)
    _, fresh = read_page(app, form.page, page.get_data(as_text=True))
    same = [f for f in fresh if f.signature() == form.signature()] or \
        [f for f in fresh if f.endpoint == endpoint]
    if not same:
        # An earlier accepted post moved the object on (a pitch decided, an order paid):
        # the same form for another object.
        other = next(filter(None, (form_near(app, client, endpoint, url) for url in others)),
                     None)
        same = [other] if other else []
    if not same:
        print(f"{endpoint}: no form on {form.page} any more for {who}")
        return
    current = same[0]
    label = f"{endpoint} as {who} ({current.action} from {current.page})"

    def run(values):
        checker.post(client, label, current.action, values)

    checker.fuzz(label, form_strategy(current), run)
