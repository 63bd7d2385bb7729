#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Sets everything up, builds the plugin in release mode and streams 1080p60 UYVY from a
# sender process (videotestsrc ! videoipsink) to a receiver pipeline (videoipsrc ! fakesink
# sync=true, which waits on the clock as a display does)
# over loopback for a few seconds, printing both ends' stats. Options are passed on to the
# example, e.g. `scripts/demo.sh --seconds 10 --width 3840 --height 2160`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet --lib --example loopback
exec target/release/examples/loopback "$@"
