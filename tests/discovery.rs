// SPDX-License-Identifier: MPL-2.0
//! Finding sources by name, in network namespaces the tests make: multicast DNS runs on
//! 224.0.0.251:5353 inside them and never leaves the machine. Each test skips when not root.

// Each test binary uses only some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use gstvideoip::discovery::{self, Announcer, Browser, Event, Mode, SourceTxt};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn txt(name: &str, session: u64) -> SourceTxt {
    SourceTxt {
        version: discovery::txt::VERSION,
        name: Some(name.into()),
        session: Some(session),
        media: Some("video/x-raw".into()),
        width: Some(640),
        height: Some(480),
        framerate: Some((25, 1)),
        format: Some("GRAY8".into()),
        mode: Some(Mode::Subscribe),
        port: Some(40000),
        ..Default::default()
    }
}

/// Waits up to `timeout` for an event that `pick` accepts.
fn wait_for(
    rx: &mpsc::Receiver<(Instant, Event)>,
    timeout: Duration,
    pick: impl Fn(&Event) -> bool,
) -> Option<(Instant, Event)> {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, e)) if pick(&e) => return Some((at, e)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn browser() -> (Browser, mpsc::Receiver<(Instant, Event)>) {
    let (tx, rx) = mpsc::channel();
    let b = Browser::new(move |e| {
        let _ = tx.send((Instant::now(), e));
    })
    .expect("the browser starts");
    (b, rx)
}

#[test]
fn test_discovery_announced_source_is_found_updated_and_lost() {
    let Some(ns) = NetNs::new("dns-sd") else {
        eprintln!("skipped: needs root and ip");
        return;
    };
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        let (browser, events) = browser();
        let started = Instant::now();
        let ann = Announcer::new(40000, &txt("CAM 1", 0x1234_5678_9abc_def0)).expect("announces");
        let (at, found) = wait_for(&events, Duration::from_secs(5), |e| {
            matches!(e, Event::Found(_))
        })
        .expect("the source is found");
        let Event::Found(s) = found else {
            unreachable!()
        };
        eprintln!("found after {:?}: {s:?}", at - started);
        assert!(at - started < Duration::from_secs(2), "found within 2 s");
        assert_eq!(s.name, "CAM 1");
        assert_eq!(s.instance, ann.instance());
        assert_eq!(s.port, 40000);
        assert_eq!(s.txt, txt("CAM 1", 0x1234_5678_9abc_def0));
        assert!(!s.addresses.is_empty());
        assert_eq!(s.receive_at().map(|(_, p)| p), Some(40000));

        // A caps change updates the TXT.
        let mut t2 = txt("CAM 1", 0x1234_5678_9abc_def0);
        t2.width = Some(1280);
        t2.height = Some(720);
        ann.update(&t2).expect("updates");
        let (_, upd) = wait_for(
            &events,
            Duration::from_secs(5),
            |e| matches!(e, Event::Updated(s) if s.txt.width == Some(1280)),
        )
        .expect("the update is seen");
        let Event::Updated(s) = upd else {
            unreachable!()
        };
        assert_eq!(s.txt, t2);

        // Goodbye: lost at once.
        let gone = Instant::now();
        drop(ann);
        let (at, _) = wait_for(&events, Duration::from_secs(6), |e| {
            matches!(e, Event::Lost(_))
        })
        .expect("the source is lost");
        eprintln!("lost {:?} after the goodbye", at - gone);
        assert!(at - gone < Duration::from_secs(5));
        assert!(browser.sources().is_empty());
    })
    .join()
    .expect("the namespace thread finishes");
}

/// A free UDP port in the calling thread's namespace.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn monitor() -> gst::DeviceMonitor {
    let m = gst::DeviceMonitor::new();
    m.add_filter(Some("Source/Network"), None)
        .expect("the filter is taken");
    m.start().expect("the device monitor starts");
    m
}

/// Waits up to `timeout` for a device message of `kind` whose device `pick` accepts.
fn wait_device(
    m: &gst::DeviceMonitor,
    kind: gst::MessageType,
    timeout: Duration,
    pick: impl Fn(&gst::Device) -> bool,
) -> Option<(Instant, gst::Device)> {
    let bus = m.bus();
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[kind],
        )?;
        let device = match msg.view() {
            gst::MessageView::DeviceAdded(d) => d.device(),
            gst::MessageView::DeviceRemoved(d) => d.device(),
            gst::MessageView::DeviceChanged(d) => d.device_changed().0,
            _ => continue,
        };
        if pick(&device) {
            return Some((Instant::now(), device));
        }
    }
}

fn is_videoip(d: &gst::Device) -> bool {
    d.properties()
        .and_then(|p| p.get::<String>("device.api").ok())
        .as_deref()
        == Some("videoip")
}

fn prop(d: &gst::Device, name: &str) -> Option<String> {
    d.properties().and_then(|p| p.get::<String>(name).ok())
}

