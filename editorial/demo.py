"""Editorial demo data: a realistic Flemish childcare magazine in mid-stream.

Rubrics and decline reasons; two published issues, one in production with a flatplan half
full, planned issues for the next year (subscriptions count in them); pitches in every state
and articles in every stage, with revisions, readers and reviews. Dates are relative to
today, so the demo always looks current.

The history is written as it would have been recorded (audit events: the items'
timelines), without mailing anyone. Loading twice changes nothing: each part is skipped
when it exists already.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import sqlalchemy as sa

from editorial import services
from editorial.models import (
    Article,
    ArticleImage,
    ArticleState,
    Comment,
    Consent,
    DeclineReason,
    FlatplanSlot,
    Issue,
    IssueState,
    Pitch,
    PitchState,
    PitchVote,
    Recommendation,
    Review,
    ReviewRound,
    Revision,
    RevisionKind,
    Rubric,
    Vote,
)
from editorial.text import word_count
from magazine.audit import record
from magazine.auth.services import find_user_by_email
from magazine.clock import now_utc
from magazine.db import db
from magazine.models import User
from magazine.roles import Role

RUBRICS = [
    ("Uit de praktijk", "Begeleiders en onthaalouders vertellen wat werkt in hun groep."),
    ("Onderzoek leesbaar", "Wat onderzoek zegt, geschreven voor wie het werk doet."),
    ("Tools", "Instrumenten, stappenplannen en tips om morgen mee aan de slag te gaan."),
    ("In gesprek", "Een interview met iemand uit de sector."),
    ("Beleid en sector", "Wat verandert er in regelgeving en financiering, en wat betekent het?"),
    ("Column", "Een persoonlijke kijk, één pagina."),
    ("Boekenplank", "Nieuwe boeken en prentenboeken, besproken."),
]

DECLINE_REASONS = [
    ("Recent behandeld", "We schreven onlangs nog over dit onderwerp. We willen onze lezers "
     "graag variatie bieden, en laten het thema daarom even rusten."),
    ("Past niet bij ons publiek", "Het magazine is er voor wie dagelijks met jonge kinderen "
     "en hun gezinnen werkt. Je voorstel richt zich op een ander publiek."),
    ("Te commercieel", "Een artikel in het magazine mag geen product of dienst aanprijzen. "
     "Dat maakt ons onafhankelijk, en daar houden we aan vast."),
    ("Nog te vaag", "We zien er iets in, maar het voorstel is nog te algemeen om een auteur "
     "op weg te zetten. Maak het gerust concreter en stuur het opnieuw."),
]

PARAGRAPHS = [
    "In onze leefgroep van veertien peuters merkten we dat het wennen vaak een race tegen "
    "de klok was. Ouders moesten snel weer naar het werk, en wij wilden graag tijd maken "
    "voor elk kind.",
    "We begonnen met een eenvoudig gesprek op de eerste dag: hoe slaapt je kind, wat troost "
    "het, welke woorden gebruiken jullie thuis? Die antwoorden hangen nu bij het bedje, in "
    "de taal van thuis én in het Nederlands.",
    "Buiten spelen doen we elke dag, ook als het regent. Met regenpakken aan de kapstok en "
    "laarzen per kind is dat geen gedoe meer. De kinderen vragen er zelf om.",
    "Wat ons het meest verraste: ouders die eerst wat afstandelijk leken, bleven plots "
    "langer hangen bij het afhalen. Ze vertelden over thuis, en wij over hun kind.",
    "Het Huis van het Kind in onze gemeente hielp ons om contact te leggen met gezinnen die "
    "de weg naar de kinderopvang nog niet vonden. Samen organiseerden we een open "
    "speelmoment op zaterdag.",
    "Een onthaalouder werkt vaak alleen. Een lerend netwerk met collega's uit de buurt "
    "maakt dat je vragen kan stellen, en dat je hoort hoe anderen het aanpakken.",
]


def _text(title: str, paragraphs: int) -> str:
    parts = [f"# {title}", ""]
    for n in range(paragraphs):
        parts.append(PARAGRAPHS[n % len(PARAGRAPHS)])
        parts.append("")
        if n == 2:
            parts += ["## Wat we leerden", "", "- Neem tijd voor het eerste gesprek.",
                      "- Vraag naar de woorden van thuis.", "- Ga elke dag naar buiten.", ""]
    return "\n".join(parts)


def _walk(obj_type: str, obj, path: list, actor: User | None, notes: dict | None = None,
          ) -> None:
    """Record the history of `obj` along `path` (states in order) and leave it in the last.
    Demo history only: real moves go through the move services, which also mail."""
    notes = notes or {}
    for source, target in itertools.pairwise(path):
        record(f"{obj_type}.moved", obj_type, obj.id, actor=actor,
               **{"from": source.value, "to": target.value, "note": notes.get(target, "")})
    obj.state = path[-1]


def load_editorial_demo() -> list[str]:
    """Load the editorial demo; returns what it created (empty when all was there)."""
    created: list[str] = []
    today = services.today_local()
    people = {role: find_user_by_email(f"{role.value}@demo.example") for role in Role}
    chief = people[Role.EDITOR_IN_CHIEF]
    if chief is None:
        return created
    # The demo author writes most; board members write too (as they do in real life).
    authors = [people[Role.AUTHOR], people[Role.BOARD_MEMBER], people[Role.AUTHOR],
               people[Role.EDITOR_IN_CHIEF]]

    if db.session.scalar(sa.select(sa.func.count()).select_from(Rubric)) == 0:
        for position, (name, description) in enumerate(RUBRICS):
            db.session.add(Rubric(name=name, description=description, position=position))
        for title, text in DECLINE_REASONS:
            db.session.add(DeclineReason(title=title, text=text))
        db.session.flush()
        created.append("rubrics")
    rubrics = {r.name: r for r in db.session.scalars(sa.select(Rubric))}

    if db.session.scalar(sa.select(sa.func.count()).select_from(Issue)) == 0:
        _issues(today, chief)
        created.append("issues")
    issues = list(db.session.scalars(sa.select(Issue).order_by(Issue.print_date)))

    if db.session.scalar(sa.select(sa.func.count()).select_from(Pitch)) == 0:
        _pitches(today, people, authors, rubrics, issues)
        created.append("pitches")
    if db.session.scalar(sa.select(sa.func.count()).select_from(Article)) == 0:
        _articles(today, people, authors, rubrics, issues)
        created.append("articles")
    db.session.commit()
    return created


# ---------------------------------------------------------------- issues

ISSUE_PLAN = [
    # (days from today to the print date, theme, special, state)
    (-130, "Wennen: de eerste dagen", False, IssueState.DISPATCHED),
    (-40, "Buitenspelen in alle seizoenen", False, IssueState.PUBLISHED),
    (21, "Taal in de kinderopvang", False, IssueState.IN_LAYOUT),
    (95, "Ouderbetrokkenheid", False, IssueState.PLANNED),
    (165, "Slaap en rust", False, IssueState.PLANNED),
    (215, "Huizen van het Kind", True, IssueState.PLANNED),
    (260, "Inclusie: elk kind welkom", False, IssueState.PLANNED),
    (330, "Onthaalouders", False, IssueState.PLANNED),
    (395, "Spelen en ontdekken", False, IssueState.PLANNED),
]


def _issues(today: date, chief: User) -> None:
    numbers: dict[int, int] = {}
    for days, theme, special, state in ISSUE_PLAN:
        print_date = today + timedelta(days=days)
        volume = print_date.year - 2023
        numbers[volume] = numbers.get(volume, 0) + 1
        issue = Issue(volume=volume, number=numbers[volume], theme=theme, is_special=special,
                      print_date=print_date, page_budget=40 if special else 32,
                      **services.derive_deadlines(print_date))
        db.session.add(issue)
        db.session.flush()
        record("issue.created", "issue", issue.id, actor=chief, code=issue.code,
               print_date=print_date.isoformat())
        order = list(IssueState)
        _walk("issue", issue, order[: order.index(state) + 1], chief)


# ---------------------------------------------------------------- pitches

PITCHES = [
    # (title, summary, rubric, state, from a reader?)
    ("Buitenspelen met baby's", "Ook de allerkleinsten kunnen elke dag naar buiten. Hoe "
     "richt je een veilige buitenruimte in voor baby's, en wat zeggen ouders ervan?",
     "Uit de praktijk", PitchState.SUBMITTED, False),
    ("Meertalige prentenboeken in de leefgroep", "Welke boeken werken als kinderen thuis "
     "een andere taal spreken? Een begeleider uit Antwerpen toont haar boekenkast.",
     "Boekenplank", PitchState.ON_AGENDA, True),
    ("Slapen op eigen ritme", "Een kinderdagverblijf schafte de vaste middagdut af. Wat "
     "veranderde er voor kinderen, ouders en begeleiders?", "Uit de praktijk",
     PitchState.ON_AGENDA, False),
    ("Een nieuwe app voor ouderberichten", "Onze app maakt communicatie met ouders "
     "eenvoudig. Graag stellen we hem voor aan jullie lezers.", "Tools",
     PitchState.DECLINED, True),
    ("Kinderopvang en armoede: wat het decreet verandert", "Een overzicht van de nieuwe "
     "regels rond inkomenstarief en voorrang, met de vragen die begeleiders krijgen.",
     "Beleid en sector", PitchState.DEFERRED, False),
    ("Zorgen voor de zorgenden", "Over werkdruk en veerkracht bij begeleiders.",
     "In gesprek", PitchState.NEEDS_INFO, True),
    ("Onthaalouders in een lerend netwerk", "Vier onthaalouders uit de Kempen leren samen. "
     "Wat levert het hen op, en hoe begin je eraan?", "Uit de praktijk",
     PitchState.WITHDRAWN, False),
]


def _pitches(today: date, people: dict, authors: list[User], rubrics: dict,
             issues: list[Issue]) -> None:
    chief, board = people[Role.EDITOR_IN_CHIEF], people[Role.BOARD_MEMBER]
    reason = db.session.scalar(sa.select(DeclineReason).where(
        DeclineReason.title == "Te commercieel"))
    reader_names = iter([("Sara De Smet", "sara.desmet@demo.example", "Kinderdagverblijf "
                          "De Pluim, Gent"),
                         ("Tom Verhoeven", "tom@demo.example", "Softwarebedrijf"),
                         ("Lotte Jacobs", "lotte.jacobs@demo.example", "Buitenschoolse "
                          "opvang Het Speelnest")])
    for n, (title, summary, rubric, state, public) in enumerate(PITCHES):
        if public:
            name, email, organisation = next(reader_names)
            proposer = None
        else:
            proposer = [board, authors[0], authors[1]][n % 3]
            name, email, organisation = proposer.name, proposer.email, ""
        pitch = Pitch(title=title, summary=summary, rubric=rubrics[rubric], proposer=proposer,
                      proposer_name=name, proposer_email=email,
                      proposer_organisation=organisation, proposed_author=name,
                      estimated_words=900 + 100 * n, is_public=public,
                      confirmed_at=now_utc() - timedelta(days=30 - 4 * n),
                      created_at=now_utc() - timedelta(days=30 - 4 * n, hours=2),
                      target_issue=issues[3] if n % 2 else None)
        db.session.add(pitch)
        db.session.flush()
        record("pitch.received" if public else "pitch.submitted", "pitch", pitch.id,
               actor=proposer, title=title)
        path = {
            PitchState.SUBMITTED: [PitchState.SUBMITTED],
            PitchState.ON_AGENDA: [PitchState.SUBMITTED, PitchState.ON_AGENDA],
            PitchState.DECLINED: [PitchState.SUBMITTED, PitchState.ON_AGENDA,
                                  PitchState.DECLINED],
            PitchState.DEFERRED: [PitchState.SUBMITTED, PitchState.ON_AGENDA,
                                  PitchState.DEFERRED],
            PitchState.NEEDS_INFO: [PitchState.SUBMITTED, PitchState.ON_AGENDA,
                                    PitchState.NEEDS_INFO],
            PitchState.WITHDRAWN: [PitchState.SUBMITTED, PitchState.WITHDRAWN],
        }[state]
        notes = {
            PitchState.DECLINED: reason.text if reason else "",
            PitchState.DEFERRED: "We wachten tot de nieuwe regels definitief zijn.",
            PitchState.NEEDS_INFO: "Wie wil je interviewen, en vanuit welke organisatie?",
        }
        _walk("pitch", pitch, path, chief, notes)
        if state in notes:
            pitch.decision_note = notes[state]
        if state == PitchState.DEFERRED:
            pitch.deferred_until = today + timedelta(days=60)
        if state in (PitchState.ON_AGENDA, PitchState.DEFERRED):
            db.session.add(PitchVote(pitch=pitch, voter=board, vote=Vote.FOR,
                                     reason="Sterk praktijkverhaal, past bij het thema."))
            db.session.add(PitchVote(pitch=pitch, voter=chief, vote=Vote.ABSTAIN,
                                     reason="Eerst het volgende nummer rond."))
            db.session.add(Comment(pitch=pitch, author=board, author_name=board.name,
                                   body="Mooi voorstel. @katrien.wouters kunnen we dit koppelen "
                                        "aan het themanummer?"))


# ---------------------------------------------------------------- articles

A = ArticleState
ARTICLE_PLAN = [
    # (title, rubric, state, paragraphs, placed in issue index or None)
    ("Wennen in kleine stapjes", "Uit de praktijk", A.PUBLISHED, 8, 0),
    ("Wat onderzoek zegt over wennen", "Onderzoek leesbaar", A.PUBLISHED, 9, 0),
    ("Regenpakken aan de kapstok", "Uit de praktijk", A.PUBLISHED, 7, 1),
    ("Buiten is de beste speelruimte", "In gesprek", A.PUBLISHED, 8, 1),
    ("Praten met peuters die twee talen leren", "Onderzoek leesbaar", A.PRESS_READY, 9, 2),
    ("Het taalbad van elke dag", "Uit de praktijk", A.PROOF, 8, 2),
    ("Tien vragen over meertaligheid", "Tools", A.IN_LAYOUT, 5, 2),
    ("Voorlezen aan baby's", "Column", A.READY_FOR_LAYOUT, 3, 2),
    ("De taal van thuis in de crèche", "In gesprek", A.AUTHOR_APPROVAL, 8, None),
    ("Ouders als partners: een stappenplan", "Tools", A.COPYEDITING, 6, 3),
    ("Ouderavonden die werken", "Uit de praktijk", A.ACCEPTED, 7, 3),
    ("Betrokken vaders", "Onderzoek leesbaar", A.IN_REVIEW, 8, 3),
    ("Afhalen als ontmoetingsmoment", "Uit de praktijk", A.REVISIONS_REQUESTED, 6, None),
    ("Rustmomenten voor grote en kleine kinderen", "Uit de praktijk", A.DRAFT_SUBMITTED, 7,
     None),
    ("Slaapritmes van thuis respecteren", "Onderzoek leesbaar", A.COMMISSIONED, 0, None),
    ("Het Huis van het Kind als netwerk", "Beleid en sector", A.COMMISSIONED, 0, None),
    ("Een kijkwijzer voor de buitenruimte", "Tools", A.DEFERRED, 5, None),
    ("Speelgoed dat niets kost", "Column", A.DECLINED, 3, None),
    ("Inclusie begint bij de inschrijving", "Beleid en sector", A.WITHDRAWN, 2, None),
]

PATHS = {
    A.COMMISSIONED: [A.COMMISSIONED],
    A.DRAFT_SUBMITTED: [A.COMMISSIONED, A.DRAFT_SUBMITTED],
    A.IN_REVIEW: [A.COMMISSIONED, A.DRAFT_SUBMITTED, A.IN_REVIEW],
    A.REVISIONS_REQUESTED: [A.COMMISSIONED, A.DRAFT_SUBMITTED, A.IN_REVIEW,
                            A.REVISIONS_REQUESTED],
    A.DECLINED: [A.COMMISSIONED, A.DRAFT_SUBMITTED, A.DECLINED],
    A.WITHDRAWN: [A.COMMISSIONED, A.WITHDRAWN],
}
REVIEWED = [A.COMMISSIONED, A.DRAFT_SUBMITTED, A.IN_REVIEW, A.ACCEPTED]
LINE = [A.COPYEDITING, A.AUTHOR_APPROVAL, A.READY_FOR_LAYOUT, A.IN_LAYOUT, A.PROOF,
        A.PRESS_READY, A.PUBLISHED]


def _path(state: ArticleState) -> list[ArticleState]:
    if state in PATHS:
        return PATHS[state]
    if state == A.DEFERRED:
        return [*REVIEWED, A.COPYEDITING, A.DEFERRED]
    if state == A.ACCEPTED:
        return REVIEWED
    return REVIEWED + LINE[: LINE.index(state) + 1]


def _articles(today: date, people: dict, authors: list[User], rubrics: dict,
              issues: list[Issue]) -> None:
    chief, board = people[Role.EDITOR_IN_CHIEF], people[Role.BOARD_MEMBER]
    copy_editor, reviewer = people[Role.COPY_EDITOR], people[Role.REVIEWER]
    for n, (title, rubric, state, paragraphs, issue_index) in enumerate(ARTICLE_PLAN):
        issue = issues[issue_index] if issue_index is not None else None
        author = authors[n % len(authors)]
        deadline = (issue.copy_deadline if issue else today + timedelta(days=10 - 3 * (n % 5)))
        article = Article(title=title, rubric=rubrics[rubric], author=author, issue=issue,
                          target_words=1000 if paragraphs > 4 else 450, deadline=deadline,
                          summary=f"{title}: een artikel voor begeleiders en onthaalouders.")
        db.session.add(article)
        db.session.flush()
        if n % 3 == 0:
            # Most articles began as a pitch the chief accepted.
            pitch = Pitch(title=title, summary=article.summary, rubric=article.rubric,
                          proposer=author, proposer_name=author.name,
                          proposer_email=author.email, proposed_author=author.name,
                          estimated_words=article.target_words,
                          confirmed_at=now_utc() - timedelta(days=90))
            db.session.add(pitch)
            db.session.flush()
            record("pitch.submitted", "pitch", pitch.id, actor=author, title=title)
            _walk("pitch", pitch, [PitchState.SUBMITTED, PitchState.ON_AGENDA,
                                   PitchState.ACCEPTED], chief)
            article.pitch = pitch
        record("article.commissioned", "article", article.id, actor=chief,
               author=author.id, deadline=deadline.isoformat())
        if paragraphs:
            body = _text(title, paragraphs)
            db.session.add(Revision(article=article, number=1, body=body,
                                    word_count=word_count(body), saved_by=author))
            if state in LINE or state in (A.ACCEPTED, A.DEFERRED):
                edited = body.replace("Buiten spelen", "Buitenspelen") + \
                    "\n*Eindredactie: Leen Maes*\n"
                if state not in (A.ACCEPTED,):
                    db.session.add(Revision(article=article, number=2, body=edited,
                                            word_count=word_count(edited),
                                            kind=RevisionKind.COPYEDIT, saved_by=copy_editor,
                                            note="Eindredactie"))
        db.session.flush()
        _walk("article", article, _path(state), chief)
        if state in (A.IN_REVIEW, A.REVISIONS_REQUESTED) or state in LINE or state == A.ACCEPTED:
            _review_round(article, today, board, reviewer, state)
        if issue is not None and issue.state in (IssueState.IN_LAYOUT, IssueState.PUBLISHED,
                                                 IssueState.DISPATCHED):
            # Pages as the chief set them after the first layout sketch.
            db.session.add(FlatplanSlot(issue=issue, position=len(issue.slots), article=article,
                                        rubric=article.rubric, pages=[4, 4, 3, 2][n % 4],
                                        pages_set_by_hand=True))
        if state in (A.PROOF, A.PRESS_READY, A.PUBLISHED):
            _image(article, cleared=state != A.PROOF)
    # The issue in production: cover and editorial first, half the budget still open.
    production = next(i for i in issues if i.state == IssueState.IN_LAYOUT)
    slots = list(production.slots)
    cover = FlatplanSlot(issue=production, label="Cover en inhoud", pages=2,
                         pages_set_by_hand=True)
    editorial = FlatplanSlot(issue=production, label="Editoriaal", pages=1,
                             rubric=None, pages_set_by_hand=True)
    for position, slot in enumerate([cover, editorial, *slots]):
        slot.position = position
        db.session.add(slot)
    in_review = db.session.scalar(sa.select(Article).where(Article.state == A.IN_REVIEW))
    db.session.add(Comment(article=in_review, author=chief, author_name=chief.name,
                           body="@pieter.janssens: graag je lezing tegen vrijdag."))


def _review_round(article: Article, today: date, board: User, reviewer: User,
                  state: ArticleState) -> None:
    round_ = ReviewRound(article=article, number=1, revision=article.revisions[0]
                         if article.revisions else None)
    db.session.add(round_)
    done = state != A.IN_REVIEW
    db.session.add(Review(
        round=round_, reader=board, reader_name=board.name, reader_email=board.email,
        due_date=today + timedelta(days=-5 if done else 4),
        recommendation=Recommendation.MINOR, submitted_at=now_utc() - timedelta(days=6),
        comments_for_author="Heel herkenbaar. Maak de tussentitels concreter en geef één "
                            "voorbeeld uit een groep met baby's.",
        confidential_note="Sterk stuk; de inleiding mag korter."))
    db.session.add(Review(
        round=round_, reader=reviewer, reader_name=reviewer.name, reader_email=reviewer.email,
        due_date=today + timedelta(days=-5 if done else 2),
        recommendation=(Recommendation.MAJOR if state == A.REVISIONS_REQUESTED
                        else Recommendation.ACCEPT) if done else None,
        submitted_at=now_utc() - timedelta(days=5) if done else None,
        comments_for_author="Goed onderbouwd. De bronnen mogen onderaan." if done else "",
        confidential_note=""))
    db.session.add(Review(
        round=round_, reader=None, reader_name="Hilde Claeys (extern)",
        reader_email="hilde.claeys@demo.example", due_date=today + timedelta(days=7),
        recommendation=Recommendation.ACCEPT if done else None,
        submitted_at=now_utc() - timedelta(days=4) if done else None,
        comments_for_author="Prettig om te lezen." if done else ""))
    if done:
        round_.closed_at = now_utc() - timedelta(days=3)


def _picture() -> bytes:
    """A real picture (a soft green field, 1200×800) made with Pillow."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1200, 800), (122, 170, 110)).save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def _image(article: Article, *, cleared: bool) -> None:
    db.session.add(ArticleImage(
        article=article, filename="buitenspelen.jpg", content_type="image/jpeg", width=1200,
        height=800, data=_picture(),
        caption="Kinderen spelen in de regen in de tuin van de crèche.",
        credit="Foto: Lies Goossens" if cleared else "",
        consent=Consent.ON_FILE if cleared else Consent.MISSING))
