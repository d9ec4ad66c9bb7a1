#!/usr/bin/env bash
# Tools the test suite needs beyond the virtualenv: shellcheck lints the shell scripts; sshd,
# ssh and ip (openssh-server, openssh-client, iproute2) let tests/multihost.py build hosts out
# of network namespaces that horovodrun and mpirun reach through ssh.
set -euo pipefail
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
# sshd lives in /usr/sbin, which a non-login PATH may lack.
command -v sshd >/dev/null 2>&1 || [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ip >/dev/null 2>&1 || [[ -x /usr/sbin/ip ]] || [[ -x /sbin/ip ]] || missing+=(iproute2)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian's ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  echo "[setup] missing ${missing[*]} and this is not root: install them" \
    "(apt-get install ${missing[*]})" >&2
  exit 1
fi
