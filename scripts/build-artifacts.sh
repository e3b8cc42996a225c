#!/usr/bin/env bash
# Fill the git-ignored artifacts/ folder with what the roles install in the lab, plus a SHA256SUMS file:
#   kafka_2.13-<version>.tgz  Apache Kafka assembled from Maven Central (build/kafka/pom.xml), laid out like upstream;
#                             also each version in AP_KAFKA_EXTRA_VERSIONS (the Kafka upgrade drill's target)
#   jmx_prometheus_javaagent-<version>.jar  the Prometheus JMX exporter agent Kafka loads (roles/kafka's version)
#   weed                      SeaweedFS built from its Go module at the pinned version
#   wheelhouse/               wheels of every service in apps/ and their dependencies (lab hosts install with --no-index),
#                             and <service>.wheels: the wheels each service needs
#   bento                     Bento (the guide's Kafka -> PostgreSQL processor) built from its Go module at the pinned
#                             version, only with AP_BUILD_BENTO=1 (make test-bento, make bench, make test-heavy): about
#                             7 minutes on 2 cores the first time, so make test does not wait for it
# Re-runnable: a piece whose recipe is unchanged and whose checksum still verifies is skipped.
source "$(dirname "$0")/lib.sh"
SELF="$AP_ROOT/scripts/$(basename "$0")"

SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs/weed
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
BENTO_MODULE=github.com/warpstreamlabs/bento
BENTO_VERSION=v1.20.0

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

# go_build NAME LABEL MODULE@VERSION PACKAGE LDFLAGS: download that exact module archive and build PACKAGE inside it
# as the main module, statically, into artifacts/NAME (log: $AP_CACHE/NAME-go.log). Not `go install pkg@version`: it
# refuses a module whose go.mod carries replace directives (SeaweedFS), and it reads the module's version list, which
# the proxy may refuse (Bento); the archive is the same pinned source, checked against the same checksum database.
go_build() {
  local name=$1 label=$2 modver=$3 pkg=$4 ldflags=$5 gobin="$AP_CACHE/gobin" log="$AP_CACHE/$1-go.log" src
  mkdir -p "$gobin"
  (cd "$AP_CACHE" && go mod download -json "$modver" >"$name-mod.json" 2>"$log") \
    || { tail -n 5 "$log" >&2; die "Go module download of $label refused"; }
  src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$AP_CACHE/$name-mod.json")
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod" run_logged "$log" "go build of $label" \
    go build -ldflags="$ldflags" -o "$gobin/$name" "$pkg")
  install -m 0755 "$gobin/$name" "$name.tmp" && mv "$name.tmp" "$name"
}

# --- SeaweedFS -----------------------------------------------------------------------------------------------------
if fresh weed "$SEAWEEDFS_VERSION"; then
  step "SeaweedFS weed $SEAWEEDFS_VERSION: up to date"
else
  step "SeaweedFS weed: go build at $SEAWEEDFS_VERSION (several minutes on 2 cores; log: $AP_CACHE/weed-go.log)"
  go_build weed "SeaweedFS $SEAWEEDFS_VERSION" "${SEAWEEDFS_MODULE%/weed}@$SEAWEEDFS_VERSION" ./weed "-s -w"
  stamp weed "$SEAWEEDFS_VERSION"
  step "SeaweedFS weed: $(./weed version 2>/dev/null | head -n1)"
fi

# --- Bento (AP_BUILD_BENTO=1) --------------------------------------------------------------------------------------
# A bento already here stays listed in SHA256SUMS without the flag.
if [ "${AP_BUILD_BENTO:-0}" = 1 ]; then
  if fresh bento "$BENTO_VERSION"; then
    step "Bento $BENTO_VERSION: up to date"
  else
    step "Bento: go build at $BENTO_VERSION (about 7 minutes on 2 cores the first time; log: $AP_CACHE/bento-go.log)"
    go_build bento "Bento $BENTO_VERSION" "$BENTO_MODULE@$BENTO_VERSION" ./cmd/bento \
      "-s -w -X main.Version=${BENTO_VERSION#v}"
    stamp bento "$BENTO_VERSION"
    step "Bento: $(./bento --version 2>/dev/null | head -n1)"
  fi
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
for f in kafka_2.13-*.tgz jmx_prometheus_javaagent-*.jar weed bento; do [ -f "$f" ] && files+=("$f"); done
[ -d wheelhouse ] && files+=(wheelhouse/*.whl)
sha256sum -- "${files[@]}" >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS
step "Artifacts ready in $AP_ARTIFACTS (SHA256SUMS lists ${#files[@]} files)"
