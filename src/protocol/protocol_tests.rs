// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `protocol/`: round trips, validation, robustness and the test vectors of
//! `docs/PROTOCOL.md` §11.

use super::*;

const SENDER: u64 = 0x0123_4567_89AB_CDEF;
const RECEIVER: u64 = 0xFEDC_BA98_7654_3210;

fn media() -> Media {
    Media {
        frame: 7,
        offset: 2800,
        frame_len: 5000,
        pts: 1_000_000_000,
        dts: TIME_NONE,
        duration: 16_666_666,
        flags: flags::DELTA_UNIT | flags::DISCONT,
        info_gen: 3,
        frag_size: 1400,
    }
}

fn datagram(h: &CommonHeader, exts: &[Extension<'_>], body: &Body, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode(h, exts, body, &mut v).unwrap();
    v.extend_from_slice(payload);
    v
}

fn hdr(seq: u32) -> CommonHeader {
    CommonHeader {
        session: SENDER,
        seq,
        ..Default::default()
    }
}

#[test]
fn media_round_trip_keeps_every_field() {
    let h = CommonHeader {
        track: 3,
        ..hdr(0xFFFF_FFFE)
    };
    let payload = vec![0xAB; 1400];
    let d = datagram(&h, &[], &Body::Media(media()), &payload);
    assert_eq!(d.len(), MEDIA_HEADER_LEN + 1400);
    let p = decode(&d).unwrap();
    assert_eq!(p.header, h);
    assert_eq!(p.body, Body::Media(media()));
    assert_eq!(p.payload, &payload[..]);
    assert!(p.tag.is_empty());
    assert_eq!(
        &d[..MEDIA_HEADER_LEN],
        &encode_media_header(&h, &media())[..]
    );
}

#[test]
fn header_is_big_endian_and_starts_with_magic() {
    let d = datagram(&hdr(0xFFFF_FFFE), &[], &Body::Media(media()), &[0; 1400]);
    assert_eq!(&d[0..2], b"VI");
    assert_eq!(d[2], 2);
    assert_eq!(d[3], 0);
    assert_eq!(&d[8..16], &SENDER.to_be_bytes());
    assert_eq!(&d[16..20], &[0xFF, 0xFF, 0xFF, 0xFE]);
    assert_eq!(&d[58..62], &[0, 3, 0x05, 0x78]);
}

#[test]
fn patch_seq_offset_changes_only_those_fields() {
    let mut h = encode_media_header(&hdr(1), &media());
    patch_seq_offset(&mut h, 42, 1400);
    let d = [&h[..], &[1; 1400][..]].concat();
    let p = decode(&d).unwrap();
    assert_eq!(p.header.seq, 42);
    assert_eq!(
        p.body,
        Body::Media(Media {
            offset: 1400,
            ..media()
        })
    );
}

#[test]
fn decode_rejects_short_foreign_and_future_datagrams() {
    let good = datagram(&hdr(1), &[], &Body::Media(media()), &[0; 1400]);
    assert_eq!(decode(&good[..10]), Err(DecodeError::TooShort(10)));
    assert_eq!(decode(&good[..40]), Err(DecodeError::TooShort(40)));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(decode(&bad), Err(DecodeError::BadMagic));
    let mut bad = good.clone();
    bad[2] = 1;
    assert_eq!(decode(&bad), Err(DecodeError::UnsupportedVersion(1)));
    // An extension area longer than the datagram.
    let mut bad = good;
    bad[5] = 255;
    bad.truncate(200);
    assert!(decode(&bad).is_err());
}

#[test]
fn unknown_types_decode_with_everything_as_payload() {
    let mut d = datagram(&hdr(9), &[], &Body::Unknown(0x80), b"private");
    let p = decode(&d).unwrap();
    assert_eq!(p.packet_type(), PacketType::Unknown(0x80));
    assert_eq!(p.payload, b"private");
    d[3] = 0x0D; // the next type the spec may define
    assert_eq!(decode(&d).unwrap().packet_type(), PacketType::Unknown(0x0D));
}

#[test]
fn a_challenge_and_its_cookie_echo_round_trip() {
    let cookie = [0x5a; 16];
    let d = datagram(
        &hdr(3),
        &[],
        &Body::Challenge(Challenge { receiver: 0x1234 }),
        &cookie,
    );
    assert_eq!(d.len(), 48);
    let p = decode(&d).unwrap();
    assert_eq!(p.body, Body::Challenge(Challenge { receiver: 0x1234 }));
    assert_eq!(p.payload, cookie);
    let echo = [Extension::Other {
        kind: ext::COOKIE,
        value: &cookie,
    }];
    let sub = Body::Subscribe(Subscribe::default());
    let d = datagram(&hdr(4), &echo, &sub, &[]);
    assert_eq!(d.len(), 36 + 20);
    assert_eq!(decode(&d).unwrap().extensions.cookie, Some(&cookie[..]));
    // An empty or oversized cookie is malformed, in either place.
    let empty = datagram(&hdr(3), &[], &Body::Challenge(Challenge::default()), &[]);
    assert!(decode(&empty).is_err());
    let long = [0u8; 65];
    let bad = [Extension::Other {
        kind: ext::COOKIE,
        value: &long,
    }];
    assert!(decode(&datagram(&hdr(4), &bad, &sub, &[])).is_err());
}

#[test]
fn extensions_are_skipped_or_refused_by_their_type() {
    let body = Body::EndOfStream(EndOfStream { next_frame: 5 });
    let ignorable = [Extension::Other {
        kind: 0x0042,
        value: b"abcde",
    }];
    let d = datagram(&hdr(1), &ignorable, &body, &[]);
    assert_eq!(d[5], 3, "4-byte TLV header and 5 bytes padded to 8");
    let p = decode(&d).unwrap();
    assert_eq!(p.extensions.ignored, 1);
    assert_eq!(p.body, body);
    let mut again = Vec::new();
    p.encode(&mut again).unwrap();
    assert_eq!(again, d);
    let critical = [Extension::Other {
        kind: 0x8042,
        value: b"",
    }];
    let d = datagram(&hdr(1), &critical, &body, &[]);
    assert_eq!(decode(&d), Err(DecodeError::UnknownExtension(0x8042)));
    // A TLV that runs past the extension area.
    let mut d = datagram(&hdr(1), &ignorable, &body, &[]);
    d[22..24].copy_from_slice(&100u16.to_be_bytes());
    assert!(decode(&d).is_err());
}

#[test]
fn auth_extension_and_tag() {
    let auth = Auth {
        epoch: 7,
        algorithm: 1,
        tag_len: 16,
    };
    let h = CommonHeader {
        flags: header_flags::AUTH_TAG,
        ..hdr(3)
    };
    let body = Body::EndOfStream(EndOfStream { next_frame: 1 });
    let d = datagram(&h, &[Extension::Auth(auth)], &body, &[0x55; 16]);
    assert_eq!(d.len(), COMMON_LEN + 12 + 4 + 16);
    let p = decode(&d).unwrap();
    assert_eq!(p.extensions.auth, Some(auth));
    assert_eq!(p.tag, &[0x55; 16]);
    assert!(p.payload.is_empty());
    let mut again = Vec::new();
    p.encode(&mut again).unwrap();
    assert_eq!(again, d);
    // Flag A without the AUTH extension, or a tag longer than the datagram.
    let d = datagram(&h, &[], &body, &[0x55; 16]);
    assert!(matches!(decode(&d), Err(DecodeError::Inconsistent(_))));
    let d = datagram(&h, &[Extension::Auth(auth)], &body, &[0x55; 15]);
    assert!(decode(&d).is_err());
}

#[test]
fn decode_rejects_fragments_that_contradict_the_frame() {
    let m = media();
    let dec = |m: Media, p: &[u8]| decode(&datagram(&hdr(1), &[], &Body::Media(m), p)).map(|_| ());
    assert!(matches!(
        dec(Media { offset: 4200, ..m }, &[0; 1400]),
        Err(DecodeError::Inconsistent(_))
    ));
    assert!(dec(Media { offset: 100, ..m }, &[0; 1400]).is_err());
    assert!(dec(m, &[0; 100]).is_err());
    assert!(dec(Media { frag_size: 0, ..m }, &[0; 1400]).is_err());
    let empty = Media {
        offset: 2800,
        frame_len: 2800,
        ..m
    };
    assert!(dec(empty, &[]).is_err());
    assert!(dec(Media { offset: 4200, ..m }, &[0; 800]).is_ok());
}

#[test]
fn decode_checks_stream_info_and_control_payloads() {
    let info = |caps_len, offset, p: &[u8]| {
        let b = Body::StreamInfo(StreamInfo {
            caps_len,
            offset,
            ..Default::default()
        });
        decode(&datagram(&hdr(1), &[], &b, p)).map(|_| ())
    };
    assert!(info(4, 0, b"test").is_ok());
    assert!(info(6, 2, b"test").is_ok());
    assert!(info(5, 2, b"test").is_err());
    assert!(info(0, 0, b"").is_err());
    assert!(info(70_000, 0, b"x").is_err());
    let nack = Body::Nack(Nack::default());
    assert!(decode(&datagram(&hdr(1), &[], &nack, &[0; 12])).is_err());
    let sub = Body::Subscribe(Subscribe::default());
    assert!(decode(&datagram(&hdr(1), &[], &sub, &[0; 3])).is_err());
    let meta = Body::Metadata(Metadata::default());
    assert!(decode(&datagram(&hdr(1), &[], &meta, &[0xFF])).is_err());
    let fec = Body::Fec(Fec {
        symbol_len: 4,
        ..Default::default()
    });
    assert!(decode(&datagram(&hdr(1), &[], &fec, &[0; 4])).is_ok());
    assert!(decode(&datagram(&hdr(1), &[], &fec, &[0; 5])).is_err());
}

#[test]
fn every_body_round_trips() {
    let bodies = [
        Body::Media(media()),
        Body::StreamInfo(StreamInfo {
            info_gen: 9,
            caps_len: 1,
            offset: 0,
            next_frame: 4,
        }),
        Body::EndOfStream(EndOfStream { next_frame: 8 }),
        Body::SenderReport(SenderReport {
            running_time: 1,
            reference_time: 2,
            clock: reference_clock::PTP,
            datagrams_sent: 3,
            frames_sent: 4,
        }),
        Body::ReceiverReport(ReceiverReport {
            session: 1,
            track: 2,
            highest_seq: 3,
            datagrams_received: 4,
            datagrams_lost: 5,
            frames_complete: 6,
            frames_dropped: 7,
            echoed_report_seq: 8,
            delay_us: NO_DELAY,
        }),
        Body::Nack(Nack {
            session: 5,
            track: 1,
        }),
        Body::Fec(Fec {
            scheme: fec_scheme::REED_SOLOMON,
            repair_index: 1,
            first_seq: 2,
            protected_count: 3,
            repair_count: 4,
            symbol_len: 1,
        }),
        Body::Subscribe(Subscribe {
            session: 0,
            lease_ms: 5000,
            flags: 0,
        }),
        Body::KeyframeRequest(KeyframeRequest {
            session: 1,
            track: 0,
        }),
        Body::Tally(Tally {
            session: 1,
            state: tally::PROGRAM,
        }),
        Body::Metadata(Metadata {
            frame: u32::MAX,
            pts: 5,
        }),
    ];
    for b in bodies {
        let payload: &[u8] = match b {
            Body::Media(_) => &[0; 1400],
            _ => b"x",
        };
        let payload = if matches!(b, Body::Nack(_)) {
            &[0; 8][..]
        } else if matches!(b, Body::Subscribe(_)) {
            &[0, 1][..]
        } else {
            payload
        };
        let d = datagram(&hdr(1), &[], &b, payload);
        assert_eq!(
            d.len(),
            COMMON_LEN + b.packet_type().body_len() + payload.len()
        );
        let p = decode(&d).unwrap_or_else(|e| panic!("{b:?}: {e}"));
        assert_eq!(p.body, b);
        assert_eq!(
            PacketType::from_u8(b.packet_type().to_u8()),
            b.packet_type()
        );
    }
}

#[test]
fn nack_and_subscribe_payloads() {
    let mut p = Vec::new();
    push_nack_entry(&mut p, 10, 2);
    push_nack_entry(&mut p, u32::MAX, 1);
    assert_eq!(
        nack_entries(&p).collect::<Vec<_>>(),
        [(10, 2), (u32::MAX, 1)]
    );
    assert_eq!(subscribe_tracks(&[0, 1, 0, 2]).collect::<Vec<_>>(), [1, 2]);
}

/// A cheap deterministic generator.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn decode_never_panics_on_random_bytes_or_bit_flips() {
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for len in 0..200usize {
        for _ in 0..50 {
            let mut d: Vec<u8> = (0..len).map(|_| xorshift(&mut x) as u8).collect();
            if len >= 6 && x.is_multiple_of(2) {
                d[0] = b'V';
                d[1] = b'I';
                d[2] = VERSION;
                d[3] = (x % 12) as u8;
                d[5] = (x >> 8) as u8 % 4;
            }
            if let Ok(p) = decode(&d) {
                let mut again = Vec::new();
                p.encode(&mut again).unwrap();
                assert_eq!(again.len(), d.len());
            }
        }
    }
    // Every single-bit flip of every test vector, and random multi-byte corruption.
    for (_, hex) in VECTORS {
        let d = unhex(hex);
        for bit in 0..d.len() * 8 {
            let mut f = d.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            let _ = decode(&f);
        }
        for _ in 0..2000 {
            let mut f = d.clone();
            for _ in 0..1 + xorshift(&mut x) % 4 {
                let k = (xorshift(&mut x) as usize) % f.len();
                f[k] = xorshift(&mut x) as u8;
            }
            f.truncate((xorshift(&mut x) as usize) % (f.len() + 1));
            let _ = decode(&f);
        }
    }
}

