#!/usr/bin/env bash
# Prometheus server and promtool (rule checks and rule unit tests), built from the Go module.
# Only cmd/prometheus and cmd/promtool are built. Without the `builtinassets` build tag the web UI is not
# embedded (web/ui serves from a directory that does not exist here): the API (/api/v1/...) works, which is
# all the tests use. Both land in .cache/tools/prometheus/bin; promtool is also linked as its own tool.
source "$(dirname "$0")/lib/go-tool.sh"
# remove_all_sd: only the file and HTTP service discovery (what static and file configs need); the cloud SDKs
# (AWS, Azure, GCE, ...) are not compiled, which roughly halves the build. promtool still pulls in the
# Kubernetes client (it imports the kubernetes discovery itself).
GO_TOOL_TAGS=remove_all_sd go_tool_install prometheus github.com/prometheus/prometheus@v0.316.0 cmd/prometheus cmd/promtool
mkdir -p "$ROOT/.cache/tools/promtool/bin"
ln -sf "$ROOT/.cache/tools/prometheus/bin/promtool" "$ROOT/.cache/tools/promtool/bin/promtool"
