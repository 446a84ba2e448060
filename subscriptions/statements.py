"""Bank statements as Belgian banks export them: ISO 20022 camt.053 (XML) and CODA (the
Febelfin "coded statement of account", fixed-width lines of 128 characters). Both become
one list of `StatementEntry`: the incoming and outgoing movements, each with the bank's own
reference (how a second import of the same movement is recognised), the amount in cents and
the structured communication that tells which order (invoice) a transfer pays.

The format is told from the content, never from the file name.

camt.053 is read with pycamt (MIT, maintained; lxml with entities and network off), after a
defusedxml pass that refuses DTDs and entities outright: a statement never needs them. pycamt
does not read the entry reference (NtryRef) nor number the entries, so those two come from
the same lxml tree.

CODA is read here: the only parsers on PyPI are pycoda (GPL: cannot ship in this app) and
codapy (MIT, but unreleased since 2024, importing `six` without declaring it and pulling
factory-boy and Faker in as run-time dependencies, and it maps field positions only). The
positions below are those of the Febelfin CODA 2.6 standard (records 0, 1, 21, 22, 23, 31,
32, 33, 4, 8, 9); positions in comments are 1-based, as in the standard.

A file whose frame cannot be read raises `StatementError`. A readable file with bad entries
raises `StatementProblems`, listing every bad entry with its entry (camt) or line (CODA)
number, so the coordinator can fix or report them; nothing of such a file is imported.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException
from flask_babel import lazy_gettext as _l
from stdnum.be import ogm_vcs

CAMT053 = "camt053"
CODA = "coda"


class StatementError(ValueError):
    """The file is not a bank statement we can read (unknown or broken format)."""

    def __init__(self, message: str, *, format: str = "") -> None:
        super().__init__(message)
        self.format = format


@dataclass(frozen=True)
class Problem:
    where: str   # "entry 3" (camt) or "line 12" (CODA), for logs; pages use kind + number
    kind: str    # "entry" or "line"
    number: int
    message: object  # a lazily translated text: shown in the reader's language


MAX_PROBLEMS = 200  # enough to see what is wrong; a page of a million rows helps nobody


class StatementProblems(ValueError):
    """The file was read, but some entries are wrong: nothing may be imported. `problems`
    holds the first MAX_PROBLEMS of them, `count` how many there are."""

    def __init__(self, format: str, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} bad entries")
        self.format = format
        self.count = len(problems)
        self.problems = problems[:MAX_PROBLEMS]


@dataclass(frozen=True)
class StatementEntry:
    reference: str          # the bank's own id of the movement (unique per account)
    amount_cents: int       # positive; `credit` tells the direction
    credit: bool
    booked_on: date | None
    communication: str      # 12 digits of a valid structured communication, or ""
    text: str               # free text, for the coordinator to read
    payer: str
    payer_account: str = ""
    position: int = 0       # entry number (camt) or line number (CODA), 1-based


@dataclass
class Statement:
    format: str
    account: str = ""       # IBAN (or Belgian account number) of our account
    statement_ref: str = ""
    entries: list[StatementEntry] = field(default_factory=list)
    skipped: int = 0        # movements left out on purpose (pending, other currency)


# +++123/4567/89012+++ (or ***…***, or the bare 12 digits), never a piece of a longer number.
_WRITTEN = re.compile(r"(?<!\d)(\d{3})\s*/?\s*(\d{4})\s*/?\s*(\d{5})(?!\d)")


def find_communication(*texts: str | None) -> str:
    """The first valid structured communication in the texts (12 digits), or ""."""
    for text in texts:
        for match in _WRITTEN.finditer(text or ""):
            digits = "".join(match.groups())
            if ogm_vcs.is_valid(digits):
                return digits
    return ""


def detect_format(data: bytes) -> str:
    """CAMT053 or CODA, from the first bytes of the content; StatementError otherwise."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:200]
    if head.startswith(b"<"):
        return CAMT053
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if (len(first_line) >= 16 and first_line[:5] == b"00000" and first_line[5:11].isdigit()
            and first_line[14:16] == b"05"):
        return CODA
    raise StatementError("neither camt.053 XML nor a CODA file")


def parse_statement(data: bytes) -> Statement:
    """Read a camt.053 or CODA file (told apart by its content)."""
    kind = detect_format(data)
    return parse_camt053(data) if kind == CAMT053 else parse_coda(data)


# Far above any transfer to a magazine, and within a 32-bit integer column.
MAX_CENTS = 10**9


