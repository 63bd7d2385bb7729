// SPDX-License-Identifier: MPL-2.0
use super::super::dns::tests::{response, response_class, wire};
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

/// Whether `q` is the PTR query for the service type (its first question).
fn is_ptr_query(q: &[u8]) -> bool {
    let name = wire(SERVICE_TYPE);
    q.len() >= 14 + name.len()
        && q[4..6] != [0, 0]
        && q[12..12 + name.len()] == name[..]
        && q[12 + name.len()..14 + name.len()] == [0, 12]
}

fn events(b: &mut Browse) -> Vec<Event> {
    std::iter::from_fn(|| b.poll_event()).collect()
}

#[test]
fn test_found_updated_and_lost_by_goodbye() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    let first = b.poll_timeout();
    b.handle_timeout(first);
    let q = b.poll_transmit().expect("the first PTR query");
    assert!(is_ptr_query(&q));
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
    assert!(events(&mut b).is_empty(), "a goodbye takes a second");
    b.handle_timeout(t0 + FLUSH_DELAY + SWEEP_PERIOD);
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

/// RFC 6762 §5.2: the first query after a random 20–120 ms, then intervals of 1 s that at
/// least double, up to the hour.
#[test]
fn test_the_first_query_waits_20_to_120_ms_and_then_intervals_double_to_an_hour() {
    let t0 = Instant::now();
    let mut delays = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let mut b = Browse::new(t0, None);
        let mut now = t0;
        let first = loop {
            now += Duration::from_millis(1);
            if now >= b.poll_timeout() {
                b.handle_timeout(now);
            }
            if let Some(q) = b.poll_transmit() {
                assert!(is_ptr_query(&q));
                break now - t0;
            }
            assert!(now - t0 <= Duration::from_millis(121), "no query by 120 ms");
        };
        assert!(first >= Duration::from_millis(20), "{first:?}");
        delays.insert(first);
    }
    assert!(delays.len() > 8, "random delays: {delays:?}");

    let mut b = Browse::new(t0, None);
    let mut sent = Vec::new();
    while sent.len() < 20 {
        let now = b.poll_timeout();
        b.handle_timeout(now);
        while let Some(q) = b.poll_transmit() {
            assert!(is_ptr_query(&q), "nothing else without instances");
            sent.push(now);
        }
    }
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps[0], Duration::from_secs(1));
    for w in gaps.windows(2) {
        assert!(w[1] >= (w[0] * 2).min(MAX_QUERY_INTERVAL), "{gaps:?}");
        assert!(w[1] <= MAX_QUERY_INTERVAL);
    }
    assert_eq!(gaps[gaps.len() - 1], Duration::from_secs(3600));
}

/// RFC 6762 §7.1: repeated PTR queries list the listed instances' PTRs that have more than
/// half their TTL left, with the TTL left; pending ones and half-expired ones are not.
#[test]
fn test_repeated_queries_carry_known_answers_with_more_than_half_their_ttl() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    let short = service("CAM [1]", "CAM 1", "h1.local.", [10, 0, 0, 1], 120);
    let long = response(&[(
        SERVICE_TYPE,
        TYPE_PTR,
        4500,
        wire("CAM [2]._videoip._udp.local."),
    )]);
    b.handle_datagram(t0, FROM, &short);
    b.handle_datagram(
        t0,
        FROM,
        &service("CAM [2]", "CAM 2", "h2.local.", [10, 0, 0, 2], 120),
    );
    b.handle_datagram(t0, FROM, &long);
    b.handle_datagram(
        t0,
        FROM,
        &response(&[(
            SERVICE_TYPE,
            TYPE_PTR,
            4500,
            wire("pending._videoip._udp.local."),
        )]),
    );
    assert_eq!(events(&mut b).len(), 2);
    // Keeps both listed by answering confirmations with SRV, TXT and A only (no PTR).
    let confirm = |label: &str, host: &str, ip: u8| {
        let full = format!("{label}._videoip._udp.local.");
        let mut srv = vec![0, 0, 0, 0, 0x13, 0x8c];
        srv.extend(wire(host));
        response(&[
            (&full, TYPE_SRV, 120, srv),
            (&full, TYPE_TXT, 120, txt_rdata(&["v=2", "name=CAM"])),
            (host, TYPE_A, 120, vec![10, 0, 0, ip]),
        ])
    };
    let mut known_at = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(100) {
        now = b.poll_timeout();
        b.handle_timeout(now);
        while let Some(q) = b.poll_transmit() {
            if !is_ptr_query(&q) {
                b.handle_datagram(now, FROM, &confirm("CAM [1]", "h1.local.", 1));
                b.handle_datagram(now, FROM, &confirm("CAM [2]", "h2.local.", 2));
                continue;
            }
            let msg = dns::parse(&q).expect("parses");
            assert!(!msg.response);
            let known: Vec<(String, u32)> = msg
                .records
                .iter()
                .map(|r| match &r.data {
                    RData::Ptr(t) => (t.clone(), r.ttl),
                    other => panic!("{other:?}"),
                })
                .collect();
            known_at.push((now - t0, known));
        }
    }
    assert_eq!(b.table().len(), 2);
    assert!(known_at.len() >= 7, "{known_at:?}");
    for (at, known) in &known_at {
        let names: Vec<&str> = known.iter().map(|k| k.0.as_str()).collect();
        assert!(!names.iter().any(|n| n.starts_with("pending")), "{names:?}");
        let left_120 = 120u64.saturating_sub(at.as_secs());
        assert_eq!(
            names.contains(&"CAM [1]._videoip._udp.local."),
            left_120 > 60,
            "{at:?}: {names:?}"
        );
        assert!(names.contains(&"CAM [2]._videoip._udp.local."), "{at:?}");
        for (n, ttl) in known {
            let full = if n.starts_with("CAM [1]") {
                120.0
            } else {
                4500.0
            };
            let left = full - at.as_secs_f64();
            assert!((f64::from(*ttl) - left).abs() <= 1.0, "{n} {ttl} at {at:?}");
        }
    }
}

