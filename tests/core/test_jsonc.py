import pytest

from unmix.core.config.jsonc import blank_block_comments, parse_jsonc
from unmix.core.errors import ConfigurationError


def test_line_comments_and_block_comments_are_both_accepted():
    text = """{
        // a line comment
        "a": 1, /* a block
        comment over lines */ "b": "keeps // and /* inside strings */",
        "c": [1, 2,], // trailing comma
    }"""
    assert parse_jsonc(text, "x.jsonc") == {"a": 1, "b": "keeps // and /* inside strings */", "c": [1, 2]}


def test_blanking_keeps_line_and_column_positions():
    text = '{"a": /* one\n two */ 1}'
    blanked = blank_block_comments(text)
    assert len(blanked) == len(text)
    assert blanked.count("\n") == 1
    assert blanked.index("1") == text.index("1")


def test_error_after_a_block_comment_points_into_the_original_file():
    text = '{\n  /* comment\n  spanning */\n  "a": 1,\n  "b": }\n'
    with pytest.raises(ConfigurationError) as caught:
        parse_jsonc(text, "broken.jsonc")
    assert "broken.jsonc" in str(caught.value)
    assert "line 5, column 8" in str(caught.value)


def test_unclosed_block_comment_is_reported_with_its_position():
    with pytest.raises(ConfigurationError, match="line 2, column 3"):
        parse_jsonc('{"a": 1,\n  /* never closed\n}', "open.jsonc")


def test_escaped_quote_in_string_does_not_end_it():
    assert parse_jsonc(r'{"a": "say \"/*hi*/\""}', "q.jsonc") == {"a": 'say "/*hi*/"'}
