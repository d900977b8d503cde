"""schemathesis against the web side's OpenAPI schema: no input gets a 500, and every
mutating operation refuses a caller without credentials.

The app runs in process (ASGI) on a real SQLite ledger, the real `Runtime` and a
`FakeDirectory`. Authenticated calls carry an admin API token, so every operation is reached
past its auth; the budget is small (a few dozen examples per operation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi import FastAPI  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from floatseat.directory.fake import FakeDirectory  # noqa: E402
from floatseat.domain.policy import DirectoryChanged, PolicySettings  # noqa: E402
from floatseat.service.bootstrap import Services, bootstrap  # noqa: E402
from floatseat.service.runtime import Runtime  # noqa: E402
from floatseat.web.app import create_app  # noqa: E402
from floatseat.web.settings import WebSettings  # noqa: E402
from floatseat.web.store import Role, WebStore  # noqa: E402

USERS = ("ann", "bob", "carl", "dora", "eve")
POLICY = PolicySettings(
    idle_timeout_s=600, min_hold_s=60, preempt=False, warn_before_s=0, reserve=0
)
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
EXAMPLES = 40  # per operation; about 20 operations


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    fake = FakeDirectory(3, groups={"IUM_Enabled": set(), "IUM_Disabled": set(USERS)})
    services: Services = bootstrap(f"sqlite:///{tmp / 'ledger.db'}", POLICY, fake)
    runtime = Runtime(ledger=services.ledger, engine=services.engine, policy_settings=POLICY)
    runtime.submit(DirectoryChanged(runtime.now(), fake.figures()))
    web = WebSettings(
        secret_key="s" * 40,
        activity_hmac_key="k" * 40,
        product_url="https://confluence.example.com/",
    )
    app = create_app(runtime, web_settings=web, announce=lambda _link: None)
    token = WebStore(services.ledger.engine).add_token("fuzz", Role.ADMIN, "test", int(time.time()))
    try:
        yield app, token[1]
    finally:
        services.close()


@pytest.fixture(scope="module")
def api_schema(served: tuple[FastAPI, str]) -> object:
    return schemathesis.openapi.from_asgi("/openapi.json", served[0])


@pytest.fixture(scope="module")
def admin_token(served: tuple[FastAPI, str]) -> str:
    return served[1]


def operations(api_schema: object) -> list[object]:
    return [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[attr-defined]


# schemathesis's own pytest integration (`schemathesis.pytest.from_fixture`) fails on pytest
# 9 (it reads `request.node._nodeid`), so each operation's strategy is driven by hypothesis
# here, with the same check (`not_a_server_error`, as a status code) and an unauthenticated
# replay of every mutating case.
def test_no_input_gets_a_server_error_and_mutations_need_auth(
    api_schema: object, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    failures: list[str] = []
    for operation in operations(api_schema):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        @given(case=operation.as_strategy())  # type: ignore[attr-defined]
        def check(case: Any) -> None:
            response = case.call(headers=auth)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} "
                    f"{case.path_parameters} {case.query} {case.body!r:.200}"
                )
            if case.method.upper() in MUTATING:
                anonymous = case.call()
                if anonymous.status_code not in (401, 403):
                    failures.append(
                        f"anonymous {case.method} {case.formatted_path}: "
                        f"{anonymous.status_code} {case.body!r:.200}"
                    )

        check()
    assert not failures, "\n".join(dict.fromkeys(failures))


def test_the_schema_lists_the_mutating_operations(api_schema: object) -> None:
    found = {(op.method.upper(), op.path) for op in operations(api_schema)}  # type: ignore[attr-defined]
    mutating = {op for op in found if op[0] in MUTATING}
    assert ("POST", "/api/v1/activity") in mutating
    assert ("PUT", "/api/v1/policy") in mutating
    assert len(mutating) >= 10
