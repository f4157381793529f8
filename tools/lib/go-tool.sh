# Shared by tools/install-*.sh: build Go commands from the Go module proxy into .cache/tools/<name>/bin.
# Usage (sourced): go_tool_install <name> <module@version> <package path>... ; env GO_TOOL_TAGS for -tags.
# Idempotent: a stamp file records the module@version built; a rerun with the same version returns at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

go_tool_install() {
    local name="$1" module_version="$2"
    shift 2
    local dest="$ROOT/.cache/tools/$name"
    local stamp="$dest/.installed" built="$module_version${GO_TOOL_TAGS:+ tags=$GO_TOOL_TAGS}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$built" ]; then
        echo "$name: $module_version already in $dest/bin"
        return 0
    fi
    command -v go >/dev/null || { echo "$name: needs Go (https://go.dev/dl) on PATH" >&2; return 1; }
    local module="${module_version%@*}" version="${module_version#*@}"
    local started=$SECONDS
    mkdir -p "$dest/bin" "$ROOT/.cache/go/path" "$ROOT/.cache/go/build"
    local pkg
    for pkg in "$@"; do
        GOBIN="$dest/bin" GOPATH="$ROOT/.cache/go/path" GOCACHE="$ROOT/.cache/go/build" \
            GOFLAGS="-modcacherw" CGO_ENABLED=0 \
            go install -trimpath -ldflags "-s -w" ${GO_TOOL_TAGS:+-tags "$GO_TOOL_TAGS"} "$module/$pkg@$version"
    done
    echo "$built" > "$stamp"
    echo "$name: built $module_version ($*) into $dest/bin in $((SECONDS - started))s"
}
