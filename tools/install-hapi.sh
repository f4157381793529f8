#!/usr/bin/env bash
# The HAPI FHIR validator (ca.uhn.hapi.fhir 8.8.0, Maven Central), offline: validates every FHIR R4
# resource the product emits (tests/integration/fhir, tests/unit/fhir). Builds tools/hapi/ValidateDir
# into .cache/tools/hapi/ and writes the launcher bin/hapi (usage: hapi DIRECTORY -> JSON on stdout).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION=8.8.0
DEST="$ROOT/.cache/tools/hapi"
STAMP="$DEST/.installed-$VERSION-$(sha256sum "$ROOT/tools/hapi/pom.xml" "$ROOT/tools/hapi/src/main/java/broker/hapi/ValidateDir.java" | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ -x "$DEST/bin/hapi" ]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "install-hapi: Maven (mvn) is required: apt-get install -y maven" >&2; exit 1; }
command -v javac >/dev/null || { echo "install-hapi: a JDK (javac, 17+) is required: apt-get install -y openjdk-17-jdk-headless" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$DEST/lib" "$DEST/classes" "$DEST/bin"
mvn -q -B -Dstyle.color=never -f "$ROOT/tools/hapi/pom.xml" dependency:copy-dependencies -DoutputDirectory="$DEST/lib" -DincludeScope=runtime
javac -nowarn --release 17 -cp "$DEST/lib/*" -d "$DEST/classes" "$ROOT/tools/hapi/src/main/java/broker/hapi/ValidateDir.java"
cat > "$DEST/bin/hapi" <<LAUNCH
#!/usr/bin/env bash
exec java -Xss4m -cp "$DEST/classes:$DEST/lib/*" broker.hapi.ValidateDir "\$@"
LAUNCH
chmod +x "$DEST/bin/hapi"
touch "$STAMP"
echo "install-hapi: HAPI FHIR validator $VERSION (offline, R4) in $DEST (bin/hapi)"
