"""TEST tax rates for the emulator's Stripe Tax: a stand-in for testing, NOT tax advice.

Stripe Tax works tax out from Stripe's own, maintained rules and the account's registrations.
The emulator cannot, so it holds this small, fixed table, chosen to exercise what an integration
meets: standard, reduced and zero rates on books, US states with and without a sales tax,
shipping taxed as the goods it carries or exempt, and places where the account is not
registered (``not_collecting``). The figures are roughly what the jurisdictions published around
2024, at country or state level only: no county or city taxes, thresholds, holidays or special
cases. They are not maintained and must never be used to charge anyone. The README shows them.

How a place is found from an address follows Stripe's documented minimums: a US address needs a
ZIP code (its state is taken from ``state``, or from the ZIP's first three digits), a Canadian one
a postal code or a province, any other only its country.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

BOOKS = "txcd_35010000"  # Books (physical)
SHIPPING = "txcd_92010001"  # Shipping
NONTAXABLE = "txcd_00000000"  # Nontaxable
DEFAULT_CODE = "txcd_10000000"  # what an account's preset tax code is when nothing is set

GOODS = "goods"  # shipping is taxed as the goods it carries (at the highest of their rates)
EXEMPT = "exempt"  # separately stated shipping is not taxed


@dataclass(frozen=True)
class Jurisdiction:
    country: str
    state: str | None
    name: str
    tax_type: str | None  # Stripe's tax_type; None where there is no such tax
    tax_name: str  # how the tax is called on a line item's breakdown
    standard: Decimal
    books: Decimal | None = None  # None: books pay the standard rate
    shipping: str = GOODS

    @property
    def level(self) -> str:
        return "state" if self.state else "country"


def _vat(code: str, name: str, standard: str, books: str | None) -> Jurisdiction:
    return Jurisdiction(code, None, name, "vat", "VAT", Decimal(standard), _d(books))


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


COUNTRIES: dict[str, Jurisdiction] = {
    j.country: j
    for j in (
        _vat("GB", "United Kingdom", "20", "0"),
        _vat("IE", "Ireland", "23", "0"),
        _vat("NO", "Norway", "25", "0"),
        _vat("DE", "Germany", "19", "7"),
        _vat("FR", "France", "20", "5.5"),
        _vat("IT", "Italy", "22", "4"),
        _vat("ES", "Spain", "21", "4"),
        _vat("NL", "Netherlands", "21", "9"),
        _vat("BE", "Belgium", "21", "6"),
        _vat("AT", "Austria", "20", "10"),
        _vat("PT", "Portugal", "23", "6"),
        _vat("SE", "Sweden", "25", "6"),
        _vat("PL", "Poland", "23", "5"),
        _vat("CH", "Switzerland", "8.1", "2.6"),
        _vat("DK", "Denmark", "25", None),
        Jurisdiction("CA", None, "Canada", "gst", "GST", Decimal("5")),
        Jurisdiction("AU", None, "Australia", "gst", "GST", Decimal("10")),
        Jurisdiction("NZ", None, "New Zealand", "gst", "GST", Decimal("15")),
        Jurisdiction("JP", None, "Japan", "jct", "JCT", Decimal("10")),
    )
}

# State, name, state-level sales tax (percent), shipping; no state taxes books differently.
_STATES = """
AL Alabama 4 | AK Alaska - | AZ Arizona 5.6 | AR Arkansas 6.5 | CA California 7.25 exempt
CO Colorado 2.9 | CT Connecticut 6.35 | DE Delaware - | DC District_of_Columbia 6 | FL Florida 6
GA Georgia 4 | HI Hawaii 4 | ID Idaho 6 | IL Illinois 6.25 | IN Indiana 7 | IA Iowa 6
KS Kansas 6.5 | KY Kentucky 6 | LA Louisiana 4.45 | ME Maine 5.5 | MD Maryland 6
MA Massachusetts 6.25 exempt | MI Michigan 6 | MN Minnesota 6.875 | MS Mississippi 7
MO Missouri 4.225 | MT Montana - | NE Nebraska 5.5 | NV Nevada 6.85 | NH New_Hampshire -
NJ New_Jersey 6.625 | NM New_Mexico 4.875 | NY New_York 4 | NC North_Carolina 4.75
ND North_Dakota 5 | OH Ohio 5.75 | OK Oklahoma 4.5 | OR Oregon - | PA Pennsylvania 6
RI Rhode_Island 7 | SC South_Carolina 6 | SD South_Dakota 4.2 | TN Tennessee 7 | TX Texas 6.25
UT Utah 4.85 | VT Vermont 6 | VA Virginia 4.3 | WA Washington 6.5 | WV West_Virginia 6
WI Wisconsin 5 | WY Wyoming 4
"""


def _states() -> dict[str, Jurisdiction]:
    found = {}
    for entry in _STATES.replace("\n", " | ").split("|"):
        if not entry.strip():
            continue
        code, name, rate, *shipping = entry.split()
        taxed = rate != "-"
        found[code] = Jurisdiction(
            "US",
            code,
            name.replace("_", " "),
            "sales_tax" if taxed else None,
            "Sales Tax",
            Decimal(rate if taxed else "0"),
            shipping=shipping[0] if shipping else GOODS,
        )
    return found


US_STATES = _states()
_STATE_NAMES = {j.name.lower(): code for code, j in US_STATES.items()}
# US territories and military "states": real places the account is not registered in.
US_OTHER = frozenset({"PR", "GU", "VI", "AS", "MP", "UM", "AA", "AE", "AP"})

# The state of a ZIP code's first three digits (approximately; gaps are unassigned prefixes).
_ZIPS = """
AL 350-369 | AK 995-999 | AZ 850-865 | AR 716-729 | CA 900-961 | CO 800-816 | CT 060-069
DE 197-199 | DC 200-200 202-205 | FL 320-349 | GA 300-319 398-399 | HI 967-968 | ID 832-838
IL 600-629 | IN 460-479 | IA 500-528 | KS 660-679 | KY 400-427 | LA 700-714 | ME 039-049
MD 206-219 | MA 010-027 055-055 | MI 480-499 | MN 550-567 | MS 386-397 | MO 630-658
MT 590-599 | NE 680-693 | NV 889-898 | NH 030-038 | NJ 070-089 | NM 870-884 | NY 005-005 100-149
NC 270-289 | ND 580-588 | OH 430-459 | OK 730-732 734-749 | OR 970-979 | PA 150-196
RI 028-029 | SC 290-299 | SD 570-577 | TN 370-385 | TX 733-733 750-799 885-885 | UT 840-847
VT 050-054 056-059 | VA 201-201 220-246 | WA 980-994 | WV 247-268 | WI 530-549 | WY 820-831
"""


def _zip_states() -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in _ZIPS.replace("\n", " | ").split("|"):
        if not entry.strip():
            continue
        state, *ranges = entry.split()
        for span in ranges:
            low, high = (int(n) for n in span.split("-"))
            found.update(dict.fromkeys(range(low, high + 1), state))
    return found


ZIP_STATES = _zip_states()
# ASCII digits: \d would take any script's digits, which no postal code has.
_ZIP = re.compile(r"[0-9]{5}(-[0-9]{4})?")
_CA_POSTAL = re.compile(r"[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9]")
CA_PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())

# ISO 3166-1 alpha-2: the country codes an address may have.
ISO_COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
    """.split()
)

