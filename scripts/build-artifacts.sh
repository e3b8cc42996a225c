#!/usr/bin/env bash
# Fill the git-ignored artifacts/ folder with what the roles install in the lab, plus a SHA256SUMS file:
#   kafka_2.13-<version>.tgz  Apache Kafka assembled from Maven Central (build/kafka/pom.xml), laid out like upstream;
#                             also each version in AP_KAFKA_EXTRA_VERSIONS (the Kafka upgrade drill's target)
#   jmx_prometheus_javaagent-<version>.jar  the Prometheus JMX exporter agent Kafka loads (roles/kafka's version)
#   weed                      SeaweedFS built with `go install` at the pinned version
#   wheelhouse/               wheels of every service in apps/ and their dependencies (lab hosts install with --no-index),
#                             and <service>.wheels: the wheels each service needs
# Bento is not built: the Go module proxy refused v1.20.0 on 2026-11-29 (docs/components.md); the bento role takes a
# user-supplied binary instead.
# Re-runnable: a piece whose recipe is unchanged and whose checksum still verifies is skipped.
source "$(dirname "$0")/lib.sh"
SELF="$AP_ROOT/scripts/$(basename "$0")"

SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs/weed
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6

mkdir -p "$AP_ARTIFACTS" "$AP_CACHE/stamps"
cd "$AP_ARTIFACTS" || die "cannot enter $AP_ARTIFACTS"

