"""The report pages' number formats: durations, counts, money and shares as a person reads them."""

import pytest

from reports.templatetags.report_format import duration, money, number, percent


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (None, "minutes", "—"), (0, "minutes", "0 min"), (0.4, "minutes", "0 min"), (45, "minutes", "45 min"),
    (80, "minutes", "1 h 20 min"), (120, "minutes", "2 h"), (90859.4, "minutes", "63 d 2 h"),
    (3 * 1440 + 4 * 60 + 10, "minutes", "3 d 4 h"), (2, "days", "2 d"), (3.17, "days", "3 d 4 h"),
    (0.5, "days", "12 h"), (-30, "minutes", "−30 min"), (1440 * 1200, "minutes", "1,200 d")])
def test_duration(value, unit, shown):
    assert duration(value, unit) == shown


def test_numbers_money_and_percentages():
    assert (number(1234567), number(12.345), number(None), number(-1500)) == ("1,234,567", "12.3", "—", "−1,500")
    assert money("2550.5", "USD") == "$2,550.50"
    assert money("1912.875", "EUR") == "€1,912.88"
    assert money("12", "CHF") == "CHF 12.00"
    assert money("-3.5", "GBP") == "−£3.50"
    assert money(None, "USD") == "—"
    assert (percent(0.8), percent(1.5), percent(-1.0), percent(None)) == ("80.0%", "150.0%", "−100.0%", "—")
