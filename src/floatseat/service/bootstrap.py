"""The composition root of the seat engine: the one place that picks the adapters.

Tests call `bootstrap` with a `FakeDirectory` and a SQLite file. `floatseat serve` calls
`build_service(settings, connect_directory(settings))`, which wires the same engine to the
feeds, the outbox, the reconciler and the loops; tests call it with a `FakeDirectory` or the
simulator's connector and their own clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from floatseat.directory.port import DEFAULT_GROUPS, Directory, ManagedDirectory, PoolGroups
from floatseat.domain.policy import PolicySettings, SettingsError
from floatseat.service.engine import SeatEngine
from floatseat.service.feeds import Feeds
from floatseat.service.outbox import DEFAULT_OUTBOX, OutboxExecutor, OutboxSettings, ShadowOutbox
from floatseat.service.ports import Leadership, SoloLeadership
from floatseat.service.reconcile import Reconciler, ReconcileSettings
from floatseat.service.runner import ActivityLoop, DirectoryWorker, Service
from floatseat.service.runtime import Runtime, with_overrides
from floatseat.service.settings import ServeSettings
from floatseat.store.inbox import Inbox
from floatseat.store.ledger import SqlLedger

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The engine's parts, wired to one ledger."""

    ledger: SqlLedger
    engine: SeatEngine
    outbox: OutboxExecutor

    def close(self) -> None:
        self.ledger.close()


def bootstrap(
    database_url: str | sa.URL,
    settings: PolicySettings,
    directory: Directory,
    *,
    groups: PoolGroups = DEFAULT_GROUPS,
    outbox: OutboxSettings = DEFAULT_OUTBOX,
    migrate: bool = True,
) -> Services:
    """Open (and by default migrate) the ledger and wire the engine and the outbox to it."""
    ledger = SqlLedger.open(database_url, migrate=migrate)
    return Services(
        ledger=ledger,
        engine=SeatEngine(ledger, settings),
        outbox=OutboxExecutor(ledger, directory, groups, outbox),
    )


@dataclass
class Served:
    """Everything `floatseat serve` runs: the runtime (for the web side) and its loops."""

    services: Services
    runtime: Runtime
    service: Service
    settings: ServeSettings
    directory: ManagedDirectory

    def start(self) -> None:
        self.service.start()

    def stop(self) -> None:
        """Stop the loops (positions saved), then close the ledger and the directory."""
        self.service.stop()
        self.close()

    def close(self) -> None:
        # Its session holds the lock on a connection of its own, which closing the ledger's
        # pool would leave open (the service's stop has resigned already: then a no-op).
        self.runtime.leadership.resign(calls_over=not self.service.alive())
        self.services.close()
        close = getattr(self.directory, "close", None)
        if callable(close):
            close()


def connect_directory(settings: ServeSettings) -> ManagedDirectory:
    """The product's connector, with the credentials from the environment or files."""
    from floatseat.directory.http import BasicCredentials, Credentials, PersonalAccessToken

    if not settings.base_url:
        raise SettingsError("base_url is not set (FLOATSEAT_BASE_URL or base_url in the config)")
    token = settings.secret("token")
    credentials: Credentials
    if token is not None:
        credentials = PersonalAccessToken(token)
    elif settings.username is not None:
        password = settings.secret("password")
        if password is None:
            raise SettingsError(
                f"no password for {settings.username}: set FLOATSEAT_PASSWORD or password_file"
            )
        credentials = BasicCredentials(settings.username, password)
    else:
        raise SettingsError("set username (password in FLOATSEAT_PASSWORD) or FLOATSEAT_TOKEN")
    from floatseat.directory.http import call_timeout

    timeout = call_timeout(settings.directory_timeout_s)
    if settings.product == "confluence":
        from floatseat.directory.confluence import ConfluenceDirectory

        return ConfluenceDirectory.connect(
            settings.base_url, credentials, groups=settings.groups, timeout=timeout
        )
    from floatseat.directory.jira import JiraDirectory

    return JiraDirectory.connect(
        settings.base_url, credentials, groups=settings.groups, timeout=timeout
    )