# fresh NAME RECIPE: true when NAME exists, was built from RECIPE and still matches its recorded checksum.
fresh() {
  local name=$1 recipe=$2 stamp
  stamp="$AP_CACHE/stamps/$(echo "$AP_ARTIFACTS/$1" | sha256sum | cut -c1-16)"
  [ -e "$name" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$recipe" ] || return 1
  if [ -d "$name" ]; then
    (cd "$name" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1)
  else
    [ "$(sed -n 2p "$stamp")" = "$(sha256sum "$name" | cut -d' ' -f1)" ]
  fi
}
stamp() {
  local name=$1 recipe=$2 stamp
  stamp="$AP_CACHE/stamps/$(echo "$AP_ARTIFACTS/$1" | sha256sum | cut -c1-16)"
  # A directory's stamp holds only the recipe: its own SHA256SUMS is what `fresh` verifies.
  { echo "$recipe"; if [ -f "$name" ]; then sha256sum "$name" | cut -d' ' -f1; fi; } >"$stamp"
}

# --- Kafka ---------------------------------------------------------------------------------------------------------
# The pom's version, and AP_KAFKA_EXTRA_VERSIONS (space-separated: the upgrade drill's target, make test-heavy) built
# from the same pom with its kafka.version overridden.
build_kafka() {  # version
  local version=$1 tgz recipe stage
  tgz="kafka_2.13-$version.tgz"
  recipe=$(recipe_hash "$AP_ROOT/build/kafka/pom.xml" "$AP_ROOT"/build/kafka/config/* "$SELF")-$version
  if fresh "$tgz" "$recipe"; then
    step "Kafka $version: up to date"
    return
  fi
  step "Kafka $version: resolving jars from Maven Central (log: $AP_CACHE/kafka-mvn.log)"
  stage="$AP_CACHE/kafka-stage/kafka_2.13-$version"
  rm -rf "$AP_CACHE/kafka-stage" && mkdir -p "$stage/libs" "$stage/config"
  run_logged "$AP_CACHE/kafka-mvn.log" "Maven download of Kafka $version" \
    mvn -B -q -f "$AP_ROOT/build/kafka/pom.xml" dependency:copy-dependencies \
      -Dkafka.version="$version" -DincludeScope=runtime -DoutputDirectory="$stage/libs"
  ls "$stage/libs/kafka_2.13-$version.jar" "$stage/libs/kafka-tools-$version.jar" "$stage/libs"/log4j-slf4j-impl-*.jar \
    >/dev/null 2>&1 || die "Kafka $version assembly is missing kafka_2.13, kafka-tools or the log4j2 SLF4J binding"
  cp "$AP_ROOT"/build/kafka/config/* "$stage/config/"
  echo "$version" >"$stage/VERSION"
  # Reproducible tarball: sorted names, fixed times and owners, no gzip timestamp.
  tar -C "$AP_CACHE/kafka-stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf - "kafka_2.13-$version" | gzip -n >"$tgz.tmp"
  mv "$tgz.tmp" "$tgz"
  rm -rf "$AP_CACHE/kafka-stage"
  stamp "$tgz" "$recipe"
  step "Kafka $version: $tgz ($(du -h "$tgz" | cut -f1))"
}
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$AP_ROOT/build/kafka/pom.xml")
for v in $kafka_version ${AP_KAFKA_EXTRA_VERSIONS:-}; do
  [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "AP_KAFKA_EXTRA_VERSIONS: '$v' is not a Kafka version such as 4.2.1"
  build_kafka "$v"
done

# --- The Prometheus JMX exporter agent (loaded into the Kafka JVM) ------------------------------------------------
jmx_version=$(sed -n 's/^kafka_jmx_exporter_version: "\([^"]*\)".*/\1/p' "$AP_ROOT/roles/kafka/defaults/main.yml")
[ -n "$jmx_version" ] || die "no kafka_jmx_exporter_version in roles/kafka/defaults/main.yml"
jmx_jar="jmx_prometheus_javaagent-$jmx_version.jar"
if fresh "$jmx_jar" "$jmx_version"; then
  step "JMX exporter agent $jmx_version: up to date"
else
  run_logged "$AP_CACHE/jmx-mvn.log" "Maven download of the JMX exporter agent $jmx_version" \
    mvn -B -q dependency:copy -Dartifact="io.prometheus.jmx:jmx_prometheus_javaagent:$jmx_version" \
      -DoutputDirectory="$AP_ARTIFACTS"
  [ -f "$jmx_jar" ] || die "the Maven download did not produce $jmx_jar"
  stamp "$jmx_jar" "$jmx_version"
  step "JMX exporter agent $jmx_version: $jmx_jar"
fi

# --- SeaweedFS -----------------------------------------------------------------------------------------------------
if fresh weed "$SEAWEEDFS_VERSION"; then
  step "SeaweedFS weed $SEAWEEDFS_VERSION: up to date"
else
  step "SeaweedFS weed: go install at $SEAWEEDFS_VERSION (several minutes on 2 cores; log: $AP_CACHE/weed-go.log)"
  gobin="$AP_CACHE/gobin"
  mkdir -p "$gobin"
  # `go install weed@version` is refused because SeaweedFS's go.mod carries replace directives; build the
  # downloaded module as the main module instead (same pinned source, same checksum database entry).
  (cd "$AP_CACHE" && go mod download -json "${SEAWEEDFS_MODULE%/weed}@$SEAWEEDFS_VERSION" >weed-mod.json 2>"$AP_CACHE/weed-go.log") \
    || { tail -n 5 "$AP_CACHE/weed-go.log" >&2; die "Go module download of SeaweedFS $SEAWEEDFS_VERSION refused"; }
  src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$AP_CACHE/weed-mod.json")
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod" run_logged "$AP_CACHE/weed-go.log" \
    "go build of SeaweedFS $SEAWEEDFS_VERSION" go build -ldflags="-s -w" -o "$gobin/weed" ./weed)
  install -m 0755 "$gobin/weed" weed.tmp && mv weed.tmp weed
  stamp weed "$SEAWEEDFS_VERSION"
  step "SeaweedFS weed: $(./weed version 2>/dev/null | head -n1)"
fi

# --- Wheelhouse ----------------------------------------------------------------------------------------------------
apps=()
for d in "$AP_ROOT"/apps/*/; do
  # apps/testing holds the test fixtures: it is never shipped to hosts.
  [ -f "$d/pyproject.toml" ] && [ "$(basename "$d")" != testing ] && apps+=("${d%/}")
done
if [ ${#apps[@]} -gt 0 ]; then
  # The services' own sources: not what building them leaves in their folders (build/, *.egg-info), which made every
  # second run see a new recipe and build the wheelhouse again.
  wh_recipe=$(find "${apps[@]}" -type f \( -name '*.py' -o -name pyproject.toml -o -name '*.txt' -o -name '*.html' -o -name '*.css' \) \
                -not -path '*/tests/*' -not -path '*/build/*' -not -path '*.egg-info/*' -print0 | sort -z | xargs -0 cat | cat - "$SELF" "$AP_ROOT/apps/constraints.txt" \
                | sha256sum | cut -c1-16)
  if fresh wheelhouse "$wh_recipe"; then
    step "Wheelhouse: up to date ($(find wheelhouse -maxdepth 1 -name '*.whl' | wc -l) wheels)"
  else
    step "Wheelhouse: building wheels for ${#apps[@]} services and their dependencies (log: $AP_CACHE/wheelhouse.log)"
    rm -rf wheelhouse.tmp && mkdir -p wheelhouse.tmp
    py="${AP_VENV}/bin/python"; [ -x "$py" ] || py=python3
    run_logged "$AP_CACHE/wheelhouse.log" "pip wheel of the services in apps/" \
      "$py" -m pip wheel --quiet --wheel-dir wheelhouse.tmp -c "$AP_ROOT/apps/constraints.txt" "${apps[@]}"
    # Each service's wheels (its resolved closure, offline from this wheelhouse) in <dist-name>.wheels: hosts get only
    # the wheels of the services they run, and pip installs exactly those files.
    for app in "${apps[@]}"; do
      dist=$(basename "$app" | tr _ -)
      run_logged "$AP_CACHE/wheelhouse.log" "resolution of $dist's wheels" \
        "$py" -m pip install --quiet --dry-run --ignore-installed --no-index --find-links wheelhouse.tmp \
          --report "wheelhouse.tmp/$dist.report.json" "$dist"
      "$py" -c 'import json, sys; print("\n".join(sorted(i["download_info"]["url"].rsplit("/", 1)[1]
                 for i in json.load(open(sys.argv[1]))["install"])))' "wheelhouse.tmp/$dist.report.json" \
        >"wheelhouse.tmp/$dist.wheels"
      rm "wheelhouse.tmp/$dist.report.json"
    done
    (cd wheelhouse.tmp && sha256sum -- *.whl >SHA256SUMS)
    rm -rf wheelhouse && mv wheelhouse.tmp wheelhouse
    stamp wheelhouse "$wh_recipe"
    step "Wheelhouse: $(find wheelhouse -maxdepth 1 -name '*.whl' | wc -l) wheels ($(du -sh wheelhouse | cut -f1))"
  fi
fi

# --- Checksums -----------------------------------------------------------------------------------------------------
files=()
for f in kafka_2.13-*.tgz jmx_prometheus_javaagent-*.jar weed; do [ -f "$f" ] && files+=("$f"); done
[ -d wheelhouse ] && files+=(wheelhouse/*.whl)
sha256sum -- "${files[@]}" >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS
step "Artifacts ready in $AP_ARTIFACTS (SHA256SUMS lists ${#files[@]} files)"
