#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Sets everything up and runs the whole test suite: unit tests of the pure modules and
# integration tests with real GStreamer pipelines over loopback UDP and in network
# namespaces the tests make themselves (those need root; they say "skipping" without it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test "$@"
# The portable socket backend (what other systems use): its unit tests and one end-to-end run.
cargo test --features portable-net --lib --test roundtrip "$@"
