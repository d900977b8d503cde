"""How messages leave: SMTP mail (standard library) and a signed JSON webhook (httpx).

A webhook request carries `X-Floatseat-Timestamp` (seconds since the epoch) and, when a
secret is set, `X-Floatseat-Signature: sha256=<hex>`: the HMAC-SHA256 of
`<timestamp>.<body>` with the secret. Receivers recompute it, compare in constant time and
refuse old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx

__all__ = ["Mailer", "NotifyError", "Webhook", "sign"]


class NotifyError(Exception):
    """A message could not be sent; the message says why (never a secret)."""


@dataclass
class Mailer:
    host: str
    port: int = 25
    sender: str = "floatseat@localhost"
    starttls: bool = False
    use_ssl: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0

    def send(self, to: list[str], subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="floatseat")
        message.set_content(text)
        try:
            smtp: smtplib.SMTP
            if self.use_ssl:
                context = ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise NotifyError(
                f"mail to {', '.join(to)} via {self.host}:{self.port}: {error}"
            ) from None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class Webhook:
    url: str
    secret: str | None = None
    timeout_s: float = 10.0
    client: httpx.Client | None = None

    def send(self, payload: dict[str, Any], now: int) -> None:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Floatseat-Timestamp": str(now)}
        if self.secret:
            headers["X-Floatseat-Signature"] = sign(self.secret, now, body)
        try:
            if self.client is not None:
                response = self.client.post(self.url, content=body, headers=headers)
            else:
                with httpx.Client(timeout=self.timeout_s) as client:
                    response = client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise NotifyError(f"webhook {self.url}: {type(error).__name__}: {error}") from None
        if not response.is_success:
            raise NotifyError(f"webhook {self.url}: HTTP {response.status_code}")
