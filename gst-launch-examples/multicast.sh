#!/usr/bin/env bash
# multicast.sh: send and receive a videoip stream over IPv4 multicast, in a private network
# namespace, and count the frames.
#
# Must run as root. It creates a throw-away network namespace (videoip-mc-<pid>), brings up
# its loopback interface, routes 224.0.0.0/4 to it, and runs both ends inside it:
#   receiver: videoipsrc address=$GROUP port=$PORT multicast-iface=lo ! fakesink
#   sender:   videotestsrc ! raw video ! videoipsink host=$GROUP port=$PORT multicast-iface=lo ttl-mc=1
# The sender stops after DURATION seconds' worth of frames (num-buffers). Then the script
# prints how many frames were sent and received (counted from fakesink's "chain" lines, as
# gst-launch-1.0 cannot print the `stats` property), and deletes the namespace on exit.
# Nothing is ever sent to a multicast group in the machine's own network namespace.
# Exits 0 when at least one frame was received.
#
# Environment knobs (defaults in brackets):
#   GROUP     IPv4 multicast group [239.1.1.1]
#   PORT      UDP port [5004]
#   DURATION  seconds of video to send [3]
#   WIDTH     frame width [1920]
#   HEIGHT    frame height [1080]
#   FPS       frame rate, an integer or a fraction such as 30000/1001 [60]
#   FORMAT    raw video format [UYVY]
#
# The plugin is taken from ../target/release or ../target/debug (the newer build if both
# exist). An existing GST_PLUGIN_PATH is kept and searched first.
set -euo pipefail

GROUP="${GROUP:-239.1.1.1}"
PORT="${PORT:-5004}"
DURATION="${DURATION:-3}"
WIDTH="${WIDTH:-1920}"
HEIGHT="${HEIGHT:-1080}"
FPS="${FPS:-60}"
FORMAT="${FORMAT:-UYVY}"

if [[ "$(id -u)" -ne 0 ]]; then
    echo "error: multicast.sh must be run as root (it creates a network namespace)" >&2
    exit 1
fi

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ "$FPS" == */* ]] || FPS="$FPS/1"
num_buffers="$(frames_for "$DURATION" "$FPS")"

ns="videoip-mc-$$"
logs="$(mktemp -d)"
rx_pid=""
ns_created=""
cleanup() {
    if [[ -n "$rx_pid" ]] && kill -0 "$rx_pid" 2>/dev/null; then
        kill "$rx_pid" 2>/dev/null || true
        wait "$rx_pid" 2>/dev/null || true
    fi
    if [[ -n "$ns_created" ]]; then
        ip netns delete "$ns" 2>/dev/null || true
    fi
    rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { ip netns exec "$ns" "$@"; }

ip netns add "$ns"
ns_created=1
in_ns ip link set lo up
in_ns ip route add 224.0.0.0/4 dev lo
echo "namespace $ns: lo up, 224.0.0.0/4 routed to lo"

echo "receiver: videoipsrc address=$GROUP port=$PORT multicast-iface=lo ! fakesink"
in_ns gst-launch-1.0 -v \
    videoipsrc address="$GROUP" port="$PORT" multicast-iface=lo \
    ! fakesink silent=false \
    >"$logs/receiver.log" 2>&1 &
rx_pid=$!

# Wait (up to 5 s) until the receiver's socket is bound and has joined the group.
for _ in $(seq 50); do
    if ! kill -0 "$rx_pid" 2>/dev/null; then
        echo "error: the receiver stopped before the sender started" >&2
        show_log receiver "$logs/receiver.log"
        exit 1
    fi
    in_ns ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . && break
    sleep 0.1
done

echo "sender:   videotestsrc ! $FORMAT ${WIDTH}x${HEIGHT}@$FPS" \
    "! videoipsink host=$GROUP port=$PORT multicast-iface=lo ttl-mc=1 ($num_buffers frames)"
if ! in_ns gst-launch-1.0 \
    videotestsrc is-live=true num-buffers="$num_buffers" \
    ! "video/x-raw,format=$FORMAT,width=$WIDTH,height=$HEIGHT,framerate=$FPS" \
    ! videoipsink host="$GROUP" port="$PORT" multicast-iface=lo ttl-mc=1 \
    >"$logs/sender.log" 2>&1; then
    echo "error: the sender failed" >&2
    show_log sender "$logs/sender.log"
    exit 1
fi

rx_status=0
wait_for_receiver "$rx_pid" || rx_status=$?
rx_pid=""

received="$(frames_received "$logs/receiver.log")"

echo
echo "sender   frames sent:        $num_buffers (num-buffers)"
echo "receiver frames received:    $received"
echo "receiver frames missing:     $((num_buffers - received))"
echo "receiver exit status:        $rx_status"

require_frames "$received" "$logs/receiver.log"
