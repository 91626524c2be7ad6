#!/usr/bin/env bash
# Kept for callers that name it: PostgreSQL 18 is installed by scripts/install-pg.sh 18.
exec "$(dirname "$0")/install-pg.sh" 18
