#!/usr/bin/env bash
# Unit and integration tests of the Python services in apps/. Each service is installed (with its test extras)
# into .venv-apps; the integration fixtures start real Kafka, PostgreSQL and SeaweedFS from artifacts/.
source "$(dirname "$0")/lib.sh"

apps=()
for d in "$AP_ROOT"/apps/*/; do [ -d "$d/tests" ] && apps+=("${d%/}"); done
if [ ${#apps[@]} -eq 0 ]; then
  step "No services in apps/ yet: nothing to test"
  exit 0
fi
die "service tests are not wired yet"
