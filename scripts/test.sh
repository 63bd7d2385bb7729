#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Sets everything up and runs the whole test suite: unit tests of the pure modules and
# integration tests with real GStreamer pipelines over loopback UDP and in network
# namespaces the tests make themselves (those need root; they say "skipping" without it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The plugin library itself (target/debug/libgstvideoip.so): the Python example's test loads
# it from GST_PLUGIN_PATH, as a user would.
cargo build --lib
cargo test "$@"
# The portable socket backend (what other systems use): its unit tests and one end-to-end run.
cargo test --features portable-net --lib --test roundtrip "$@"
