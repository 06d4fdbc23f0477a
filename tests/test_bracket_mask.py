"""The bracket span of free-response answers (engine.freeresponse.bracket_content)."""

import pytest

from jaxunc.engine.freeresponse import bracket_content


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is {Paris}.", (15, 20)),
        ("{a} then {b}", (1, 2)),
        ("no span here", None),
        ("{unclosed", None),
        ("empty {} span", None),
        ("} before { x }", (10, 13)),
    ],
)
def test_bracket_content(text, expected):
    assert bracket_content(text) == expected
    if expected:
        assert "{" not in text[expected[0]:expected[1]] and "}" not in text[expected[0]:expected[1]]
