// SPDX-License-Identifier: MPL-2.0
use super::*;

/// A response holding these answers (name in presentation form, type, ttl, rdata), each
/// with the cache-flush bit.
pub(crate) fn response(answers: &[(&str, u16, u32, Vec<u8>)]) -> Vec<u8> {
    response_class(answers, 0x8001)
}

/// A response holding these answers, each of this class (0x0001: IN, shared; 0x8001: IN,
/// cache-flush).
pub(crate) fn response_class(answers: &[(&str, u16, u32, Vec<u8>)], class: u16) -> Vec<u8> {
    let mut m = vec![0, 0, 0x84, 0, 0, 0];
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    for (n, ty, ttl, rdata) in answers {
        encode_name(&mut m, n).unwrap();
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&class.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

pub(crate) fn wire(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    encode_name(&mut v, name).unwrap();
    v
}

#[test]
fn test_parses_ptr_srv_txt_a_aaaa() {
    let mut srv = vec![0, 0, 0, 0, 0x13, 0x8c];
    srv.extend(wire("host.local."));
    let m = response(&[
        (
            "_videoip._udp.local.",
            TYPE_PTR,
            4500,
            wire("A\\.b [1]._videoip._udp.local."),
        ),
        ("A\\.b [1]._videoip._udp.local.", TYPE_SRV, 120, srv),
        (
            "A\\.b [1]._videoip._udp.local.",
            TYPE_TXT,
            4500,
            vec![3, b'v', b'=', b'2', 0],
        ),
        ("host.local.", TYPE_A, 120, vec![10, 0, 0, 1]),
        (
            "host.local.",
            TYPE_AAAA,
            120,
            vec![0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
        ("host.local.", 99, 120, vec![1, 2, 3]),
    ]);
    let msg = parse(&m).unwrap();
    assert!(msg.response);
    assert_eq!(msg.records.len(), 6);
    assert_eq!(
        msg.records[0].data,
        RData::Ptr("A\\.b [1]._videoip._udp.local.".into())
    );
    assert_eq!(
        msg.records[1].data,
        RData::Srv {
            port: 5004,
            target: "host.local.".into()
        }
    );
    assert_eq!(
        msg.records[2].data,
        RData::Txt(vec![b"v=2".to_vec(), vec![]])
    );
    assert_eq!(msg.records[3].data, RData::A(Ipv4Addr::new(10, 0, 0, 1)));
    assert!(matches!(msg.records[4].data, RData::Aaaa(_)));
    assert_eq!(msg.records[5].data, RData::Other);
    assert_eq!(msg.records[1].ttl, 120);
    assert!(msg.records.iter().all(|r| r.cache_flush));
    let shared = response_class(&[("host.local.", TYPE_A, 120, vec![10, 0, 0, 1])], 1);
    assert!(!parse(&shared).unwrap().records[0].cache_flush);
}

#[test]
fn test_follows_backward_compression_and_refuses_loops() {
    // Header, then a PTR whose owner is at 12 and whose target points back at it.
    let mut m = vec![0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
    m.extend(wire("_videoip._udp.local."));
    m.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0, 60, 0, 6]);
    m.extend_from_slice(&[3, b'c', b'a', b'm', 0xc0, 12]);
    // A record whose owner points at itself: a loop.
    let here = m.len() as u8;
    m.extend_from_slice(&[0xc0, here, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    let msg = parse(&m).unwrap();
    assert_eq!(msg.records.len(), 1, "the looping record is left out");
    assert_eq!(
        msg.records[0].data,
        RData::Ptr("cam._videoip._udp.local.".into())
    );
}

#[test]
fn test_refuses_names_over_255_bytes() {
    let mut m = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    for _ in 0..5 {
        m.push(60);
        m.extend_from_slice(&[b'x'; 60]);
    }
    m.push(0);
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    assert!(parse(&m).unwrap().records.is_empty());
}

#[test]
fn test_query_round_trips_and_escapes() {
    let q = query(&[
        ("a\\.b._videoip._udp.local.", TYPE_SRV),
        ("host.local.", TYPE_A),
    ]);
    assert_eq!(&q[4..6], &[0, 2]);
    assert_eq!(&q[12..16], &[3, b'a', b'.', b'b']);
    let bad = "x".repeat(64) + ".local.";
    assert_eq!(&query(&[(&bad, TYPE_A)])[4..6], &[0, 0]);
}

#[test]
fn test_known_answers_go_in_the_query_and_split_with_tc() {
    let names: Vec<String> = (0..100)
        .map(|i| format!("cam {i}._videoip._udp.local."))
        .collect();
    let known: Vec<(&str, &str, u32)> = names
        .iter()
        .map(|n| ("_videoip._udp.local.", n.as_str(), 4000))
        .collect();
    let q = &[("_videoip._udp.local.", TYPE_PTR)];
    let one = query_known(q, &known[..3], 1400);
    assert_eq!(one.len(), 1);
    assert!(!truncated(&one[0]));
    let msg = parse(&one[0]).unwrap();
    assert!(!msg.response);
    assert_eq!(&one[0][4..6], &[0, 1], "the question");
    assert_eq!(msg.records.len(), 3);
    assert_eq!(msg.records[1].data, RData::Ptr(names[1].clone()));
    assert_eq!(msg.records[1].ttl, 4000);

    let all = query_known(q, &known, 1400);
    assert!(all.len() > 1);
    let mut seen = 0;
    for (i, m) in all.iter().enumerate() {
        assert!(m.len() <= 1400);
        assert_eq!(truncated(m), i + 1 < all.len(), "TC on all but the last");
        assert_eq!(u16::from_be_bytes([m[4], m[5]]), u16::from(i == 0));
        seen += parse(m).unwrap().records.len();
    }
    assert_eq!(seen, 100, "every known answer, once");
}

/// Fuzz-style: random bytes, and mutations of a valid message, never panic and never
/// yield more than MAX_RECORDS records or names over 255 bytes.
#[test]
fn test_never_panics_on_hostile_bytes() {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut srv = vec![0, 0, 0, 0, 0x13, 0x8c];
    srv.extend(wire("host.local."));
    let valid = response(&[
        (
            "_videoip._udp.local.",
            TYPE_PTR,
            4500,
            wire("cam._videoip._udp.local."),
        ),
        ("cam._videoip._udp.local.", TYPE_SRV, 120, srv),
        (
            "cam._videoip._udp.local.",
            TYPE_TXT,
            4500,
            vec![3, b'v', b'=', b'2'],
        ),
        ("host.local.", TYPE_A, 120, vec![10, 0, 0, 1]),
    ]);
    for i in 0..200_000u32 {
        let m: Vec<u8> = if i % 2 == 0 {
            let len = (next() % 600) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if m.len() > 12 {
                m[2] = 0x84;
                m[4] = 0;
                m[5] = (next() % 4) as u8;
            }
            m
        } else {
            let mut m = valid.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            m.truncate(m.len() - (next() as usize % 8));
            m
        };
        if let Some(msg) = parse(&m) {
            assert!(msg.records.len() <= MAX_RECORDS);
            for r in &msg.records {
                assert!(r.name.len() <= 2 * MAX_NAME_LEN + 64);
            }
        }
    }
}
