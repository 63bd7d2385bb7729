// SPDX-License-Identifier: MPL-2.0
use super::super::dns::tests::{response, wire};
use super::*;
use dns::{TYPE_A, TYPE_PTR, TYPE_SRV, TYPE_TXT};

fn txt_rdata(strings: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in strings {
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
    }
    v
}

/// PTR, SRV, TXT and A of `label` on `host` at `ip`, with this TTL.
fn service(label: &str, name: &str, host: &str, ip: [u8; 4], ttl: u32) -> Vec<u8> {
    let full = format!("{label}._videoip._udp.local.");
    let mut srv = vec![0, 0, 0, 0, 0x13, 0x8c];
    srv.extend(wire(host));
    let name = format!("name={name}");
    response(&[
        (SERVICE_TYPE, TYPE_PTR, ttl, wire(&full)),
        (&full, TYPE_SRV, ttl, srv),
        (
            &full,
            TYPE_TXT,
            ttl,
            txt_rdata(&["v=2", &name, "mode=subscribe"]),
        ),
        (host, TYPE_A, ttl, ip.to_vec()),
    ])
}

/// A responder's address: port 5353, as RFC 6762 wants.
const FROM: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)), MDNS_PORT);

fn events(b: &mut Browse) -> Vec<Event> {
    std::iter::from_fn(|| b.poll_event()).collect()
}

#[test]
fn test_found_updated_and_lost_by_goodbye() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    b.handle_timeout(t0);
    let q = b.poll_transmit().expect("the first PTR query at once");
    assert_eq!(&q[4..6], &[0, 1]);
    b.handle_datagram(
        t0,
        FROM,
        &service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120),
    );
    let ev = events(&mut b);
    assert!(matches!(&ev[..], [Event::Found(s)] if s.name == "CAM" && s.port == 5004));
    b.handle_datagram(
        t0,
        FROM,
        &service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120),
    );
    assert!(events(&mut b).is_empty(), "nothing changed");
    b.handle_datagram(
        t0,
        FROM,
        &service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 2], 120),
    );
    assert!(matches!(&events(&mut b)[..], [Event::Updated(s)] if s.addresses.len() == 2));
    b.handle_datagram(
        t0,
        FROM,
        &service("cam [1]", "CAM", "h.local.", [10, 0, 0, 1], 0),
    );
    assert!(
        matches!(&events(&mut b)[..], [Event::Lost(_)]),
        "goodbye, any case"
    );
    assert_eq!(b.kept(), 0);
    assert!(b.table().is_empty());
}

#[test]
fn test_an_unanswered_confirmation_drops_the_source() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    b.handle_datagram(
        t0,
        FROM,
        &service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120),
    );
    events(&mut b);
    let mut now = t0;
    let mut lost = None;
    while now < t0 + Duration::from_secs(6) {
        now += Duration::from_millis(50);
        if now >= b.poll_timeout() {
            b.handle_timeout(now);
        }
        while b.poll_transmit().is_some() {}
        if let Some(Event::Lost(_)) = b.poll_event() {
            lost = Some(now - t0);
            break;
        }
    }
    let lost = lost.expect("dropped");
    assert!(
        lost <= VERIFY_PERIOD + VERIFY_TIMEOUT + SWEEP_PERIOD,
        "{lost:?}"
    );
}

#[test]
fn test_an_answered_confirmation_keeps_the_source() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    let announce = service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120);
    b.handle_datagram(t0, FROM, &announce);
    events(&mut b);
    let mut now = t0;
    while now < t0 + Duration::from_secs(20) {
        now += Duration::from_millis(50);
        if now >= b.poll_timeout() {
            b.handle_timeout(now);
        }
        if b.poll_transmit().is_some() {
            b.handle_datagram(now, FROM, &announce);
        }
        assert!(b.poll_event().is_none());
    }
    assert_eq!(b.table().len(), 1);
}

