// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `protocol.rs`.

use super::*;

fn sample() -> Header {
    Header {
        packet_type: PacketType::Media,
        flags: flags::DELTA_UNIT | flags::DISCONT,
        stream_id: 0xBEEF,
        seq: 0xFFFF_FFFE,
        frame: 7,
        offset: 2800,
        frame_len: 5000,
        pts: 1_000_000_000,
        dts: TIME_NONE,
        duration: 16_666_666,
        info_gen: 3,
        frag_size: 1400,
    }
}

fn datagram(h: &Header, payload: &[u8]) -> Vec<u8> {
    let mut hdr = [0u8; HEADER_LEN];
    h.encode(&mut hdr);
    let mut v = hdr.to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn encode_decode_round_trip_keeps_every_field() {
    let h = sample();
    let payload = vec![0xAB; 1400];
    let d = datagram(&h, &payload);
    let (back, p) = Header::decode(&d).unwrap();
    assert_eq!(back, h);
    assert_eq!(p, &payload[..]);
}

#[test]
fn header_is_big_endian_and_starts_with_magic() {
    let d = datagram(&sample(), &[0; 1400]);
    assert_eq!(&d[0..2], b"VI");
    assert_eq!(d[2], 1);
    assert_eq!(&d[8..12], &[0xFF, 0xFF, 0xFF, 0xFE]);
    assert_eq!(&d[48..52], &[0, 3, 0x05, 0x78]);
}

#[test]
fn patch_seq_offset_changes_only_those_fields() {
    let h = sample();
    let mut hdr = [0u8; HEADER_LEN];
    h.encode(&mut hdr);
    Header::patch_seq_offset(&mut hdr, 42, 1400);
    let mut d = hdr.to_vec();
    d.extend_from_slice(&[1; 1400]);
    let (back, _) = Header::decode(&d).unwrap();
    assert_eq!(
        back,
        Header {
            seq: 42,
            offset: 1400,
            ..h
        }
    );
}

#[test]
fn decode_rejects_short_foreign_and_future_datagrams() {
    let good = datagram(&sample(), &[0; 1400]);
    assert_eq!(Header::decode(&good[..10]), Err(DecodeError::TooShort(10)));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(Header::decode(&bad), Err(DecodeError::BadMagic));
    let mut bad = good.clone();
    bad[2] = 2;
    assert_eq!(
        Header::decode(&bad),
        Err(DecodeError::UnsupportedVersion(2))
    );
    let mut bad = good;
    bad[3] = 200;
    assert_eq!(Header::decode(&bad), Err(DecodeError::UnknownType(200)));
}

#[test]
fn decode_rejects_fragments_that_contradict_the_frame() {
    let h = sample();
    // Runs past the end of the frame.
    let past_end = Header { offset: 4200, ..h };
    assert!(matches!(
        Header::decode(&datagram(&past_end, &[0; 1400])),
        Err(DecodeError::Inconsistent(_))
    ));
    // Offset not on a fragment boundary.
    let unaligned = Header { offset: 100, ..h };
    assert!(Header::decode(&datagram(&unaligned, &[0; 1400])).is_err());
    // Short fragment that is not the last one.
    assert!(Header::decode(&datagram(&h, &[0; 100])).is_err());
    // Zero fragment size on a non-empty frame.
    let zero = Header { frag_size: 0, ..h };
    assert!(Header::decode(&datagram(&zero, &[0; 1400])).is_err());
    // An empty fragment just past the end of a frame whose length is a multiple of the
    // fragment size must not count as a fragment.
    let empty = Header {
        offset: 2800,
        frame_len: 2800,
        ..h
    };
    assert!(Header::decode(&datagram(&empty, &[])).is_err());
    // The short last fragment is fine.
    let last = Header { offset: 4200, ..h };
    assert!(Header::decode(&datagram(&last, &[0; 800])).is_ok());
}

#[test]
fn decode_never_panics_on_arbitrary_bytes() {
    // A cheap deterministic generator: every length up to 200 bytes, many patterns,
    // plus valid headers with corrupted fields.
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for len in 0..200usize {
        for _ in 0..50 {
            let mut d = vec![0u8; len];
            for b in d.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if len >= 4 && x.is_multiple_of(2) {
                d[0] = b'V';
                d[1] = b'I';
                d[2] = VERSION;
                d[3] = (x % 7) as u8;
            }
            let _ = Header::decode(&d);
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
