"""Security headers on every response; above all a Content-Security-Policy that confines the
docs and the dashboard to the service's own origin (no CDN, no telemetry, no third party)."""
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# 'unsafe-inline' styles: Swagger UI, ReDoc (styled-components) and uPlot set style attributes.
# blob: workers: ReDoc's search index runs in a worker made from a blob of its own bundle.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
           (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer")]


class SecurityHeadersMiddleware:
    """Pure ASGI (streams pass through untouched): adds HEADERS unless a route set them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in HEADERS if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)
        await self.app(scope, receive, send_with_headers)
