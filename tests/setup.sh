#!/usr/bin/env bash
# Installs the real third-party SMTP servers the smtp-tests crate launches:
#   - aiosmtpd 1.4.6 (PyPI) in tests/.venv
#   - nodemailer smtp-server (npm, pinned in tests/peers/package-lock.json)
#   - oauth2-mock-server (npm, same lock file): a real OAuth2 server that
#     signs JWTs, the token endpoint of the OAuth2 tests
#   - Postfix (Debian package `postfix`, installed only if missing): its
#     smtp-sink, and the daemons a private Postfix instance runs (master,
#     smtpd, cleanup, qmgr, virtual, postlogd, ... as the `postfix` user),
#     the peer that offers CHUNKING/BDAT. Each test instance has its own
#     config directory, queue and port; no system instance is configured or
#     needed, and one already running (on port 25) does not matter.
# Idempotent: each step is skipped when already done. Run as root on Debian
# (apt-get needs it, and the Postfix tests start a master as root); python3
# (with venv), node and npm must be present.
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

# 2. smtp-server and oauth2-mock-server from the committed lock file; the stamp records which lock
#    file node_modules was installed from.
stamp="$here/peers/node_modules/.setup-stamp"
want="$(sha256sum "$here/peers/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$here/peers/node_modules/smtp-server" ] \
    && [ -d "$here/peers/node_modules/oauth2-mock-server" ]; then
    say "smtp-server and oauth2-mock-server already installed in peers/node_modules"
else
    say "npm ci in peers/"
    (cd "$here/peers" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" > "$stamp"
fi

# 3. Postfix: smtp-sink, `postfix` and the daemons, and the `postfix` user.
sbin_path="$PATH:/usr/sbin:/usr/local/sbin"
postfix_ready() {
    PATH="$sbin_path" command -v smtp-sink >/dev/null 2>&1 &&
        PATH="$sbin_path" command -v postfix >/dev/null 2>&1 &&
        getent passwd postfix >/dev/null &&
        daemons="$(PATH="$sbin_path" postconf -dh daemon_directory 2>/dev/null)" &&
        for d in master smtpd cleanup qmgr trivial-rewrite virtual postlogd; do
            [ -x "$daemons/$d" ] || return 1
        done
}
if postfix_ready; then
    say "Postfix already installed: $(PATH="$sbin_path" postconf -dh mail_version 2>/dev/null)"
else
    if [ "$(id -u)" -ne 0 ]; then
        say "Postfix is missing and installing it needs root: run as root, or apt-get install postfix" >&2
        exit 1
    fi
    # "No configuration": no /etc/postfix/main.cf, so no system instance.
    say "apt-get install postfix"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postfix >/dev/null
    postfix_ready || { say "postfix installed but incomplete" >&2; exit 1; }
    say "installed Postfix $(PATH="$sbin_path" postconf -dh mail_version)"
fi

say "done"
