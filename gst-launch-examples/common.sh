# SPDX-License-Identifier: MPL-2.0
# Sourced by the example scripts: puts the videoip plugin on GST_PLUGIN_PATH.
# The plugin is taken from ../target/release or ../target/debug (the newer build if both
# exist). An existing GST_PLUGIN_PATH is kept and searched first.

examples_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
plugin_dir=""
for d in "$examples_dir/../target/release" "$examples_dir/../target/debug"; do
    if [[ -f "$d/libgstvideoip.so" ]] &&
        { [[ -z "$plugin_dir" ]] || [[ "$d/libgstvideoip.so" -nt "$plugin_dir/libgstvideoip.so" ]]; }; then
        plugin_dir="$(cd "$d" && pwd)"
    fi
done
if [[ -n "$plugin_dir" ]]; then
    export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:+$GST_PLUGIN_PATH:}$plugin_dir"
fi
if ! gst-inspect-1.0 videoipsink >/dev/null 2>&1 || ! gst-inspect-1.0 videoipsrc >/dev/null 2>&1; then
    echo "error: GStreamer cannot find the videoip plugin; build it first (cargo build --release)" >&2
    exit 1
fi

# Waits up to 5 s for the receiver (process $1) to end by itself on the sender's
# end-of-stream, then interrupts it; returns its exit status.
wait_for_receiver() {
    local pid=$1
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "note: the receiver did not see the end of stream; stopping it"
        kill -INT "$pid" 2>/dev/null || true
    fi
    local status=0
    wait "$pid" || status=$?
    return "$status"
}

# Prints how many frames $1 seconds at frame rate $2 (N/D) make; fails if none.
frames_for() {
    local num="${2%/*}" den="${2#*/}"
    local n=$(($1 * num / den))
    if ((n < 1)); then
        echo "error: DURATION=$1 at FPS=$2 gives no frames" >&2
        return 1
    fi
    echo "$n"
}

# Prints the last lines of log $2, titled $1, to stderr.
show_log() {
    echo "--- $1 (last 20 lines) ---" >&2
    tail -n 20 "$2" >&2 || true
}

# Prints how many buffers a `fakesink silent=false` receiver logged in $1.
frames_received() {
    grep -c 'last-message = chain' "$1" || true
}

# Fails, showing the receiver's log $2, when no frame ($1) arrived.
require_frames() {
    if (($1 == 0)); then
        echo "error: no frames received" >&2
        show_log receiver "$2"
        exit 1
    fi
}
