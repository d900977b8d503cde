"""`floatseat analyze` starts without the service, web and simulator sides.

Every `floatseat` command pays for what `floatseat.cli` imports; the web stack alone (FastAPI,
uvicorn, pydantic) costs about 0.3 s. The commands that need it import it themselves. These
tests run in a fresh interpreter, since the test session has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Third-party packages that analysis never needs, and floatseat's own heavy sides.
FORBIDDEN_PACKAGES = ("alembic", "fastapi", "httpx", "jinja2", "sqlalchemy", "starlette", "uvicorn")
FORBIDDEN_MODULES = (
    "floatseat.demo",
    "floatseat.directory",
    "floatseat.service",
    "floatseat.store",
    "floatseat.web",
    "floatseat.notify",
    "floatseat.sim.app",
    "floatseat.sim.core",
    "floatseat.sim.server",
)

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(body: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def _unwanted(modules: list[str], packages: tuple[str, ...] = FORBIDDEN_PACKAGES) -> list[str]:
    return [
        name
        for name in modules
        if name.split(".")[0] in packages
        or any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES)
    ]


def test_importing_the_cli_loads_no_web_service_or_simulator_module() -> None:
    modules = _modules_after("import floatseat.cli")
    assert "floatseat.cli" in modules
    # pydantic too: Typer loads it only to parse a command's arguments.
    assert _unwanted(modules, (*FORBIDDEN_PACKAGES, "pydantic")) == []


def test_an_analyze_run_loads_no_web_service_or_simulator_module(tmp_path: Path) -> None:
    log = tmp_path / "access_log.txt"
    log.write_text(
        '10.0.0.1 1x1x1 alice [02/Mar/2026:09:00:00 +0000] "GET /browse/A-1 HTTP/1.1" '
        '200 100 12 "-" "Mozilla/5.0" "abc"\n'
    )
    report = tmp_path / "report.json"
    body = (
        "import floatseat.cli\n"
        f"sys.argv = ['floatseat', 'analyze', {str(log)!r}, '--json', {str(report)!r}, '-q']\n"
        "try:\n"
        "    floatseat.cli.main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
    )
    modules = _modules_after(body)
    assert json.loads(report.read_text())["peak"] == 1
    assert _unwanted(modules) == []


def test_the_simulator_package_still_exports_its_names_on_demand() -> None:
    from floatseat.sim import SimConfig, SimServer, Simulator
    from floatseat.sim.core import SimConfig as CoreSimConfig

    assert SimConfig is CoreSimConfig
    assert SimServer.__name__ == "SimServer"
    assert Simulator.__name__ == "Simulator"
