// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `crypto/`: seal → open for every packet type, what must not open, key
//! epochs, and the AUTH test vectors of `docs/PROTOCOL.md` §11.2.

use super::*;
use crate::protocol::{
    self, fec_scheme, reference_clock, Body, CommonHeader, EndOfStream, Extension, Fec,
    KeyframeRequest, Media, Metadata, Nack, ReceiverReport, SenderReport, StreamInfo, Subscribe,
    Tally,
};

const SENDER: u64 = 0x0123_4567_89AB_CDEF;
const RECEIVER: u64 = 0xFEDC_BA98_7654_3210;
const PASSPHRASE: &str = "correct horse battery";
const CONTROL: u16 = crate::protocol::tracks::CONTROL_TRACK;

fn master(len: KeyLength) -> Arc<MasterKey> {
    MasterKey::from_passphrase(PASSPHRASE, len).unwrap()
}

fn hdr(seq: u32) -> CommonHeader {
    CommonHeader {
        session: SENDER,
        seq,
        ..Default::default()
    }
}

fn head(h: &CommonHeader, exts: &[Extension<'_>], body: &Body) -> Vec<u8> {
    let mut v = Vec::new();
    protocol::encode(h, exts, body, &mut v).unwrap();
    v
}

/// One datagram of every packet type (and an unknown one), as (head, payload).
fn every_type(seq: u32) -> Vec<(Body, Vec<u8>)> {
    let mut nack = Vec::new();
    protocol::push_nack_entry(&mut nack, 1003, 2);
    let media = vector_media();
    vec![
        (
            protocol::decode(&media).unwrap().body,
            media[protocol::MEDIA_HEADER_LEN..].to_vec(),
        ),
        (
            Body::StreamInfo(StreamInfo {
                info_gen: 1,
                caps_len: 28,
                offset: 13,
                next_frame: 43,
            }),
            b"t)48000".to_vec(),
        ),
        (Body::EndOfStream(EndOfStream { next_frame: 43 }), vec![]),
        (
            Body::SenderReport(SenderReport {
                running_time: 1,
                reference_time: 2,
                clock: reference_clock::REALTIME,
                datagrams_sent: u64::from(seq),
                frames_sent: 3,
            }),
            vec![],
        ),
        (
            Body::ReceiverReport(ReceiverReport {
                session: SENDER,
                highest_seq: 1010,
                ..Default::default()
            }),
            vec![],
        ),
        (
            Body::Nack(Nack {
                session: SENDER,
                track: 0,
            }),
            nack,
        ),
        (
            Body::Fec(Fec {
                scheme: fec_scheme::REED_SOLOMON,
                repair_index: 1,
                first_seq: 1000,
                protected_count: 3,
                repair_count: 2,
                symbol_len: 4,
            }),
            vec![0x37, 0x32, 0x0d, 0x0c],
        ),
        (
            Body::Subscribe(Subscribe {
                session: SENDER,
                lease_ms: 10_000,
                flags: 0,
            }),
            vec![0, 0, 0, 1],
        ),
        (
            Body::KeyframeRequest(KeyframeRequest {
                session: SENDER,
                track: 0,
            }),
            vec![],
        ),
        (
            Body::Tally(Tally {
                session: SENDER,
                state: 1,
            }),
            vec![],
        ),
        (
            Body::Metadata(Metadata {
                frame: 42,
                pts: 1_000_000_000,
            }),
            "subtitle ✓".as_bytes().to_vec(),
        ),
        (Body::Unknown(0x99), b"opaque payload".to_vec()),
    ]
}

fn seal(
    sealer: &mut Sealer,
    h: &CommonHeader,
    body: &Body,
    payload: &[u8],
    ext_seq: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    sealer
        .seal(&head(h, &[], body), payload, ext_seq, &mut out)
        .unwrap();
    out
}

#[test]
fn every_packet_type_round_trips_under_both_key_lengths() {
    for len in [KeyLength::Aes128, KeyLength::Aes256] {
        let mut sealer = Sealer::new(master(len), Direction::FromSender);
        let mut opener = Opener::new(master(len), Direction::FromSender);
        for (i, (body, payload)) in every_type(1000).into_iter().enumerate() {
            let seq = 1000 + i as u32;
            let plain_head = head(&hdr(seq), &[], &body);
            let mut sealed = Vec::new();
            sealer
                .seal(&plain_head, &payload, u64::from(seq), &mut sealed)
                .unwrap();
            assert_eq!(sealed.len(), plain_head.len() + payload.len() + OVERHEAD);
            // The payload is not in the clear (all but the empty ones).
            if payload.len() >= 4 {
                let at = plain_head.len() + AUTH_EXT_LEN;
                assert_ne!(&sealed[at..at + payload.len()], &payload[..], "{body:?}");
            }
            let opened = opener.open(&mut sealed).unwrap();
            assert_eq!(
                opened,
                Opened {
                    ext_seq: u64::from(seq),
                    epoch: 0
                }
            );
            let p = protocol::decode(&sealed).unwrap();
            assert_eq!(
                p.header,
                CommonHeader {
                    flags: header_flags::AUTH_TAG,
                    ..hdr(seq)
                }
            );
            assert_eq!(p.body, body);
            assert_eq!(p.payload, &payload[..]);
            assert_eq!(p.tag.len(), TAG_LEN);
            let auth = p.extensions.auth.unwrap();
            assert_eq!(
                (auth.epoch, auth.algorithm, auth.tag_len),
                (0, len.algorithm(), 16)
            );
        }
    }
}

#[test]
fn other_extensions_follow_auth_and_are_authenticated() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let exts = [Extension::Other {
        kind: 0x0042,
        value: b"hello",
    }];
    let body = Body::EndOfStream(EndOfStream { next_frame: 9 });
    let plain = head(&hdr(5), &exts, &body);
    let mut sealed = Vec::new();
    sealer.seal(&plain, b"xyz", 5, &mut sealed).unwrap();
    assert_eq!(sealed[5], plain[5] + 3);
    assert_eq!(&sealed[20..22], &[0x80, 0x01]);
    let mut copy = sealed.clone();
    opener.open(&mut copy).unwrap();
    let p = protocol::decode(&copy).unwrap();
    assert_eq!(p.extensions.ignored, 1);
    assert_eq!(p.payload, b"xyz");
    // The other extension's value is authenticated.
    sealed[20 + AUTH_EXT_LEN + 4] ^= 1;
    assert_eq!(opener.open(&mut sealed), Err(OpenError::BadTag));
}

