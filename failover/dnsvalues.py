"""DNS answer values as text: which record types and response codes we know, and one canonical
spelling per value, shared by the config (validating expectations) and the dns probe (comparing
answers) so both agree on what "the same value" means."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.txtbase

RECORD_TYPES = (
    "A",
    "AAAA",
    "CAA",
    "CNAME",
    "DNAME",
    "DNSKEY",
    "DS",
    "HTTPS",
    "MX",
    "NS",
    "PTR",
    "SOA",
    "SRV",
    "SVCB",
    "TXT",
)
"""Record types a dns probe may ask for."""

RCODES = (
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "BADVERS",
)
"""Response codes a dns probe may expect."""


def canonical_answer(record_type: str, text: str) -> str:
    """Canonical text of one answer value, so values compare equal whatever their spelling.

    Addresses in their standard form, names lower-case without the trailing dot (`10
    mail.example.com`). A TXT value is the record's strings joined, written plainly (no zone-file
    quoting). Raises ValueError when the text does not fit the type.
    """
    rdtype = dns.rdatatype.from_text(record_type)
    if rdtype == dns.rdatatype.TXT:
        return text
    try:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False
        )
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    return canonical_rdata(rdata)


def canonical_rdata(rdata: dns.rdata.Rdata) -> str:
    if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
        return b"".join(rdata.strings).decode("utf-8", errors="backslashreplace")
    # The DNSSEC canonical wire form lower-cases embedded names (RFC 4034 §6.2); read back, it
    # prints the same for every spelling.
    wire = rdata.to_digestable(dns.name.root)
    canonical = dns.rdata.from_wire(rdata.rdclass, rdata.rdtype, wire, 0, len(wire))
    return canonical.to_text(origin=dns.name.root, relativize=True)
