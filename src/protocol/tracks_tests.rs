// SPDX-License-Identifier: MPL-2.0
//! Unit tests of the track table codec.

use super::*;
use crate::protocol::{self, Body, CommonHeader, DecodeError};

fn camera() -> Vec<TrackEntry> {
    vec![
        TrackEntry {
            id: 0,
            kind: TrackKind::Video,
            variant_of: None,
            name: "video_0".into(),
        },
        TrackEntry {
            id: 1,
            kind: TrackKind::Audio,
            variant_of: None,
            name: "audio_0".into(),
        },
        TrackEntry {
            id: 2,
            kind: TrackKind::Video,
            variant_of: Some(0),
            name: "video_0_proxy".into(),
        },
    ]
}

fn datagram(body: Tracks, payload: &[u8]) -> Vec<u8> {
    let h = CommonHeader {
        track: CONTROL_TRACK,
        session: 0x0123_4567_89AB_CDEF,
        seq: 9,
        ..Default::default()
    };
    let mut d = Vec::new();
    protocol::encode(&h, &[], &Body::Tracks(body), &mut d).unwrap();
    d.extend_from_slice(payload);
    d
}

#[test]
fn a_camera_with_its_microphone_and_a_proxy_round_trips() {
    let (body, payload) = encode(7, &camera()).unwrap();
    let d = datagram(body, &payload);
    let p = protocol::decode(&d).unwrap();
    assert_eq!(p.header.track, CONTROL_TRACK);
    assert_eq!(
        p.body,
        Body::Tracks(Tracks {
            generation: 7,
            count: 3
        })
    );
    assert_eq!(decode(p.payload).unwrap(), camera());
    // 20 + 8 bytes of headers, then 8 + name per entry.
    assert_eq!(d.len(), 28 + 3 * 8 + 7 + 7 + 13);
}

#[test]
fn an_unknown_kind_is_kept_and_an_empty_table_is_valid() {
    let mut t = camera();
    t[1].kind = TrackKind::Unknown(9);
    let (body, payload) = encode(0, &t).unwrap();
    assert_eq!(decode(&payload).unwrap()[1].kind, TrackKind::Unknown(9));
    assert!(protocol::decode(&datagram(body, &payload)).is_ok());
    let (body, payload) = encode(1, &[]).unwrap();
    assert!(payload.is_empty());
    assert!(protocol::decode(&datagram(body, &payload)).is_ok());
}

#[test]
fn inconsistent_tables_are_refused() {
    let bad = |t: Vec<TrackEntry>| encode(0, &t).is_err();
    let mut t = camera();
    t[1].id = 0;
    assert!(bad(t), "two tracks with one id");
    let mut t = camera();
    t[2].name = "audio_0".into();
    assert!(bad(t), "two tracks with one name");
    let mut t = camera();
    t[2].variant_of = Some(5);
    assert!(bad(t), "variant of a track not listed");
    let mut t = camera();
    t[2].variant_of = Some(2);
    assert!(bad(t), "variant of itself");
    let mut t = camera();
    t[0].id = CONTROL_TRACK;
    assert!(bad(t), "the control track");
    for name in ["", "video 0", "vidéo", &"x".repeat(33)] {
        let mut t = camera();
        t[0].name = name.into();
        assert!(bad(t), "name {name:?}");
    }
    let many: Vec<TrackEntry> = (0..33)
        .map(|i| TrackEntry {
            id: i,
            name: format!("t{i}"),
            ..Default::default()
        })
        .collect();
    assert!(bad(many));

    // On the wire: a count that differs, an entry cut short, a name past the end.
    let (mut body, payload) = encode(0, &camera()).unwrap();
    body.count = 2;
    assert!(matches!(
        protocol::decode(&datagram(body, &payload)),
        Err(DecodeError::Inconsistent(_))
    ));
    let (body, payload) = encode(0, &camera()).unwrap();
    for cut in [1, 5, 13] {
        let d = datagram(body, &payload[..payload.len() - cut]);
        assert!(protocol::decode(&d).is_err(), "cut {cut}");
    }
}

#[test]
fn arbitrary_payloads_never_panic() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let len = (next() % 96) as usize;
        let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let body = Tracks {
            generation: next() as u16,
            count: (next() % 4) as u16,
        };
        let _ = protocol::decode(&datagram(body, &payload));
        let _ = decode(&payload);
    }
}
