#!/usr/bin/env bash
# Tools the test suite needs beyond the virtualenv: shellcheck lints the shell scripts.
set -euo pipefail
if command -v shellcheck >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian's shellcheck"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
else
  echo "[setup] shellcheck is missing and this is not root: install it (apt-get install shellcheck)" >&2
  exit 1
fi
