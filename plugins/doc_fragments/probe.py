# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)


class ModuleDocFragment:
    # The attributes of the audit's read-only probes (use with ansible.builtin.action_common_attributes).
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: A read-only probe; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""
