#!/usr/bin/env bash
# receive.sh: receive a videoip stream and show it.
#
# Runs `videoipsrc port=$PORT ! videoconvert ! $SINK`. The caps come from the sender, so
# nothing about the stream needs to be given here. Runs until Ctrl-C or until the sender
# ends the stream.
#
# Environment knobs (defaults in brackets):
#   PORT     UDP port to listen on [5004]
#   ADDRESS  local address to bind, or a multicast group to join [0.0.0.0]
#   SINK     the element (or short pipeline) after videoconvert [autovideosink];
#            SINK=fakesink for a headless machine
# Arguments: extra videoipsrc properties, e.g. `./receive.sh latency=100`.
#
# The plugin is taken from ../target/release or ../target/debug (the newer build if both
# exist). An existing GST_PLUGIN_PATH is kept and searched first.
set -euo pipefail

PORT="${PORT:-5004}"
ADDRESS="${ADDRESS:-0.0.0.0}"
SINK="${SINK:-autovideosink}"

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# SINK is split on spaces on purpose, so that it can carry properties (SINK="fakesink sync=false").
set -x
# shellcheck disable=SC2086
exec gst-launch-1.0 \
    videoipsrc address="$ADDRESS" port="$PORT" "$@" \
    ! videoconvert \
    ! $SINK
