"""The native fast path of `scan`: the Polars path's own regexes, run by a small C machine.

`compile_plan` turns the regular expressions the Polars path uses for a pattern and counting
rules (`pattern.regex`, the polling-line regex, the extraction regex) into programs for
`_linescan`, a backtracking matcher with the leftmost-first semantics of Rust's regex crate
(the engine inside Polars). Lines the machine reads are ASCII only, so byte classes equal
the Unicode classes there. A regex using a construct this compiler does not know, or rules
the machine does not implement (polling regexes, an excluded-agent regex on a pattern that
logs the agent), give no plan: the whole file then goes the Polars way.

Within a block, every line the machine cannot decide with certainty comes back undecided
and is read by the Polars path, so the result is the Polars path's, line for line.
"""

from __future__ import annotations

import array
import os
from dataclasses import dataclass
from typing import Any

from floatseat.domain.activity import CountingRules
from floatseat.logs.pattern import CLF_TIME, CompiledPattern

ABI = 2  # the version of _linescan.c this module speaks; see ABI there
_STALE = ""
try:
    from floatseat.analysis import _linescan
except ImportError:  # built without a compiler: the Polars path does everything
    _linescan = None  # type: ignore[assignment]
else:
    if getattr(_linescan, "ABI", None) != ABI:  # built from older sources: rebuild it
        _STALE = f" (built from other sources: ABI {getattr(_linescan, 'ABI', '?')}, not {ABI})"
        _linescan = None  # type: ignore[assignment]

ENGINE_ENV = "FLOATSEAT_SCAN_ENGINE"  # 'polars' forces the reference path

# Instruction codes; keep in step with _linescan.c.
MATCH, END, LIT, SET, RUN, LAZY, ESCRUN, SPLIT, DSPLIT, JMP, SAVE, TIME = range(12)
END_SYMBOL = 256  # the end of the line, as a symbol of FIRST sets
SLOTS = {"user": 0, "time": 2, "target": 4, "path": 6, "query": 8}
POLL_NONE, POLL_PROGRAM, POLL_TARGET = 0, 1, 2

_TIME_MARK = "\x00"  # stands for CLF_TIME while parsing
_WS = frozenset({9, 10, 11, 12, 13, 32})
_ALL = frozenset(range(256))
_META = set("\\.^$|?*+()[]{}")


class Unsupported(Exception):
    """The regex uses something the machine does not implement."""


def native_available() -> bool:
    return _linescan is not None and os.environ.get(ENGINE_ENV, "") != "polars"


def engine_name() -> str:
    """Which path `scan` takes by default: 'native' or 'polars' (and why)."""
    if _linescan is None:
        if _STALE:
            return "polars (the C extension is stale" + _STALE + "; pip install -e . rebuilds it)"
        return "polars (the C extension floatseat.analysis._linescan is not built)"
    if os.environ.get(ENGINE_ENV, "") == "polars":
        return f"polars ({ENGINE_ENV}=polars)"
    return "native (C extension, Polars for undecided lines)"


# ---------- regex parsing: the subset pattern.py writes ----------

