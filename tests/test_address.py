from test_cart_server import ADDRESS

from bookpay.address import address_lines, country_name, one_line

SHIPPING = {"name": "Ada Lovelace", "address": ADDRESS}


def test_address_lines_leave_out_empty_parts():
    assert address_lines(SHIPPING) == [
        "Ada Lovelace",
        "12 Analytical Row",
        "San Francisco, CA 94110",
        "United States",
    ]


def test_one_line_and_missing_address():
    assert one_line(SHIPPING) == (
        "Ada Lovelace, 12 Analytical Row, San Francisco, CA 94110, United States"
    )
    assert one_line(None) == "-"
    assert address_lines({"name": "Only A Name", "address": None}) == ["Only A Name"]


def test_the_country_is_written_as_its_name():
    assert country_name("FR") == "France"
    assert country_name("gb") == "United Kingdom"
    assert country_name("KR") == "South Korea"
    assert country_name("XZ") == "XZ"  # unknown: as given
    # Codes outside ISO 3166-1's assigned ones that Stripe ships to (its allowed_countries).
    assert [country_name(code) for code in ("XK", "ac", "TA")] == [
        "Kosovo",
        "Ascension Island",
        "Tristan da Cunha",
    ]
    assert country_name(None) == ""


def test_the_names_match_the_offline_stripe_js_country_list():
    """The address block writes the name the shopper picked in the Address Element."""
    import re
    from pathlib import Path

    import bookpay

    script = (Path(bookpay.__file__).parent / "emulator" / "static" / "stripe-v3.js").read_text()
    block = re.search(r"const COUNTRIES = \{(.*?)\};", script, re.S).group(1)
    offered = dict(re.findall(r"([A-Z]{2}): '([^']+)'", block))
    assert len(offered) >= 20
    assert {code: country_name(code) for code in offered} == offered