#[test]
fn a_resend_differs_only_in_flag_r_and_opens() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let (body, payload) = every_type(7).swap_remove(0);
    let original = seal(&mut sealer, &hdr(7), &body, &payload, 7);
    let resend_header = CommonHeader {
        flags: header_flags::RETRANSMISSION,
        ..hdr(7)
    };
    let mut resend = seal(&mut sealer, &resend_header, &body, &payload, 7);
    let differ: Vec<usize> = (0..original.len())
        .filter(|&i| original[i] != resend[i])
        .collect();
    assert_eq!(differ, vec![4]);
    assert_eq!(original[4] ^ resend[4], header_flags::RETRANSMISSION);
    // The stored original with R set opens too: a sender may resend without sealing again.
    let mut flipped = original.clone();
    flipped[4] |= header_flags::RETRANSMISSION;
    assert_eq!(flipped, resend);
    opener.open(&mut resend).unwrap();
    let p = protocol::decode(&resend).unwrap();
    assert_eq!(
        p.header.flags,
        header_flags::RETRANSMISSION | header_flags::AUTH_TAG
    );
    assert_eq!(p.payload, &payload[..]);
}

#[test]
fn opening_into_another_buffer_agrees_with_opening_in_place_and_leaves_the_datagram() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    for (seq, (body, payload)) in every_type(40).into_iter().enumerate() {
        let seq = 40 + seq as u32;
        let sealed = seal(&mut sealer, &hdr(seq), &body, &payload, u64::from(seq));
        // As sent, and as resent (flag R set on the stored original).
        let mut resent = sealed.clone();
        resent[4] |= header_flags::RETRANSMISSION;
        for d in [&sealed, &resent] {
            let mut into = vec![0xEE; payload.len()];
            let opened = opener.open_into(d, &mut into).unwrap();
            assert_eq!(into, payload, "{body:?}");
            assert_eq!(opened.ext_seq, u64::from(seq));
            let mut in_place = d.clone();
            assert_eq!(opener.open(&mut in_place), Ok(opened));
            assert_eq!(protocol::decode(&in_place).unwrap().payload, &payload[..]);
        }
        // A sealed media datagram decodes as it is (the receiver finds the fragment's place
        // from it before opening); its payload is the ciphertext.
        if let Body::Media(_) = body {
            let p = protocol::decode(&sealed).unwrap();
            assert_eq!(p.payload.len(), payload.len());
            assert_ne!(p.payload, &payload[..]);
        }
        // A wrong length is refused before the cipher; a flipped bit by the tag.
        let mut short = vec![0; payload.len() + 1];
        assert_eq!(
            opener.open_into(&sealed, &mut short),
            Err(OpenError::TooShort)
        );
        for at in [0, sealed.len() - payload.len() - TAG_LEN, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x40;
            let mut into = vec![0; payload.len()];
            assert!(opener.open_into(&bad, &mut into).is_err(), "byte {at}");
        }
    }
}

