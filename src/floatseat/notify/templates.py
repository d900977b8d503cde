"""The messages' Jinja2 templates: built in, each overridable by a file of the same name in
`templates_dir`.

Every template gets `product`, `product_url` and `event`; user notices also get `user`,
`seconds_left` (warnings) and `reason`; admin alerts get `alert` (`title`, `detail`,
`kind`). `*.subject` templates are one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

__all__ = ["BUILT_IN", "Templates"]

BUILT_IN = {
    "seat-warning.subject": "Your {{ product }} seat is about to be released",
    "seat-warning.txt": """\
Hello {{ user }},

you have not used {{ product }} for a while, so your seat will be given to someone
else in about {{ (seconds_left / 60) | round(0, 'ceil') | int }} minute(s).

If you are still working, just carry on in {{ product }}: any page you open keeps your seat.
If you come back later, log in again at {{ product_url }} and you get a seat within seconds
while one is free.
""",
    "seat-ready.subject": "Your {{ product }} seat is ready",
    "seat-ready.txt": """\
Hello {{ user }},

a {{ product }} seat is free for you now. Log in at {{ product_url }}
""",
    "admin-alert.subject": "[floatseat] {{ alert.title }}",
    "admin-alert.txt": """\
{{ alert.title }}

{{ alert.detail }}

{{ product }}: {{ product_url }}
""",
}


class Templates:
    """Renders `<event>.subject` and `<event>.txt`."""

    def __init__(self, directory: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if directory is not None:
            loaders.append(jinja2.FileSystemLoader(directory))
        loaders.append(jinja2.DictLoader(BUILT_IN))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,  # plain text mail and JSON strings, never HTML
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, event: str, **context: Any) -> tuple[str, str]:
        """(subject, text) of `event`."""
        context = {"event": event, **context}
        subject = self.env.get_template(f"{event}.subject").render(context)
        text = self.env.get_template(f"{event}.txt").render(context)
        return " ".join(subject.split()), text
