"""The native scanner (C) against the Polars path, which stays the reference, on random lines.

Every figure of a block must be the same: rows, non-blank lines, malformed lines and their
first line numbers, and the counted (user, second) pairs. The lines come from every known
format and from random valve patterns, then get mutated (cut, fields dropped or doubled,
stray quotes, escapes, non-ASCII, invalid UTF-8, CRLF, blank lines, dates that do not
exist, polling targets, context paths).
"""

from __future__ import annotations

import os

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from floatseat.analysis import fastscan, scan
from floatseat.domain.activity import CountingRules
from floatseat.logs.formats import KNOWN_FORMATS
from floatseat.logs.pattern import CompiledPattern, PatternError, compile_pattern


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled module; a skip on a laptop without a compiler, a failure in CI."""
    monkeypatch.delenv(fastscan.ENGINE_ENV, raising=False)
    if fastscan._linescan is None:
        message = (
            f"the native scanner is unavailable: {fastscan.engine_name()} "
            "(building it needs gcc and the Python headers; pip install -e . builds it)"
        )
        if os.environ.get("FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS") == "1":
            pytest.fail(message + " -- required because FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS=1")
        pytest.skip(message)


# ---------- values ----------

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

good_times = st.builds(
    lambda day, month, second, offset: f"{day:02d}/{month}/2026:10:00:{second:02d} {offset}",
    st.integers(1, 28),
    st.sampled_from(MONTHS),
    st.integers(0, 3),
    st.sampled_from(["+0000", "+0100", "-0500", "+0530"]),
)
times = st.one_of(
    good_times,
    good_times,
    good_times,
    st.builds(
        lambda d, m, y, h, mi, s, sign, oh, om: (
            f"{d:02d}/{m}/{y:04d}:{h:02d}:{mi:02d}:{s:02d} {sign}{oh:02d}{om:02d}"
        ),
        st.integers(0, 32),
        st.sampled_from([*MONTHS, "feb", "Foo"]),
        st.sampled_from([0, 1, 1900, 2000, 2024, 2025, 2026, 9999]),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from(["+", "-", " "]),
        st.sampled_from([0, 1, 5, 23, 24, 99]),
        st.sampled_from([0, 30, 59, 60, 99]),
    ),
    st.sampled_from(
        [
            "29/Feb/2025:10:00:00 +0000",
            "29/Feb/2024:10:00:00 +0000",
            "31/Nov/2026:10:00:00 +0000",
            "30/Feb/2024:10:00:00 +0000",
            "31/Dec/2025:23:59:59 -0030",
            "02/Mar/2026:10:00:00 +0000",
            "02/Mar/2026:10:00:0 +0000",
            "",
        ]
    ),
)

USERS = [
    "alice",
    "ALICE",
    "Alice",
    "-",
    "",
    "bob.smith",
    "j\\u00f3zef",
    "józef",
    "a\\\\b",
    'q\\"x',
    "bob smith",
    'q"x',
    "ann@example.com",
    "x\\u00",
    "é",
    "İstanbul",
    "svc\ttab",
]
TARGETS = [
    "/browse/ABC-1",
    "/rest/quickreload/latest/123?since=1",
    "/rest/mywork/latest/status/notification/count",
    "/rest/mywork/latest/status/notification/countX",
    "/jira/rest/quickreload/latest/9",
    "/jira",
    "/jira?x=1",
    "/jira/",
    "/jirax/rest/quickreload/latest/1",
    "/jirarest/quickreload/latest/1",
    "/rest/analytics/1.0/publish/bulk",
    "/s/123/_/download/batch.js?locale=en",
    "-",
    "*",
    "",
    "/a?b?c",
    "/ü",
    '/q"uote',
    "/sp ace",
]
WORDS = [
    "-",
    "",
    "x",
    "a b",
    '"',
    '\\"',
    "12",
    "0",
    "-1",
    "1.5",
    "é",
    "\\",
    "X",
    "+",
    "a,b",
    "a, b",
]

token_values: dict[str, st.SearchStrategy[str]] = {
    "%t": times.map(lambda t: f"[{t}]"),
    "%D": st.sampled_from(["0", "15", "-", "x", ""]),
    "%s": st.sampled_from(["200", "404", "-", "20", "2000"]),
    "%b": st.sampled_from(["0", "1234", "-", "", "a"]),
    "%B": st.sampled_from(["0", "-1", "12", "-"]),
    "%T": st.sampled_from(["0", "0.5", "1.", "-", "x"]),
    "%X": st.sampled_from(["X", "+", "-", "x"]),
}


@st.composite
def request_line(draw: st.DrawFn) -> str:
    target = draw(st.sampled_from(TARGETS))
    if draw(st.booleans()):
        return "-"
    method = draw(st.sampled_from(["GET", "POST", "-", ""]))
    proto = draw(st.sampled_from([" HTTP/1.1", "", " HTTP/2.0 extra"]))
    return f"{method} {target}{proto}"


TYPICAL = {
    "%D": "15",
    "%s": "200",
    "%b": "1234",
    "%B": "12",
    "%T": "0.5",
    "%X": "+",
    "%m": "GET",
    "%H": "HTTP/1.1",
    "%{Referer}i": "-",
}


def field_value(draw: st.DrawFn, token: str, user_token: str) -> str:
    typical = draw(st.integers(0, 4)) > 0  # mostly what Tomcat writes, sometimes anything
    if token == user_token:
        return draw(st.sampled_from(USERS[:8] if typical else USERS))
    if typical and token in TYPICAL:
        return TYPICAL[token]
    if typical and token == "%t":
        return "[" + draw(good_times) + "]"
    if token == "%r":
        return draw(request_line())
    if token == "%U":
        return draw(st.sampled_from(TARGETS)).partition("?")[0]
    if token == "%q":
        query = draw(st.sampled_from(TARGETS)).partition("?")[2]
        return "?" + query if query else draw(st.sampled_from(["", "?", "?x=1"]))
    if token in token_values:
        return draw(token_values[token])
    if token.lower() == "%{user-agent}i":
        return draw(st.sampled_from(['Mozilla/5.0 (X11) \\"q\\"', "curl/8", "-", "a b c"]))
    return draw(st.sampled_from(["10.0.0.1", "1x2x3", "http-nio-8080-exec-1", *WORDS]))


def render(draw: st.DrawFn, pattern: CompiledPattern, user_token: str) -> str:
    from floatseat.logs.pattern import _tokens

    out = []
    for kind, text in _tokens(pattern.pattern):
        out.append(text if kind == "literal" else field_value(draw, text, user_token))
    return "".join(out)


def user_token_of(pattern: CompiledPattern) -> str:
    from floatseat.logs.pattern import USER_TOKENS

    return next(t for t in USER_TOKENS if t in pattern.pattern)


MUTATIONS = [
    *["none"] * 16,
    "cut",
    "drop",
    "double_space",
    "stray_quote",
    "crlf",
    "cr_cr",
    "blank",
    "spaces",
    "invalid_utf8",
    "nbsp",
    "tab",
    "nul",
    "insert",
]


@st.composite
def mutated(draw: st.DrawFn, line: str) -> bytes:
    data = line.encode()
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif mutation == "drop" and b" " in data:
        parts = data.split(b" ")
        del parts[draw(st.integers(0, len(parts) - 1))]
        data = b" ".join(parts)
    elif mutation == "double_space":
        data = data.replace(b" ", b"  ", 1)
    elif mutation == "stray_quote" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b'"' + data[at:]
    elif mutation == "crlf":
        data += b"\r"
    elif mutation == "cr_cr":
        data += b"\r\r"
    elif mutation == "blank":
        data = draw(st.sampled_from([b"", b" ", b"\t", b"\r", b" \x0b\x0c ", b"\xc2\xa0"]))
    elif mutation == "spaces":
        data = b"  " + data
    elif mutation == "invalid_utf8" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x80"])) + data[at:]
    elif mutation == "nbsp":
        data = data.replace(b" ", "\u00a0".encode(), 1)
    elif mutation == "tab":
        data = data.replace(b" ", b"\t", 1)
    elif mutation == "nul" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\x00" + data[at:]
    elif mutation == "insert" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\\", b"]", b"[", b"-", b"?", b"x"])) + data[at:]
    return data


FIELDS = [
    "%a",
    "%h",
    "%l",
    "%I",
    "%D",
    "%s",
    "%b",
    "%B",
    "%T",
    "%X",
    "%m",
    "%H",
    "%{jira.request.id}r",
    "%{Referer}i",
    "%{User-Agent}i",
    "%{X-Forwarded-For}i",
    "%{Cookie}i",
    "%{foo}o",
]


@st.composite
def random_pattern(draw: st.DrawFn) -> CompiledPattern:
    fields = draw(st.lists(st.sampled_from(FIELDS), max_size=5))
    user = draw(st.sampled_from(["%u", "%{X-AUSERNAME}o", "%{jira.request.username}r"]))
    target = draw(st.sampled_from(["%r", "%U%q", "%U", '"%r"', '"%m %U%q %H"']))
    parts = [*fields, user, "%t", target]
    order = draw(st.permutations(parts))
    quoted = [
        f'"{p}"' if p.startswith("%{") and draw(st.booleans()) and '"' not in p else p
        for p in order
    ]
    separators = [draw(st.sampled_from([" ", " ", " ", "", " - ", "|", "ms "])) for _ in quoted]
    text = "".join(p + s for p, s in zip(quoted, separators, strict=True)).rstrip()
    try:
        return compile_pattern(text)
    except PatternError:
        return compile_pattern("common")


patterns = st.one_of(
    st.sampled_from([f.compiled() for f in KNOWN_FORMATS]),
    st.sampled_from([compile_pattern("common"), compile_pattern("combined")]),
    random_pattern(),
)

rules_strategy = st.builds(
    CountingRules,
    polling_prefixes=st.one_of(
        st.just(CountingRules().polling_prefixes),
        st.lists(
            st.sampled_from(
                ["/rest/quickreload/latest/", "/jira", "-", "/s/", "/a?b", "/sp ace", "", "/ü"]
            ),
            max_size=3,
        ).map(tuple),
    ),
    excluded_users=st.sampled_from([frozenset(), frozenset({"alice"}), frozenset({"józef"})]),
    context_path=st.sampled_from([None, "/jira", "/", "jira/"]),
    excluded_agent_regex=st.sampled_from([None, None, "curl"]),
)


@st.composite
def block_for(draw: st.DrawFn, pattern: CompiledPattern) -> bytes:
    user_token = user_token_of(pattern)
    count = draw(st.integers(1, 25))
    lines = [draw(mutated(render(draw, pattern, user_token))) for _ in range(count)]
    return b"\n".join(lines) + draw(st.sampled_from([b"\n", b"", b"\r\n"]))


def figures(part: scan.FileScan) -> tuple[object, ...]:
    # Every frame as the pipeline concatenates them: the same columns and types.
    assert all(dict(f.schema) == scan.PAIRS_SCHEMA for f in part.pair_frames)
    pairs = (
        part.pairs.group_by("user", "ts")
        .agg(pl.col("n").sum())
        .sort("user", "ts")
        .select("user", "ts", pl.col("n").cast(pl.UInt32))
    )
    return (part.rows, part.lines, part.malformed, part.malformed_rows, pairs.rows())


def both(
    block: bytes, pattern: CompiledPattern, rules: CountingRules
) -> tuple[tuple[object, ...], tuple[object, ...] | None]:
    reference = figures(scan._scan_block_polars("x", block, pattern, rules))
    plan = fastscan.compile_plan(pattern, rules)
    if plan is None:
        return reference, None
    return reference, figures(scan._scan_block_native("x", block, pattern, rules, plan))


@pytest.mark.usefixtures("native")
@settings(
    max_examples=int(os.environ.get("FLOATSEAT_NATIVE_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), pattern=patterns, rules=rules_strategy)
def test_native_scan_equals_the_polars_path(
    data: st.DataObject, pattern: CompiledPattern, rules: CountingRules
) -> None:
    block = data.draw(block_for(pattern))
    reference, native = both(block, pattern, rules)
    event("native" if native is not None else "Polars only (no plan)")
    plan = fastscan.compile_plan(pattern, rules)
    if plan is not None:
        event(f"extraction {'fused' if plan.fused_extract else 'run'}")
        event(f"polling mode {plan.poll_mode}, from captures {plan.poll_slot >= 0}")
    if native is not None:
        event(f"malformed {'some' if reference[2] else 'none'}")
        event(f"pairs {'some' if reference[4] else 'none'}")
        assert native == reference


@pytest.mark.usefixtures("native")
def test_known_formats_and_default_rules_take_the_native_path() -> None:
    for log_format in KNOWN_FORMATS:
        for rules in (CountingRules(), CountingRules(context_path="/jira")):
            assert fastscan.compile_plan(log_format.compiled(), rules) is not None, log_format


JIRA_LINE = '10.0.0.1 1x1x1 {user} [{time}] "GET {target} HTTP/1.1" 200 5 4 "-" "Mozilla/5.0" "s1"'


def jira(user: str = "ann", time: str = "02/Mar/2026:10:00:00 +0000", target: str = "/b") -> str:
    return JIRA_LINE.format(user=user, time=time, target=target)


@pytest.mark.usefixtures("native")
def test_clean_lines_are_all_decided_natively() -> None:
    from floatseat.logs.formats import FORMATS_BY_NAME

    pattern = FORMATS_BY_NAME["jira"].compiled()
    plan = fastscan.compile_plan(pattern, CountingRules())
    assert plan is not None
    lines = [
        jira(),
        jira("ANN"),
        jira("j\\u00f3zef"),
        jira("-"),
        jira(target="/rest/quickreload/latest/1"),
        jira()[:40],
        "",
    ]
    found = fastscan.scan_native(("\n".join(lines) + "\n").encode(), plan)
    assert found["undecided"] == b""
    assert (found["rows"], found["blank"], found["malformed"]) == (7, 1, 1)
    assert (found["polling"], found["anonymous"], found["counted"]) == (1, 1, 3)
    assert found["malformed_rows"] == [6]
    assert sorted(found["users"]) == ["ANN", "ann", "j\\u00f3zef"]


@pytest.mark.usefixtures("native")
def test_what_the_machine_cannot_decide_goes_to_polars_with_its_line_number() -> None:
    from floatseat.logs.formats import FORMATS_BY_NAME

    pattern = FORMATS_BY_NAME["jira"].compiled()
    lines = [
        jira(),
        jira("józef"),  # non-ASCII: undecided
        jira(time="29/Feb/2025:10:00:00 +0000"),  # no such day: malformed, from Polars
        jira()[:30],
        jira(time="02/Mar/2026:10:00:00 +2400"),  # an offset chrono refuses
    ]
    block = ("\n".join(lines) + "\n").encode()
    reference, native = both(block, pattern, CountingRules())
    assert native == reference
    assert reference[2:4] == (3, [3, 4, 5])


def test_a_malformed_first_line_number_is_the_smallest_of_both_kinds() -> None:
    """The Polars path used to list bad-time rows after the others: now both are sorted."""
    from floatseat.logs.formats import FORMATS_BY_NAME

    pattern = FORMATS_BY_NAME["jira"].compiled()
    lines = [jira(time="29/Feb/2025:10:00:00 +0000"), jira(), jira()[:20]]
    part = scan._scan_block_polars("x", ("\n".join(lines)).encode(), pattern, CountingRules())
    assert part.malformed_rows == [1, 3]


@pytest.mark.usefixtures("native")
@pytest.mark.parametrize(
    ("regex", "line", "expected"),
    [
        (r"^a(?:b|bc)c$", "abcc", 1),  # the first branch fails late: backtrack into the second
        (r"^(?:[^\s]+) (?P<user>\S?x)", "a b", 0),  # \S is not supported: Unsupported below
        (r"^[^\s]+ [0-9]+ms", "a 12ms", 1),
        (r"^(?P<user>.*?) x", "a x x", 1),
        (r"^[^ ]+-[^ ]+$", "a-b-c", 1),  # the first run must give back
        (r"^(?:, ?[^\s,]+)*$", ", a,b, c", 1),
        (r"^\[[^\]]*\]$", "[x]", 1),
    ],
)
def test_the_machine_follows_the_regex_semantics(regex: str, line: str, expected: int) -> None:
    import re

    try:
        program = fastscan.assemble([regex], captures=[True])
    except fastscan.Unsupported:
        assert "\\S" in regex
        return
    assert fastscan._linescan is not None
    result, caps = fastscan._linescan.match(
        line.encode(), program.code, program.sets, program.lits, 0
    )
    assert result == expected == (re.match(regex, line) is not None)
    match = re.match(regex, line)
    if match is not None and "user" in match.groupdict():
        assert line.encode()[caps[0] : caps[1]].decode() == match["user"]


def typical_line(pattern: CompiledPattern, user: str, time: str, target: str) -> str:
    """A well-formed line of `pattern` with these user, time and target."""
    from floatseat.logs.pattern import _tokens

    user_token = user_token_of(pattern)
    out = []
    for kind, text in _tokens(pattern.pattern):
        if kind == "literal":
            out.append(text)
        elif text == user_token:
            out.append(user)
        elif text == "%t":
            out.append(f"[{time}]")
        elif text == "%r":
            out.append(f"GET {target} HTTP/1.1")
        elif text == "%U":
            out.append(target.partition("?")[0])
        elif text == "%q":
            query = target.partition("?")[2]
            out.append("?" + query if query else "")
        else:
            out.append(TYPICAL.get(text, "x1"))
    return "".join(out)


BAD_DATES = [
    "30/Feb/2024:10:00:00 +0000",
    "29/Feb/2025:10:00:00 +0000",
    "31/Nov/2026:10:00:00 +0000",
    "31/Apr/2026:10:00:00 +0000",
    "00/Jan/2026:10:00:00 +0000",
    "32/Jan/2026:10:00:00 +0000",
    "01/Jan/2026:24:00:00 +0000",
    "01/Jan/2026:10:60:00 +0000",
    "01/Jan/2026:10:00:60 +0000",
    "01/Jan/2026:10:00:00 +2400",
    "01/Jan/2026:10:00:00 +0060",
    "01/Jan/0000:10:00:00 +0000",
    "29/Feb/2000:10:00:00 +0000",
    "29/Feb/1900:10:00:00 +0000",
    "01/jan/2026:10:00:00 +0000",
    "1/Jan/2026:10:00:00 +0000",
]


@pytest.mark.usefixtures("native")
@pytest.mark.parametrize("log_format", KNOWN_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("context_path", [None, "/jira"])
def test_dates_that_do_not_exist_are_judged_alike_whatever_the_line(
    log_format: object, context_path: str | None
) -> None:
    pattern = log_format.compiled()  # type: ignore[attr-defined]
    rules = CountingRules(context_path=context_path)
    lines = [
        typical_line(pattern, user, time, target)
        for time in BAD_DATES
        for user in ("ann", "-", "ANN")
        for target in (
            "/browse/A-1",
            "/rest/quickreload/latest/1",
            "/jira/rest/quickreload/latest/",
        )
    ]
    reference, native = both(("\n".join(lines) + "\n").encode(), pattern, rules)
    assert native is not None
    assert native == reference


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=50),
    final_newline=st.booleans(),
    chunk_bytes=st.integers(1, 64),
    buffers=st.integers(1, 4),
)
def test_pooled_blocks_hold_whole_lines_and_join_to_the_input(
    lines: list[bytes], final_newline: bool, chunk_bytes: int, buffers: int
) -> None:
    import io

    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    blocks = [bytes(view) for view in scan.read_pooled(io.BytesIO(data), chunk_bytes, buffers)]
    assert b"".join(blocks) == data
    assert all(block.endswith(b"\n") for block in blocks[:-1])
    assert all(block for block in blocks)