#[test]
fn three_tracks_through_many_epochs_keep_two_keys_each() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let (body, payload) = every_type(0).swap_remove(0);
    for epoch in 0..10u64 {
        for track in [0u16, 1, CONTROL] {
            let ext_seq = epoch << EPOCH_SHIFT | 5;
            let h = CommonHeader {
                track,
                ..hdr(ext_seq as u32)
            };
            let mut d = seal(&mut sealer, &h, &body, &payload, ext_seq);
            opener.open(&mut d).unwrap();
        }
    }
    // The current and the previous epoch of each, whatever the order they came in.
    assert_eq!(sealer.keys.len(), 6);
    assert_eq!(opener.keys.len(), 6);
}

#[test]
fn sealing_the_same_bytes_twice_gives_the_same_datagram() {
    let mut a = Sealer::new(master(KeyLength::Aes256), Direction::FromSender);
    let mut b = Sealer::new(master(KeyLength::Aes256), Direction::FromSender);
    let (body, payload) = every_type(3).swap_remove(0);
    let ext_seq = (5 << 32) | 3;
    let one = seal(&mut a, &hdr(3), &body, &payload, ext_seq);
    // After other keys have been used, and from another sealer.
    seal(&mut a, &hdr(4), &body, &payload, 4);
    assert_eq!(seal(&mut a, &hdr(3), &body, &payload, ext_seq), one);
    assert_eq!(seal(&mut b, &hdr(3), &body, &payload, ext_seq), one);
}

#[test]
fn every_single_bit_flip_fails_to_open_except_flag_r() {
    for len in [KeyLength::Aes128, KeyLength::Aes256] {
        let mut sealer = Sealer::new(master(len), Direction::FromSender);
        let mut opener = Opener::new(master(len), Direction::FromSender);
        let (body, payload) = every_type(1002).swap_remove(0);
        let sealed = seal(&mut sealer, &hdr(1002), &body, &payload, 1002);
        for bit in 0..sealed.len() * 8 {
            let mut d = sealed.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            let r = opener.open(&mut d);
            if bit == 4 * 8 {
                assert!(r.is_ok(), "flag R");
            } else {
                assert!(r.is_err(), "bit {bit} flipped still opens");
            }
        }
    }
}

#[test]
fn the_wrong_key_direction_session_or_track_does_not_open() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let (body, payload) = every_type(9).swap_remove(0);
    let sealed = seal(&mut sealer, &hdr(9), &body, &payload, 9);
    let other = MasterKey::from_passphrase("correct horse battery!", KeyLength::Aes128).unwrap();
    let openers = [
        Opener::new(other, Direction::FromSender),
        Opener::new(master(KeyLength::Aes128), Direction::FromReceiver),
    ];
    for mut opener in openers {
        assert_eq!(opener.open(&mut sealed.clone()), Err(OpenError::BadTag));
    }
    // Another key length: the algorithm byte says so before any key is tried.
    let mut opener = Opener::new(master(KeyLength::Aes256), Direction::FromSender);
    assert_eq!(
        opener.open(&mut sealed.clone()),
        Err(OpenError::WrongAlgorithm(1))
    );

    // The same bytes under another session or track id (an attacker rewriting the header).
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut session = sealed.clone();
    session[8..16].copy_from_slice(&RECEIVER.to_be_bytes());
    assert_eq!(opener.open(&mut session), Err(OpenError::BadTag));
    let mut track = sealed.clone();
    track[7] = 1;
    assert_eq!(opener.open(&mut track), Err(OpenError::BadTag));
    assert!(opener.open(&mut sealed.clone()).is_ok());
}