/// Runs `b` from `from` to `to` in 10 ms steps; the events, with when they came.
fn run(b: &mut Browse, from: Instant, to: Instant) -> Vec<(Duration, Event)> {
    let mut out = Vec::new();
    let mut now = from;
    while now < to {
        now += Duration::from_millis(10);
        if now >= b.poll_timeout() {
            b.handle_timeout(now);
        }
        while b.poll_transmit().is_some() {}
        out.extend(std::iter::from_fn(|| b.poll_event()).map(|e| (now - from, e)));
    }
    out
}

/// RFC 6762 §10.1: a goodbye removes the source a second later, not at once, and a new
/// announcement within that second keeps it.
#[test]
fn test_a_goodbye_removes_the_source_after_one_second_unless_announced_again() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    let hello = service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120);
    let bye = service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 0);
    b.handle_datagram(t0, FROM, &hello);
    assert!(matches!(&events(&mut b)[..], [Event::Found(_)]));
    b.handle_datagram(t0, FROM, &bye);
    let ev = run(&mut b, t0, t0 + Duration::from_secs(2));
    assert!(
        matches!(&ev[..], [(at, Event::Lost(_))]
        if *at >= FLUSH_DELAY && *at <= FLUSH_DELAY + SWEEP_PERIOD),
        "{ev:?}"
    );
    assert_eq!(b.kept(), 0);

    let t1 = t0 + Duration::from_secs(2);
    b.handle_datagram(t1, FROM, &hello);
    assert!(matches!(&events(&mut b)[..], [Event::Found(_)]));
    b.handle_datagram(t1, FROM, &bye);
    b.handle_datagram(t1 + Duration::from_millis(500), FROM, &hello);
    let ev = run(&mut b, t1, t1 + Duration::from_secs(2));
    assert!(
        ev.is_empty(),
        "announced again within the second: kept, {ev:?}"
    );
    assert_eq!(b.table().len(), 1);
}

