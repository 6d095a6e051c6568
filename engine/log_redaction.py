"""A logging filter that masks every registered secret value in log records."""

from __future__ import annotations

import logging

from engine import secrets_registry


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redactor = secrets_registry.redactor()
        if redactor:
            message = redactor.text(record.getMessage())
            record.msg, record.args = message, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redactor.text(
                    logging.Formatter().formatException(record.exc_info)
                )
        return True
