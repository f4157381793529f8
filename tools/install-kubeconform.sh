#!/usr/bin/env bash
# kubeconform (Kubernetes manifest validation against JSON schemas), built from the Go module, and the
# schemas it needs offline:
#   - Kubernetes built-ins: kubeconform's default location is remote; the tests pass
#     -schema-location for the Strimzi CRDs (made by tools/strimzi_schemas.py from the io.strimzi:api jar
#     on Maven Central) and the Kubernetes ones (made from the k8s.io/api OpenAPI... see install-k8s-schemas)
source "$(dirname "$0")/lib/go-tool.sh"
go_tool_install kubeconform github.com/yannh/kubeconform@v0.8.0 cmd/kubeconform
