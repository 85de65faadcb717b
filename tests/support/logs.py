"""A log handler built exactly like the project's ``console`` handler, writing to a string."""

from __future__ import annotations

import io
import logging
import logging.config

from reliability.logs import build_logging_config


def console_handler(*, json_lines: bool) -> tuple[logging.Handler, io.StringIO]:
    """The production formatter and filters of ``build_logging_config``, onto a StringIO."""
    config = build_logging_config(json_lines=json_lines, level="INFO")
    configurator = logging.config.DictConfigurator(config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(dict(config["formatters"]["default"])))
    for name in config["handlers"]["console"]["filters"]:
        handler.addFilter(configurator.configure_filter(dict(config["filters"][name])))
    return handler, stream