#[test]
fn test_records_in_separate_messages_resolve_and_pending_is_bounded() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    let full = "CAM [1]._videoip._udp.local.";
    b.handle_datagram(
        t0,
        FROM,
        &response(&[(SERVICE_TYPE, TYPE_PTR, 120, wire(full))]),
    );
    let mut srv = vec![0, 0, 0, 0, 0, 80];
    srv.extend(wire("h.local."));
    b.handle_datagram(t0, FROM, &response(&[(full, TYPE_SRV, 120, srv)]));
    b.handle_datagram(
        t0,
        FROM,
        &response(&[(full, TYPE_TXT, 120, txt_rdata(&["v=2"]))]),
    );
    assert!(events(&mut b).is_empty(), "no address yet");
    b.handle_datagram(
        t0,
        FROM,
        &response(&[("h.local.", TYPE_A, 120, vec![10, 0, 0, 9])]),
    );
    assert!(
        matches!(&events(&mut b)[..], [Event::Found(s)] if s.name == "CAM [1]" && s.port == 80)
    );

    // PTR-only announcements beyond MAX_PENDING are not stored, and pending ones expire.
    for i in 0..10 * MAX_PENDING {
        let n = format!("p{i}._videoip._udp.local.");
        b.handle_datagram(
            t0,
            FROM,
            &response(&[(SERVICE_TYPE, TYPE_PTR, 120, wire(&n))]),
        );
    }
    assert_eq!(b.kept(), 1 + MAX_PENDING);
    let later = t0 + PENDING_TIMEOUT + SWEEP_PERIOD;
    b.handle_timeout(later);
    assert!(b.kept() <= 1, "pending ones went: {}", b.kept());
}

/// A flood of 80,000 instances: at most MAX_SOURCES + MAX_PENDING kept without a name, and
/// nothing but the source asked for with one; the real source is found either way.
#[test]
fn test_a_flood_keeps_memory_bounded_and_the_named_source_is_found() {
    for named in [false, true] {
        let t0 = Instant::now();
        let mut b = Browse::new(t0, named.then(|| "REAL".to_string()));
        let mut found_real = false;
        for i in 0..80_000u32 {
            let [_, x, y, z] = i.to_be_bytes();
            let m = service(
                &format!("f{i}"),
                &format!("f{i}"),
                &format!("h{i}.local."),
                [10, x, y, z],
                120,
            );
            b.handle_datagram(t0, FROM, &m);
            if i == 20_000 {
                b.handle_datagram(
                    t0,
                    FROM,
                    &service("REAL [1]", "REAL", "r.local.", [10, 9, 9, 9], 120),
                );
            }
            for e in events(&mut b) {
                found_real |= matches!(e, Event::Found(s) if s.name == "REAL");
            }
            assert!(b.kept() <= MAX_SOURCES + MAX_PENDING);
            assert!(b.hosts.len() <= b.kept());
        }
        assert_eq!(
            found_real, named,
            "the named browser finds it; a full table ignores it"
        );
        if named {
            assert_eq!(b.kept(), 1);
        } else {
            assert_eq!(b.table().len(), MAX_SOURCES);
            assert!(b.ignored() >= 80_000 - MAX_SOURCES as u64);
        }
    }
}

#[test]
fn test_for_name_drops_a_source_renamed_away() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, Some("CAM".into()));
    b.handle_datagram(
        t0,
        FROM,
        &service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120),
    );
    assert!(matches!(&events(&mut b)[..], [Event::Found(_)]));
    b.handle_datagram(
        t0,
        FROM,
        &service("CAM [1]", "OTHER", "h.local.", [10, 0, 0, 1], 120),
    );
    assert!(matches!(&events(&mut b)[..], [Event::Lost(_)]));
    assert_eq!(b.kept(), 0);
}

#[test]
fn test_an_answer_not_from_port_5353_is_counted_and_dropped() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    let announce = service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120);
    let ephemeral = SocketAddr::new(FROM.ip(), 40123);
    b.handle_datagram(t0, ephemeral, &announce);
    assert!(events(&mut b).is_empty());
    assert_eq!((b.kept(), b.wrong_port()), (0, 1));
    b.handle_datagram(t0, FROM, &announce);
    assert!(matches!(&events(&mut b)[..], [Event::Found(_)]));
    assert_eq!(b.wrong_port(), 1);
}