#[test]
fn a_receivers_datagrams_open_with_its_own_session_id() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromReceiver);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromReceiver);
    let rx = CommonHeader {
        session: RECEIVER,
        seq: 6,
        ..Default::default()
    };
    let (body, payload) = every_type(6).swap_remove(5);
    let mut sealed = seal(&mut sealer, &rx, &body, &payload, 6);
    opener.open(&mut sealed).unwrap();
    assert_eq!(protocol::decode(&sealed).unwrap().payload, &payload[..]);
}

#[test]
fn malformed_datagrams_are_errors_not_panics() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let (body, payload) = every_type(1002).swap_remove(0);
    let sealed = seal(&mut sealer, &hdr(1002), &body, &payload, 1002);
    for n in 0..sealed.len() {
        assert!(
            opener.open(&mut sealed[..n].to_vec()).is_err(),
            "truncated to {n}"
        );
    }
    // The unprotected datagram.
    let mut plain = head(&hdr(1002), &[], &body);
    plain.extend_from_slice(&payload);
    assert_eq!(opener.open(&mut plain), Err(OpenError::NotProtected));
    // Flag A with another extension first.
    let exts = [
        Extension::Other {
            kind: 0x42,
            value: &[0; 8],
        },
        Extension::Auth(protocol::Auth {
            epoch: 0,
            algorithm: 1,
            tag_len: 16,
        }),
    ];
    let h = CommonHeader {
        flags: header_flags::AUTH_TAG,
        ..hdr(1002)
    };
    let mut late_auth = head(&h, &exts, &body);
    late_auth.extend_from_slice(&[0; 20]);
    assert_eq!(opener.open(&mut late_auth), Err(OpenError::NoAuth));
    // A tag length other than 16.
    let mut d = sealed.clone();
    d[29] = 12;
    assert_eq!(opener.open(&mut d), Err(OpenError::WrongTagLength(12)));
    // Not videoip.
    assert_eq!(opener.open(&mut [0u8; 100]), Err(OpenError::NotVideoip));
}

#[test]
fn the_epoch_must_match_the_sequence_number() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let (body, payload) = every_type(0).swap_remove(2);
    let mut d = seal(&mut sealer, &hdr(5), &body, &payload, 5);
    d[20 + 7] = 1; // epoch 1 with seq 5: top bits 0
    assert_eq!(opener.open(&mut d), Err(OpenError::EpochMismatch));
    // Epoch 1024 has low bits 0: consistent with seq 5, but the tag was for epoch 0.
    let mut d = seal(&mut sealer, &hdr(5), &body, &payload, 5);
    d[20 + 6] = 4;
    assert_eq!(opener.open(&mut d), Err(OpenError::BadTag));
}

#[test]
fn seal_refuses_bad_heads() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let body = Body::EndOfStream(EndOfStream { next_frame: 1 });
    let plain = head(&hdr(5), &[], &body);
    let mut out = Vec::new();
    assert_eq!(
        sealer.seal(&plain, &[], 6, &mut out),
        Err(SealError::SeqMismatch)
    );
    assert_eq!(
        sealer.seal(&plain[..plain.len() - 1], &[], 5, &mut out),
        Err(SealError::BadHead)
    );
    assert_eq!(
        sealer.seal(&plain[..10], &[], 5, &mut out),
        Err(SealError::BadHead)
    );
    let mut longer = plain.clone();
    longer.push(0);
    assert_eq!(
        sealer.seal(&longer, &[], 5, &mut out),
        Err(SealError::BadHead)
    );
    let a = CommonHeader {
        flags: header_flags::AUTH_TAG,
        ..hdr(5)
    };
    let auth = [Extension::Auth(protocol::Auth::default())];
    assert_eq!(
        sealer.seal(&head(&a, &auth, &body), &[], 5, &mut out),
        Err(SealError::AlreadyProtected)
    );
    let big = [0u8; 1012];
    let full = [Extension::Other {
        kind: 1,
        value: &big,
    }];
    let full_head = head(&hdr(5), &full, &body);
    assert_eq!(full_head[5], 254);
    assert_eq!(
        sealer.seal(&full_head, &[], 5, &mut out),
        Err(SealError::ExtensionsTooLong)
    );
    assert_eq!(
        sealer.seal(&plain, &[], (1u64 << 54) | 5, &mut out),
        Err(SealError::EpochsExhausted)
    );
    // The largest extended sequence number seals: epoch 2^32 - 1.
    let last = head(&hdr(u32::MAX), &[], &body);
    sealer.seal(&last, &[], (1u64 << 54) - 1, &mut out).unwrap();
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    assert_eq!(opener.open(&mut out).unwrap().epoch, u32::MAX);
}