def build_service(
    settings: ServeSettings,
    directory: ManagedDirectory,
    *,
    clock: Callable[[], float] = time.time,
    outbox: OutboxSettings | None = None,
) -> Served:
    """Wire `floatseat serve`: the ledger (migrated), the engine, the feeds (resumed from the
    positions saved in the ledger), the outbox (a shadow one with `settings.shadow`), the
    reconciler and both loops. Nothing runs until `start()`."""
    if settings.database_url is None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    policy = settings.policy_settings()
    if outbox is None:
        outbox = OutboxSettings(
            lease_s=settings.outbox_lease_s, backoff_base_s=settings.outbox_backoff_base_s
        )
    services = bootstrap(
        settings.ledger_url(), policy, directory, groups=settings.groups, outbox=outbox
    )
    overrides = services.ledger.policy_overrides()
    # The admin's changes made on the dashboard win over the config file (docs/serve.md).
    base = policy
    if overrides:
        policy, notes = with_overrides(base, overrides)
        for note in notes:
            (log.warning if note.startswith("ignored") else log.info)("policy: %s", note)
        services.engine.use_settings(policy)

    def feeds_from_ledger() -> Feeds:  # where the last leader (or this one) stopped reading
        with services.ledger.transaction() as tx:
            saved = tx.feed_positions()
        return Feeds(settings, saved, now=int(clock()))

    feeds = feeds_from_ledger()
    runtime = Runtime(
        ledger=services.ledger,
        engine=services.engine,
        policy_settings=policy,
        base_policy=base,
        product=settings.product,
        shadow=settings.shadow,
        clock=clock,
        health=feeds.health,
        settings=settings,
    )
    leadership, inbox = _cluster(settings, services.ledger, directory)
    runtime.leadership, runtime.inbox = leadership, inbox
    runtime.forward_wait_s = settings.forward_wait_s
    executor: OutboxExecutor | ShadowOutbox = (
        ShadowOutbox(services.ledger, outbox) if settings.shadow else services.outbox
    )
    reconciler = Reconciler(
        runtime,
        directory,
        ReconcileSettings(
            groups=settings.groups,
            users_group=settings.users_group,
            excluded=frozenset(settings.excluded_users),
            repair=not settings.shadow,
        ),
    )
    activity = ActivityLoop(
        runtime,
        feeds,
        coalesce_s=settings.coalesce_s,
        stall_check_interval_s=settings.stall_check_interval_s,
    )
    activity.inbox = inbox
    runtime.feed_lag = lambda: activity.feeds.lag(int(clock()))

    worker = DirectoryWorker(
        runtime, executor, reconciler, reconcile_interval_s=settings.reconcile_interval_s
    )
    service = Service(
        runtime,
        activity,
        worker,
        poll_interval_s=settings.poll_interval_s,
        outbox_interval_s=settings.outbox_interval_s,
        heartbeat_s=settings.ha_heartbeat_s,
        clock=clock,
        feeds_factory=feeds_from_ledger,
    )
    return Served(services, runtime, service, settings, directory)


def _cluster(
    settings: ServeSettings, ledger: SqlLedger, directory: ManagedDirectory
) -> tuple[Leadership, Inbox]:
    """The leadership (elected on PostgreSQL, solo on SQLite) and the activity inbox. On
    PostgreSQL every directory call of this instance is fenced by its leadership."""
    inbox = Inbox(ledger.engine)
    if ledger.engine.dialect.name != "postgresql":
        return SoloLeadership(), inbox
    from floatseat.directory.http import AtlassianHttp
    from floatseat.store.leadership import PostgresLeadership

    leadership = PostgresLeadership(
        ledger.engine,
        settings.instance_name,
        lease_s=settings.ha_lease_s,
        leader_timeout_s=settings.ha_leader_timeout_s,
        takeover_grace_s=settings.takeover_grace_s,
    )
    http = getattr(directory, "http", None)
    if not isinstance(http, AtlassianHttp):
        raise SettingsError(
            "several instances on PostgreSQL need a directory whose calls can be fenced "
            f"(an HTTP connector), not {type(directory).__name__}"
        )
    http.fence = lambda _what: leadership.check()
    return leadership, inbox