def _bounded(cents: int) -> int:
    if cents >= MAX_CENTS:
        raise ValueError(_l("an amount too large for a subscription: %(cents)d cents",
                            cents=cents))
    return cents


def _cents(text: str) -> int:
    """Decimal text (a dot before the decimals) to cents; ValueError when it is none."""
    try:
        value = Decimal(text.strip()[:40])
        if not value.is_finite() or abs(value) >= MAX_CENTS:
            raise InvalidOperation
        cents = int((value * 100).to_integral_exact())
    except (InvalidOperation, ValueError, ArithmeticError) as error:
        raise ValueError(_l("not an amount in euro: %(text)s", text=repr(text[:40]))) from error
    return _bounded(cents)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: str | None, length: int) -> str:
    """Printable text of at most `length` characters (a NUL cannot go into PostgreSQL)."""
    return " ".join(_CONTROL.sub(" ", text or "").split())[:length]


# ---------------------------------------------------------------- camt.053

def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _child(element, name: str):
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _child_text(element, *names: str) -> str:
    for name in names:
        if element is None:
            return ""
        element = _child(element, name)
    return (element.text or "").strip() if element is not None else ""


def parse_camt053(data: bytes) -> Statement:
    """Every entry of every statement in a camt.053 file. Pending entries (Sts other than
    BOOK) and other currencies than the euro are counted as skipped."""
    from lxml import etree
    from pycamt.parser import Camt053ParseError, Camt053Parser

    try:
        # Refuse DTDs and entities before lxml sees the file (billion laughs, XXE).
        root = SafeElementTree.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, SafeElementTree.ParseError, ValueError) as error:
        raise StatementError(_l("not well-formed XML: %(error)s", error=str(error)),
                             format=CAMT053) from error
    if _local(root.tag) != "Document" or "camt.053" not in str(root.tag):
        raise StatementError(_l("not an ISO 20022 camt.053 document"), format=CAMT053)
    try:
        parser = Camt053Parser(data)
        statements = parser._find_statements_or_reports()
    except (Camt053ParseError, etree.LxmlError, ValueError) as error:
        raise StatementError(_l("no statement (BkToCstmrStmt/Stmt) in the file"),
                             format=CAMT053) from error
    info = parser.get_statement_info()
    result = Statement(format=CAMT053,
                       account=_clean(info[0].get("IBAN") if info else "", 40),
                       statement_ref=_clean(_child_text(statements[0], "Id"), 60))
    problems: list[Problem] = []
    number = 0
    for statement in statements:
        for entry in statement.findall(".//Ntry", parser.namespaces):
            number += 1
            try:
                # pycamt: one dict per transaction of the entry (a batch has several).
                transactions = parser._extract_transaction(entry, statement)
                result.entries.extend(_camt_entries(entry, transactions, number, result))
            except ValueError as error:
                problems.append(Problem(f"entry {number}", "entry", number,
                                        error.args[0] if error.args else str(error)))
    if problems:
        raise StatementProblems(CAMT053, problems)
    return result


def _camt_date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError as error:
        raise ValueError(_l("not a date: %(text)s", text=repr(text))) from error


def _camt_entries(entry, transactions: list[dict], number: int,
                  result: Statement) -> list[StatementEntry]:
    status = (transactions[0].get("Status") or "BOOK") if transactions else "BOOK"
    if status != "BOOK":
        result.skipped += 1
        return []
    entry_ref = _child_text(entry, "AcctSvcrRef") or _child_text(entry, "NtryRef")
    entries = []
    for index, tx in enumerate(transactions):
        direction = tx.get("CreditDebitIndicator")
        if direction not in ("CRDT", "DBIT"):
            raise ValueError(_l("credit or debit (CdtDbtInd) missing or wrong: %(value)s",
                                 value=repr(direction)))
        if tx.get("Amount") is None:
            raise ValueError(_l("no amount (Amt)"))
        amount = _cents(tx["Amount"])
        if amount <= 0:
            raise ValueError(_l("the amount must be above zero"))
        if (tx.get("Currency") or "EUR") != "EUR":
            result.skipped += 1
            continue
        booked_on = _camt_date(tx.get("BookingDate")) or _camt_date(tx.get("ValueDate"))
        structured = tx.get("RemittanceInformation") or ""
        free = tx.get("RemittanceInformationFull") or ""
        extra = tx.get("AdditionalEntryInformation") or ""
        payer = tx.get("DebtorName") or ""
        reference = entry_ref or (tx.get("TransactionID") or "")
        if not reference:
            # No id from the bank: the same entry in a later import must still match.
            fingerprint = "|".join([tx.get("BookingDate") or "", tx["Amount"], direction,
                                    structured, free, payer, tx.get("EndToEndId") or ""])
            reference = "sha1:" + hashlib.sha1(
                fingerprint.encode(), usedforsecurity=False).hexdigest()
        if len(transactions) > 1:
            reference = f"{reference}/{index + 1}"
        entries.append(StatementEntry(
            reference=_clean(reference, 120), amount_cents=amount,
            credit=direction == "CRDT", booked_on=booked_on,
            communication=find_communication(structured, free, extra),
            text=_clean(" ".join(t for t in (free, extra) if t), 300),
            payer=_clean(payer, 200), payer_account=_clean(tx.get("DebtorIBAN"), 34),
            position=number,
        ))
    return entries


