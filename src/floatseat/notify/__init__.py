"""Notifications: users warned before their seat goes and told when a queued seat is ready;
admins alerted when seats stay exhausted, moves stall, the directory keeps failing, or drift
is repaired. See `Notifier` and docs/operations.md."""

from floatseat.notify.alerts import Alert, AlertRules, AlertState, admin_alerts
from floatseat.notify.channels import Mailer, NotifyError, Webhook, sign
from floatseat.notify.notifier import Notice, Notifier, Sent
from floatseat.notify.settings import NotifySettings, load_notify_settings

__all__ = [
    "Alert",
    "AlertRules",
    "AlertState",
    "Mailer",
    "Notice",
    "Notifier",
    "NotifyError",
    "NotifySettings",
    "Sent",
    "Webhook",
    "admin_alerts",
    "load_notify_settings",
    "sign",
]
