// SPDX-License-Identifier: MPL-2.0
//! The main job: a real stream from a sender pipeline to a receiver pipeline on this machine.
//!
//! This process runs the receiver (`videoipsrc ! fakesink sync=true`, a sink that waits on
//! the clock as a display does) and starts itself again as a
//! second process, the sender (`videotestsrc ! videoipsink`). Both print their stats at the
//! end, with the CPU time each process used.
//!
//! ```text
//! cargo run --release --example loopback -- [--width 1920] [--height 1080] [--fps 60]
//!     [--format UYVY] [--seconds 5] [--mtu 1500] [--pacing frame|none] [--port 0]
//! ```

use gst::prelude::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Opts {
    width: u32,
    height: u32,
    fps: u32,
    format: String,
    seconds: u32,
    mtu: u32,
    pacing: String,
    port: u16,
    sender: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        width: 1920,
        height: 1080,
        fps: 60,
        format: "UYVY".into(),
        seconds: 5,
        mtu: 1500,
        pacing: "frame".into(),
        port: 0,
        sender: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--sender" {
            o.sender = true;
            continue;
        }
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--width" => o.width = num(&v)?,
            "--height" => o.height = num(&v)?,
            "--fps" => o.fps = num(&v)?.max(1),
            "--format" => o.format = v,
            "--seconds" => o.seconds = num(&v)?.max(1),
            "--mtu" => o.mtu = num(&v)?,
            "--pacing" => o.pacing = v,
            "--port" => o.port = u16::try_from(num(&v)?).map_err(|_| "--port: too large")?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    Ok(o)
}

/// CPU seconds (user + system) of this process, or of its waited-for children.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into a zeroed rusage we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn stat(s: &gst::Structure, name: &str) -> u64 {
    s.get::<u64>(name).unwrap_or(0)
}

