#!/usr/bin/env bash
# Makes sure the programs the tests run besides Go are here: the README test
# (system/readme_test.go) runs the README's commands, which use the nats CLI
# and curl. The nats CLI (natscli v0.5.0) is installed with go install when
# missing; curl is only reported.
set -eu
GO=${GO:-go}
natscli=github.com/nats-io/natscli/nats@v0.5.0

gobin=$($GO env GOBIN)
[ -n "$gobin" ] || gobin=$($GO env GOPATH)/bin
if ! command -v nats >/dev/null && [ ! -x "$gobin/nats" ]; then
  echo "The README test runs the README's nats commands, and the nats CLI is not installed:"
  echo "installing it into $gobin with: $GO install $natscli"
  echo "(once; on an empty module cache about 70 modules, ~90 MB, and a build: about 2 minutes)"
  $GO install "$natscli"
fi
if ! command -v curl >/dev/null; then
  echo "error: the README test runs the README's curl commands, and curl is not installed; install it (Debian/Ubuntu: apt-get install curl)" >&2
  exit 1
fi
