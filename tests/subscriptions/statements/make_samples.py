"""Writes the sample bank statements of this folder (made for these tests; no real data).

Run `python tests/subscriptions/statements/make_samples.py` after changing it. The orders
the samples pay are made in tests/subscriptions/test_reconciliation.py with these
structured communications:

  EXACT    100000010138  65.00 paid exactly
  PARTLY   100000020242  65.00 paid 40.00 (day 1), then 25.00 (day 2: the overlap file)
  OVER     100000030346  65.00 paid 75.00
  UNKNOWN  100000040450  no such order
  TYPED    100000050554  275.00 paid exactly, the communication typed as free text
  CLOSED   100000060658  an expired order
  and a transfer without communication from "Kinderdagverblijf De Rups" (65.00).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
IBAN = "BE71096123456769"


# ---------------------------------------------------------------- camt.053

def ntry(ref: str, amount: str, *, strd: str = "", ustrd: str = "", credit: bool = True,
         payer: str = "", payer_iban: str = "", day: str = "2026-11-20", status: str = "BOOK",
         currency: str = "EUR", direction: str | None = None) -> str:
    direction = direction if direction is not None else ("CRDT" if credit else "DBIT")
    remittance = ""
    if ustrd:
        remittance += f"<Ustrd>{ustrd}</Ustrd>"
    if strd:
        remittance += ("<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry>"
                       f"<Issr>BBA</Issr></Tp><Ref>{strd}</Ref></CdtrRefInf></Strd>")
    parties = ""
    if payer:
        parties = f"<RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr>"
        if payer_iban:
            parties += f"<DbtrAcct><Id><IBAN>{payer_iban}</IBAN></Id></DbtrAcct>"
        parties += "</RltdPties>"
    direction_xml = f"<CdtDbtInd>{direction}</CdtDbtInd>" if direction else ""
    return f"""
      <Ntry>
        <NtryRef>{ref}</NtryRef>
        <Amt Ccy="{currency}">{amount}</Amt>
        {direction_xml}
        <Sts>{status}</Sts>
        <BookgDt><Dt>{day}</Dt></BookgDt>
        <ValDt><Dt>{day}</Dt></ValDt>
        <AcctSvcrRef>{ref}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls><TxDtls>
          <Refs><AcctSvcrRef>{ref}</AcctSvcrRef><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
          {parties}
          <RmtInf>{remittance}</RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>"""


def camt(statement_id: str, *entries: str, day_from: str = "2026-11-20",
         day_to: str = "2026-11-20") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{NS}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>{statement_id}</MsgId><CreDtTm>{day_to}T18:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>{statement_id}</Id>
      <ElctrncSeqNb>{statement_id[-3:]}</ElctrncSeqNb>
      <CreDtTm>{day_to}T18:00:00</CreDtTm>
      <FrToDt><FrDtTm>{day_from}T00:00:00</FrDtTm><ToDtTm>{day_to}T23:59:59</ToDtTm></FrToDt>
      <Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>
      <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">1000.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day_from}</Dt></Dt></Bal>{"".join(entries)}
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


DAY1 = [
    ntry("2026112000001", "65.00", strd="100000010138", payer="Sofie Peeters",
         payer_iban="BE68539007547034"),
    ntry("2026112000002", "40.00", strd="100000020242", payer="Kinderopvang Het Nest vzw"),
    ntry("2026112000003", "75.00", strd="100000030346", payer="Jonas Maes"),
    ntry("2026112000004", "65.00", strd="100000040450", payer="Lotte Claes"),
    ntry("2026112000005", "275.00", ustrd="abonnement +++100/0000/50554+++ dank u",
         payer="Gemeente Zwijndrecht"),
    ntry("2026112000006", "65.00", strd="100000060658", payer="An Wouters"),
    ntry("2026112000007", "65.00", ustrd="abonnement tijdschrift",
         payer="Kinderdagverblijf De Rups"),
    ntry("2026112000008", "12.30", credit=False, ustrd="kantoorgerief", payer="Drukkerij"),
    ntry("2026112000009", "65.00", strd="100000010138", status="PDNG", payer="Pending"),
]
OVERLAP = [
    DAY1[0], DAY1[1],
    ntry("2026112100001", "25.00", strd="100000020242", payer="Kinderopvang Het Nest vzw",
         day="2026-11-21"),
]
HALF_BAD = [
    ntry("2026112200001", "65.00", strd="100000010138", payer="Sofie Peeters",
         day="2026-11-22"),
    ntry("2026112200002", "12,50", strd="100000020242", payer="Komma", day="2026-11-22"),
    ntry("2026112200003", "65.00", strd="100000030346", payer="Geen richting",
         day="2026-11-22", direction=""),
]


# ---------------------------------------------------------------- CODA

def line(text: str) -> str:
    assert len(text) <= 128, (len(text), text)
    return text.ljust(128)


def coda_amount(cents: int) -> str:
    return f"{cents * 10:015d}"


def record0(created: str) -> str:
    return line(f"00000{created}725" + "05" + " " + " " * 7 + "0000000000"
                + "KINDEROPVANG MAGAZINE VZW " + "GKCCBEBB   " + "00412345678" + " "
                + "00000" + " " * 16 + " " * 16 + " " * 7 + "2")


def record1(statement: str, day: str, balance_cents: int) -> str:
    account = f"{IBAN}   EUR".ljust(37)
    return line(f"12{statement}{account}0{coda_amount(balance_cents)}{day}"
                + "KINDEROPVANG MAGAZINE VZW ".ljust(26)
                + "Zichtrekening".ljust(35) + statement)


def movement(seq: int, *, cents: int, day: str, statement: str, credit: bool = True,
             communication: str = "", free: str = "", payer: str = "",
             payer_account: str = "", bank_ref: str = "", detail: int = 0) -> list[str]:
    structured = "1" + ("101" + communication).ljust(53)
    comm = structured if communication else "0" + free[:53].ljust(53)
    sign = "0" if credit else "1"
    has_23 = bool(payer or payer_account)
    first = line(f"21{seq:04d}{detail:04d}{bank_ref.ljust(21)}{sign}{coda_amount(cents)}"
                 f"{day}00150000{comm}{day}{statement}0{'1' if has_23 else '0'} 0")
    lines = [first]
    if has_23:
        lines.append(line(f"22{seq:04d}{detail:04d}" + " " * 53 + " " * 35 + "GEBABEBB   "
                          + " " * 3 + " " + " " * 4 + " " * 4 + " " * 4 + "1 0"))
        account = f"{payer_account}".ljust(34) + "EUR"
        lines.append(line(f"23{seq:04d}{detail:04d}{account}{payer.ljust(35)}"
                          + " " * 43 + "0 0"))
    return lines


def record8(statement: str, day: str, balance_cents: int) -> str:
    account = f"{IBAN}   EUR".ljust(37)
    return line(f"8{statement}{account}0{coda_amount(balance_cents)}{day}" + " " * 64 + "0")


def record9(count: int, debit: int, credit: int) -> str:
    return line("9" + " " * 15 + f"{count:06d}{coda_amount(debit)}{coda_amount(credit)}"
                + " " * 75 + "2")


def coda(statement: str, day: str, movements: list[dict]) -> str:
    body = []
    for seq, spec in enumerate(movements, start=1):
        body += movement(seq, day=day, statement=statement, **spec)
    debit = sum(m["cents"] for m in movements if not m.get("credit", True))
    credit = sum(m["cents"] for m in movements if m.get("credit", True))
    lines = [record0(day), record1(statement, day, 100000), *body,
             record8(statement, day, 100000 + credit - debit)]
    lines.append(record9(len(lines) - 1, debit, credit))
    return "\r\n".join(lines) + "\r\n"


CODA_DAY1 = [
    {"cents": 6500, "communication": "100000010138", "payer": "SOFIE PEETERS",
     "payer_account": "BE68539007547034", "bank_ref": "EPIB00001AWIUBTK001"},
    {"cents": 4000, "communication": "100000020242", "payer": "KINDEROPVANG HET NEST VZW",
     "bank_ref": "EPIB00001AWIUBTK002"},
    {"cents": 7500, "communication": "100000030346", "payer": "JONAS MAES",
     "bank_ref": "EPIB00001AWIUBTK003"},
    {"cents": 6500, "communication": "100000040450", "payer": "LOTTE CLAES",
     "bank_ref": "EPIB00001AWIUBTK004"},
    {"cents": 27500, "free": "abonnement +++100/0000/50554+++ dank u",
     "payer": "GEMEENTE ZWIJNDRECHT", "bank_ref": "EPIB00001AWIUBTK005"},
    {"cents": 6500, "communication": "100000060658", "payer": "AN WOUTERS",
     "bank_ref": "EPIB00001AWIUBTK006"},
    {"cents": 6500, "free": "abonnement tijdschrift", "payer": "KINDERDAGVERBLIJF DE RUPS",
     "bank_ref": ""},
    {"cents": 1230, "credit": False, "free": "kantoorgerief", "bank_ref": "EPIB00001AWIUBTK008"},
]
CODA_OVERLAP = [
    *CODA_DAY1,
    {"cents": 2500, "communication": "100000020242", "payer": "KINDEROPVANG HET NEST VZW",
     "bank_ref": "EPIB00002AWIUBTK001"},
]


def write() -> None:
    (HERE / "camt053_day1.xml").write_text(camt("STMT-2026-231", *DAY1))
    (HERE / "camt053_overlap.xml").write_text(
        camt("STMT-2026-232", *OVERLAP, day_to="2026-11-21"))
    (HERE / "camt053_half_bad.xml").write_text(camt("STMT-2026-233", *HALF_BAD))
    malformed = camt("STMT-2026-234", DAY1[0])
    (HERE / "camt053_malformed.xml").write_text(malformed[: len(malformed) // 2])
    (HERE / "coda_day1.cod").write_text(coda("231", "201126", CODA_DAY1), newline="")
    # The bank's re-export of the same statement with one movement more (an overlap).
    (HERE / "coda_overlap.cod").write_text(coda("231", "201126", CODA_OVERLAP), newline="")
    good = coda("232", "221126", CODA_DAY1[:3]).split("\r\n")
    # Line 6 (the second movement's record 21): a letter in the amount; line 9: a record
    # type that does not exist.
    good[5] = good[5][:32] + "00000000000X500" + good[5][47:]
    good.insert(8, line("7" + "unknown record"))
    (HERE / "coda_half_bad.cod").write_text("\r\n".join(good), newline="")
    (HERE / "coda_malformed.cod").write_text(
        "\r\n".join(coda("233", "231126", CODA_DAY1[:1]).split("\r\n")[:3]) + "\r\n",
        newline="")


if __name__ == "__main__":
    write()
