"""A batch's rows from pasted text or a CSV file, and its cost range, before it starts (frontend/batch_rows.py)."""

from __future__ import annotations

import pytest

from frontend.batch_rows import estimate, parse_rows
from frontend.forms import FormError


def test_csv_with_the_template_variables_as_header() -> None:
    rows = parse_rows("subject,season\ntea,spring\n\n\"rain, heavy\",autumn\r\n", ["season", "subject"])
    assert rows == [{"subject": "tea", "season": "spring"}, {"subject": "rain, heavy", "season": "autumn"}]
    assert parse_rows("subject\tseason\ntea\tspring", ["season", "subject"]) == [{"subject": "tea",
                                                                                 "season": "spring"}]
    assert parse_rows("subject;season\ntea;", ["season", "subject"]) == [{"subject": "tea", "season": ""}]


def test_a_plain_list_for_a_template_with_one_variable() -> None:
    assert parse_rows("tea\nrain\n", ["subject"]) == [{"subject": "tea"}, {"subject": "rain"}]
    assert parse_rows("subject\ntea", ["subject"]) == [{"subject": "tea"}]
    assert parse_rows("", []) == [{}]


@pytest.mark.parametrize(("text", "words"), [
    ("subject,weather\ntea,sun", ["'weather'", "season, subject"]),
    ("topic,mood,season\na,b,c", ["2 columns", "'topic', 'mood'"]),
    ("subject,subject\na,b", ["'subject' more than once"]),
    ("subject,season\na,b,c", ["Line 2 has 3 values"]),
    ("subject,season\n", ["no rows"]),
    ("", ["first line names the variables"]),
])
def test_bad_csv_is_refused_by_name(text: str, words: list[str]) -> None:
    with pytest.raises(FormError) as caught:
        parse_rows(text, ["season", "subject"])
    assert all(word in caught.value.message for word in words), caught.value.message


def test_too_many_rows() -> None:
    with pytest.raises(FormError, match="1,001 rows"):
        parse_rows("x\n" + "\n".join(str(i) for i in range(1001)), ["x"])


def test_estimate_is_a_range_from_catalogue_prices() -> None:
    models = [{"id": "a", "pricing": {"prompt": "0.000001", "completion": "0.000002"}},
              {"id": "b", "pricing": {}}]
    est = estimate(kind="text", models=models, prompts=["x" * 400] * 10, repeat=2)
    assert est.items == 40 and est.unpriced == ["b"]
    assert est.low is not None and est.high is not None and 0 < est.low < est.high
    # 20 items of model a: 108 prompt tokens each, 60–800 completion tokens.
    assert est.low == pytest.approx(20 * (108 * 1e-6 + 60 * 2e-6))
    assert est.high == pytest.approx(20 * (108 * 1e-6 + 800 * 2e-6))
    assert estimate(kind="video", models=models[:1], prompts=["x"], repeat=1).low is None
