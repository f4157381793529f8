"""Turn CustomResourceDefinition YAML files into kubeconform JSON schemas (strict).

    python tools/strimzi_schemas.py <out dir> <crd.yaml>...

Writes ``<out>/<group>/<kind lower-case>_<version>.json`` per served version, for kubeconform's
``-schema-location '<out>/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'``. As kubeconform's own
openapi2jsonschema does: ``x-kubernetes-int-or-string`` becomes string-or-integer, and every object with
``properties`` and no ``additionalProperties`` (nor ``x-kubernetes-preserve-unknown-fields``) is closed, so an
unknown or misspelt field is an error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"].lower()
    found = {}
    for version in spec["versions"]:
        if version.get("served", True) and "schema" in version:
            found[f"{group}/{kind}_{version['name']}.json"] = strict(version["schema"]["openAPIV3Schema"])
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out = Path(argv[1])
    for path in argv[2:]:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in schemas(doc).items():
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, indent=1, sort_keys=True))
                sys.stderr.write(f"  {target.relative_to(out)}" + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
