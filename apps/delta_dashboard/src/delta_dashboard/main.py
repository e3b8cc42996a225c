"""Entry point: validate the configuration, then serve the dashboard on port 8501."""

from __future__ import annotations

import uvicorn
from analytics_common import logs
from analytics_common.config import exit_on_error

from delta_dashboard.app import create_app
from delta_dashboard.config import load_config


def main() -> None:
    cfg = exit_on_error("delta-dashboard", load_config)
    logs.setup("delta-dashboard", cfg.log_level)
    uvicorn.run(
        create_app(cfg),
        host=cfg.host,
        port=cfg.port,
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=str(cfg.tls_cert_file) if cfg.tls_cert_file else None,
        ssl_keyfile=str(cfg.tls_key_file) if cfg.tls_key_file else None,
    )


if __name__ == "__main__":
    main()