#[test]
fn fragment_count_rounds_up() {
    assert_eq!(fragment_count(0, 1400), 1);
    assert_eq!(fragment_count(1, 1400), 1);
    assert_eq!(fragment_count(1400, 1400), 1);
    assert_eq!(fragment_count(1401, 1400), 2);
    assert_eq!(fragment_count(u32::MAX, 1), u32::MAX);
}

#[test]
fn seq_diff_is_wrap_safe() {
    assert_eq!(seq_diff(0, u32::MAX), 1);
    assert_eq!(seq_diff(u32::MAX, 0), -1);
    assert_eq!(seq_diff(5, 3), 2);
    assert_eq!(seq_diff(3, 5), -2);
}

// ---- Test vectors: identical to docs/PROTOCOL.md §11. ----

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap() as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// The vectors as they are built from fields (`crypto/` seals the MEDIA one).
pub(crate) fn vector_packets() -> Vec<(&'static str, Vec<u8>)> {
    let caps = b"audio/x-raw, rate=(int)48000";
    let mut nack = Vec::new();
    push_nack_entry(&mut nack, 1003, 2);
    push_nack_entry(&mut nack, 1007, 1);
    let rx = |seq| CommonHeader {
        session: RECEIVER,
        seq,
        ..Default::default()
    };
    vec![
        (
            "media",
            datagram(
                &hdr(1002),
                &[],
                &Body::Media(Media {
                    frame: 42,
                    offset: 8,
                    frame_len: 12,
                    pts: 1_000_000_000,
                    dts: TIME_NONE,
                    duration: 33_333_333,
                    flags: flags::DELTA_UNIT,
                    info_gen: 1,
                    frag_size: 8,
                }),
                &[0xDE, 0xAD, 0xBE, 0xEF],
            ),
        ),
        (
            "stream info",
            datagram(
                &hdr(1003),
                &[],
                &Body::StreamInfo(StreamInfo {
                    info_gen: 1,
                    caps_len: caps.len() as u32,
                    offset: 13,
                    next_frame: 43,
                }),
                &caps[13..],
            ),
        ),
        (
            "end of stream",
            datagram(
                &hdr(1010),
                &[],
                &Body::EndOfStream(EndOfStream { next_frame: 43 }),
                &[],
            ),
        ),
        (
            "sender report",
            datagram(
                &hdr(1011),
                &[],
                &Body::SenderReport(SenderReport {
                    running_time: 1_000_000_000,
                    reference_time: 1_764_000_000_000_000_000,
                    clock: reference_clock::REALTIME,
                    datagrams_sent: 1011,
                    frames_sent: 43,
                }),
                &[],
            ),
        ),
        (
            "receiver report",
            datagram(
                &rx(5),
                &[],
                &Body::ReceiverReport(ReceiverReport {
                    session: SENDER,
                    track: 0,
                    highest_seq: 1010,
                    datagrams_received: 1000,
                    datagrams_lost: 11,
                    frames_complete: 42,
                    frames_dropped: 1,
                    echoed_report_seq: 1011,
                    delay_us: 2500,
                }),
                &[],
            ),
        ),
        (
            "nack",
            datagram(
                &rx(6),
                &[],
                &Body::Nack(Nack {
                    session: SENDER,
                    track: 0,
                }),
                &nack,
            ),
        ),
        ("fec", {
            // The second of two repairs of a 10-byte frame 00 01 .. 09 sent in fragments of
            // 4 bytes as seq 1000..1002, computed by the sender's own encoder; it takes
            // seq 1004, after the first repair.
            let frame: Vec<u8> = (0..10).collect();
            let mut enc = crate::protocol::fec::Encoder::new();
            assert_eq!(enc.encode(&frame, 4, 1000, 50), 2);
            let (body, symbol) = enc.repair(1).unwrap();
            datagram(&hdr(1004), &[], &Body::Fec(body), symbol)
        }),
        ("tracks", {
            use crate::protocol::tracks::{self, TrackEntry, TrackKind, CONTROL_TRACK};
            let entry = |id, kind, name: &str| TrackEntry {
                id,
                kind,
                variant_of: None,
                name: name.into(),
            };
            let table = [
                entry(0, TrackKind::Video, "video_0"),
                entry(1, TrackKind::Audio, "audio_0"),
            ];
            let (body, payload) = tracks::encode(3, &table).unwrap();
            let h = CommonHeader {
                track: CONTROL_TRACK,
                ..hdr(7)
            };
            datagram(&h, &[], &Body::Tracks(body), &payload)
        }),
    ]
}

