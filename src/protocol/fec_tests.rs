// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `fec.rs`.

use super::*;

fn frame(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

/// The frame's repairs: (FEC body, symbol) in sending order.
fn encode(data: &[u8], frag: u16, first_seq: u32, percent: u32) -> Vec<(Fec, Vec<u8>)> {
    let mut e = Encoder::new();
    let n = e.encode(data, frag, first_seq, percent);
    (0..n)
        .map(|i| {
            let (f, s) = e.repair(i).unwrap();
            (f, s.to_vec())
        })
        .collect()
}

/// Restores `data` with the datagrams in `lost` missing, from `repairs`; returns the frame
/// as rebuilt (lost and unrestored datagrams left zero) and how many were restored.
fn restore(
    data: &[u8],
    frag: u16,
    first_seq: u32,
    repairs: &[(Fec, Vec<u8>)],
    lost: &[u32],
) -> (Vec<u8>, u32) {
    let layout = Layout::new(data.len() as u32, frag).unwrap();
    let f = usize::from(frag);
    let mut out = data.to_vec();
    for &i in lost {
        let start = i as usize * f;
        let end = (start + f).min(data.len());
        out[start..end].iter_mut().for_each(|x| *x = 0);
    }
    let missing_in = |b: u32, lost: &[u32]| {
        let (first, count) = layout.block(b);
        lost.iter()
            .filter(|&&i| i >= first && i < first + count)
            .count() as u32
    };
    let mut fec = FrameFec::default();
    let mut dec = Decoder::default();
    let mut restored = 0;
    for (h, sym) in repairs {
        let first = h.first_seq.wrapping_sub(first_seq);
        let b = layout.block_of(first);
        let missing = missing_in(b, lost);
        if let Ok(Added::Kept(b)) = fec.add(&layout, first, h, sym, missing) {
            if fec.decodable(b, missing) {
                let mut got = Vec::new();
                let snapshot = out.clone();
                let present = |i: u32| {
                    (!lost.contains(&i)).then(|| {
                        let start = i as usize * f;
                        &snapshot[start..start + layout.payload_len(i)]
                    })
                };
                restored += fec
                    .decode(&mut dec, &layout, b, present, |i, p| {
                        got.push((i, p.to_vec()))
                    })
                    .unwrap();
                for (i, p) in got {
                    let start = i as usize * f;
                    out[start..start + p.len()].copy_from_slice(&p);
                }
            }
        }
    }
    (out, restored)
}

#[test]
fn blocks_cover_every_datagram_once_in_order() {
    for n in [1u32, 2, 199, 200, 201, 400, 401, 1299, 2921, 10_000] {
        let layout = Layout::new(n * 10, 10).unwrap();
        assert_eq!(layout.count(), n);
        assert_eq!(layout.blocks(), n.div_ceil(MAX_BLOCK));
        let mut next = 0;
        for b in 0..layout.blocks() {
            let (first, count) = layout.block(b);
            assert_eq!(first, next, "n={n} b={b}");
            assert!((1..=MAX_BLOCK).contains(&count));
            assert!(count + 1 >= n / layout.blocks() && count <= n.div_ceil(layout.blocks()));
            for i in first..first + count {
                assert_eq!(layout.block_of(i), b, "n={n} i={i}");
            }
            next = first + count;
        }
        assert_eq!(next, n);
    }
}

#[test]
fn repairs_are_the_percentage_rounded_up_at_least_one() {
    assert_eq!(repair_count(200, 5), 10);
    assert_eq!(repair_count(186, 5), 10);
    assert_eq!(repair_count(1, 5), 1);
    assert_eq!(repair_count(20, 1), 1);
    assert_eq!(repair_count(200, 100), 200);
    assert_eq!(repair_count(200, 250), 200);
}

#[test]
fn symbols_are_the_longest_payload_rounded_to_even() {
    // 2 datagrams of 7 bytes and a last one of 3.
    let l = Layout::new(17, 7).unwrap();
    assert_eq!(l.symbol_len(0), 8);
    assert_eq!(l.payload_len(2), 3);
    // A frame of one short datagram.
    assert_eq!(Layout::new(5, 1408).unwrap().symbol_len(0), 6);
    assert!(Layout::new(0, 1408).is_none());
}

#[test]
fn encoder_sends_nothing_at_zero_percent_or_for_empty_frames() {
    assert!(encode(&frame(10_000), 1000, 0, 0).is_empty());
    assert!(encode(&[], 1000, 0, 5).is_empty());
}

#[test]
fn repairs_name_their_block_and_follow_the_layout() {
    let data = frame(401 * 100 - 37); // 401 datagrams: blocks of 134, 134, 133
    let r = encode(&data, 100, u32::MAX - 10, 5);
    assert_eq!(r.len(), 7 + 7 + 7);
    let (h, sym) = &r[7];
    assert_eq!(h.scheme, fec_scheme::LEOPARD_GF16);
    assert_eq!(h.repair_index, 0);
    assert_eq!(h.first_seq, (u32::MAX - 10).wrapping_add(134));
    assert_eq!(
        (h.protected_count, h.repair_count, h.symbol_len),
        (134, 7, 100)
    );
    assert_eq!(sym.len(), 100);
}

#[test]
fn lost_datagrams_up_to_the_repair_count_are_restored_exactly() {
    // 3 blocks (134, 134, 133 datagrams, 7 repairs each); the frame's last datagram is short
    // and padded. Lose 7 in the first block (a burst), 3 in the second, and the last one.
    let data = frame(401 * 100 - 37);
    let repairs = encode(&data, 100, 5000, 5);
    let lost: Vec<u32> = (10..17).chain([150, 151, 260, 400]).collect();
    let (out, restored) = restore(&data, 100, 5000, &repairs, &lost);
    assert_eq!(restored, 11);
    assert!(out == data, "restored frame differs");
}

#[test]
fn odd_fragment_sizes_and_single_datagram_frames_are_restored() {
    for (len, frag) in [
        (5usize, 1408u16),
        (1409, 1409),
        (3 * 1409 + 1, 1409),
        (999, 7),
    ] {
        let data = frame(len);
        let repairs = encode(&data, frag, 1, 10);
        let n = Layout::new(len as u32, frag).unwrap().count();
        let lost = [n - 1];
        let (out, restored) = restore(&data, frag, 1, &repairs, &lost);
        assert_eq!(restored, 1, "len {len} frag {frag}");
        assert!(out == data, "len {len} frag {frag}");
    }
}

#[test]
fn more_losses_than_repairs_restore_nothing() {
    let data = frame(200 * 100);
    let repairs = encode(&data, 100, 0, 5); // 10 repairs
    let lost: Vec<u32> = (0..11).collect();
    let (_, restored) = restore(&data, 100, 0, &repairs, &lost);
    assert_eq!(restored, 0);
}

#[test]
fn repairs_are_kept_only_while_the_block_needs_them() {
    let data = frame(200 * 100);
    let repairs = encode(&data, 100, 0, 5);
    let layout = Layout::new(data.len() as u32, 100).unwrap();
    let mut fec = FrameFec::default();
    let (h0, s0) = &repairs[0];
    assert_eq!(fec.add(&layout, 0, h0, s0, 0), Ok(Added::Unneeded));
    assert_eq!(fec.add(&layout, 0, h0, s0, 2), Ok(Added::Kept(0)));
    assert_eq!(
        fec.add(&layout, 0, h0, s0, 2),
        Ok(Added::Unneeded),
        "same index"
    );
    assert!(!fec.decodable(0, 2));
    let (h1, s1) = &repairs[1];
    assert_eq!(fec.add(&layout, 0, h1, s1, 2), Ok(Added::Kept(0)));
    assert!(fec.decodable(0, 2));
    let (h2, s2) = &repairs[2];
    assert_eq!(
        fec.add(&layout, 0, h2, s2, 2),
        Ok(Added::Unneeded),
        "enough"
    );
}

#[test]
fn repairs_that_contradict_the_frame_are_refused() {
    let data = frame(401 * 100 - 37);
    let layout = Layout::new(data.len() as u32, 100).unwrap();
    let repairs = encode(&data, 100, 0, 5);
    let (good, sym) = repairs[0].clone();
    let mut fec = FrameFec::default();
    let bad = |f: &dyn Fn(&mut Fec)| {
        let mut h = good;
        f(&mut h);
        h
    };
    let cases = [
        (bad(&|h| h.protected_count = 133), 0u32, sym.clone()),
        (bad(&|h| h.repair_count = 0), 0, sym.clone()),
        (bad(&|h| h.repair_count = 135), 0, sym.clone()),
        (bad(&|h| h.repair_index = 7), 0, sym.clone()),
        (bad(&|h| h.symbol_len = 102), 0, vec![0; 102]),
        (good, 0, sym[..98].to_vec()),
        (good, 1, sym.clone()),
        (good, 401, sym.clone()),
        (good, u32::MAX, sym.clone()),
    ];
    for (h, first, s) in &cases {
        assert!(
            fec.add(&layout, *first, h, s, 5).is_err(),
            "{h:?} at {first}"
        );
    }
    // A later repair of the block must agree on the repair count.
    assert!(fec.add(&layout, 0, &good, &sym, 5).is_ok());
    let other = bad(&|h| {
        h.repair_index = 1;
        h.repair_count = 8
    });
    assert!(fec.add(&layout, 0, &other, &sym, 5).is_err());
}

#[test]
fn a_forged_repair_that_breaks_the_padding_restores_nothing() {
    // One block of 3 datagrams, the last one short: its padding must restore to zeros.
    let data = frame(250);
    let layout = Layout::new(250, 100).unwrap();
    let mut fec = FrameFec::default();
    let (h, _) = encode(&data, 100, 0, 34)[0].clone();
    let forged = vec![0xA5u8; 100];
    assert_eq!(fec.add(&layout, 0, &h, &forged, 1), Ok(Added::Kept(0)));
    let present = |i: u32| (i != 2).then(|| &data[i as usize * 100..][..100]);
    let mut got = 0;
    let r = fec.decode(&mut Decoder::default(), &layout, 0, present, |_, _| {
        got += 1
    });
    assert!(r.is_err());
    assert_eq!(got, 0);
    assert!(!fec.decodable(0, 1), "the block is given up");
}

/// Pins the code: the repair symbol of §5.7's test vector (docs/PROTOCOL.md). A change of
/// the erasure code (or of its crate's output) breaks interoperability and this test.
#[test]
fn repair_symbol_matches_the_specified_test_vector() {
    // Frame of 10 bytes 00 01 .. 09 in fragments of 4: datagrams 00..03, 04..07, 08 09;
    // one block. With one repair (25 %) the code is the XOR of the padded payloads.
    let data: Vec<u8> = (0..10).collect();
    let r = encode(&data, 4, 1000, 25);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, [0x0c, 0x0d, 0x04, 0x04]);
    // Two repairs (50 %).
    let r = encode(&data, 4, 1000, 50);
    assert_eq!(r.len(), 2);
    let (h, sym) = &r[1];
    assert_eq!(
        *h,
        Fec {
            scheme: 2,
            repair_index: 1,
            first_seq: 1000,
            protected_count: 3,
            repair_count: 2,
            symbol_len: 4,
        }
    );
    assert_eq!(r[0].1, [0x3b, 0x3f, 0x09, 0x08]);
    assert_eq!(sym, &[0x37, 0x32, 0x0d, 0x0c]);
}

