"""A batch's rows from pasted text or a CSV file, and its cost range, before it starts (frontend/batch_rows.py)."""

from __future__ import annotations

import pytest

from frontend.batch_rows import estimate, parse_rows, read_rows
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


def test_a_header_naming_the_variable_is_skipped_in_any_case_and_with_commas_in_values() -> None:
    assert parse_rows("{{ subject }}\ntea", ["subject"]) == [{"subject": "tea"}]
    parsed = read_rows("Subject\ntea\nrain, heavy", ["subject"])
    assert parsed.header == "Subject" and parsed.rows == [{"subject": "tea"}, {"subject": "rain, heavy"}]


def test_a_list_of_single_words_keeps_its_first_value() -> None:
    parsed = read_rows("tea\nrain\nsnow", ["subject"])
    assert parsed.header is None and [r["subject"] for r in parsed.rows] == ["tea", "rain", "snow"]
    # A sentence first is a value too: only an identifier can look like a column name.
    assert parse_rows("A cup of tea\nrain", ["subject"])[0] == {"subject": "A cup of tea"}


def test_a_first_line_that_looks_like_another_header_is_never_guessed() -> None:
    text = "topic\nA cup of tea\nHeavy rain at night"
    with pytest.raises(FormError) as caught:  # neither eaten nor sent: the user is asked
        parse_rows(text, ["subject"])
    assert "'topic'" in caught.value.message and "'subject'" in caught.value.message
    assert "First line is a header" in caught.value.message
    header = read_rows(text, ["subject"], header="yes")
    assert header.header == "topic" and header.rows == [{"subject": "A cup of tea"},
                                                        {"subject": "Heavy rain at night"}]
    value = read_rows(text, ["subject"], header="no")
    assert value.header is None and value.rows[0] == {"subject": "topic"} and len(value.rows) == 3
    # "a value" keeps even a first line that names the variable.
    assert parse_rows("subject\ntea", ["subject"], header="no") == [{"subject": "subject"}, {"subject": "tea"}]
    with pytest.raises(FormError, match="must name them"):
        parse_rows("tea,spring", ["season", "subject"], header="no")


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


def test_video_estimate_from_the_price_per_second_and_the_length() -> None:
    veo = {"id": "veo", "video": {"supported_durations": [4, 6, 8],
                                  "pricing_skus": {"video_seconds_720p": "0.10", "video_seconds_1080p": "0.40"}}}
    chosen = estimate(kind="video", models=[veo], prompts=["a", "b"], repeat=3,
                      params={"duration": 6, "resolution": "1080p"})
    assert chosen.items == 6 and chosen.unpriced == []
    assert chosen.low == pytest.approx(6 * 6 * 0.40) and chosen.high == pytest.approx(6 * 6 * 0.40)
    # Nothing chosen: the shortest at the cheapest resolution to the longest at the dearest.
    open_ended = estimate(kind="video", models=[veo], prompts=["a"], repeat=1)
    assert open_ended.low == pytest.approx(4 * 0.10) and open_ended.high == pytest.approx(8 * 0.40)
    unpriced = {"id": "mystery", "video": {"supported_durations": [5]}}
    both = estimate(kind="video", models=[veo, unpriced], prompts=["a"], repeat=1, params={"duration": 4})
    assert both.unpriced == ["mystery"] and both.low == pytest.approx(0.4) and both.high == pytest.approx(1.6)
