#!/usr/bin/env bash
# Installs the real third-party SMTP servers the smtp-tests crate launches:
#   - aiosmtpd 1.4.6 (PyPI) in tests/.venv
#   - nodemailer smtp-server (npm, pinned in tests/peers/package-lock.json)
#   - Postfix smtp-sink (Debian package `postfix`, installed only if missing)
# Idempotent: each step is skipped when already done. Run as root on Debian
# (apt-get needs it); python3 (with venv), node and npm must be present.
set -euo pipefail
cd "$(dirname "$0")"
here="$(pwd)"

AIOSMTPD_VERSION=1.4.6
venv="$here/.venv"

say() { printf 'setup.sh: %s\n' "$*"; }

# 1. aiosmtpd in a venv.
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$AIOSMTPD_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("aiosmtpd") == sys.argv[1] else 1)
PY
then
    say "aiosmtpd $AIOSMTPD_VERSION already in $venv"
else
    if [ ! -x "$venv/bin/python" ]; then
        say "creating venv $venv"
        python3 -m venv "$venv"
    fi
    say "pip install aiosmtpd==$AIOSMTPD_VERSION"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi

# 2. smtp-server from the committed lock file; the stamp records which lock
#    file node_modules was installed from.
stamp="$here/peers/node_modules/.setup-stamp"
want="$(sha256sum "$here/peers/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$here/peers/node_modules/smtp-server" ]; then
    say "smtp-server already installed in peers/node_modules"
else
    say "npm ci in peers/"
    (cd "$here/peers" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" > "$stamp"
fi

# 3. Postfix smtp-sink.
if PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v smtp-sink >/dev/null 2>&1; then
    say "smtp-sink already installed: $(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v smtp-sink)"
else
    if [ "$(id -u)" -ne 0 ]; then
        say "smtp-sink is missing and installing postfix needs root: run as root, or apt-get install postfix" >&2
        exit 1
    fi
    say "apt-get install postfix (for smtp-sink)"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postfix >/dev/null
    say "installed $(PATH="$PATH:/usr/sbin" command -v smtp-sink)"
fi

say "done"