# Countries Stripe takes in an address beyond ISO 3166-1's: Kosovo (a user-assigned code),
# Ascension Island and Tristan da Cunha (exceptionally reserved). No tax is owed there.
ADDRESS_COUNTRIES = ISO_COUNTRIES | {"XK", "AC", "TA"}


@dataclass(frozen=True)
class Place:
    """Where tax is owed: a country, a US state (or territory) in it, and the table's entry for
    it, or None where the account is not registered."""

    country: str
    state: str | None
    jurisdiction: Jurisdiction | None


def locate(address: dict[str, Any]) -> Place | None:
    """The place of an address, or None when it is not precise enough to tax."""
    country = _text(address.get("country")).upper()
    if country not in ADDRESS_COUNTRIES:
        return None
    postal = _text(address.get("postal_code"))
    state = _text(address.get("state"))
    if country == "US":
        return _us_place(postal, state)
    if country == "CA":
        if postal:
            if not _CA_POSTAL.fullmatch(postal):
                return None
        elif state.upper() not in CA_PROVINCES:  # neither a postal code nor a province
            return None
    return Place(country, None, COUNTRIES.get(country))


def _us_place(postal: str, state: str) -> Place | None:
    if not _ZIP.fullmatch(postal):
        return None
    code = state.upper() if state.upper() in US_STATES or state.upper() in US_OTHER else None
    if state and code is None:
        code = _STATE_NAMES.get(state.lower())
        if code is None:
            return None
    from_zip = ZIP_STATES.get(int(postal[:3]))
    if code is None:
        code = from_zip
        if code is None:
            return None
    elif from_zip is not None and code not in US_OTHER and from_zip != code:
        return None  # a ZIP code of another state: Stripe could not place the address either
    return Place("US", code, US_STATES.get(code))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# --- rules: the rate and the reason for one item in one place ------------------------------