const VECTORS: [(&str, &str); 8] = [
    (
        "media",
        "56 49 02 00 00 00 00 00 01 23 45 67 89 ab cd ef \
         00 00 03 ea 00 00 00 2a 00 00 00 08 00 00 00 0c \
         00 00 00 00 3b 9a ca 00 ff ff ff ff ff ff ff ff \
         00 00 00 00 01 fc a0 55 00 01 00 01 00 08 00 00 \
         de ad be ef",
    ),
    (
        "stream info",
        "56 49 02 01 00 00 00 00 01 23 45 67 89 ab cd ef \
         00 00 03 eb 00 01 00 00 00 00 00 1c 00 00 00 0d \
         00 00 00 2b 00 00 00 00 72 61 74 65 3d 28 69 6e \
         74 29 34 38 30 30 30",
    ),
    (
        "end of stream",
        "56 49 02 02 00 00 00 00 01 23 45 67 89 ab cd ef \
         00 00 03 f2 00 00 00 2b",
    ),
    (
        "sender report",
        "56 49 02 03 00 00 00 00 01 23 45 67 89 ab cd ef \
         00 00 03 f3 00 00 00 00 3b 9a ca 00 18 7a fc a7 \
         67 ca 00 00 01 00 00 00 00 00 00 00 00 00 03 f3 \
         00 00 00 2b 00 00 00 00",
    ),
    (
        "receiver report",
        "56 49 02 04 00 00 00 00 fe dc ba 98 76 54 32 10 \
         00 00 00 05 01 23 45 67 89 ab cd ef 00 00 00 00 \
         00 00 03 f2 00 00 00 00 00 00 03 e8 00 00 00 00 \
         00 00 00 0b 00 00 00 2a 00 00 00 01 00 00 03 f3 \
         00 00 09 c4",
    ),
    (
        "nack",
        "56 49 02 05 00 00 00 00 fe dc ba 98 76 54 32 10 \
         00 00 00 06 01 23 45 67 89 ab cd ef 00 00 00 00 \
         00 00 03 eb 00 00 00 02 00 00 03 ef 00 00 00 01",
    ),
    (
        "fec",
        "56 49 02 06 00 00 00 00 01 23 45 67 89 ab cd ef \
         00 00 03 ec 02 00 00 01 00 00 03 e8 00 03 00 02 \
         00 00 00 04 37 32 0d 0c",
    ),
    (
        "tracks",
        "56 49 02 0c 00 00 ff ff 01 23 45 67 89 ab cd ef \
         00 00 00 07 00 03 00 02 00 00 00 00 00 00 00 07 \
         ff ff 00 00 76 69 64 65 6f 5f 30 00 01 01 07 ff \
         ff 00 00 61 75 64 69 6f 5f 30",
    ),
];

