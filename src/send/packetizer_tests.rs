// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `packetizer.rs`.

use super::*;
use crate::protocol::{decode, PacketType};

fn media_of(d: &[u8]) -> (CommonHeader, Media, Vec<u8>) {
    let p = decode(d).unwrap();
    match p.body {
        Body::Media(m) => (p.header, m, p.payload.to_vec()),
        other => panic!("not media: {other:?}"),
    }
}

fn reassemble(
    p: &mut Packetizer,
    data: &[u8],
    batch: usize,
) -> Vec<(CommonHeader, Media, Vec<u8>)> {
    let mut plan = p.frame(data.len(), FrameMeta::default()).unwrap();
    let count = plan.count();
    let mut out = Vec::new();
    let mut first = 0;
    while first < count {
        let b = plan.batch(data, first, batch);
        for k in 0..b.len() {
            out.push(media_of(&b.parts(k).concat()));
        }
        first += b.len();
    }
    out
}

#[test]
fn fragment_size_fits_the_mtu() {
    assert_eq!(fragment_size(1500, false), 1500 - 28 - 64);
    assert_eq!(fragment_size(1500, true), 1500 - 48 - 64);
    assert_eq!(
        fragment_size(65535, false) as usize,
        65507 - MEDIA_HEADER_LEN
    );
    assert_eq!(fragment_size(100, false), fragment_size(MIN_MTU, false));
}

#[test]
fn frame_splits_into_fragments_that_cover_it_exactly() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut p = Packetizer::new(0xABCD_0000_0000_0009, 2, u32::MAX - 2, 1400);
    let dgrams = reassemble(&mut p, &data, 3);
    assert_eq!(dgrams.len(), 8);
    let mut rebuilt = vec![0u8; data.len()];
    for (i, (h, m, payload)) in dgrams.iter().enumerate() {
        assert_eq!(h.session, 0xABCD_0000_0000_0009);
        assert_eq!(h.track, 2);
        assert_eq!(h.seq, (u32::MAX - 2).wrapping_add(i as u32));
        assert_eq!(m.offset as usize, i * 1400);
        assert_eq!(m.frame_len, 10_000);
        rebuilt[m.offset as usize..][..payload.len()].copy_from_slice(payload);
    }
    assert_eq!(rebuilt, data);
    // The next frame continues the sequence and the frame counter.
    let next = reassemble(&mut p, &data[..10], 64);
    assert_eq!(next[0].0.seq, 5);
    assert_eq!(next[0].1.frame, 1);
}

#[test]
fn frames_beyond_the_fragment_limit_are_refused() {
    let mut p = Packetizer::new(1, 0, 0, 100);
    let len = protocol::MAX_FRAGMENTS as usize * 100 + 1;
    assert_eq!(
        p.frame(len, FrameMeta::default()).err(),
        Some(PacketizeError::TooManyFragments(len))
    );
    assert!(p.frame(len - 1, FrameMeta::default()).is_ok());
}

#[test]
fn empty_frame_is_one_empty_datagram() {
    let mut p = Packetizer::new(1, 0, 0, 1400);
    let d = reassemble(&mut p, &[], 64);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1.frame_len, 0);
    assert!(d[0].2.is_empty());
}

#[test]
fn info_and_eos_take_sequence_numbers() {
    let mut p = Packetizer::new(1, 0, 10, 1400);
    let info = p.info_datagrams("video/x-raw").unwrap();
    assert_eq!(info.len(), 1);
    let eos = p.eos_datagram();
    let d = [&info[0].0[..], info[0].1].concat();
    let pk = decode(&d).unwrap();
    assert_eq!(pk.packet_type(), PacketType::StreamInfo);
    assert_eq!(pk.header.seq, 10);
    assert_eq!(pk.payload, b"video/x-raw");
    let pk = decode(&eos).unwrap();
    assert_eq!(pk.packet_type(), PacketType::EndOfStream);
    assert_eq!(pk.header.seq, 11);
}

#[test]
fn large_caps_go_out_in_pieces_that_fit_the_mtu() {
    let frag = fragment_size(1500, false);
    let mut p = Packetizer::new(1, 0, 100, frag);
    let caps = format!("application/x-test, blob=(string){}", "x".repeat(7000));
    let pieces = p.info_datagrams(&caps).unwrap();
    assert_eq!(pieces.len(), caps.len().div_ceil(p.info_piece_size()));
    let mut rebuilt = vec![0u8; caps.len()];
    for (i, (h, slice)) in pieces.iter().enumerate() {
        let d = [&h[..], slice].concat();
        assert!(d.len() + IPV4_UDP_OVERHEAD <= 1500);
        let pk = decode(&d).unwrap();
        assert_eq!(pk.header.seq, 100 + i as u32);
        let Body::StreamInfo(s) = pk.body else {
            panic!("not stream info")
        };
        assert_eq!(s.caps_len as usize, caps.len());
        rebuilt[s.offset as usize..][..pk.payload.len()].copy_from_slice(pk.payload);
    }
    assert_eq!(rebuilt, caps.as_bytes());
    let too_long = "x".repeat(protocol::MAX_CAPS_LEN + 1);
    assert_eq!(
        p.info_datagrams(&too_long).err(),
        Some(PacketizeError::CapsTooLarge(too_long.len()))
    );
}

#[test]
fn session_ids_are_random() {
    let a = random_session_id();
    let b = random_session_id();
    assert_ne!(a, b);
    assert_ne!(a, 0);
}
