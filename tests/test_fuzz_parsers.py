"""No input line crashes a log parser: access lines, refused logins, format detection.

Lines are built from real lines of every known format, cut, spliced and salted with the
characters that break parsers (quotes, backslashes, escapes, brackets, control and
non-ASCII characters, surrogate escapes), and from arbitrary text. Each parser must answer
(a value or None), never raise.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from floatseat.logs.escapes import unescape
from floatseat.logs.formats import KNOWN_FORMATS, detect_format
from floatseat.logs.pattern import compile_pattern, parse_clf_time
from floatseat.logs.security import parse_refused_login

REAL_LINES = (
    '10.0.0.1 700x5215x1 admin [24/Nov/2015:11:40:00 +0100] "GET /browse/ABC-1 HTTP/1.1" 200 '
    '512 12 "https://jira/" "Mozilla/5.0 (X11)" "1eec9o3"',
    "[24/Nov/2015:11:40:00 +0100] anne 0 10.0.0.2 GET /pages/viewpage.action?pageId=1 "
    "HTTP/1.1 200 15ms 2048 https://wiki/ Mozilla/5.0",
    '10.0.0.3 anne [24/Nov/2015:11:40:00 +0100] "GET /display/X HTTP/1.1" 200 20 15 '
    '/display/X http-nio-8090-exec-1 "Mozilla/5.0"',
    "2023-06-09 05:11:11,664+0000 http-nio-8080-exec-17 anonymous 311x2831x1 1qvu69a 10.0.0.1 "
    "/login.jsp login : 'admin' tried to login but they do not have USE permission or weren't "
    "found. Deleting remember me cookie.",
)
SALT = st.sampled_from(
    ['"', "\\", '\\"', "\\\\", "\\u00e9", "\\ud83d\\ude00", "\\uZZZZ", "\\u12", "[", "]", " ",
     "\t", "\x00", "\x7f", "é", "\u2028", "\ufffd", "-", "'", "%", "?", "\r", "+9999", "31/Nov",
     "9", "0"]
)  # fmt: skip


@st.composite
def hostile_lines(draw: st.DrawFn, sources: tuple[str, ...] = REAL_LINES) -> str:
    line = draw(st.sampled_from(sources))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(line)))
        action = draw(st.sampled_from(("cut", "insert", "replace", "delete", "digit")))
        digits = [i for i, c in enumerate(line) if c.isdigit()]
        if action == "digit" and digits:  # days, hours and offsets that do not exist
            at = draw(st.sampled_from(digits))
            line = line[:at] + str(draw(st.integers(0, 9))) + line[at + 1 :]
        elif action == "cut":
            line = line[:at]
        elif action == "replace":
            line = line[:at] + draw(SALT) + line[at + 1 :]
        elif action == "insert":
            line = line[:at] + draw(SALT) + line[at:]
        else:
            line = line[:at] + line[at + draw(st.integers(1, 5)) :]
    return line


ANY_LINE = st.one_of(hostile_lines(), st.text(max_size=300))


CLF_STAMPS = st.from_regex(
    r"\d{2}/(Jan|Feb|Nov|Dec|Foo)/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}", fullmatch=True
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        ANY_LINE,
        st.tuples(st.sampled_from(REAL_LINES[:3]), CLF_STAMPS).map(
            lambda pair: pair[0].replace("24/Nov/2015:11:40:00 +0100", pair[1])
        ),
    )
)
def test_no_access_line_crashes_any_known_format(line: str) -> None:
    for known in KNOWN_FORMATS:
        parsed = known.compiled().parse(line)
        assert parsed is None or isinstance(parsed.epoch_s, int)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(("%h", "%a", "%u", "%t", "%r", "%s", "%b", "%D", "%U", "%q", "%m",
                         "%{User-Agent}i", "%{X-AUSERNAME}o", '"', " ", "-", "[", "]")),
        min_size=1, max_size=12,
    ).map("".join),
    ANY_LINE,
)  # fmt: skip
def test_any_pattern_either_compiles_or_says_why_and_then_parses_anything(
    pattern: str, line: str
) -> None:
    try:
        compiled = compile_pattern(pattern)
    except ValueError:
        return  # refused with a message: a PatternError is a ValueError
    compiled.parse(line)


# Any digits in the shape of the products' timestamps: days, hours and offsets that do not exist.
STAMPS = st.from_regex(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}([+-]\d{4})?", fullmatch=True)
REFUSAL_TAIL = REAL_LINES[3][len("2023-06-09 05:11:11,664+0000") :]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        hostile_lines(sources=REAL_LINES[3:]), ANY_LINE, STAMPS.map(lambda t: t + REFUSAL_TAIL)
    )
)
def test_no_line_crashes_the_refused_login_parser(line: str) -> None:
    refused = parse_refused_login(line)
    assert refused is None or (refused.user and isinstance(refused.at, int))


@settings(max_examples=100, deadline=None)
@given(st.lists(ANY_LINE, max_size=20))
def test_no_file_start_crashes_format_detection(lines: list[str]) -> None:
    detect_format(lines)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.sampled_from(["31/Nov/2015:00:00:00 +0000"])))
def test_times_and_escapes_never_raise(text: str) -> None:
    parse_clf_time(text)
    unescape(text)
