"""Entry point: validate the configuration, then serve with uvicorn (JSON logs, no access log)."""

from __future__ import annotations

import uvicorn
from analytics_common import logs
from analytics_common.config import ConfigError, exit_on_error

from analytics_api.app import create_app
from analytics_api.config import load_config
from analytics_api.keys import KeyStore


def build():
    cfg = load_config()
    try:
        keys = KeyStore.from_file(cfg.keys_file)
    except ValueError as e:
        raise ConfigError(f"API_KEYS_FILE: {e}") from None
    return cfg, keys


def main() -> None:
    cfg, keys = exit_on_error("analytics-api", build)
    logs.setup("analytics-api", cfg.log_level)
    app = create_app(cfg, keys)
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        ssl_certfile=str(cfg.tls_cert_file) if cfg.tls_cert_file else None,
        ssl_keyfile=str(cfg.tls_key_file) if cfg.tls_key_file else None,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