/// RFC 6762 §10.2: a host whose address changed, announced with the cache-flush bit, keeps
/// only the new address, a second later; without the bit the old one stays; addresses of
/// one announcement are all kept, and an address goodbye removes that one a second later.
#[test]
fn test_a_cache_flush_address_replaces_the_old_one_after_one_second() {
    let t0 = Instant::now();
    for flush in [true, false] {
        let class = if flush { 0x8001 } else { 0x0001 };
        let mut b = Browse::new(t0, None);
        b.handle_datagram(
            t0,
            FROM,
            &service("CAM [1]", "CAM", "h.local.", [10, 0, 0, 1], 120),
        );
        assert!(matches!(&events(&mut b)[..], [Event::Found(_)]));
        let t1 = t0 + Duration::from_secs(5);
        let moved = response_class(&[("h.local.", TYPE_A, 120, vec![10, 0, 0, 2])], class);
        b.handle_datagram(t1, FROM, &moved);
        let addrs = |e: &Event| match e {
            Event::Updated(s) => s.addresses.clone(),
            other => panic!("{other:?}"),
        };
        let ev = events(&mut b);
        assert_eq!(ev.len(), 1);
        assert_eq!(addrs(&ev[0]).len(), 2, "the new one at once");
        let ev = run(&mut b, t1, t1 + Duration::from_millis(1500));
        if flush {
            assert_eq!(ev.len(), 1, "{ev:?}");
            let (at, e) = &ev[0];
            assert!(
                *at >= FLUSH_DELAY && *at <= FLUSH_DELAY + SWEEP_PERIOD,
                "{at:?}"
            );
            assert_eq!(
                addrs(e),
                vec![IpAddr::from([10, 0, 0, 2])],
                "only the new one"
            );
        } else {
            assert!(ev.is_empty(), "shared records stay: {ev:?}");
        }
    }

    let mut b = Browse::new(t0, None);
    let full = "CAM [1]._videoip._udp.local.";
    let mut srv = vec![0, 0, 0, 0, 0, 80];
    srv.extend(wire("h.local."));
    b.handle_datagram(
        t0,
        FROM,
        &response(&[
            (SERVICE_TYPE, TYPE_PTR, 120, wire(full)),
            (full, TYPE_SRV, 120, srv),
            (full, TYPE_TXT, 120, txt_rdata(&["v=2"])),
            ("h.local.", TYPE_A, 120, vec![10, 0, 0, 1]),
            ("h.local.", TYPE_A, 120, vec![10, 0, 0, 2]),
        ]),
    );
    assert!(matches!(&events(&mut b)[..], [Event::Found(s)] if s.addresses.len() == 2));
    assert!(run(&mut b, t0, t0 + Duration::from_secs(1)).is_empty());
    let t1 = t0 + Duration::from_secs(1);
    b.handle_datagram(
        t1,
        FROM,
        &response(&[("h.local.", TYPE_A, 0, vec![10, 0, 0, 1])]),
    );
    assert!(events(&mut b).is_empty(), "not at once");
    let ev = run(&mut b, t1, t1 + Duration::from_millis(1500));
    assert!(
        matches!(&ev[..], [(at, Event::Updated(s))]
        if s.addresses == vec![IpAddr::from([10, 0, 0, 2])]
            && *at >= FLUSH_DELAY && *at <= FLUSH_DELAY + SWEEP_PERIOD),
        "{ev:?}"
    );
}

/// A flood of bare PTR answers (8 a millisecond for 10 s, from one responder address,
/// naming instances whose SRV and TXT never come) holds every pending slot; a real
/// instance announced 2 s in by its PTR alone, from another address, still gets a slot and
/// is found once its SRV, TXT and A answer the query for them: within VERIFY_PERIOD.
#[test]
fn test_a_bare_ptr_flood_does_not_keep_a_real_instance_out_of_the_pending_slots() {
    let t0 = Instant::now();
    let mut b = Browse::new(t0, None);
    let flooder = SocketAddr::new(IpAddr::from([10, 0, 0, 66]), MDNS_PORT);
    let real = "REAL [1]._videoip._udp.local.";
    let real_wire = wire(real);
    let mut srv = vec![0, 0, 0, 0, 0x13, 0x8c];
    srv.extend(wire("real.local."));
    let records = response(&[
        (real, TYPE_SRV, 120, srv),
        (real, TYPE_TXT, 120, txt_rdata(&["v=2", "name=REAL"])),
        ("real.local.", TYPE_A, 120, vec![10, 0, 0, 1]),
    ]);
    let announced = t0 + Duration::from_secs(2);
    let mut found = None;
    let mut n = 0u32;
    for ms in 1..=10_000u64 {
        let now = t0 + Duration::from_millis(ms);
        for _ in 0..8 {
            let name = format!("bare{n}._videoip._udp.local.");
            n += 1;
            b.handle_datagram(
                now,
                flooder,
                &response(&[(SERVICE_TYPE, TYPE_PTR, 120, wire(&name))]),
            );
        }
        if now == announced {
            assert_eq!(b.pending, MAX_PENDING, "the flood holds every slot");
            b.handle_datagram(
                now,
                FROM,
                &response(&[(SERVICE_TYPE, TYPE_PTR, 120, real_wire.clone())]),
            );
            assert!(b.insts.contains_key(&key(real)), "the real one gets a slot");
        }
        if now >= b.poll_timeout() {
            b.handle_timeout(now);
        }
        while let Some(q) = b.poll_transmit() {
            if q.windows(real_wire.len()).any(|w| w == &real_wire[..]) {
                b.handle_datagram(now, FROM, &records);
            }
        }
        for e in events(&mut b) {
            if matches!(&e, Event::Found(s) if s.name == "REAL") {
                found.get_or_insert(now - announced);
            }
        }
        assert!(b.pending <= MAX_PENDING && b.kept() <= MAX_SOURCES + MAX_PENDING);
        assert!(b
            .pending_from
            .get(&flooder.ip())
            .is_none_or(|&f| f <= MAX_PENDING));
    }
    let found = found.expect("the real instance is found during the flood");
    eprintln!(
        "found {found:?} after its PTR, {n} bare PTRs, {} ignored",
        b.ignored()
    );
    assert!(found <= VERIFY_PERIOD, "{found:?}");
    assert_eq!(b.table().len(), 1, "none of the flood is listed");
    assert!(b.ignored() >= u64::from(n) - MAX_PENDING as u64 * 6);
}
