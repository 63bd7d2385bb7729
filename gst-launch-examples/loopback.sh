#!/usr/bin/env bash
# loopback.sh: send and receive a videoip stream on this machine and count the frames.
#
# Starts a receiver (`videoipsrc ! fakesink`) and a sender (live videotestsrc, raw
# FORMAT WIDTHxHEIGHT@FPS ! videoipsink) as two separate gst-launch-1.0 processes talking over
# 127.0.0.1. The sender stops after DURATION seconds' worth of frames (num-buffers) and ends
# the stream; the receiver stops when the end of stream reaches it. Then it prints how many
# frames were sent and how many the receiver pushed downstream.
#
# gst-launch-1.0 cannot print the elements' `stats` property, so the receiver runs with
# `-v` and `fakesink silent=false`, and its frames are counted from fakesink's "chain" lines.
# Exits 0 when at least one frame was received.
#
# Environment knobs (defaults in brackets):
#   DURATION  seconds of video to send [5]
#   PORT      UDP port on 127.0.0.1 [5004]
#   WIDTH     frame width [1920]
#   HEIGHT    frame height [1080]
#   FPS       frame rate, an integer or a fraction such as 30000/1001 [60]
#   FORMAT    raw video format [UYVY]
#
# The plugin is taken from ../target/release or ../target/debug (the newer build if both
# exist). An existing GST_PLUGIN_PATH is kept and searched first.
set -euo pipefail

DURATION="${DURATION:-5}"
PORT="${PORT:-5004}"
WIDTH="${WIDTH:-1920}"
HEIGHT="${HEIGHT:-1080}"
FPS="${FPS:-60}"
FORMAT="${FORMAT:-UYVY}"

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ "$FPS" == */* ]] || FPS="$FPS/1"
num_buffers="$(frames_for "$DURATION" "$FPS")"

logs="$(mktemp -d)"
rx_pid=""
cleanup() {
    if [[ -n "$rx_pid" ]] && kill -0 "$rx_pid" 2>/dev/null; then
        kill "$rx_pid" 2>/dev/null || true
        wait "$rx_pid" 2>/dev/null || true
    fi
    rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# reuse=false (the default): if another receiver already listens on PORT, fail instead of
# sharing the port.
echo "receiver: videoipsrc port=$PORT reuse=false ! fakesink"
gst-launch-1.0 -v videoipsrc port="$PORT" reuse=false ! fakesink silent=false \
    >"$logs/receiver.log" 2>&1 &
rx_pid=$!

# Wait (up to 5 s) until the receiver's socket is bound, so the first frames are not lost.
for _ in $(seq 50); do
    if ! kill -0 "$rx_pid" 2>/dev/null; then
        echo "error: the receiver stopped before the sender started" >&2
        show_log receiver "$logs/receiver.log"
        exit 1
    fi
    ss -Hlunp "sport = :$PORT" 2>/dev/null | grep -q "pid=$rx_pid," && break
    sleep 0.1
done

echo "sender:   videotestsrc ! $FORMAT ${WIDTH}x${HEIGHT}@$FPS ! videoipsink host=127.0.0.1 port=$PORT" \
    "($num_buffers frames, ${DURATION} s)"
if ! gst-launch-1.0 \
    videotestsrc is-live=true num-buffers="$num_buffers" \
    ! "video/x-raw,format=$FORMAT,width=$WIDTH,height=$HEIGHT,framerate=$FPS" \
    ! videoipsink host=127.0.0.1 port="$PORT" \
    >"$logs/sender.log" 2>&1; then
    echo "error: the sender failed" >&2
    show_log sender "$logs/sender.log"
    exit 1
fi

rx_status=0
wait_for_receiver "$rx_pid" || rx_status=$?
rx_pid=""

received="$(frames_received "$logs/receiver.log")"
discont="$(grep 'last-message = chain' "$logs/receiver.log" | grep -c 'discont' || true)"
caps="$(grep -m1 'GstVideoIpSrc:videoipsrc0.GstPad:src: caps = ' "$logs/receiver.log" |
    sed 's/.*caps = //' || true)"

echo
echo "sender   frames sent:        $num_buffers (num-buffers)"
echo "receiver frames received:    $received"
echo "receiver frames missing:     $((num_buffers - received))"
echo "receiver discont buffers:    $discont (the first buffer is always one)"
echo "receiver caps:               ${caps:-none}"
echo "receiver exit status:        $rx_status"

require_frames "$received" "$logs/receiver.log"
