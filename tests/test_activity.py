"""The counting rules: the domain's plain-Python version and the scan's Polars expression agree."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from floatseat.analysis.scan import _is_polling
from floatseat.domain.activity import CountingRules

PIECES = ["/jira", "/rest/quickreload/latest/", "/browse/A-1", "?x=1", "/", "", "/jira2", "2"]
targets = st.lists(st.sampled_from(PIECES), max_size=4).map("".join)


@given(
    target_list=st.lists(targets, min_size=1, max_size=20),
    context_path=st.sampled_from([None, "/", "/jira", "jira/"]),
    extra_prefix=st.sampled_from([(), ("/browse/",), ("/jira/browse",), ("/2",)]),
)
def test_the_polars_expression_matches_the_domain_rules(
    target_list: list[str], context_path: str | None, extra_prefix: tuple[str, ...]
) -> None:
    rules = CountingRules(
        polling_prefixes=CountingRules().polling_prefixes + extra_prefix,
        context_path=context_path,
    )
    frame = pl.DataFrame({"target": target_list})
    fast = frame.select(_is_polling(pl.col("target"), rules).alias("p"))["p"].to_list()
    assert fast == [rules.is_polling(t) for t in target_list]


def test_a_request_counts_only_for_a_named_unexcluded_user_off_the_polling_list() -> None:
    rules = CountingRules(excluded_users=frozenset({"svc"}), excluded_agent_regex="^curl")
    assert rules.counts("Ann", "/browse/A-1", "Mozilla/5.0")
    assert not rules.counts(None, "/browse/A-1", "Mozilla/5.0")
    assert not rules.counts("SVC", "/browse/A-1", "Mozilla/5.0")
    assert not rules.counts("ann", "/browse/A-1", "curl/8")
    assert not rules.counts("ann", "/rest/quickreload/latest/1?since=2", "Mozilla/5.0")


def test_the_context_path_is_stripped_only_at_a_path_boundary() -> None:
    rules = CountingRules(context_path="jira/")
    assert rules.strip_context("/jira/browse/A") == "/browse/A"
    assert rules.strip_context("/jira?x=1") == "/?x=1"
    assert rules.strip_context("/jira") == "/"
    assert rules.strip_context("/jira2/browse") == "/jira2/browse"
