#!/usr/bin/env bash
# Kubernetes JSON schemas for kubeconform, offline: the ones the PyPI package kubernetes-validate ships
# (kubernetes_validate/kubernetes-json-schema/<version>-local-strict/<kind>-<group>-<version>.json). Only the
# one Kubernetes version the chart is checked against is unpacked, into .cache/tools/k8s-schemas/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PACKAGE=kubernetes-validate==1.37.0
KUBE=v1.33.0
FORMAT=2  # bump when the unpacking below changes
DEST="$ROOT/.cache/tools/k8s-schemas"
STAMP="$DEST/.installed"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PACKAGE $KUBE $FORMAT" ]; then
    echo "k8s-schemas: $KUBE from $PACKAGE already in $DEST"; exit 0
fi
PYTHON="$ROOT/.venv/bin/python"; [ -x "$PYTHON" ] || PYTHON=python3
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip download -q --no-deps "$PACKAGE" -d "$work"
rm -rf "$DEST"; mkdir -p "$DEST"
"$PYTHON" - "$work"/*.whl "$DEST" "$KUBE" <<'PY'
import json, sys, zipfile, pathlib
wheel, dest, kube = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
prefix = f"kubernetes_validate/kubernetes-json-schema/{kube}-local-strict/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith(".json")]
    if not names:
        sys.exit(f"{wheel} has no {prefix}")
    out = dest / f"{kube}-local-strict"
    out.mkdir(parents=True)
    for n in names:
        # Schemas name each other by https://kubernetes.io/api/... ids; point the references at the file beside
        # them instead, so the validator never goes to the network.
        text = z.read(n).decode().replace('"/api/_definitions.json#', '"_definitions.json#')
        doc = json.loads(text)
        doc.pop("$id", None)
        (out / n[len(prefix):]).write_text(json.dumps(doc))
PY
echo "$PACKAGE $KUBE $FORMAT" > "$STAMP"
echo "k8s-schemas: $KUBE from $PACKAGE into $DEST"