/// Encode CPU for a 1080p UYVY frame (2921 datagrams of 1408 bytes) at 5 %. Run with
/// `cargo test --release --lib fec::tests::encode_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn encode_cost_of_a_1080p_frame() {
    let data = frame(1920 * 1080 * 2);
    let mut e = Encoder::new();
    let n = 200;
    let t = std::time::Instant::now();
    let mut repairs = 0;
    for _ in 0..n {
        repairs = e.encode(&data, 1408, 0, 5);
    }
    let per = t.elapsed() / n;
    let layout = Layout::new(data.len() as u32, 1408).unwrap();
    println!(
        "1080p UYVY, 5 %: {} datagrams, {} blocks, {repairs} repairs, encode {per:?} per frame",
        layout.count(),
        layout.blocks()
    );
    // Decode of one block with as many losses as repairs.
    let repairs = encode(&data, 1408, 0, 5);
    let (_, count) = layout.block(0);
    let lost = repair_count(count, 5);
    let mut fec = FrameFec::default();
    for (h, s) in &repairs[..lost as usize] {
        fec.add(&layout, 0, h, s, lost).unwrap();
    }
    let present = |i: u32| (i >= lost).then(|| &data[i as usize * 1408..][..1408]);
    let t = std::time::Instant::now();
    let n = fec
        .decode(&mut Decoder::default(), &layout, 0, present, |_, _| {})
        .unwrap();
    println!(
        "decode of one block of {count}, {n} lost: {:?}",
        t.elapsed()
    );
}

#[test]
fn more_repairs_than_still_missing_restore_the_rest() {
    // Three lost, three repairs kept; then one of the three arrives late (a resend): the
    // two still missing are restored with all three repairs at hand.
    let data = frame(100 * 100);
    let repairs = encode(&data, 100, 0, 5);
    let layout = Layout::new(data.len() as u32, 100).unwrap();
    let mut fec = FrameFec::default();
    for (h, s) in &repairs[..3] {
        assert_eq!(fec.add(&layout, 0, h, s, 3), Ok(Added::Kept(0)));
    }
    let lost = [7u32, 8];
    assert!(fec.decodable(0, 2));
    let present = |i: u32| (!lost.contains(&i)).then(|| &data[i as usize * 100..][..100]);
    let mut got = Vec::new();
    let n = fec
        .decode(&mut Decoder::default(), &layout, 0, present, |i, p| {
            got.push((i, p.to_vec()))
        })
        .unwrap();
    assert_eq!(n, 2);
    for (i, p) in got {
        assert_eq!(p, &data[i as usize * 100..][..100]);
    }
}