#[test]
fn epochs_roll_over_every_2_22_datagrams_and_across_the_seq_wrap() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let body = Body::EndOfStream(EndOfStream { next_frame: 1 });
    let mut tags = std::collections::HashSet::new();
    let mut ivs = std::collections::HashSet::new();
    let points = [
        (1u64 << 22) - 1,
        1 << 22,
        (1 << 22) + 1,
        (1 << 32) - 1,
        1 << 32,
        (1 << 32) + 1,
        (1 << 32) + (1 << 22),
        // The same 32-bit seq as 5, four wraps on.
        5,
        (4 << 32) | 5,
    ];
    for ext_seq in points {
        let seq = ext_seq as u32;
        let mut d = seal(&mut sealer, &hdr(seq), &body, b"same plaintext", ext_seq);
        let opened = opener.open(&mut d).unwrap();
        assert_eq!(opened.ext_seq, ext_seq);
        assert_eq!(u64::from(opened.epoch), ext_seq >> 22);
        assert!(tags.insert(d[d.len() - TAG_LEN..].to_vec()), "{ext_seq}");
        // (key, nonce) pairs never repeat: same seq, other epoch → other key.
        let id = KeyId {
            direction: Direction::FromSender,
            session: SENDER,
            track: 0,
            epoch: opened.epoch,
        };
        let (key, iv) = master(KeyLength::Aes128).derive_raw(&id).unwrap();
        assert!(ivs.insert((key, iv, seq)));
    }
    assert_eq!(u64::from(0x400u32) << 22, 1 << 32);
}

#[test]
fn random_and_mutated_bytes_never_open_or_panic() {
    let mut sealer = Sealer::new(master(KeyLength::Aes128), Direction::FromSender);
    let mut opener = Opener::new(master(KeyLength::Aes128), Direction::FromSender);
    let sealed: Vec<Vec<u8>> = every_type(100)
        .into_iter()
        .enumerate()
        .map(|(i, (body, payload))| {
            let seq = 100 + i as u32;
            seal(&mut sealer, &hdr(seq), &body, &payload, u64::from(seq))
        })
        .collect();
    // xorshift64*: reproducible without a dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for round in 0..20_000 {
        let mut d = sealed[round % sealed.len()].clone();
        match next() % 4 {
            0 => {
                // Random bytes of a random length, with a plausible header half the time.
                let n = (next() % 200) as usize;
                d = (0..n).map(|_| next() as u8).collect();
                if n >= 20 && next() % 2 == 0 {
                    d[..4].copy_from_slice(&[0x56, 0x49, 2, (next() % 12) as u8]);
                    d[4] |= 2;
                }
            }
            1 => {
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % d.len();
                    d[i] = next() as u8;
                }
            }
            2 => d.truncate((next() as usize) % d.len()),
            _ => {
                let extra = (next() % 40) as usize;
                d.extend((0..extra).map(|_| next() as u8));
                if extra == 0 {
                    d.push(0);
                }
            }
        }
        let before = d.clone();
        if opener.open(&mut d).is_ok() {
            // Only a change of flag R (or none) may still open.
            let orig = &sealed[round % sealed.len()];
            assert_eq!(before.len(), orig.len());
            let differ: Vec<usize> = (0..before.len())
                .filter(|&i| before[i] != orig[i])
                .collect();
            assert!(differ.iter().all(|&i| i == 4), "round {round}");
        }
    }
}

#[test]
fn passphrase_and_key_length_rules() {
    assert_eq!(
        MasterKey::from_passphrase("123456789", KeyLength::Aes128).unwrap_err(),
        KeyError::PassphraseLength(9)
    );
    assert!(MasterKey::from_passphrase(&"x".repeat(80), KeyLength::Aes128).is_err());
    // Characters, not bytes: ten 2-byte characters are enough.
    assert_eq!("éééééééééé".len(), 20);
    let a = MasterKey::from_passphrase("éééééééééé", KeyLength::Aes128).unwrap();
    // The process-wide cache: the same passphrase and length give the same key.
    let b = MasterKey::from_passphrase("éééééééééé", KeyLength::Aes128).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let msg = KeyError::PassphraseLength(9).to_string();
    assert!(msg.contains("10 to 79 characters"), "{msg}");
    assert_eq!(KeyLength::try_from(16), Ok(KeyLength::Aes128));
    assert_eq!(KeyLength::try_from(32), Ok(KeyLength::Aes256));
    assert_eq!(KeyLength::try_from(24), Err(KeyError::KeyLength(24)));
    assert!(KeyError::KeyLength(24).to_string().contains("pbkeylen"));
    assert_eq!(format!("{a:?}"), "MasterKey { len: Aes128, .. }");
}

