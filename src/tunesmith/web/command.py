"""`tunesmith serve`: check the address, port and folder, then run the studio app with uvicorn.

Nothing web-specific is imported before the checks pass, so a missing `web` extra is one sentence too.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

from tunesmith.core.errors import UserError

log = logging.getLogger(__name__)


def check_host(host: str, allow_remote: bool) -> bool:
    """True when `host` is a loopback address; UserError for another one without `allow_remote`."""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise UserError(f"--host {host!r} is not an IP address (or localhost)") from None
    if not local and not allow_remote:
        raise UserError(f"binding {host} would open the studio to other machines; add --allow-remote if you mean it")
    return local


def serve_command(host: str = "127.0.0.1", port: int = 8000, models_dir: Path | None = None,
                  allow_remote: bool = False, max_waiting: int = 4, job_seconds: float = 120.0) -> None:
    """`tunesmith serve`: check the address and folder, then run the studio with uvicorn until Ctrl-C."""
    local = check_host(host, allow_remote)
    if models_dir is not None and not Path(models_dir).is_dir():
        raise UserError(f"--models {models_dir} is not a folder")
    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {port}")
    _check_port_free(host, port)
    if not local:
        log.warning("WARNING: the studio listens on %s:%d and anyone who can reach it may run generation jobs",
                    host, port)
    try:
        import uvicorn

        from tunesmith.web.app import create_app
    except ImportError as error:
        raise UserError(f"tunesmith serve needs the web extra (pip install 'tunesmith[web]'): {error}") from None
    app = create_app(Path(models_dir) if models_dir else None, max_waiting=max_waiting, job_seconds=job_seconds)
    log.info("tunesmith studio on http://%s:%d/ (OpenAPI schema at /openapi.json); Ctrl-C stops it", host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port") from None