Node = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            raise Unsupported("unexpected end")
        self.at += 1
        return char

    def parse(self) -> Node:
        node = self.alternation()
        if self.at != len(self.text):
            raise Unsupported(f"unexpected {self.peek()!r}")
        return node

    def alternation(self) -> Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.at += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self) -> Node:
        items: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            item = self.quantified(self.atom())
            if item[0] == "lit" and items and items[-1][0] == "lit":
                items[-1] = ("lit", items[-1][1] + item[1])  # one literal, one comparison
            else:
                items.append(item)
        return ("cat", items)

    def quantified(self, atom: Node) -> Node:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.at += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{":
            close = self.text.find("}", self.at)
            if close < 0:
                raise Unsupported("open brace")
            body = self.text[self.at + 1 : close]
            self.at = close + 1
            low_text, comma, high_text = body.partition(",")
            if not low_text.isdigit() or (high_text and not high_text.isdigit()):
                raise Unsupported("repetition")
            low = int(low_text)
            high = int(high_text) if high_text else (None if comma else low)
            if high is not None and (high < low or high > 64):
                raise Unsupported("repetition bounds")
        else:
            return atom
        greedy = True
        if self.peek() == "?":
            self.at += 1
            greedy = False
        if self.peek() in ("*", "+", "?", "{"):
            raise Unsupported("stacked quantifiers")
        if atom[0] in ("end", "time"):
            raise Unsupported("quantified assertion")
        return ("rep", atom, low, high, greedy)

    def atom(self) -> Node:
        char = self.take()
        if char == "(":
            name = None
            if self.text.startswith("?:", self.at):
                self.at += 2
            elif self.text.startswith("?P<", self.at):
                close = self.text.find(">", self.at)
                name = self.text[self.at + 3 : close]
                self.at = close + 1
            elif self.peek() == "?":
                raise Unsupported("group flags")
            inner = self.alternation()
            if self.take() != ")":
                raise Unsupported("unclosed group")
            return ("group", name, inner)
        if char == "[":
            return ("set", self.char_class())
        if char == ".":
            return ("set", _ALL - {10})
        if char == "$":
            return ("end",)
        if char == _TIME_MARK:
            return ("time",)
        if char == "\\":
            return self.escape(in_class=False)
        if char in _META or ord(char) >= 128:
            raise Unsupported(f"metacharacter {char!r}")
        return ("lit", char.encode())

    def escape(self, *, in_class: bool) -> Node:
        char = self.take()
        if char == "s":
            return ("set", _WS)
        simple = {"r": b"\r", "n": b"\n", "t": b"\t"}
        if char in simple:
            return ("lit", simple[char])
        if char in _META or (in_class and char in '-"&~^ ') or char == '"':
            return ("lit", char.encode())
        raise Unsupported(f"escape \\{char}")

    def char_class(self) -> frozenset[int]:
        negate = False
        if self.peek() == "^":
            negate = True
            self.at += 1
        members: set[int] = set()
        first = True
        while True:
            char = self.take()
            if char == "]" and not first:
                break
            first = False
            if char == "[" or (char in "&-~" and self.peek() == char):
                raise Unsupported("nested class or set operation")
            if char == "]":
                raise Unsupported("leading ] in a class")
            if char == "\\":
                escaped = self.escape(in_class=True)
                if escaped[0] == "set":
                    members |= escaped[1]
                    continue
                low = escaped[1][0]
            elif ord(char) >= 128:
                raise Unsupported("non-ASCII in a class")
            else:
                low = ord(char)
            if self.peek() == "-" and self.text[self.at + 1 : self.at + 2] not in ("]", ""):
                self.at += 1
                high_char = self.take()
                if high_char == "\\":
                    escaped = self.escape(in_class=True)
                    if escaped[0] != "lit":
                        raise Unsupported("class range to a class")
                    high = escaped[1][0]
                elif ord(high_char) >= 128 or high_char == "[":
                    raise Unsupported("range end")
                else:
                    high = ord(high_char)
                if high < low:
                    raise Unsupported("empty range")
                members |= set(range(low, high + 1))
            else:
                members.add(low)
        return frozenset(_ALL - members if negate else members)


def parse_regex(regex: str) -> Node:
    """The AST of an anchored regex of pattern.py (CLF_TIME read as one 'time' node)."""
    if _TIME_MARK in regex or not regex.startswith("^"):
        raise Unsupported("not an anchored pattern regex")
    return _Parser(regex[1:].replace(CLF_TIME, _TIME_MARK)).parse()


# ---------- FIRST sets and code generation ----------


def first(node: Node, follow: frozenset[int]) -> frozenset[int]:
    """The symbols (bytes, END_SYMBOL) that can come first when `node` is entered."""
    kind = node[0]
    if kind == "lit":
        return frozenset({node[1][0]}) if node[1] else follow
    if kind == "set":
        return frozenset(node[1])
    if kind == "end":
        return frozenset({END_SYMBOL})
    if kind == "time":
        return frozenset(range(ord("0"), ord("9") + 1))
    if kind == "group":
        return first(node[2], follow)
    if kind == "cat":
        result = follow
        for item in reversed(node[1]):
            result = first(item, result)
        return result
    if kind == "alt":
        return frozenset().union(*(first(b, follow) for b in node[1]))
    if kind == "rep":
        body = first(node[1], follow | first(node[1], follow))
        return body | follow if node[2] == 0 else body
    raise AssertionError(kind)


def nullable(node: Node) -> bool:
    kind = node[0]
    if kind == "lit":
        return not node[1]
    if kind in ("set", "time"):
        return False
    if kind == "end":
        return True
    if kind == "group":
        return nullable(node[2])
    if kind == "cat":
        return all(nullable(i) for i in node[1])
    if kind == "alt":
        return any(nullable(b) for b in node[1])
    if kind == "rep":
        return node[2] == 0 or nullable(node[1])
    raise AssertionError(kind)


def _single_set(node: Node) -> frozenset[int] | None:
    while node[0] == "group" and node[1] is None:
        node = node[2]
    if node[0] == "cat" and len(node[1]) == 1:
        return _single_set(node[1][0])
    if node[0] == "set":
        return frozenset(node[1])
    if node[0] == "lit" and len(node[1]) == 1:
        return frozenset({node[1][0]})
    return None


def _escaped_text(node: Node) -> frozenset[int] | None:
    """The plain set A when `node` is (?:[A]|\\\\.) with A free of the backslash."""
    while node[0] == "group" and node[1] is None:
        node = node[2]
    if node[0] != "alt" or len(node[1]) != 2:
        return None
    plain = _single_set(node[1][0])
    escape = node[1][1]
    if plain is None or 92 in plain or escape[0] != "cat" or len(escape[1]) != 2:
        return None
    backslash, anything = escape[1]
    if backslash != ("lit", b"\\") or _single_set(anything) != _ALL - {10}:
        return None
    return plain


def _leading_literal(branch: Node) -> bytes:
    if branch[0] == "cat" and branch[1] and branch[1][0][0] == "lit":
        return bytes(branch[1][0][1])
    return b""


def _factor(branches: list[Node]) -> list[Node]:
    """Adjacent branches opening with the same literal share it: a|ab -> a(?:|b).

    The order of the branches, and so leftmost-first priority, is kept; only a common
    prefix is compared once, so that the alternatives after it can often be told apart by
    their next byte.
    """
    out: list[Node] = []
    index = 0
    while index < len(branches):
        lead = _leading_literal(branches[index])
        end = index + 1
        while lead and end < len(branches) and _leading_literal(branches[end])[:1] == lead[:1]:
            end += 1
        if end - index < 2:
            out.append(branches[index])
            index = end
            continue
        group = branches[index:end]
        common = lead
        for branch in group[1:]:
            other = _leading_literal(branch)
            size = 0
            while size < min(len(common), len(other)) and common[size] == other[size]:
                size += 1
            common = common[:size]
        rests: list[Node] = []
        for branch in group:
            head = _leading_literal(branch)[len(common) :]
            items = ([("lit", head)] if head else []) + list(branch[1][1:])
            rests.append(("cat", items))
        out.append(("cat", [("lit", common), ("alt", rests)]))
        index = end
    return out


class _Emitter:
    def __init__(self, *, captures: bool) -> None:
        self.code: list[list[int]] = []
        self.sets: dict[frozenset[int], int] = {}
        self.lits = bytearray()
        self.captures = captures
        self.saves: list[int] = []  # instruction indexes of SAVEs
        self.backtracks = False

    def op(self, *words: int) -> int:
        self.code.append([*words, 0, 0, 0, 0][:5] + [-1, -1, 0, 0])  # see WORDS
        return len(self.code) - 1

    def set_index(self, members: frozenset[int]) -> int:
        if members not in self.sets:
            self.sets[members] = len(self.sets)
        return self.sets[members]

    def emit(self, node: Node, follow: frozenset[int]) -> None:
        kind = node[0]
        if kind == "lit":
            if node[1]:
                offset = len(self.lits)
                self.lits += node[1]
                self.op(LIT, offset, len(node[1]))
        elif kind == "set":
            self.op(SET, self.set_index(frozenset(node[1])))
        elif kind == "end":
            self.op(END)
        elif kind == "time":
            self.op(TIME)
        elif kind == "group":
            slot = SLOTS.get(node[1]) if self.captures and node[1] else None
            if slot is not None:
                self.saves.append(self.op(SAVE, slot))
            self.emit(node[2], follow)
            if slot is not None:
                self.saves.append(self.op(SAVE, slot + 1))
        elif kind == "cat":
            if not node[1]:
                return
            follows = [follow]
            for item in reversed(node[1][1:]):
                follows.append(first(item, follows[-1]))
            for item, after in zip(node[1], reversed(follows), strict=True):
                self.emit(item, after)
        elif kind == "alt":
            self.emit_alt(node[1], follow)
        elif kind == "rep":
            self.emit_rep(node, follow)
        else:
            raise AssertionError(kind)

    def emit_alt(self, branches: list[Node], follow: frozenset[int]) -> None:
        branches = _factor(branches)
        if len(branches) == 1:
            self.emit(branches[0], follow)
            return
        firsts = [first(b, follow) for b in branches]
        disjoint = all(
            not (firsts[i] & firsts[j])
            for i in range(len(branches))
            for j in range(i + 1, len(branches))
        )
        jumps = []
        for index, branch in enumerate(branches):
            if index < len(branches) - 1:
                if disjoint:
                    split = self.op(DSPLIT, self.set_index(firsts[index]), 0, 0)
                    self.code[split][2] = split + 1
                else:
                    split = self.op(SPLIT, 0, 0)
                    self.code[split][1] = split + 1
                    self.backtracks = True
            self.emit(branch, follow)
            jumps.append(self.op(JMP, 0))
            if index < len(branches) - 1:
                slot = 3 if disjoint else 2
                self.code[split][slot] = len(self.code)
        for jump in jumps:
            self.code[jump][1] = len(self.code)

    def emit_rep(self, node: Node, follow: frozenset[int]) -> None:
        _, body, low, high, greedy = node
        if nullable(body):
            raise Unsupported("repetition of something that may be empty")
        members = _single_set(body)
        if members is not None:
            possessive = greedy and not (members & follow)
            if not possessive:
                self.backtracks = True
            code = RUN if greedy else LAZY
            self.op(code, self.set_index(members), low, -1 if high is None else high, possessive)
            return
        plain = _escaped_text(body)
        if plain is not None and greedy and low == 0 and high is None:
            if not ((plain | {92}) & follow):
                self.op(ESCRUN, self.set_index(plain))
                return
        body_first = first(body, _ALL)
        more = body_first | follow  # after a copy that another copy may follow

        def after(copy: int) -> frozenset[int]:
            return more if high is None or copy < high - 1 else follow

        for copy in range(low):
            self.emit(body, after(copy))
        decide = not (body_first & follow)
        if high is None:
            loop = len(self.code)
            split = self.emit_choice(decide, greedy, body_first)
            self.emit(body, more)
            self.op(JMP, loop)
            self.patch_exit(split, decide, greedy)
        else:
            splits = []
            for copy in range(low, high):
                splits.append(self.emit_choice(decide, greedy, body_first))
                self.emit(body, after(copy))
            for split in splits:
                self.patch_exit(split, decide, greedy)

    def emit_choice(self, decide: bool, greedy: bool, body_first: frozenset[int]) -> int:
        """A branch into the body (next instruction) or out (patched later)."""
        if decide:
            split = self.op(DSPLIT, self.set_index(body_first), 0, 0)
            self.code[split][2] = split + 1
            return split
        self.backtracks = True
        split = self.op(SPLIT, 0, 0)
        self.code[split][1 if greedy else 2] = split + 1
        return split

    def patch_exit(self, split: int, decide: bool, greedy: bool) -> None:
        if decide:
            self.code[split][3] = len(self.code)
        else:
            self.code[split][2 if greedy else 1] = len(self.code)


@dataclass(frozen=True)
class Program:
    code: bytes
    sets: bytes
    lits: bytes
    entries: tuple[int, ...]
    deterministic: tuple[bool, ...]  # per entry: no choice is ever taken back


def assemble(regexes: list[str], *, captures: list[bool]) -> Program:
    """One shared program holding each regex (anchored, ending in MATCH) at its entry."""
    code: list[list[int]] = []
    sets: dict[frozenset[int], int] = {}
    lits = bytearray()
    entries = []
    deterministic = []
    for regex, capture in zip(regexes, captures, strict=True):
        emitter = _Emitter(captures=capture)
        emitter.sets = sets
        emitter.lits = lits
        emitter.emit(parse_regex(regex), frozenset(_ALL | {END_SYMBOL}))
        emitter.op(MATCH)
        for save in emitter.saves:  # a plain store where nothing can backtrack past it
            emitter.code[save][2] = 0 if emitter.backtracks else 1
        deterministic.append(not emitter.backtracks)
        base = len(code)
        entries.append(base)
        for instruction in _fold(emitter.code, saves=not emitter.backtracks):
            shifted = list(instruction)
            if instruction[0] in (SPLIT, JMP):
                shifted[1] += base
            if instruction[0] == SPLIT:
                shifted[2] += base
            if instruction[0] == DSPLIT:
                shifted[2] += base
                shifted[3] += base
            code.append(shifted)
    table = bytearray(SET_BYTES * len(sets))
    for members, index in sets.items():
        row = SET_BYTES * index
        for symbol in members:
            table[row + symbol] = 1
        table[row + 257 : row + SET_BYTES] = _search_hint(members)
    words = array.array("i", [w for instruction in code for w in instruction])
    return Program(words.tobytes(), bytes(table), bytes(lits), tuple(entries), tuple(deterministic))


# Instructions that may carry a capture before and after them and a literal after them.
_CARRIERS = (SET, RUN, ESCRUN, TIME)
PRE, POST, LIT_OFFSET, LIT_LENGTH = 5, 6, 7, 8  # their words (see WORDS in the C code)


def _targets(code: list[list[int]]) -> set[int]:
    found = {0}
    for instruction in code:
        if instruction[0] in (SPLIT, JMP):
            found.add(instruction[1])
        if instruction[0] == SPLIT:
            found.add(instruction[2])
        if instruction[0] == DSPLIT:
            found.update(instruction[2:4])
    return found


def _carrier(instruction: list[int]) -> bool:
    return instruction[0] in _CARRIERS and (instruction[0] != RUN or instruction[4] == 1)


def _fold(code: list[list[int]], *, saves: bool) -> list[list[int]]:
    """Fewer dispatches: a literal (and plain captures) joins the instruction before it.

    Only straight-line neighbours are joined: nothing may jump to the second one. Captures
    move only when they are plain stores (`saves`), which run in order anyway; a possessive
    run, a set, a time or an escaped text then a literal is the same test either way.
    """
    code = [list(i) for i in code]
    while True:
        targets = _targets(code)
        for index in range(len(code) - 1):
            here, after = code[index], code[index + 1]
            if index + 1 in targets:
                continue
            if saves and here[0] == SAVE and _carrier(after) and after[PRE] < 0:
                after[PRE] = here[1]
            elif (
                saves
                and _carrier(here)
                and after[0] == SAVE
                and here[POST] < 0
                and here[LIT_LENGTH] == 0
            ):
                here[POST] = after[1]
            elif _carrier(here) and after[0] == LIT and here[LIT_LENGTH] == 0:
                here[LIT_OFFSET], here[LIT_LENGTH] = after[1], after[2]
            else:
                continue
            gone = index if here[0] == SAVE else index + 1
            break
        else:
            return code
        del code[gone]
        for instruction in code:  # every jump past the removed instruction moves back
            for word in ((1,) if instruction[0] == JMP else ()) + (
                (1, 2) if instruction[0] == SPLIT else ((2, 3) if instruction[0] == DSPLIT else ())
            ):
                if instruction[word] > gone:
                    instruction[word] -= 1


def _range_and_three(stops: set[int]) -> bytes | None:
    """Hint 3: `stops` as one range of bytes plus at most three single bytes, if it is."""
    if not stops:
        return None
    ordered = sorted(stops)
    best = (ordered[0], ordered[0])  # the longest run of consecutive bytes
    start = ordered[0]
    for previous, byte in zip(ordered, ordered[1:], strict=False):
        if byte != previous + 1:
            start = byte
        if byte - start > best[1] - best[0]:
            best = (start, byte)
    rest = [b for b in ordered if not best[0] <= b <= best[1]]
    if len(rest) > 3:
        return None
    rest += [best[0]] * (3 - len(rest))
    return bytes([3, best[0], best[1] - best[0], *rest, 0])


SET_BYTES = 264  # per set: 257 members (END_SYMBOL last), then the search hint


def _search_hint(members: frozenset[int]) -> bytes:
    """How to find a set's first non-member 16 bytes at a time (see SET_BYTES in the C code).

    Lines reach the machine only when ASCII, so only ASCII non-members need finding.
    """
    ascii_members = sorted(b for b in members if b < 128)
    if ascii_members and ascii_members[-1] - ascii_members[0] + 1 == len(ascii_members):
        smallest, largest = ascii_members[0], ascii_members[-1]
        if largest - smallest < 127:
            return bytes([2, smallest, largest - smallest, 0, 0, 0, 0])
    stops = {b for b in range(128) if b not in members}
    exact = _range_and_three(stops)
    if exact is not None:
        return exact
    low = {b for b in stops if b <= 0x20}
    extra = sorted(stops - set(range(0x21)))
    if len(extra) > 3 or not stops:
        return bytes(7)
    extra += [extra[0] if extra else 0x20] * (3 - len(extra))
    return bytes([1, 1 if low else 0, *extra, 0, 0])


# ---------- the plan for one (pattern, rules) ----------


@dataclass(frozen=True)
class Plan:
    program: Program
    validate: int
    polling: int
    extract: int
    poll_mode: int
    target_slot: int
    prefixes: tuple[bytes, ...]
    context: bytes | None
    # Shortcuts, each taken only where it gives the same answer as the program it skips:
    fused_extract: bool  # the captures of `validate` are those `extract` would give
    poll_slot: int  # the capture where the polling regex's prefixes are tried; -1: none
    poll_prefixes: tuple[bytes, ...]  # the prefixes the polling-line regex tries


def compile_plan(pattern: CompiledPattern, rules: CountingRules) -> Plan | None:
    """The native plan mirroring `scan._classified`; None where only Polars can do it."""
    if not native_available():
        return None
    needs_agent = rules.excluded_agent_regex is not None and pattern.has_agent
    if needs_agent or rules.polling_regexes:
        return None
    polling_line = None
    if rules.context_path in (None, "/"):
        polling_line = pattern.polling_line_regex(rules.polling_prefixes)
    if polling_line is not None:
        extract = pattern.user_time_regex
        poll_mode = POLL_NONE if polling_line == "$^" else POLL_PROGRAM
    else:
        extract = pattern.extract_regex
        poll_mode = POLL_TARGET
    regexes = [pattern.regex, extract]
    if poll_mode == POLL_PROGRAM:
        assert polling_line is not None
        regexes.append(polling_line)
    try:
        program = assemble(regexes, captures=[True, True, False][: len(regexes)])
    except Unsupported:
        return None
    context = None
    if rules.context_path not in (None, "/") and poll_mode == POLL_TARGET:
        context = (rules.context_path or "").encode()
    target_slot = SLOTS["target"] if pattern.target_groups == ("target",) else SLOTS["path"]
    # A deterministic regex has at most one way to match. The extraction regex is the start
    # of the validating one (time loosened), so on a valid line the start of the valid
    # match is its match: same captures. Likewise the polling regex's head (up to where
    # the target starts) ends where the valid match's target starts; its prefixes are then
    # tried right there, on the raw line, as the regex does.
    poll_slot = -1
    head = pattern.target_prefix_regex
    if poll_mode == POLL_PROGRAM and head is not None and _deterministic(head):
        poll_slot = target_slot
    usable = [p for p in rules.polling_prefixes if not any(c.isspace() or c == '"' for c in p)]
    return Plan(
        program=program,
        validate=program.entries[0],
        extract=program.entries[1],
        polling=program.entries[2] if poll_mode == POLL_PROGRAM else -1,
        poll_mode=poll_mode,
        target_slot=target_slot,
        prefixes=tuple(p.encode() for p in rules.polling_prefixes),
        context=context,
        fused_extract=program.deterministic[1],
        poll_slot=poll_slot,
        poll_prefixes=tuple(p.encode() for p in usable),
    )


def _deterministic(regex: str) -> bool:
    try:
        return assemble([regex], captures=[False]).deterministic[0]
    except Unsupported:
        return False


def scan_native(block: bytes | memoryview, plan: Plan) -> dict[str, Any]:
    assert _linescan is not None
    p = plan.program
    return _linescan.scan(
        block,
        p.code,
        p.sets,
        p.lits,
        plan.validate,
        plan.polling,
        plan.extract,
        plan.poll_mode,
        plan.target_slot,
        plan.prefixes,
        plan.context,
        plan.fused_extract,
        plan.poll_slot,
        plan.poll_prefixes,
    )
