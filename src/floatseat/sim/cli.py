"""`floatseat sim serve`: run a simulated Confluence or Jira on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Only the Typer object is built at import time: `floatseat` registers this sub-app on every
# start, so the web stack (uvicorn, FastAPI) and the simulator load inside `serve` alone.

sim_app = typer.Typer(
    help="A simulated Confluence/Jira Data Center for demos and contract tests.",
    no_args_is_help=True,
)


@sim_app.command()
def serve(
    product: Annotated[str, typer.Option(help="confluence or jira")] = "confluence",
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")] = 8090,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    users: Annotated[int, typer.Option(help="virtual users in the product's users group")] = 50,
    tier: Annotated[int, typer.Option(help="licence tier (users)")] = 50,
    log_dir: Annotated[
        Path | None, typer.Option(help="write the nodes' access and security logs here")
    ] = None,
    admin_password: Annotated[str, typer.Option(help="password of the user admin")] = "admin",
    version: Annotated[
        str | None, typer.Option(help="product version, e.g. 7.19.0, 8.5.4, 9.3.1")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="simulated seconds per real second (1440: a day a minute)")
    ] = 1.0,
    nodes: Annotated[int, typer.Option(help="cluster nodes writing logs")] = 2,
    seed: Annotated[int, typer.Option(help="seed of the virtual users")] = 0,
    crowd: Annotated[bool, typer.Option(help="users and groups live in a simulated Crowd")] = False,
) -> None:
    """Serve the product's REST API with N virtual users working on an accelerated clock."""
    import uvicorn

    from floatseat.sim.app import create_app
    from floatseat.sim.core import SimConfig, Simulator
    from floatseat.sim.server import Ticker

    if product not in ("confluence", "jira"):
        raise typer.BadParameter("product must be confluence or jira")
    try:
        config = SimConfig(
            product=product,  # type: ignore[arg-type]
            version=version,
            users=users,
            tier=tier,
            admin_password=admin_password,
            log_dir=log_dir,
            speed=speed,
            nodes=nodes,
            seed=seed,
            crowd=crowd,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    sim = Simulator(config)
    typer.echo(
        f"simulated {product} {config.version} on http://{host}:{port} "
        f"({users} users, tier {tier}; admin/{admin_password})"
    )
    with Ticker(sim):
        uvicorn.run(create_app(sim), host=host, port=port, log_level="warning")
