#!/usr/bin/env bash
# send.sh: stream a live test pattern with videoipsink.
#
# Generates videotestsrc (is-live=true) video, fixes it to raw FORMAT WIDTHxHEIGHT@FPS and
# sends it with videoipsink to HOST:PORT. Runs until Ctrl-C, or for NUM_BUFFERS frames.
#
# Environment knobs (defaults in brackets):
#   HOST         receiver address, host name or multicast group [127.0.0.1]
#   PORT         UDP port [5004]
#   WIDTH        frame width [1920]
#   HEIGHT       frame height [1080]
#   FPS          frame rate, an integer or a fraction such as 30000/1001 [60]
#   FORMAT       raw video format [UYVY]
#   NUM_BUFFERS  frames to send before stopping, -1 for no limit [-1]
# Arguments: extra videoipsink properties, e.g. `./send.sh mtu=9000 pacing=none`.
#
# The plugin is taken from ../target/release or ../target/debug (the newer build if both
# exist). An existing GST_PLUGIN_PATH is kept and searched first.
set -euo pipefail

HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-5004}"
WIDTH="${WIDTH:-1920}"
HEIGHT="${HEIGHT:-1080}"
FPS="${FPS:-60}"
FORMAT="${FORMAT:-UYVY}"
NUM_BUFFERS="${NUM_BUFFERS:--1}"

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ "$FPS" == */* ]] || FPS="$FPS/1"

set -x
exec gst-launch-1.0 \
    videotestsrc is-live=true num-buffers="$NUM_BUFFERS" \
    ! "video/x-raw,format=$FORMAT,width=$WIDTH,height=$HEIGHT,framerate=$FPS" \
    ! videoipsink host="$HOST" port="$PORT" "$@"