# ---------------------------------------------------------------- CODA

CODA_LINE = 128


def _coda_date(text: str, *, optional: bool = False) -> date | None:
    if optional and text.strip("0 ") == "":
        return None
    try:
        return datetime.strptime(text, "%d%m%y").date()
    except ValueError as error:
        raise ValueError(_l("not a date (DDMMYY): %(text)s", text=repr(text))) from error


def _coda_amount(text: str) -> int:
    """15 digits, the last three decimals (Febelfin: 12 + 3)."""
    if not text.isdigit():
        raise ValueError(_l("not an amount in euro: %(text)s", text=repr(text)))
    if text[-1] != "0":
        raise ValueError(_l("an amount below one cent: %(text)s", text=repr(text)))
    return _bounded(int(text) // 10)


def _coda_account(line: str) -> str:
    """Our account from record 1 (positions 6-42, laid out by the structure in position 2)."""
    structure = line[1]
    if structure == "2":      # Belgian IBAN
        return line[5:21].strip()
    if structure == "0":      # Belgian account number
        return line[5:17].strip()
    return line[5:39].strip()  # 1: foreign account, 3: foreign IBAN


@dataclass
class _Movement:
    line_no: int
    sequence: str
    detail: str
    bank_reference: str
    credit: bool
    amount_cents: int
    value_date: date | None
    booked_on: date | None
    structured: str
    free: list[str]
    statement_no: str
    globalised: bool
    payer: str = ""
    payer_account: str = ""


def parse_coda(data: bytes) -> Statement:
    """Every movement (record 2.1 with its 2.2 and 2.3) of a CODA 2 file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # CODA is plain 8-bit text; most banks send Latin-1
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise StatementError(_l("an empty file"), format=CODA)
    result = Statement(format=CODA)
    problems: list[Problem] = []
    movements: list[_Movement] = []
    current: _Movement | None = None
    statement_no = ""
    seen = {"0": 0, "1": 0, "8": 0, "9": 0}
    new_balance_year = ""
    broken_sequence = ""

    def problem(line_no: int, message: object) -> None:
        problems.append(Problem(f"line {line_no}", "line", line_no, message))

    for line_no, raw in enumerate(lines, start=1):
        if len(raw) > CODA_LINE:
            problem(line_no, _l("longer than %(max)d characters (%(length)d)", max=CODA_LINE,
                                 length=len(raw)))
            continue
        line = raw.ljust(CODA_LINE)  # some banks strip the trailing blanks
        kind = line[0]
        try:
            if kind == "0":
                seen["0"] += 1
                if line[14:16] != "05":
                    raise ValueError(_l("not a CODA header (application code 05)"))
                if line[127] != "2":
                    raise ValueError(_l("CODA version %(version)s: only version 2 is read",
                                         version=repr(line[127])))
            elif kind == "1":
                seen["1"] += 1
                if line[1] not in "0123":
                    raise ValueError(_l("unknown account structure %(value)s", value=repr(line[1])))
                result.account = result.account or _clean(_coda_account(line), 40)
                statement_no = line[2:5]
                _coda_amount(line[43:58])
                _coda_date(line[58:64])
            elif kind == "2":
                if line[1] in "23" and line[2:6] == broken_sequence:
                    continue  # the rest of a movement already listed as wrong
                broken_sequence = line[2:6] if line[1] == "1" else broken_sequence
                current = _coda_movement_part(line, line_no, current, movements, statement_no)
                broken_sequence = ""
            elif kind == "3":
                if line[1] not in "123":
                    raise ValueError(_l("unknown record type %(type)s", type=repr(line[:2])))
            elif kind == "4":
                pass  # a free message from the bank
            elif kind == "8":
                seen["8"] += 1
                _coda_amount(line[42:57])
                new_balance_year = str(_coda_date(line[57:63]).year)
            elif kind == "9":
                seen["9"] += 1
                if not line[16:22].isdigit():
                    raise ValueError(_l("the closing record has no record count"))
            else:
                raise ValueError(_l("unknown record type %(type)s", type=repr(kind)))
        except ValueError as error:
            problem(line_no, error.args[0] if error.args else str(error))
    if seen["0"] == 0 or not lines[0].startswith("0"):
        raise StatementError(_l("a CODA file starts with record 0"), format=CODA)
    if seen["9"] == 0 or not lines[-1].startswith("9"):
        raise StatementError(_l("the file is incomplete: it does not end with record 9"),
                             format=CODA)
    if seen["1"] == 0 or seen["8"] == 0:
        raise StatementError(_l("no opening (1) or closing (8) balance record"), format=CODA)
    if problems:
        raise StatementProblems(CODA, problems)
    result.statement_ref = f"{new_balance_year}/{statement_no}"
    # A globalised movement (detail 0000) is followed by its details (same sequence):
    # the details are the transfers; the total is left out.
    detailed = {m.sequence for m in movements if m.detail != "0000"}
    for movement in movements:
        if movement.detail == "0000" and movement.sequence in detailed:
            continue
        if movement.bank_reference:
            reference = f"{movement.bank_reference}/{movement.detail}"
        else:
            reference = (f"{new_balance_year}/{movement.statement_no}/{movement.sequence}/"
                         f"{movement.detail}")
        free = _clean(" ".join(movement.free), 1000)
        result.entries.append(StatementEntry(
            reference=_clean(reference, 120), amount_cents=movement.amount_cents,
            credit=movement.credit, booked_on=movement.booked_on or movement.value_date,
            communication=movement.structured or find_communication(free),
            text=free[:300], payer=_clean(movement.payer, 200),
            payer_account=_clean(movement.payer_account, 34), position=movement.line_no,
        ))
    return result


def _coda_movement_part(line: str, line_no: int, current: _Movement | None,
                        movements: list[_Movement], statement_no: str) -> _Movement | None:
    article = line[1]
    if article == "1":
        if line[31] not in "01":
            raise ValueError(_l("the movement sign must be 0 (credit) or 1 (debit), not %(value)s",
                             value=repr(line[31])))
        if not line[2:6].isdigit() or not line[6:10].isdigit():
            raise ValueError(_l("the sequence or detail number is not a number"))
        amount = _coda_amount(line[32:47])
        if amount <= 0:
            raise ValueError(_l("the amount must be above zero"))
        structured = ""
        free = []
        if line[61] == "1":
            kind, digits = line[62:65], line[65:77]
            if kind in ("101", "102"):
                if not ogm_vcs.is_valid(digits):
                    raise ValueError(_l("a structured communication with wrong check digits: "
                                        "%(value)s", value=repr(digits)))
                structured = digits
            else:
                free.append(line[65:115])  # another structured kind: keep it readable
        elif line[61] in "0 ":
            free.append(line[62:115])
        else:
            raise ValueError(_l("the communication type must be 0 or 1, not %(value)s",
                             value=repr(line[61])))
        movement = _Movement(
            line_no=line_no, sequence=line[2:6], detail=line[6:10],
            bank_reference=line[10:31].strip(), credit=line[31] == "0", amount_cents=amount,
            value_date=_coda_date(line[47:53], optional=True),
            booked_on=_coda_date(line[115:121]), structured=structured, free=free,
            statement_no=line[121:124] if line[121:124].strip() else statement_no,
            globalised=line[124] not in " 0",
        )
        movements.append(movement)
        return movement
    if article not in "23":
        raise ValueError(_l("unknown record type %(type)s", type=repr(line[:2])))
    if current is None or line[2:6] != current.sequence:
        raise ValueError(_l("record %(type)s without its record 21 (sequence %(sequence)s)",
                         type=line[:2], sequence=line[2:6]))
    if article == "2":
        current.free.append(line[10:63])
    else:
        current.payer_account = line[10:44].strip()
        current.payer = line[47:82].strip()
        current.free.append(line[82:125])
    return current