// ---- AUTH test vectors: identical to docs/PROTOCOL.md §11.2. ----

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// The bytes of the doc's hex lines, space-separated: a line is a label or offset, two or
/// more spaces, the bytes, and an optional comment after three or more spaces.
fn doc_hex() -> String {
    let doc = include_str!("../../docs/PROTOCOL.md");
    doc.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(_, rest)| {
            let bytes = rest.trim_start().split("   ").next().unwrap_or("");
            bytes.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

const V_MASTER_128: &str = "3a 93 3a 7b 84 a2 e5 f4 f2 a3 37 b8 8c 5f e4 79";
const V_MASTER_256: &str = "3a 93 3a 7b 84 a2 e5 f4 f2 a3 37 b8 8c 5f e4 79 dc ec b1 45 81 9b 65 6c 3c 96 af 01 a6 50 c3 14";
const V_KEY_128: &str = "c7 a4 15 6c 9e 34 a5 4b bb 25 3d d8 0d 0a 6a ad";
const V_IV_128: &str = "3d 2d c1 1b f5 50 f9 0e 5b 6d bf 4d";
const V_KEY_256: &str = "c4 a3 4f e3 b6 b1 5c 1b ce 28 38 05 5e 40 0a b0 38 ab 10 2c d4 62 a3 f0 88 00 00 19 5e 11 1f a9";
const V_IV_256: &str = "06 2c e2 49 31 be 46 33 0f f0 e5 61";
const V_NONCE_128: &str = "3d 2d c1 1b f5 50 f9 0e 5b 6d bc a7";
const V_KEY_RX: &str = "e7 7a dd 6c 84 53 ae 55 a4 d0 d7 ed 41 ea db 18";
const V_IV_RX: &str = "74 15 32 ea 82 10 37 96 7a 9a e8 33";
const V_SEALED: &str = "56 49 02 00 02 03 00 00 01 23 45 67 89 ab cd ef \
     00 00 03 ea 80 01 00 08 00 00 04 00 01 10 00 00 \
     00 00 00 2a 00 00 00 08 00 00 00 0c 00 00 00 00 \
     3b 9a ca 00 ff ff ff ff ff ff ff ff 00 00 00 00 \
     01 fc a0 55 00 01 00 01 00 08 00 00 e9 d8 52 01 \
     51 fd bd 1f 5e 35 93 47 73 0b 65 b2 d5 14 13 49";
/// The MEDIA vector of §11.2, sealed at extended sequence number 2^32 + 1002 (epoch 1024).
const V_EXT_SEQ: u64 = (1 << 32) + 1002;

/// The MEDIA vector of §11.2, unprotected, as `protocol/` builds it.
fn vector_media() -> Vec<u8> {
    let (name, datagram) = protocol::tests::vector_packets().swap_remove(0);
    assert_eq!(name, "media");
    datagram
}

#[test]
fn auth_test_vectors_match_the_spec() {
    let m128 = master(KeyLength::Aes128);
    let m256 = master(KeyLength::Aes256);
    let id = |direction, session, epoch| KeyId {
        direction,
        session,
        track: 0,
        epoch,
    };
    let (k128, iv128) = m128
        .derive_raw(&id(Direction::FromSender, SENDER, 1024))
        .unwrap();
    let (k256, iv256) = m256
        .derive_raw(&id(Direction::FromSender, SENDER, 1024))
        .unwrap();
    let (krx, ivrx) = m128
        .derive_raw(&id(Direction::FromReceiver, RECEIVER, 0))
        .unwrap();
    let mut sealer = Sealer::new(m128.clone(), Direction::FromSender);
    let mut sealed = Vec::new();
    sealer
        .seal(
            &vector_media()[..protocol::MEDIA_HEADER_LEN],
            &[0xDE, 0xAD, 0xBE, 0xEF],
            V_EXT_SEQ,
            &mut sealed,
        )
        .unwrap();
    let built = [
        ("master 128", hex(m128.bytes())),
        ("master 256", hex(m256.bytes())),
        ("key 128", hex(&k128[..16])),
        ("iv 128", hex(&iv128)),
        ("nonce 128", {
            let mut nonce = iv128;
            nonce[8..]
                .iter_mut()
                .zip(1002u32.to_be_bytes())
                .for_each(|(n, s)| *n ^= s);
            hex(&nonce)
        }),
        ("key 256", hex(&k256)),
        ("iv 256", hex(&iv256)),
        ("key rx", hex(&krx[..16])),
        ("iv rx", hex(&ivrx)),
        ("sealed", hex(&sealed)),
    ];
    let spec = [
        V_MASTER_128,
        V_MASTER_256,
        V_KEY_128,
        V_IV_128,
        V_NONCE_128,
        V_KEY_256,
        V_IV_256,
        V_KEY_RX,
        V_IV_RX,
        V_SEALED,
    ];
    let doc = doc_hex();
    for ((name, built), spec) in built.iter().zip(spec) {
        assert_eq!(*built, hex(&unhex(spec)), "vector {name}");
        assert!(
            doc.contains(built.as_str()),
            "vector {name} is not in docs/PROTOCOL.md"
        );
    }
    let mut opener = Opener::new(m128, Direction::FromSender);
    let mut d = unhex(V_SEALED);
    assert_eq!(
        opener.open(&mut d).unwrap(),
        Opened {
            ext_seq: V_EXT_SEQ,
            epoch: 1024
        }
    );
    assert_eq!(
        protocol::decode(&d).unwrap().payload,
        &[0xDE, 0xAD, 0xBE, 0xEF]
    );
}

/// Cost figures: `cargo test --lib crypto::tests::cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn cost_of_sealing_and_opening_a_1080p_frame() {
    use std::time::Instant;
    let t = Instant::now();
    let fresh = format!("cost passphrase {:?}", Instant::now());
    MasterKey::from_passphrase(&fresh, KeyLength::Aes128).unwrap();
    println!("PBKDF2, {PBKDF2_ITERATIONS} iterations: {:?}", t.elapsed());

    // 1920 × 1080 UYVY in 1408-byte fragments.
    let frame_len: usize = 1920 * 1080 * 2;
    let frag = 1408usize;
    let count = frame_len.div_ceil(frag);
    let payload = vec![0x5Au8; frag];
    for len in [KeyLength::Aes128, KeyLength::Aes256] {
        let mut sealer = Sealer::new(master(len), Direction::FromSender);
        let mut opener = Opener::new(master(len), Direction::FromSender);
        let media = Media {
            frame_len: frame_len as u32,
            frag_size: frag as u16,
            ..Default::default()
        };
        let mut sealed = vec![Vec::with_capacity(frag + 100); count];
        let mut best = (f64::MAX, f64::MAX, f64::MAX);
        for round in 0..5u64 {
            let t = Instant::now();
            // As the sender does: the header once per frame, then patched per fragment.
            let mut h = protocol::encode_media_header(&hdr(0), &media);
            for (i, out) in sealed.iter_mut().enumerate() {
                let ext_seq = round * count as u64 + i as u64;
                protocol::patch_seq_offset(&mut h, ext_seq as u32, (i * frag) as u32);
                sealer.seal(&h, &payload, ext_seq, out).unwrap();
            }
            let seal = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for d in &mut sealed {
                opener.open(d).unwrap();
            }
            let open = t.elapsed().as_secs_f64();
            // The bare cipher on the same bytes, for comparison.
            let key = aead::PacketAead::new(len, &[7; 32][..len.key_len()]).unwrap();
            let mut buf = payload.clone();
            let mut tag = [0; TAG_LEN];
            let t = Instant::now();
            for i in 0..count {
                key.seal_out_of_place([i as u8; 12], &[0; 76], &payload, &mut buf, &mut tag)
                    .unwrap();
            }
            let bare = t.elapsed().as_secs_f64();
            best = (best.0.min(seal), best.1.min(open), best.2.min(bare));
        }
        println!(
            "{len:?}: {count} datagrams of {frag} B: seal {:.3} ms/frame ({:.0} ns each), \
             open {:.3} ms/frame ({:.0} ns each); the bare AEAD {:.3} ms/frame",
            best.0 * 1e3,
            best.0 * 1e9 / count as f64,
            best.1 * 1e3,
            best.1 * 1e9 / count as f64,
            best.2 * 1e3,
        );
    }
}
