"""Entry point: validate the configuration, then run the sink until SIGTERM."""

from __future__ import annotations

import signal

from analytics_common import logs
from analytics_common.config import exit_on_error

from pg_sink.config import load_config
from pg_sink.sink import Sink


def main() -> None:
    cfg = exit_on_error("pg-sink", load_config)
    logs.setup("pg-sink", cfg.log_level)
    sink = Sink(cfg)
    signal.signal(signal.SIGTERM, sink.stop)
    signal.signal(signal.SIGINT, sink.stop)
    sink.run()


if __name__ == "__main__":
    main()
