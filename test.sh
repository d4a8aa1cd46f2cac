#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs.
# Installs the real servers the integration tests start (idempotent, quick
# once done), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")"
bash tests/setup.sh
cargo test --locked --workspace --all-features