#[test]
fn test_vectors_decode_and_re_encode_byte_for_byte() {
    for ((name, hex), (name2, built)) in VECTORS.iter().zip(vector_packets()) {
        assert_eq!(*name, name2);
        let d = unhex(hex);
        if d != built {
            let dump: Vec<String> = built
                .chunks(16)
                .map(|c| {
                    c.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            panic!("vector {name} differs; built:\n{}", dump.join("\n"));
        }
        let p = decode(&d).unwrap();
        let mut again = Vec::new();
        p.encode(&mut again).unwrap();
        assert_eq!(again, d, "{name}");
    }
}

#[test]
fn worked_example_header_matches_the_spec() {
    // docs/PROTOCOL.md §11.1, datagram #2.
    let spec = "56 49 02 00 00 00 00 00 01 23 45 67 89 ab cd ef \
                00 00 03 ea 00 00 00 2a 00 00 0b 00 00 00 27 10 \
                00 00 00 00 3b 9a ca 00 ff ff ff ff ff ff ff ff \
                00 00 00 00 01 fc a0 55 00 01 00 01 05 80 00 00";
    let media = Media {
        frame: 42,
        offset: 0,
        frame_len: 10_000,
        pts: 1_000_000_000,
        dts: TIME_NONE,
        duration: 33_333_333,
        flags: flags::DELTA_UNIT,
        info_gen: 1,
        frag_size: 1408,
    };
    let mut h = encode_media_header(&hdr(1000), &media);
    patch_seq_offset(&mut h, 1002, 2 * 1408);
    assert_eq!(&h[..], &unhex(spec)[..]);
}

#[test]
fn encode_refuses_extensions_the_header_cannot_describe() {
    let big = [0u8; 1020];
    let body = Body::EndOfStream(EndOfStream::default());
    let mut out = Vec::new();
    let too_long = [Extension::Other {
        kind: 1,
        value: &big,
    }];
    assert_eq!(
        encode(&hdr(1), &too_long, &body, &mut out),
        Err(EncodeError::ExtensionsTooLong)
    );
    // 255 words is the most: a 1016-byte value plus its 4-byte TLV header.
    let most = [Extension::Other {
        kind: 1,
        value: &big[..1016],
    }];
    out.clear();
    encode(&hdr(1), &most, &body, &mut out).unwrap();
    assert_eq!(out[5], 255);
    assert_eq!(decode(&out).unwrap().extensions.ignored, 1);
}