TAXED = frozenset({"standard_rated", "reduced_rated", "zero_rated"})


@dataclass(frozen=True)
class Rule:
    place: Place
    percentage: Decimal
    reason: str  # Stripe's taxability_reason

    @property
    def imposed(self) -> bool:
        """Whether a rate applies (even 0%); Stripe leaves a line's rate details out otherwise."""
        return self.reason in TAXED

    @property
    def jurisdiction(self) -> Jurisdiction | None:
        return self.place.jurisdiction

    def tax_on(self, amount: int, inclusive: bool) -> int:
        """The tax on ``amount`` (minor units), rounded half up, as part of it or on top."""
        if not self.imposed or not self.percentage or amount == 0:
            return 0
        share = self.percentage / (100 + self.percentage) if inclusive else self.percentage / 100
        return int((Decimal(amount) * share).quantize(Decimal(1), ROUND_HALF_UP))


def category(tax_code: str) -> str:
    return {BOOKS: "books", SHIPPING: "shipping", NONTAXABLE: "nontaxable"}.get(tax_code, "general")


def rules(place: Place, codes: list[str], override: str = "none") -> list[Rule]:
    """The rule for each item (by tax code) of one calculation: goods first, then shipping,
    which follows the goods where the jurisdiction taxes it as what it carries."""
    found: dict[int, Rule] = {}
    for i, code in enumerate(codes):
        if category(code) != "shipping":
            found[i] = _rule(place, category(code), override)
    goods = list(found.values())
    for i, code in enumerate(codes):
        if category(code) == "shipping":
            found[i] = _shipping_rule(place, goods, override)
    return [found[i] for i in range(len(codes))]


def _rule(place: Place, kind: str, override: str) -> Rule:
    j = place.jurisdiction
    if override in ("customer_exempt", "reverse_charge"):
        return Rule(place, Decimal(0), override)
    if j is None:
        return Rule(place, Decimal(0), "not_collecting")
    if j.tax_type is None:
        return Rule(place, Decimal(0), "not_subject_to_tax")
    if kind == "nontaxable":
        return Rule(place, Decimal(0), "product_exempt")
    rate = j.books if kind == "books" and j.books is not None else j.standard
    if rate == 0:
        return Rule(place, rate, "zero_rated")
    return Rule(place, rate, "reduced_rated" if rate < j.standard else "standard_rated")


def _shipping_rule(place: Place, goods: list[Rule], override: str) -> Rule:
    j = place.jurisdiction
    base = _rule(place, "general", override)
    if not base.imposed:
        return base
    if j is not None and j.shipping == EXEMPT:
        return Rule(place, Decimal(0), "product_exempt")
    taxed = [rule for rule in goods if rule.imposed]
    return max(taxed, key=lambda rule: rule.percentage) if taxed else base


def percentage_text(value: Decimal) -> str:
    """A rate as Stripe writes it: "7.25", "19.0", "0.0"."""
    text = f"{value.normalize():f}"
    return text if "." in text else text + ".0"