/// A named multicast sender is listed by the device monitor within 2 s, with its caps once
/// they flow; the element the device makes receives its frames byte-exact; the device goes
/// within 5 s of the sender's end.
#[test]
fn test_device_monitor_lists_receives_and_removes_a_named_sender() {
    init();
    let Some(ns) = NetNs::new("devmon") else {
        eprintln!("skipped: needs root and ip");
        return;
    };
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        let monitor = monitor();
        let group = "239.255.7.7";
        let port = free_port();
        let caps = gray_caps(64, 48);
        let started = Instant::now();
        let mut tx = Tx::new(
            group,
            port,
            &caps,
            "multicast-iface=lo ttl-mc=1 source-name=\"CAM 1\"",
        );
        let (at, device) = wait_device(
            &monitor,
            gst::MessageType::DeviceAdded,
            Duration::from_secs(5),
            is_videoip,
        )
        .expect("the device monitor lists the sender");
        eprintln!(
            "listed after {:?} as {:?}, {:?}",
            at - started,
            device.display_name(),
            device.properties()
        );
        assert!(at - started < Duration::from_secs(2), "listed within 2 s");
        assert!(device.display_name().starts_with("CAM 1 ("));
        assert!(device.has_classes("Source/Network"));
        assert_eq!(
            prop(&device, "videoip.source-name").as_deref(),
            Some("CAM 1")
        );
        assert_eq!(prop(&device, "videoip.mode").as_deref(), Some("multicast"));
        assert_eq!(prop(&device, "videoip.group").as_deref(), Some(group));

        // The element it makes receives the stream.
        let src = device.create_element(Some("src")).expect("an element");
        assert_eq!(src.property::<String>("address"), group);
        assert_eq!(src.property::<i32>("port"), i32::from(port));
        src.set_property("multicast-iface", "lo");
        let pipeline = gst::Pipeline::new();
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline.add_many([&src, sink.upcast_ref()]).unwrap();
        src.link(&sink).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let frames: Vec<Vec<u8>> = (0..5).map(|i| pattern(64 * 48, i + 7)).collect();
        for f in &frames {
            tx.push(f, gst::ClockTime::from_mseconds(40));
        }
        let rx = Rx {
            pipeline: pipeline.clone(),
            src: src.clone(),
            sink: sink.clone(),
            port,
        };
        let got: Vec<Vec<u8>> = rx
            .pull(5, Duration::from_secs(10))
            .iter()
            .map(sample_bytes)
            .collect();
        assert!(got == frames, "5 frames byte-exact, got {}", got.len());

        // The caps reach the device list.
        let (_, changed) = wait_device(
            &monitor,
            gst::MessageType::DeviceChanged,
            Duration::from_secs(5),
            is_videoip,
        )
        .expect("the device changes with the caps");
        let dcaps = changed.caps().expect("caps");
        let s = dcaps.structure(0).expect("a structure");
        assert_eq!(s.name(), "video/x-raw");
        assert_eq!(s.get::<i32>("width").ok(), Some(64));
        assert_eq!(s.get::<&str>("format").ok(), Some("GRAY8"));

        // The sender stops: the device goes.
        drop(rx);
        let gone = Instant::now();
        drop(tx);
        let (at, _) = wait_device(
            &monitor,
            gst::MessageType::DeviceRemoved,
            Duration::from_secs(8),
            is_videoip,
        )
        .expect("the device is removed");
        eprintln!("removed {:?} after the sender stopped", at - gone);
        assert!(at - gone < Duration::from_secs(5), "removed within 5 s");
        monitor.stop();
    })
    .join()
    .expect("the namespace thread finishes");
}

/// Two senders of one name are two devices, told apart by host and port in their display
/// names and by session.
#[test]
fn test_device_monitor_lists_two_senders_of_one_name_apart() {
    init();
    let Some(ns) = NetNs::new("devdup") else {
        eprintln!("skipped: needs root and ip");
        return;
    };
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        let monitor = monitor();
        let caps = gray_caps(32, 32);
        let props = "multicast-iface=lo source-name=\"CAM 1\"";
        let _a = Tx::new("239.255.7.8", free_port(), &caps, props);
        let _b = Tx::new("239.255.7.9", free_port(), &caps, props);
        let mut devices = Vec::new();
        while devices.len() < 2 {
            let Some((_, d)) = wait_device(
                &monitor,
                gst::MessageType::DeviceAdded,
                Duration::from_secs(5),
                is_videoip,
            ) else {
                break;
            };
            devices.push(d);
        }
        assert_eq!(devices.len(), 2, "two devices");
        let names: Vec<String> = devices.iter().map(|d| d.display_name().into()).collect();
        eprintln!("{names:?}");
        assert_ne!(names[0], names[1]);
        assert!(names.iter().all(|n| n.starts_with("CAM 1 (")));
        assert_ne!(
            prop(&devices[0], "videoip.session"),
            prop(&devices[1], "videoip.session")
        );
        assert_ne!(
            prop(&devices[0], "videoip.instance"),
            prop(&devices[1], "videoip.instance")
        );
        monitor.stop();
    })
    .join()
    .expect("the namespace thread finishes");
}
