from bookpay.address import address_lines, one_line

SHIPPING = {
    "name": "Ada Lovelace",
    "address": {
        "line1": "12 Analytical Row",
        "line2": None,
        "city": "San Francisco",
        "state": "CA",
        "postal_code": "94110",
        "country": "US",
    },
}


def test_address_lines_leave_out_empty_parts():
    assert address_lines(SHIPPING) == [
        "Ada Lovelace",
        "12 Analytical Row",
        "San Francisco, CA 94110",
        "US",
    ]


def test_one_line_and_missing_address():
    assert one_line(SHIPPING) == "Ada Lovelace, 12 Analytical Row, San Francisco, CA 94110, US"
    assert one_line(None) == "-"
    assert address_lines({"name": "Only A Name", "address": None}) == ["Only A Name"]
