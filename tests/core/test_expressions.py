import pytest

from unmix.core.config.expressions import ExpressionError, MissingVariableError, evaluate, is_expression, str2bool

ENVIRONMENT = {"UNMIX_SONG_LIMIT": "12", "FLAG": "true", "RATIO": "0.5", "NAME": "guitar"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int(env('UNMIX_SONG_LIMIT'))", 12),
        ("float(env('RATIO'))", 0.5),
        ("str2bool(env('FLAG'))", True),
        ("env('NAME')", "guitar"),
        ('env("NAME")', "guitar"),
        ("env('MISSING', 'fallback')", "fallback"),
        ("int(env('MISSING', 7))", 7),
        ("str2bool('no')", False),
        ("  int( env( 'UNMIX_SONG_LIMIT' ) ) ", 12),
        ("float('1e-4')", 1e-4),
    ],
)
def test_expressions_evaluate(text, expected):
    assert evaluate(text, ENVIRONMENT) == expected


def test_missing_variable_names_it():
    with pytest.raises(MissingVariableError) as caught:
        evaluate("int(env('UNMIX_TEST_DATA_COUNT'))", {})
    assert caught.value.variable == "UNMIX_TEST_DATA_COUNT"


@pytest.mark.parametrize(
    "text",
    [
        "int(env('UNMIX_SONG_LIMIT')",  # unbalanced
        "int(env('UNMIX_SONG_LIMIT')) + 1",  # arithmetic is not part of the language
        "int('abc')",
        "int(env('RATIO'))",  # 0.5 is not a whole number
        "str2bool('maybe')",
        "env(__import__('os'))",
        "int(1, 2)",
    ],
)
def test_bad_expressions_are_errors_not_code(text):
    with pytest.raises(ExpressionError):
        evaluate(text, ENVIRONMENT)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("int(env('X'))", True), ("env('X')", True), ("environment", False), ("os.system('ls')", False),
     ("max", False), ("int", False), (3, False)],
)
def test_only_known_calls_are_expressions(value, expected):
    assert is_expression(value) is expected


def test_str2bool_accepts_common_spellings():
    assert [str2bool(v) for v in ("True", "yes", "1", "On")] == [True] * 4
    assert [str2bool(v) for v in ("False", "no", "0", "off")] == [False] * 4
