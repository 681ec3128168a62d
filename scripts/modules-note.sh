#!/usr/bin/env bash
# Says what is about to happen when the Go module cache lacks modules the
# next command needs, before Go starts printing "go: downloading" for each:
#   modules-note.sh test PACKAGES...   what make test builds (the packages and their tests)
#   modules-note.sh run                what make run builds (the launcher)
# The check asks Go to resolve the packages with downloads turned off
# (GOPROXY=off), so it costs well under a second when the cache is complete.
#
# The figures below were measured with an empty cache:
#   GOMODCACHE=$(mktemp -d) go list -deps -test <packages> >/dev/null   (test)
#   GOMODCACHE=$(mktemp -d) go list -deps ./system/cmd/nexus >/dev/null (run)
# and du -sh $GOMODCACHE/cache/download.
set -u
GO=${GO:-go}
mode=${1:-test}
shift || true
case $mode in
  test) pkgs=$* ;;
  run) pkgs=./system/cmd/nexus ;;
  *) pkgs= ;;
esac
if [ -z "$pkgs" ]; then echo "usage: $0 test PACKAGES... | $0 run" >&2; exit 2; fi

# shellcheck disable=SC2086 # pkgs is a list of patterns
if GOPROXY=off GOFLAGS= $GO list -deps -test $pkgs >/dev/null 2>&1; then
  exit 0
fi
cache=$($GO env GOMODCACHE)
case $mode in
  test) echo "First run: Go is about to download the ~90 modules the tests need (~92 MB), once; later runs use the" \
    "module cache ($cache). About half of them are dependencies of ory/fosite, the OAuth2/OIDC server the tests run" \
    "in-process; the largest download (~40 MB) is klauspost/compress, which nats-server needs." \
    "On a slow connection this takes minutes, one \"go: downloading\" line per module." ;;
  run) echo "First run: Go is about to download the ~45 modules the broker needs (~70 MB), once; later runs use the" \
    "module cache ($cache). The largest download (~40 MB) is klauspost/compress, which the embedded nats-server needs." \
    "On a slow connection this takes minutes, one \"go: downloading\" line per module." ;;
esac
