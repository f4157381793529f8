#!/usr/bin/env bash
# Strimzi CRD JSON schemas for kubeconform, offline. The CRDs are generated from the io.strimzi:api model
# classes with io.strimzi:crd-generator (both from Maven Central, tools/strimzi/pom.xml; the generator needs
# Java 21+), then tools/strimzi_schemas.py turns each CRD version's openAPIV3Schema into
# .cache/tools/strimzi-schemas/<kind>_<version>.json (kubeconform's {{ .ResourceKind }}_{{ .ResourceAPIVersion }}).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION=1.2.0
DEST="$ROOT/.cache/tools/strimzi-schemas"
STAMP="$DEST/.installed"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ]; then
    echo "strimzi-schemas: $VERSION already in $DEST"; exit 0
fi
JAVA=""
for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*25* /usr/lib/jvm/*21*; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] \
        && [ "$("$candidate/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = //p')" -ge 21 ]; then
        JAVA="$candidate/bin/java"; break
    fi
done
[ -n "$JAVA" ] || { echo "strimzi-schemas: needs Java 21+ (set JAVA_HOME)" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mvn -q -f "$ROOT/tools/strimzi/pom.xml" -Dstrimzi.version="$VERSION" dependency:build-classpath -Dmdep.outputFile="$work/cp.txt"
args=()
for kind in kafka.Kafka nodepool.KafkaNodePool topic.KafkaTopic user.KafkaUser; do
    args+=("io.strimzi.api.kafka.model.$kind=$work/${kind#*.}.yaml")
done
"$JAVA" -cp "$(cat "$work/cp.txt")" io.strimzi.crdgenerator.CrdGenerator --yaml "${args[@]}"
PYTHON="$ROOT/.venv/bin/python"; [ -x "$PYTHON" ] || PYTHON=python3
rm -rf "$DEST"; mkdir -p "$DEST"
"$PYTHON" "$ROOT/tools/strimzi_schemas.py" "$DEST" "$work"/*.yaml
echo "$VERSION" > "$STAMP"
echo "strimzi-schemas: Strimzi $VERSION CRDs into $DEST"
