"""Bank statements (ISO 20022 camt.053, as Belgian banks export them): the incoming
transfers, with the structured communication that tells which order they pay.

Parsed with defusedxml (an uploaded file must not be able to expand entities or reach the
network); only the few fields we need are read. Belgian banks put the structured
communication in `RmtInf/Strd/CdtrRefInf/Ref` (12 digits); some payers type it as free text
(`+++123/4567/89012+++` in `RmtInf/Ustrd`), which we recognise too when its check digits
are right.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element  # nosec B405 # the type only; parsing is defusedxml's

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from stdnum.be import ogm_vcs


class StatementError(ValueError):
    """The file is not a camt.053 statement we can read."""


@dataclass(frozen=True)
class StatementEntry:
    reference: str          # the bank's own id of the entry (unique per account)
    amount_cents: int
    credit: bool
    booked_on: date | None
    communication: str      # 12 digits of a valid structured communication, or ""
    text: str               # free text, for the coordinator to read
    payer: str


# +++123/4567/89012+++ (or ***…***, or the bare 12 digits), never a piece of a longer number.
_WRITTEN = re.compile(r"(?<!\d)(\d{3})\s*/?\s*(\d{4})\s*/?\s*(\d{5})(?!\d)")


def find_communication(*texts: str) -> str:
    """The first valid structured communication in the texts (12 digits), or ""."""
    for text in texts:
        for match in _WRITTEN.finditer(text or ""):
            digits = "".join(match.groups())
            if ogm_vcs.is_valid(digits):
                return digits
    return ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _path(element: Element | None, *names: str) -> Element | None:
    for name in names:
        if element is None:
            return None
        found = _children(element, name)
        element = found[0] if found else None
    return element


def _all(element: Element, *names: str) -> list[Element]:
    """Every element at the path (several TxDtls, several Ustrd lines …)."""
    current = [element]
    for name in names:
        current = [child for parent in current for child in _children(parent, name)]
    return current


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _cents(text: str) -> int:
    try:
        return int((Decimal(text) * 100).to_integral_exact())
    except (InvalidOperation, ValueError) as error:
        raise StatementError(f"not an amount: {text!r}") from error


def parse_camt053(data: bytes) -> list[StatementEntry]:
    """The entries of every statement in a camt.053 file (credits and debits)."""
    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, ElementTree.ParseError) as error:
        raise StatementError(str(error)) from error
    if _local(root.tag) != "Document":
        raise StatementError("not an ISO 20022 document")
    statements = _all(root, "BkToCstmrStmt", "Stmt")
    if not statements:
        raise StatementError("no statement (BkToCstmrStmt/Stmt) in the file")
    entries = []
    for statement in statements:
        for entry in _children(statement, "Ntry"):
            amount = _path(entry, "Amt")
            if amount is None:
                raise StatementError("an entry without an amount")
            if amount.get("Ccy", "EUR") != "EUR":
                continue
            credit = _text(_path(entry, "CdtDbtInd")) == "CRDT"
            booked = _text(_path(entry, "BookgDt", "Dt")) or _text(_path(entry, "ValDt", "Dt"))
            booked_on = None
            if booked:
                try:
                    booked_on = date.fromisoformat(booked[:10])
                except ValueError:
                    booked_on = None
            structured = [_text(ref) for ref in _all(
                entry, "NtryDtls", "TxDtls", "RmtInf", "Strd", "CdtrRefInf", "Ref")]
            free = [_text(line) for line in _all(entry, "NtryDtls", "TxDtls", "RmtInf", "Ustrd")]
            free += [_text(_path(entry, "AddtlNtryInf"))]
            payer = next((_text(name) for name in _all(
                entry, "NtryDtls", "TxDtls", "RltdPties", "Dbtr", "Nm") if _text(name)), "")
            if not payer:
                payer = next((_text(name) for name in _all(
                    entry, "NtryDtls", "TxDtls", "RltdPties", "Dbtr", "Pty", "Nm")
                    if _text(name)), "")
            bank_reference = _text(_path(entry, "AcctSvcrRef")) or _text(
                _path(entry, "NtryDtls", "TxDtls", "Refs", "AcctSvcrRef"))
            if not bank_reference:
                # No id from the bank: the same entry in a later import must still match.
                fingerprint = "|".join([booked, amount.text or "", *structured, *free, payer])
                bank_reference = "sha1:" + hashlib.sha1(
                    fingerprint.encode(), usedforsecurity=False).hexdigest()
            entries.append(StatementEntry(
                reference=bank_reference[:100], amount_cents=_cents(_text(amount)),
                credit=credit, booked_on=booked_on,
                communication=find_communication(*structured, *free),
                text=" ".join(t for t in free if t)[:300], payer=payer[:200],
            ))
    return entries
