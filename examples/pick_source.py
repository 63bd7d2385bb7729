#!/usr/bin/python3
# SPDX-License-Identifier: MPL-2.0
"""List the videoip sources on the network and play the one you pick.

    GST_PLUGIN_PATH=target/release /usr/bin/python3 examples/pick_source.py

Sources announce themselves by DNS-SD (videoipsink source-name=...); the plugin's device
provider lists them. Pick one by its number, or pass --name NAME (or --first) to skip the
question. The picked source plays through videoconvert ! autovideosink (audio through
audioconvert ! autoaudiosink) until Ctrl-C, or for --seconds.

Needs PyGObject and GStreamer's introspection data (Debian: python3-gi,
gir1.2-gstreamer-1.0), so run it with the system's Python.
"""

import argparse
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def videoip_sources(wait):
    """The videoip sources the device monitor finds within `wait` seconds."""
    monitor = Gst.DeviceMonitor.new()
    monitor.add_filter("Source/Network", None)
    if not monitor.start():
        sys.exit("could not start the device monitor (is the videoip plugin on GST_PLUGIN_PATH?)")
    # Sources answer the monitor's query within about a second.
    time.sleep(wait)
    devices = []
    for device in monitor.get_devices() or []:
        props = device.get_properties()
        if props is not None and props.get_string("device.api") == "videoip":
            devices.append(device)
    monitor.stop()
    return devices


def choose(devices, args):
    """The device the user picks: by --name, --first, or by its number on stdin."""
    if args.name is not None:
        named = [d for d in devices if d.get_properties().get_string("videoip.source-name") == args.name]
        return named[0] if named else None
    if args.first:
        return devices[0]
    for i, d in enumerate(devices, 1):
        caps = d.get_caps()
        print(f"{i}. {d.get_display_name()}  {caps.to_string() if caps else ''}")
    try:
        n = int(input(f"play which (1-{len(devices)})? "))
    except (EOFError, ValueError):
        return None
    return devices[n - 1] if 1 <= n <= len(devices) else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="play the source of this name")
    parser.add_argument("--first", action="store_true", help="play the first source found")
    parser.add_argument("--wait", type=float, default=2.0, help="seconds to look (default 2)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--sink", help="sink description instead of autovideosink/autoaudiosink")
    args = parser.parse_args()

    Gst.init(None)
    devices = videoip_sources(args.wait)
    if not devices:
        sys.exit("no videoip source found")
    device = choose(devices, args)
    if device is None:
        sys.exit("no such source")

    audio = device.has_classes("Audio") and not device.has_classes("Video")
    convert = "audioconvert" if audio else "videoconvert"
    sink = args.sink or ("autoaudiosink" if audio else "autovideosink")
    pipeline = Gst.Pipeline.new("player")
    src = device.create_element("src")
    rest = Gst.parse_bin_from_description(f"{convert} ! {sink}", True)
    pipeline.add(src)
    pipeline.add(rest)
    src.link(rest)
    print(f"playing {device.get_display_name()}", flush=True)

    loop = GLib.MainLoop()
    bus = pipeline.get_bus()
    bus.add_signal_watch()

    def on_message(_bus, message):
        if message.type == Gst.MessageType.ERROR:
            err, _ = message.parse_error()
            print(f"error: {err.message}", file=sys.stderr)
            loop.quit()
        elif message.type == Gst.MessageType.EOS:
            loop.quit()

    bus.connect("message", on_message)
    if args.seconds is not None:
        GLib.timeout_add(int(args.seconds * 1000), loop.quit)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    stats = src.get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    frames = stats.get_value("frames-complete") if stats else 0
    print(f"frames-complete={frames}", flush=True)


if __name__ == "__main__":
    main()
