// SPDX-License-Identifier: MPL-2.0
//! Finding sources by name, in network namespaces the tests make: multicast DNS runs on
//! 224.0.0.251:5353 inside them and never leaves the machine. Each test skips when not root.

// Each test binary uses only some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::*;
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
