# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Jinja tests: analytics.platform.strong_secret."""

from __future__ import annotations

from ansible_collections.analytics.platform.plugins.module_utils.secrets import MIN_LENGTH, weakness


def strong_secret(value, min_length=MIN_LENGTH):
    return weakness(value, int(min_length)) is None


class TestModule:
    def tests(self):
        return {"strong_secret": strong_secret}
