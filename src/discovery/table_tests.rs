// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `table.rs`.

use super::*;

fn source(instance: &str) -> Source {
    Source {
        instance: instance.into(),
        name: "CAM 1".into(),
        host: "studio.local.".into(),
        addresses: vec!["192.0.2.1".parse().unwrap()],
        port: 40000,
        txt: SourceTxt {
            version: 2,
            mode: Some(Mode::Subscribe),
            ..Default::default()
        },
        last_seen: Instant::now(),
    }
}

#[test]
fn test_table_finds_updates_and_loses() {
    let mut t = Table::new();
    let a = source("a._videoip._udp.local.");
    assert_eq!(t.resolved(a.clone()), Some(Event::Found(a.clone())));
    assert_eq!(t.resolved(a.clone()), None, "unchanged");
    let mut b = a.clone();
    b.txt.width = Some(640);
    assert_eq!(t.resolved(b.clone()), Some(Event::Updated(b.clone())));
    assert_eq!(t.removed(&a.instance), Some(Event::Lost(b)));
    assert_eq!(t.removed(&a.instance), None);
    assert!(t.is_empty());
}

#[test]
fn test_table_is_bounded() {
    let mut t = Table::new();
    for i in 0..MAX_SOURCES + 100 {
        t.resolved(source(&format!("s{i}._videoip._udp.local.")));
    }
    assert_eq!(t.len(), MAX_SOURCES);
    assert_eq!(t.ignored, 100);
    let long = source(&"x".repeat(MAX_DNS_NAME_LEN + 1));
    t.removed("s0._videoip._udp.local.");
    assert_eq!(t.resolved(long), None, "too long a name is ignored");
    assert_eq!(t.len(), MAX_SOURCES - 1);
}

#[test]
fn test_source_says_where_to_receive() {
    let mut s = source("a");
    assert_eq!(s.receive_at(), Some(("192.0.2.1".parse().unwrap(), 40000)));
    s.txt.mode = Some(Mode::Multicast("239.1.1.1".parse().unwrap()));
    assert_eq!(s.receive_at(), None, "no group port");
    s.txt.port = Some(5004);
    assert_eq!(s.receive_at(), Some(("239.1.1.1".parse().unwrap(), 5004)));
    s.txt.mode = None;
    assert_eq!(s.receive_at(), None);
    assert_eq!(s.display_name(), "CAM 1 (studio:40000)");
}

#[test]
fn test_addresses_best_first_and_bounded() {
    let v = sort_addresses(
        [
            "::1",
            "127.0.0.1",
            "fe80::1",
            "10.0.0.2",
            "2001:db8::1",
            "10.0.0.2",
        ]
        .iter()
        .map(|a| a.parse().unwrap()),
    );
    let want: Vec<IpAddr> = ["10.0.0.2", "2001:db8::1", "127.0.0.1", "::1", "fe80::1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(v, want);
    let many = sort_addresses((0..100u8).map(|i| IpAddr::from([10, 0, 0, i])));
    assert_eq!(many.len(), MAX_ADDRESSES);
}

#[test]
fn test_instance_label_unescapes() {
    assert_eq!(
        instance_label(r"CAM\.1 [0000abcd]._videoip._udp.local."),
        "CAM.1 [0000abcd]"
    );
}
