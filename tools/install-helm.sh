#!/usr/bin/env bash
# Helm 3 (helm lint, helm template) for deploy/helm/consent-broker, built from the Go module.
source "$(dirname "$0")/lib/go-tool.sh"
go_tool_install helm helm.sh/helm/v3@v3.22.0 cmd/helm
