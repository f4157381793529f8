#!/usr/bin/env bash
# The compose-spec JSON schema, offline, for tests/ops/test_compose.py (no Docker engine or CLI here). It is the
# schema docker compose itself validates with: schema/compose-spec.json embedded in the Go module
# github.com/compose-spec/compose-go/v2, fetched with `go mod download` from the Go module proxy.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODULE=github.com/compose-spec/compose-go/v2@v2.16.2
DEST="$ROOT/.cache/tools/compose-schema"
STAMP="$DEST/.installed"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$MODULE" ]; then
    echo "compose-schema: $MODULE already in $DEST"; exit 0
fi
command -v go >/dev/null || { echo "compose-schema: needs Go on PATH" >&2; exit 1; }
dir="$(GOPATH="$ROOT/.cache/go/path" GOFLAGS=-modcacherw go mod download -json "$MODULE" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -f "$dir/schema/compose-spec.json" ] || { echo "compose-schema: no schema/compose-spec.json in $MODULE" >&2; exit 1; }
mkdir -p "$DEST"
cp "$dir/schema/compose-spec.json" "$DEST/compose-spec.json"
echo "$MODULE" > "$STAMP"
echo "compose-schema: compose-spec.json from $MODULE into $DEST"
