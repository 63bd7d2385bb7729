// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `packetizer.rs`.

use super::*;

fn reassemble(p: &mut Packetizer, data: &[u8], batch: usize) -> Vec<(Header, Vec<u8>)> {
    let mut plan = p.frame(data.len(), FrameMeta::default()).unwrap();
    let count = plan.count();
    let mut out = Vec::new();
    let mut first = 0;
    while first < count {
        let b = plan.batch(data, first, batch);
        for k in 0..b.len() {
            let d = b.parts(k).concat();
            let (hdr, payload) = Header::decode(&d).unwrap();
            out.push((hdr, payload.to_vec()));
        }
        first += b.len();
    }
    out
}

#[test]
fn fragment_size_fits_the_mtu() {
    assert_eq!(fragment_size(1500, false), 1500 - 28 - HEADER_LEN as u16);
    assert_eq!(fragment_size(1500, true), 1500 - 48 - HEADER_LEN as u16);
    assert_eq!(fragment_size(65535, false) as usize, 65507 - HEADER_LEN);
    assert_eq!(fragment_size(100, false), fragment_size(MIN_MTU, false));
}

#[test]
fn frame_splits_into_fragments_that_cover_it_exactly() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut p = Packetizer::new(9, u32::MAX - 2, 1400);
    let dgrams = reassemble(&mut p, &data, 3);
    assert_eq!(dgrams.len(), 8);
    let mut rebuilt = vec![0u8; data.len()];
    for (i, (h, payload)) in dgrams.iter().enumerate() {
        assert_eq!(h.stream_id, 9);
        assert_eq!(h.seq, (u32::MAX - 2).wrapping_add(i as u32));
        assert_eq!(h.offset as usize, i * 1400);
        assert_eq!(h.frame_len, 10_000);
        rebuilt[h.offset as usize..][..payload.len()].copy_from_slice(payload);
    }
    assert_eq!(rebuilt, data);
    // The next frame continues the sequence and the frame counter.
    let next = reassemble(&mut p, &data[..10], 64);
    assert_eq!(next[0].0.seq, 5);
    assert_eq!(next[0].0.frame, 1);
}

#[test]
fn frames_beyond_the_fragment_limit_are_refused() {
    let mut p = Packetizer::new(1, 0, 100);
    let len = protocol::MAX_FRAGMENTS as usize * 100 + 1;
    assert_eq!(
        p.frame(len, FrameMeta::default()).err(),
        Some(PacketizeError::TooManyFragments(len))
    );
    assert!(p.frame(len - 1, FrameMeta::default()).is_ok());
}

#[test]
fn empty_frame_is_one_empty_datagram() {
    let mut p = Packetizer::new(1, 0, 1400);
    let d = reassemble(&mut p, &[], 64);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0.frame_len, 0);
    assert!(d[0].1.is_empty());
}

#[test]
fn info_and_eos_take_sequence_numbers() {
    let mut p = Packetizer::new(1, 10, 1400);
    let info = p.info_header("video/x-raw").unwrap();
    let eos = p.eos_header();
    let mut d = info.to_vec();
    d.extend_from_slice(b"video/x-raw");
    let (h, payload) = Header::decode(&d).unwrap();
    assert_eq!(h.packet_type, PacketType::StreamInfo);
    assert_eq!(h.seq, 10);
    assert_eq!(payload, b"video/x-raw");
    let (h, _) = Header::decode(&eos).unwrap();
    assert_eq!(h.packet_type, PacketType::EndOfStream);
    assert_eq!(h.seq, 11);
    assert!(p.info_header(&"x".repeat(2000)).is_err());
}
