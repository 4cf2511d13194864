# Shared by scripts/demo and scripts/test: system packages, a Python >= 3.11, and .venv.
# Usage: source scripts/_python.sh; ensure_system_packages PKG...; ensure_venv EXTRAS
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_system_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo ">> installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "failover needs Python 3.11 or newer (Debian 12 and Ubuntu 24.04 ship it)" >&2
  return 1
}

ensure_venv() {
  local extras="$1" python
  python="$(find_python)"
  if [ ! -x .venv/bin/python ]; then
    echo ">> creating .venv with $python"
    "$python" -m venv .venv
  fi
  echo ">> installing failover${extras} into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}"
}