fn run_sender(o: &Opts) -> Result<(), String> {
    let frames = o.seconds * o.fps;
    let desc = format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=smpte \
         ! video/x-raw,format={},width={},height={},framerate={}/1 \
         ! videoipsink name=sink host=127.0.0.1 port={} mtu={} pacing={}",
        o.format, o.width, o.height, o.fps, o.port, o.mtu, o.pacing
    );
    let pipeline = gst::parse::launch(&desc).map_err(|e| e.to_string())?;
    let bin = pipeline.downcast_ref::<gst::Bin>().ok_or("not a bin")?;
    let sink = bin.by_name("sink").ok_or("no sink")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the sender pipeline does not start")?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(u64::from(o.seconds) + 30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let s = sink.property::<gst::Structure>("stats");
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(gst::MessageView::Error(e)) = msg.as_ref().map(|m| m.view()) {
        return Err(format!("sender: {}", e.error()));
    }
    // What the receivers reported back: they report 4 times a second, and the sink lists
    // those heard from in the last 2 s, so the receiver is still listed at the end.
    let rtts: Vec<String> = s
        .get::<gst::Array>("receiver-stats")
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get::<gst::Structure>().ok())
                .map(|r| {
                    format!(
                        "{} rtt={}µs",
                        r.get::<String>("address").unwrap_or_default(),
                        r.get::<i64>("rtt").unwrap_or(-1)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!(
        "sender:   frames-sent={} datagrams-sent={} bytes-sent={} send-errors={} cpu={:.2}s receivers={} [{}]",
        stat(&s, "frames-sent"),
        stat(&s, "datagrams-sent"),
        stat(&s, "bytes-sent"),
        stat(&s, "send-errors"),
        cpu_seconds(libc::RUSAGE_SELF),
        stat(&s, "receivers"),
        rtts.join(", ")
    );
    Ok(())
}

fn run_receiver(o: &Opts) -> Result<(), String> {
    gstvideoip::plugin_register_static().map_err(|e| e.to_string())?;
    let pipeline = gst::parse::launch(&format!(
        "videoipsrc name=src port={} ! fakesink name=sink sync=true",
        o.port
    ))
    .map_err(|e| e.to_string())?;
    let bin = pipeline.downcast_ref::<gst::Bin>().ok_or("not a bin")?;
    let src = bin.by_name("src").ok_or("no src")?;
    pipeline
        .set_state(gst::State::Ready)
        .map_err(|_| "the receiver cannot open its socket (is the port in use?)")?;
    let port = src.property::<i32>("port");
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the receiver pipeline does not start")?;

    // The sender: this same program, as a separate process, finding the plugin in the
    // directory of the built libgstvideoip.so.
    // CPU so far, so that only the stream is counted (a shell that exec'd us may have
    // waited for a build already).
    let rx_cpu0 = cpu_seconds(libc::RUSAGE_SELF);
    let tx_cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let plugin_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("cannot locate the build directory")?;
    let mut child = Command::new(&exe)
        .args(["--sender", "--port", &port.to_string()])
        .args([
            "--width",
            &o.width.to_string(),
            "--height",
            &o.height.to_string(),
        ])
        .args(["--fps", &o.fps.to_string(), "--format", &o.format])
        .args([
            "--seconds",
            &o.seconds.to_string(),
            "--mtu",
            &o.mtu.to_string(),
        ])
        .args(["--pacing", &o.pacing])
        .env("GST_PLUGIN_PATH", plugin_dir)
        .stdout(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the sender: {e}"))?;

    println!(
        "videoip loopback: {}x{} {} @ {} fps for {} s, mtu {}, pacing {}, 127.0.0.1:{port}",
        o.width, o.height, o.format, o.fps, o.seconds, o.mtu, o.pacing
    );
    let bus = pipeline.bus().ok_or("no bus")?;
    let start = Instant::now();
    let mut last_bytes = 0u64;
    let deadline = start + Duration::from_secs(u64::from(o.seconds) + 30);
    let outcome = loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(1),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let s = src.property::<gst::Structure>("stats");
        let bytes = stat(&s, "bytes-received");
        println!(
            "receiver: t={:>4.1}s frames-complete={} frames-dropped={} datagrams-lost={} {:.2} Gbit/s",
            start.elapsed().as_secs_f64(),
            stat(&s, "frames-complete"),
            stat(&s, "frames-dropped"),
            stat(&s, "datagrams-lost"),
            (bytes - last_bytes) as f64 * 8.0 / 1e9
        );
        last_bytes = bytes;
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => break Ok(()),
            Some(gst::MessageView::Error(e)) => break Err(format!("receiver: {}", e.error())),
            _ if Instant::now() > deadline => break Err("the stream did not end".into()),
            _ => {}
        }
    };
    let status = child.wait().map_err(|e| e.to_string())?;
    let s = src.property::<gst::Structure>("stats");
    let _ = pipeline.set_state(gst::State::Null);
    let frames = stat(&s, "frames-complete").max(1) as f64;
    let rx_cpu = cpu_seconds(libc::RUSAGE_SELF) - rx_cpu0;
    let tx_cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - tx_cpu0;
    println!("receiver: final {s}");
    println!(
        "summary:  frames sent {} / delivered {} / dropped {}; CPU per delivered frame: sender {:.2} ms, receiver {:.2} ms",
        o.seconds * o.fps,
        stat(&s, "frames-complete"),
        stat(&s, "frames-dropped"),
        tx_cpu * 1000.0 / frames,
        rx_cpu * 1000.0 / frames
    );
    outcome?;
    if !status.success() {
        return Err("the sender failed".into());
    }
    Ok(())
}

fn main() {
    let result = parse_opts().and_then(|o| {
        gst::init().map_err(|e| e.to_string())?;
        if o.sender {
            run_sender(&o)
        } else {
            run_receiver(&o)
        }
    });
    if let Err(e) = result {
        eprintln!("loopback: {e}");
        std::process::exit(1);
    }
}
