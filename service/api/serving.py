"""The uvicorn server `needle-service serve` runs."""
import uvicorn
from fastapi import FastAPI


class StreamEndingServer(uvicorn.Server):
    """uvicorn waits for open connections before it runs the app's shutdown, and an event stream
    stays open for as long as its job runs: end the streams first (clients resume elsewhere with
    Last-Event-ID), then shut down as usual."""

    def __init__(self, config: uvicorn.Config, app: FastAPI):
        super().__init__(config)
        self.needle_app = app

    async def shutdown(self, sockets=None) -> None:
        """End every event stream, then uvicorn's graceful shutdown."""
        hub = self.needle_app.state.events
        if hub is not None:
            await hub.close()
        await super().shutdown(sockets)
