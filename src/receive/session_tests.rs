// SPDX-License-Identifier: MPL-2.0
//! Unit tests of the session (`mod.rs`) and what it drives, through its API.

use super::*;
use crate::crypto::KeyLength;
use crate::protocol::{DecodeError, EndOfStream, Fec, Media, MEDIA_HEADER_LEN};
use crate::send::packetizer::{FrameMeta, Packetizer};

/// The address the test sender sends from.
fn src() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 5004))
}

/// A NACK the session sent, decoded.
#[derive(Debug, PartialEq, Eq)]
struct Nacked {
    to: SocketAddr,
    copies: usize,
    ranges: Vec<(u32, u32)>,
}

/// The calls these tests were first written against, each made of the session's API: what
/// goes out is decoded from the bytes of [`Session::poll_transmit`].
trait Drive {
    /// `handle_datagram` from `from`, then: Err for what does not decode, else whether a
    /// complete frame is ready.
    fn push(
        &mut self,
        d: &[u8],
        from: SocketAddr,
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<Vec<u8>>,
    ) -> Result<bool, DecodeError>;
    /// `push` from the test sender's address.
    fn push_at(
        &mut self,
        d: &[u8],
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<Vec<u8>>,
    ) -> Result<bool, DecodeError> {
        self.push(d, src(), now, alloc)
    }
    /// The next frame or end of stream, without timing anything out.
    fn poll_ready(&mut self) -> Option<Event<Vec<u8>>>;
    /// `handle_timeout(now)`, then the next frame or end of stream.
    fn poll(&mut self, now: Instant) -> Option<Event<Vec<u8>>>;
    /// The next NACK due at `now` (other datagrams due are dropped).
    fn poll_nack(&mut self, now: Instant) -> Option<Nacked>;
    /// The next receiver report due at `now` (other datagrams due are dropped).
    fn poll_report(&mut self, now: Instant) -> Option<(SocketAddr, u16, ReceiverReport)>;
    /// `poll_timeout`.
    fn next_deadline(&self) -> Option<Instant>;
}

impl Drive for Session<Vec<u8>> {
    fn push(
        &mut self,
        d: &[u8],
        from: SocketAddr,
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<Vec<u8>>,
    ) -> Result<bool, DecodeError> {
        let decoded = protocol::decode(d).map(|_| ());
        self.handle_datagram(now, from, Meta::default(), &mut d.to_vec(), alloc);
        decoded.map(|()| self.tracks.iter().any(|t| t.reasm.head_ready()))
    }

    fn poll_ready(&mut self) -> Option<Event<Vec<u8>>> {
        loop {
            if let ev @ (Event::Frame { .. } | Event::End) = self.poll_event()? {
                return Some(ev);
            }
        }
    }

    fn poll(&mut self, now: Instant) -> Option<Event<Vec<u8>>> {
        self.handle_timeout(now);
        self.poll_ready()
    }

    fn poll_nack(&mut self, now: Instant) -> Option<Nacked> {
        while let Some(t) = self.poll_transmit(now) {
            let p = protocol::decode(&t.contents).expect("what the session sends decodes");
            if let Body::Nack(_) = p.body {
                return Some(Nacked {
                    to: t.destination,
                    copies: t.copies,
                    ranges: protocol::nack_entries(p.payload).collect(),
                });
            }
        }
        None
    }

    fn poll_report(&mut self, now: Instant) -> Option<(SocketAddr, u16, ReceiverReport)> {
        while let Some(t) = self.poll_transmit(now) {
            let p = protocol::decode(&t.contents).expect("what the session sends decodes");
            if let Body::ReceiverReport(r) = p.body {
                return Some((t.destination, p.header.track, r));
            }
        }
        None
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.poll_timeout()
    }
}

/// A datagram of session `session` with sequence number `seq`.
fn dgram(session: u64, seq: u32, body: Body, payload: &[u8]) -> Vec<u8> {
    let h = CommonHeader {
        session,
        seq,
        ..Default::default()
    };
    let mut d = Vec::new();
    protocol::encode(&h, &[], &body, &mut d).unwrap();
    d.extend_from_slice(payload);
    d
}

/// A complete one-piece stream info datagram.
fn info_of(session: u64, seq: u32, gen: u16, caps: &[u8]) -> Vec<u8> {
    let body = Body::StreamInfo(StreamInfo {
        info_gen: gen,
        caps_len: caps.len() as u32,
        ..Default::default()
    });
    dgram(session, seq, body, caps)
}

fn media_body(frame: u32, len: u32, frag: u16) -> Body {
    Body::Media(Media {
        frame,
        frame_len: len,
        frag_size: frag,
        ..Default::default()
    })
}

/// Datagrams of `frames` through a real packetizer.
fn stream(frames: &[Vec<u8>], frag: u16, first_seq: u32) -> (String, Vec<Vec<u8>>) {
    let mut p = Packetizer::new(77, 0, first_seq, frag);
    let caps = "application/x-test".to_string();
    let mut out = Vec::new();
    for (h, piece) in p.info_datagrams(&caps).unwrap() {
        out.push([&h[..], piece].concat());
    }
    for (n, data) in frames.iter().enumerate() {
        let meta = FrameMeta {
            pts: n as u64 * 1000,
            duration: 1000,
            ..Default::default()
        };
        let mut plan = p.frame(data.len(), meta).unwrap();
        let count = plan.count();
        let b = plan.batch(data, 0, count);
        for k in 0..b.len() {
            out.push(b.parts(k).concat());
        }
    }
    (caps, out)
}

fn frames(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|f| (0..len).map(|i| (i * 7 + f * 13) as u8).collect())
        .collect()
}

fn run(dgrams: &[Vec<u8>], cfg: Config) -> (Vec<Frame<Vec<u8>>>, Stats, bool) {
    let mut s = Session::<Vec<u8>>::new(cfg.clone());
    let now = Instant::now();
    let mut out = Vec::new();
    let mut eos = false;
    for d in dgrams {
        let _ = s.push_at(d, now, |len| Some(vec![0; len]));
        while let Some(ev) = s.poll(now) {
            match ev {
                Event::Frame { frame: f, .. } => out.push(f),
                Event::End => eos = true,
                _ => {}
            }
        }
    }
    // Let every window pass.
    let later = now + Duration::from_secs(10);
    while let Some(ev) = s.poll(later) {
        match ev {
            Event::Frame { frame: f, .. } => out.push(f),
            Event::End => eos = true,
            _ => {}
        }
    }
    (out, s.stats(), eos)
}

fn info_datagram(session: u64) -> Vec<u8> {
    info_of(session, 0, 0, b"test")
}

#[test]
fn in_order_stream_reassembles_byte_exact() {
    let fr = frames(5, 10_000);
    let (_, d) = stream(&fr, 1400, 0);
    let (out, stats, _) = run(&d, Config::default());
    assert_eq!(out.len(), 5);
    for (f, want) in out.iter().zip(&fr) {
        assert_eq!(&f.buf, want);
    }
    assert_eq!(out[3].info.pts, 3000);
    assert_eq!(stats.frames_complete, 5);
    assert_eq!(stats.datagrams_lost, 0);
}

#[test]
fn reordered_fragments_still_make_the_frame() {
    let fr = frames(3, 10_000);
    let (_, mut d) = stream(&fr, 1400, 0);
    // Reverse the fragments of each frame (8 per frame), keep the info first.
    for chunk in d[1..].chunks_mut(8) {
        chunk.reverse();
    }
    let (out, stats, _) = run(&d, Config::default());
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].buf, fr[2]);
    assert!(stats.datagrams_reordered > 0);
    assert_eq!(stats.datagrams_lost, 0);
}

#[test]
fn duplicates_are_ignored_and_counted() {
    let fr = frames(2, 5000);
    let (_, d) = stream(&fr, 1400, 0);
    let doubled: Vec<Vec<u8>> = d.iter().flat_map(|x| [x.clone(), x.clone()]).collect();
    let (out, stats, _) = run(&doubled, Config::default());
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].buf, fr[1]);
    assert_eq!(stats.datagrams_duplicate, d.len() as u64);
}

#[test]
fn lost_fragment_drops_the_frame_and_marks_the_next_discont() {
    let fr = frames(3, 10_000);
    let (_, mut d) = stream(&fr, 1400, 0);
    d.remove(1 + 8 + 3); // a fragment of frame 1
    let (out, stats, _) = run(&d, Config::default());
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].info.frame, 0);
    assert_eq!(out[1].info.frame, 2);
    assert!(out[1].discont);
    assert!(!out[0].discont);
    assert_eq!(stats.frames_dropped, 1);
    assert_eq!(stats.datagrams_lost, 1);
}

#[test]
fn incomplete_frame_is_dropped_only_when_the_window_passes() {
    let fr = frames(1, 3000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    s.push_at(&d[0], t0, |_| None).unwrap();
    s.push_at(&d[1], t0, |len| Some(vec![0; len])).unwrap();
    assert!(s.poll(t0 + Duration::from_millis(49)).is_none());
    // (The rest of the frame never came: it is asked for.)
    let nack = s.poll_nack(t0 + Duration::from_millis(49)).expect("a NACK");
    assert_eq!(nack.ranges, vec![(2, 2)]);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_millis(50)));
    assert_eq!(s.stats().frames_dropped, 0);
    assert!(s.poll(t0 + Duration::from_millis(50)).is_none());
    assert_eq!(s.stats().frames_dropped, 1);
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn poll_ready_never_times_a_frame_out() {
    let fr = frames(2, 3000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    for x in &d[..4] {
        s.push_at(x, t0, |len| Some(vec![0; len])).unwrap();
    }
    // Frame 0 is complete, frame 1 has one of three fragments.
    assert!(matches!(s.poll_ready(), Some(Event::Frame { frame: f, .. }) if f.info.frame == 0));
    assert!(s.poll_ready().is_none());
    // Long after the window, the rest arrives: a receiver that had not read its socket
    // yet still gets the frame.
    let late = t0 + Duration::from_secs(5);
    for x in &d[4..] {
        s.push_at(x, late, |len| Some(vec![0; len])).unwrap();
    }
    assert!(matches!(s.poll_ready(), Some(Event::Frame { frame: f, .. }) if f.buf == fr[1]));
    assert_eq!(s.stats().frames_dropped, 0);
}

#[test]
fn sequence_wrap_around_is_not_loss() {
    let fr = frames(4, 10_000);
    let (_, d) = stream(&fr, 1400, u32::MAX - 10);
    let (out, stats, _) = run(&d, Config::default());
    assert_eq!(out.len(), 4);
    assert_eq!(stats.datagrams_lost, 0);
    assert_eq!(stats.datagrams_reordered, 0);
}

#[test]
fn frames_before_stream_info_are_not_handed_out() {
    let fr = frames(2, 3000);
    let (_, d) = stream(&fr, 1400, 0);
    // Drop the info datagram: a receiver that joined late.
    let (out, stats, _) = run(&d[1..], Config::default());
    assert!(out.is_empty());
    assert_eq!(stats.datagrams_foreign, d.len() as u64 - 1);
    // A frame whose stream info was rejected is not handed out either.
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let now = Instant::now();
    s.push_at(&d[0], now, |_| None).unwrap();
    s.push_at(&d[1], now, |len| Some(vec![0; len])).unwrap();
    s.reject_info(0);
    for x in &d[2..] {
        s.push_at(x, now, |len| Some(vec![0; len])).unwrap();
    }
    assert!(s.poll(now).is_none());
    assert_eq!(s.stats().datagrams_invalid, 1);
    // Rejecting the info also lets go of the stream.
    assert_eq!(s.session_id(), None);
    assert_eq!(s.stats().datagrams_foreign, d.len() as u64 - 2);
}

#[test]
fn eos_ends_the_stream_after_complete_frames() {
    let fr = frames(2, 3000);
    let (_, mut d) = stream(&fr, 1400, 0);
    d.push(dgram(
        77,
        1000,
        Body::EndOfStream(EndOfStream::default()),
        &[],
    ));
    let (out, _, got_eos) = run(&d, Config::default());
    assert_eq!(out.len(), 2);
    assert!(got_eos);
}

#[test]
fn end_of_stream_waits_for_the_last_frame_still_being_recovered() {
    let fr = frames(2, 3000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    let alloc = |len: usize| Some(vec![0u8; len]);
    // Everything but one datagram of the last frame, then the end of stream.
    let (lost, rest) = (d.len() - 2, d.len());
    for (i, x) in d.iter().enumerate().take(rest) {
        if i != lost {
            s.push_at(x, t0, alloc).unwrap();
        }
    }
    let eos = dgram(77, 1000, Body::EndOfStream(EndOfStream::default()), &[]);
    s.push_at(&eos, t0, alloc).unwrap();
    let mut out = Vec::new();
    while let Some(ev) = s.poll(t0 + Duration::from_millis(1)) {
        out.push(matches!(ev, Event::End));
    }
    assert_eq!(
        out,
        vec![false],
        "the first frame, and no end of stream yet"
    );
    // The resend comes: the last frame, then the end of stream.
    s.push_at(&d[lost], t0 + Duration::from_millis(10), alloc)
        .unwrap();
    while let Some(ev) = s.poll(t0 + Duration::from_millis(11)) {
        out.push(matches!(ev, Event::End));
    }
    assert_eq!(out, vec![false, false, true]);
}

#[test]
fn frames_in_flight_are_capped_and_oversized_frames_rejected() {
    let cfg = Config {
        max_frame_size: 1 << 20,
        max_in_flight: 2,
        window: Duration::from_secs(100),
        ..Default::default()
    };
    let mut s = Session::<Vec<u8>>::new(cfg.clone());
    let now = Instant::now();
    s.push_at(&info_datagram(1), now, |_| None).unwrap();
    let mut allocated = 0usize;
    // First fragments of 50 different frames, none ever completed.
    for f in 0..50u32 {
        let d = dgram(1, f + 1, media_body(f, 1 << 20, 1000), &[0; 1000]);
        s.push_at(&d, now, |len| {
            allocated += 1;
            Some(vec![0; len])
        })
        .unwrap();
        assert!(s.in_flight() <= 2);
    }
    assert_eq!(allocated, 50);
    assert_eq!(s.stats().frames_dropped, 48);
    // A frame claiming more than max-frame-size is invalid and allocates nothing.
    let d = dgram(1, 60, media_body(60, (1 << 20) + 1, 1000), &[0; 1000]);
    s.push_at(&d, now, |_| panic!("must not allocate")).unwrap();
    assert_eq!(s.stats().datagrams_invalid, 1);
}

#[test]
fn a_second_sender_cannot_take_over_an_active_stream() {
    let fr = frames(1, 1000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    s.push_at(&d[0], t0, |_| None).unwrap();
    let o = info_of(78, 0, 0, b"audio/x-raw");
    s.push_at(&o, t0 + Duration::from_millis(10), |_| None)
        .unwrap();
    assert_eq!(s.session_id(), Some(77));
    assert_eq!(s.stats().datagrams_foreign, 1);
    // Still within SESSION_IDLE of the first stream's last datagram: refused.
    s.push_at(&o, t0 + Duration::from_millis(199), |_| None)
        .unwrap();
    assert_eq!(s.session_id(), Some(77));
    // After the first stream went quiet, the new one takes over.
    s.push_at(&o, t0 + SESSION_IDLE, |_| None).unwrap();
    assert_eq!(s.session_id(), Some(78));
    assert_eq!(s.info(), Some((0, "audio/x-raw")));
}

fn media(frame: u32, seq: u32, len: u32) -> Vec<u8> {
    dgram(
        77,
        seq,
        media_body(frame, len, 1400),
        &vec![9u8; len as usize],
    )
}

#[test]
fn a_forged_frame_number_far_ahead_cannot_stop_the_stream() {
    let fr = frames(3, 1000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    let mut out = 0;
    let mut push = |s: &mut Session<Vec<u8>>, x: &[u8], t: Instant| {
        s.push_at(x, t, |len| Some(vec![0; len])).unwrap();
        while let Some(Event::Frame { .. }) = s.poll_ready() {
            out += 1;
        }
    };
    push(&mut s, &d[0], t0);
    push(&mut s, &d[1], t0);
    // Frame 0x7FFF_FFFF, complete in one datagram: not believed.
    push(&mut s, &media(0x7FFF_FFFF, 5, 10), t0);
    push(&mut s, &d[2], t0);
    push(&mut s, &d[3], t0);
    assert_eq!(out, 3, "{:?}", s.stats());
    assert_eq!(s.stats().datagrams_invalid, 1);
}

#[test]
fn after_a_long_outage_the_stream_resumes() {
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    let (_, d) = stream(&frames(1, 10), 1400, 0);
    s.push_at(&d[0], t0, |_| None).unwrap();
    s.push_at(&media(0, 1, 10), t0, |len| Some(vec![0; len]))
        .unwrap();
    assert!(s.poll_ready().is_some());
    // 5000 frames later (a minute and a half at 60 fps, nothing received meanwhile).
    let later = t0 + Duration::from_secs(90);
    s.push_at(&media(5000, 2_000_000, 10), later, |len| Some(vec![0; len]))
        .unwrap();
    match s.poll_ready() {
        Some(Event::Frame { frame: f, .. }) => {
            assert_eq!(f.info.frame, 5000);
            assert!(f.discont);
        }
        other => panic!("expected the frame, got {other:?}"),
    }
}

#[test]
fn an_overtaken_older_stream_info_does_not_replace_the_newer() {
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let now = Instant::now();
    let info = |gen: u16, seq: u32, caps: &[u8]| info_of(77, seq, gen, caps);
    s.push_at(&info(1, 10, b"video/x-raw, width=(int)2"), now, |_| None)
        .unwrap();
    s.push_at(&info(0, 9, b"video/x-raw, width=(int)1"), now, |_| None)
        .unwrap();
    assert_eq!(s.info(), Some((1, "video/x-raw, width=(int)2")));
}

#[test]
fn a_frame_dropped_for_want_of_info_makes_the_next_one_discont() {
    let fr = frames(2, 1000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let now = Instant::now();
    s.push_at(&d[0], now, |_| None).unwrap();
    // Frame 0 claims a caps generation nobody announced.
    let p = protocol::decode(&d[1]).unwrap();
    let Body::Media(m) = p.body else {
        panic!("not media")
    };
    let forged = dgram(
        77,
        p.header.seq,
        Body::Media(Media { info_gen: 9, ..m }),
        &d[1][MEDIA_HEADER_LEN..],
    );
    s.push_at(&forged, now, |len| Some(vec![0; len])).unwrap();
    assert!(s.poll_ready().is_none());
    s.push_at(&d[2], now, |len| Some(vec![0; len])).unwrap();
    match s.poll_ready() {
        Some(Event::Frame { frame: f, caps, .. }) => {
            assert!(f.discont);
            assert_eq!(&*caps, "application/x-test");
        }
        other => panic!("expected frame 1, got {other:?}"),
    }
}

/// A session with small limits, and a pseudo-random number generator seeded with `seed`.
fn fuzzed(seed: u64) -> (Session<Vec<u8>>, impl FnMut() -> u64) {
    let cfg = Config {
        max_frame_size: 1 << 16,
        max_in_flight: 3,
        window: Duration::from_millis(5),
        ..Default::default()
    };
    let mut x = seed;
    let next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (Session::new(cfg), next)
}

#[test]
fn arbitrary_datagrams_never_panic_or_grow_memory() {
    let (mut s, mut next) = fuzzed(42);
    let t0 = Instant::now();
    s.push_at(&info_datagram(0), t0, |_| None).unwrap();
    for i in 0..20_000u64 {
        let mut m = Media {
            frame: (next() % 8) as u32,
            frame_len: (next() % 70_000) as u32,
            frag_size: (next() % 2000) as u16,
            offset: (next() % 70_000) as u32,
            ..Default::default()
        };
        if next() % 3 == 0 {
            m.offset -= m.offset % u32::from(m.frag_size.max(1));
        }
        let session = next() % 2;
        let mut d = dgram(session, next() as u32, Body::Media(m), &[]);
        d.extend(std::iter::repeat_n(0u8, (next() % 2100) as usize));
        if next() % 5 == 0 {
            let k = (next() as usize) % d.len();
            d[k] ^= 0xFF;
        }
        let now = t0 + Duration::from_micros(i * 10);
        let _ = s.push_at(&d, now, |len| Some(vec![0; len]));
        while s.poll(now).is_some() {}
        assert!(s.in_flight() <= 3);
    }
    let st = s.stats();
    assert_eq!(st.datagrams_received, 20_001);
    assert!(st.datagrams_invalid > 0);
}

#[test]
fn push_says_when_a_frame_is_ready() {
    let fr = frames(2, 3000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let now = Instant::now();
    let mut ready = Vec::new();
    for x in &d {
        ready.push(s.push_at(x, now, |len| Some(vec![0; len])).unwrap());
        if *ready.last().unwrap() {
            assert!(s.poll_ready().is_some());
        }
    }
    // info, three fragments of frame 0, three of frame 1.
    assert_eq!(ready, [false, false, false, true, false, false, true]);
}

#[test]
fn a_frame_still_arriving_is_not_given_up() {
    // Fragments 40 ms apart, 120 ms in all, with a 50 ms window: the frame keeps
    // arriving, so it waits.
    let fr = frames(1, 4000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    s.push_at(&d[0], t0, |_| None).unwrap();
    let mut t = t0;
    for x in &d[1..] {
        // Checked just before each datagram: 120 ms after the first one at the last check.
        t += Duration::from_millis(40);
        assert!(s.poll(t).is_none());
        assert_eq!(s.stats().frames_dropped, 0, "dropped at {:?}", t - t0);
        s.push_at(x, t, |len| Some(vec![0; len])).unwrap();
    }
    match s.poll(t) {
        Some(Event::Frame { frame: f, .. }) => assert_eq!(f.buf, fr[0]),
        other => panic!("expected the frame, got {other:?}"),
    }
    assert_eq!(s.stats().frames_dropped, 0);
}

#[test]
fn the_first_frame_after_a_switch_to_a_new_session_is_discont() {
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    let alloc = |len| Some(vec![0; len]);
    // Session 77 delivers one frame completely, then ends.
    s.push_at(&info_of(77, 0, 0, b"test"), t0, |_| None)
        .unwrap();
    s.push_at(&media(0, 1, 10), t0, alloc).unwrap();
    assert!(matches!(s.poll_ready(), Some(Event::Frame { frame: f, .. }) if !f.discont));
    s.push_at(
        &dgram(77, 2, Body::EndOfStream(EndOfStream::default()), &[]),
        t0,
        |_| None,
    )
    .unwrap();
    assert!(matches!(s.poll(t0), Some(Event::End)));
    // Session 78 takes over at once (EOS) and starts from its own frame 0: nothing was
    // lost in either stream, yet the switch itself is a discontinuity.
    s.push_at(&info_of(78, 0, 0, b"test"), t0, |_| None)
        .unwrap();
    assert_eq!(s.session_id(), Some(78));
    let first = dgram(78, 1, media_body(0, 10, 1400), &[1; 10]);
    s.push_at(&first, t0, alloc).unwrap();
    match s.poll_ready() {
        Some(Event::Frame { frame: f, .. }) => assert!(f.discont, "first frame of the new session"),
        other => panic!("expected a frame, got {other:?}"),
    }
    let second = dgram(78, 2, media_body(1, 10, 1400), &[1; 10]);
    s.push_at(&second, t0, alloc).unwrap();
    assert!(matches!(s.poll_ready(), Some(Event::Frame { frame: f, .. }) if !f.discont));
}

#[test]
fn eos_and_media_count_only_from_the_session_and_address_locked_on_to() {
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    s.push_at(&info_of(77, 0, 0, b"test"), t0, |_| None)
        .unwrap();
    let elsewhere = SocketAddr::from(([198, 51, 100, 7], 5004));
    // Forged EOS: other session ids, and the right id from another address.
    for id in 0..100u64 {
        let eos = dgram(
            id * 7919 + 1000,
            1,
            Body::EndOfStream(EndOfStream::default()),
            &[],
        );
        s.push_at(&eos, t0, |_| None).unwrap();
    }
    let eos = dgram(77, 2, Body::EndOfStream(EndOfStream::default()), &[]);
    s.push(&eos, elsewhere, t0, |_| None).unwrap();
    s.push(&media(0, 3, 10), elsewhere, t0, |_| panic!("foreign"))
        .unwrap();
    assert!(s.poll(t0).is_none(), "no EOS");
    assert_eq!(s.stats().datagrams_foreign, 102);
    // Stream info from another address does not take over an active session either.
    s.push(&info_of(77, 9, 0, b"other"), elsewhere, t0, |_| None)
        .unwrap();
    assert_eq!(s.info(), Some((0, "test")));
    assert_eq!(s.stats().datagrams_foreign, 103);
    // The EOS datagram from the right address counts.
    s.push_at(&eos, t0, |_| None).unwrap();
    assert!(matches!(s.poll(t0), Some(Event::End)));
}

#[test]
fn stream_info_is_assembled_from_pieces_and_validated() {
    let caps = format!("application/x-test, blob=(string){}", "y".repeat(5000));
    let mut p = Packetizer::new(77, 0, 0, 1000);
    let pieces: Vec<Vec<u8>> = p
        .info_datagrams(&caps)
        .unwrap()
        .iter()
        .map(|(h, c)| [&h[..], c].concat())
        .collect();
    assert!(pieces.len() >= 5);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let now = Instant::now();
    // In reverse order, one piece twice: locked on only once complete.
    for d in pieces[1..].iter().rev().chain(std::iter::once(&pieces[2])) {
        s.push_at(d, now, |_| None).unwrap();
    }
    assert_eq!(s.session_id(), None);
    s.push_at(&pieces[0], now, |_| None).unwrap();
    assert_eq!(s.info(), Some((0, caps.as_str())));
    assert_eq!(s.session_id(), Some(77));
    // Repeats of the info in use change nothing.
    for (h, c) in p.info_datagrams(&caps).unwrap() {
        s.push_at(&[&h[..], c].concat(), now, |_| None).unwrap();
    }
    assert_eq!(s.info(), Some((0, caps.as_str())));
    assert_eq!(s.stats().datagrams_invalid, 0);

    // Caps that would overflow GStreamer's parser: refused and counted, no lock-on.
    let hostile = format!("video/x-raw, a={}", "{".repeat(30_000));
    let mut p = Packetizer::new(5, 0, 0, 1400);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    for (h, c) in p.info_datagrams(&hostile).unwrap() {
        s.push_at(&[&h[..], c].concat(), now, |_| None).unwrap();
    }
    assert_eq!(s.info(), None);
    assert_eq!(s.session_id(), None);
    assert_eq!(s.stats().datagrams_invalid, 1);
}

#[test]
fn frames_in_flight_are_bounded_in_bytes() {
    let cfg = Config {
        max_bytes_in_flight: 100_000,
        window: Duration::from_secs(100),
        ..Default::default()
    };
    let mut s = Session::<Vec<u8>>::new(cfg.clone());
    let now = Instant::now();
    s.push_at(&info_datagram(77), now, |_| None).unwrap();
    let first_fragment =
        |frame: u32, seq: u32, len: u32| dgram(77, seq, media_body(frame, len, 1000), &[0; 1000]);
    // A frame longer than the whole budget allocates nothing.
    s.push_at(&first_fragment(0, 1, 100_001), now, |_| {
        panic!("must not allocate")
    })
    .unwrap();
    assert_eq!(s.stats().datagrams_invalid, 1);
    // Three frames of 40,000 bytes: the third evicts the first.
    for f in 1..=3u32 {
        s.push_at(&first_fragment(f, f + 1, 40_000), now, |len| {
            Some(vec![0; len])
        })
        .unwrap();
        assert!(s.bytes_in_flight() <= 100_000);
    }
    assert_eq!(s.in_flight(), 2);
    assert_eq!(s.bytes_in_flight(), 80_000);
    assert_eq!(s.stats().frames_dropped, 1);
    assert_eq!(s.stats().datagrams_invalid, 1);

    // Frames 5 (10,000 bytes) and 7 (80,000) in flight: frame 6 (50,000) could make room
    // only by evicting a newer frame, so its datagram is dropped; frame 8 (90,000) makes
    // room by evicting both older ones.
    let mut s = Session::<Vec<u8>>::new(cfg.clone());
    s.push_at(&info_datagram(77), now, |_| None).unwrap();
    s.push_at(&first_fragment(5, 1, 10_000), now, |len| Some(vec![0; len]))
        .unwrap();
    s.push_at(&first_fragment(7, 2, 80_000), now, |len| Some(vec![0; len]))
        .unwrap();
    s.push_at(&first_fragment(6, 3, 50_000), now, |_| panic!("no room"))
        .unwrap();
    assert_eq!(s.stats().datagrams_invalid, 1);
    assert_eq!(s.bytes_in_flight(), 90_000);
    s.push_at(&first_fragment(8, 4, 90_000), now, |len| Some(vec![0; len]))
        .unwrap();
    assert_eq!(s.stats().datagrams_invalid, 1);
    assert_eq!(s.in_flight(), 1);
    assert_eq!(s.bytes_in_flight(), 90_000);
}

#[test]
fn unknown_types_extensions_and_auth_tags_are_counted() {
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let now = Instant::now();
    s.push_at(&info_datagram(77), now, |_| None).unwrap();
    // An unknown (private) type: counted, ignored.
    s.push_at(&dgram(77, 1, Body::Unknown(0x80), b"?"), now, |_| None)
        .unwrap();
    // An ignorable extension on a datagram that is otherwise used.
    let h = CommonHeader {
        session: 77,
        seq: 2,
        ..Default::default()
    };
    let ext = [protocol::Extension::Other {
        kind: 0x0123,
        value: b"x",
    }];
    let mut d = Vec::new();
    protocol::encode(&h, &ext, &media_body(0, 4, 1400), &mut d).unwrap();
    d.extend_from_slice(b"data");
    assert!(s.push_at(&d, now, |len| Some(vec![0; len])).unwrap());
    // A must-understand extension this receiver does not know: invalid.
    let ext = [protocol::Extension::Other {
        kind: 0x8123,
        value: b"",
    }];
    let mut d = Vec::new();
    protocol::encode(&h, &ext, &media_body(1, 4, 1400), &mut d).unwrap();
    d.extend_from_slice(b"data");
    assert!(s.push_at(&d, now, |_| None).is_err());
    // An authentication tag, and this receiver has no passphrase: dropped, counted, and
    // the user is told to set one.
    let h = CommonHeader {
        flags: protocol::header_flags::AUTH_TAG,
        seq: 4,
        ..h
    };
    let auth = [protocol::Extension::Auth(protocol::Auth {
        epoch: 1,
        algorithm: 1,
        tag_len: 16,
    })];
    let mut d = Vec::new();
    protocol::encode(&h, &auth, &media_body(2, 4, 1400), &mut d).unwrap();
    d.extend_from_slice(&[0; 20]);
    s.push_at(&d, now, |_| panic!("not trusted")).unwrap();
    let st = s.stats();
    assert_eq!(st.datagrams_unknown, 1);
    assert_eq!(st.extensions_ignored, 1);
    assert_eq!(st.datagrams_invalid, 1);
    assert_eq!(st.datagrams_unauthenticated, 1);
    let warned = std::iter::from_fn(|| s.poll_event())
        .any(|e| matches!(e, Event::Warning(Warning::Encrypted { datagrams: 1, .. })));
    assert!(warned, "the missing passphrase is named");
}

#[test]
fn reports_are_due_every_250ms_once_locked_and_echo_the_sender_report() {
    use crate::protocol::{SenderReport, NO_DELAY};
    let t0 = Instant::now();
    let mut s: Session<Vec<u8>> = Session::new(Config::default());
    let from: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    // Nothing to report to before a session is locked on to, and no deadline for it.
    assert!(s.poll_report(t0).is_none());
    assert_eq!(s.next_deadline(), None);
    let mut p = crate::send::packetizer::Packetizer::new(11, 0, 100, 1400);
    for (h, piece) in p.info_datagrams("video/x-raw").unwrap() {
        let _ = s.push(&[&h[..], piece].concat(), from, t0, |n| Some(vec![0; n]));
    }
    let (to, _, r) = s.poll_report(t0).expect("the first report is due at once");
    assert_eq!((to, r.session, r.delay_us), (from, 11, NO_DELAY));
    assert!(s.poll_report(t0 + Duration::from_millis(100)).is_none());
    assert_eq!(s.next_deadline(), Some(t0 + REPORT_INTERVAL));
    // A sender report arrives; the next report echoes it with the time it was held.
    let (seq, sr) = p.sender_report(SenderReport::default());
    let _ = s.push(&sr, from, t0 + Duration::from_millis(200), |n| {
        Some(vec![0; n])
    });
    let (_, _, r) = s.poll_report(t0 + REPORT_INTERVAL).expect("due again");
    assert_eq!(r.echoed_report_seq, seq);
    assert_eq!(r.delay_us, 50_000);
}

#[test]
fn only_datagrams_really_missing_are_asked_for_not_stream_info_repeats() {
    let t0 = Instant::now();
    let mut s: Session<Vec<u8>> = Session::new(Config::default());
    let from: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let mut p = crate::send::packetizer::Packetizer::new(11, 0, 100, 100);
    let mut push = |d: &[u8], at| {
        let _ = s.push(d, from, at, |n| Some(vec![0; n]));
    };
    let info = |p: &mut crate::send::packetizer::Packetizer| -> Vec<Vec<u8>> {
        p.info_datagrams("video/x-raw")
            .unwrap()
            .iter()
            .map(|(h, piece)| [&h[..], piece].concat())
            .collect()
    };
    for d in info(&mut p) {
        push(&d, t0);
    }
    let frame = vec![5u8; 250];
    let mut plan = p.frame(frame.len(), Default::default()).unwrap();
    let datagrams: Vec<Vec<u8>> = (0..3)
        .map(|i| plan.batch(&frame, i, 1).parts(0).concat())
        .collect();
    // A repeat of the stream info between two fragments, then the last fragment is lost.
    push(&datagrams[0], t0);
    for d in info(&mut p) {
        push(&d, t0);
    }
    push(&datagrams[1], t0);
    let mut plan = p.frame(10, Default::default()).unwrap();
    push(&plan.batch(&[1u8; 10], 0, 1).parts(0).concat(), t0);
    let req = s.poll_nack(t0 + Duration::from_millis(3)).expect("a NACK");
    assert_eq!(
        req.ranges.len(),
        1,
        "only the lost fragment: {:?}",
        req.ranges
    );
    assert_eq!(req.ranges[0].1, 1);
}

/// Datagrams of `frames` through a real packetizer, each frame followed by its FEC repairs
/// at `percent` %, as `videoipsink` sends them.
fn stream_fec(
    frames: &[Vec<u8>],
    frag: u16,
    first_seq: u32,
    percent: u32,
) -> (Vec<Vec<u8>>, Vec<Vec<usize>>) {
    let mut p = Packetizer::new(77, 0, first_seq, frag);
    let mut enc = crate::protocol::fec::Encoder::new();
    let mut out = Vec::new();
    for (h, piece) in p.info_datagrams("application/x-test").unwrap() {
        out.push([&h[..], piece].concat());
    }
    // Per frame, the positions in `out` of its media datagrams.
    let mut media = Vec::new();
    for data in frames {
        let mut plan = p.frame(data.len(), FrameMeta::default()).unwrap();
        let count = plan.count();
        let (_, seq0, frag) = plan.template();
        let b = plan.batch(data, 0, count);
        let mut at = Vec::new();
        for k in 0..b.len() {
            at.push(out.len());
            out.push(b.parts(k).concat());
        }
        media.push(at);
        for i in 0..enc.encode(data, frag as u16, seq0, percent) {
            let (body, symbol) = enc.repair(i).unwrap();
            out.push([&p.fec_header(&body)[..], symbol].concat());
        }
    }
    (out, media)
}

#[test]
fn fec_restores_lost_datagrams_byte_exact_counted_recovered_not_lost() {
    // 3 frames of 401 datagrams (blocks of 134, 134, 133; 7 repairs each at 5 %), the last
    // datagram short. Frame 0 loses a burst of 7, frame 1 three spread out, frame 2 its last.
    let fr = frames(3, 401 * 100 - 37);
    let (d, media) = stream_fec(&fr, 100, u32::MAX - 500, 5);
    let lost: Vec<usize> = (20..27)
        .map(|i| media[0][i])
        .chain([5, 200, 390].map(|i| media[1][i]))
        .chain([media[2][400]])
        .collect();
    let kept: Vec<Vec<u8>> = (0..d.len())
        .filter(|i| !lost.contains(i))
        .map(|i| d[i].clone())
        .collect();
    let (out, stats, _) = run(&kept, Config::default());
    assert_eq!(out.len(), 3);
    for (f, want) in out.iter().zip(&fr) {
        assert!(f.buf == *want, "frame {} differs", f.info.frame);
        assert!(!f.discont);
    }
    assert_eq!(stats.datagrams_recovered_fec, 11);
    assert_eq!(stats.datagrams_lost, 0);
    assert_eq!(stats.datagrams_reordered, 0);
    assert_eq!(stats.datagrams_invalid, 0);
}

#[test]
fn fec_that_cannot_restore_a_block_leaves_the_frame_incomplete() {
    // One block of 100, 5 repairs: 6 lost is one too many.
    let fr = frames(1, 100 * 100);
    let (d, media) = stream_fec(&fr, 100, 0, 5);
    let lost = &media[0][10..16];
    let kept: Vec<Vec<u8>> = (0..d.len())
        .filter(|i| !lost.contains(i))
        .map(|i| d[i].clone())
        .collect();
    let (out, stats, _) = run(&kept, Config::default());
    assert!(out.is_empty());
    assert_eq!(stats.frames_dropped, 1);
    assert_eq!(stats.datagrams_recovered_fec, 0);
}

#[test]
fn a_datagram_fec_restored_is_not_asked_for_and_a_late_copy_is_a_duplicate() {
    let fr = frames(2, 100 * 100);
    let (d, media) = stream_fec(&fr, 100, 1000, 5);
    let gone = media[1][50];
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    let mut out = 0;
    for (i, x) in d.iter().enumerate() {
        if i != gone {
            s.push_at(x, t0, |n| Some(vec![0; n])).unwrap();
        }
        while let Some(Event::Frame { .. }) = s.poll(t0) {
            out += 1;
        }
    }
    assert_eq!(out, 2);
    assert_eq!(s.poll_nack(t0 + Duration::from_millis(30)), None);
    s.push_at(&d[gone], t0, |n| Some(vec![0; n])).unwrap();
    let st = s.stats();
    assert_eq!(st.datagrams_recovered_fec, 1);
    assert_eq!(st.datagrams_duplicate, 1);
    assert_eq!(st.datagrams_requested, 0);
}

#[test]
fn arbitrary_fec_datagrams_never_panic_or_grow_memory() {
    let (mut s, mut next) = fuzzed(7);
    // A real stream with holes keeps frames in flight for the forged repairs to aim at.
    let fr = frames(200, 30_000);
    let (d, _) = stream_fec(&fr, 1000, 5000, 10);
    let t0 = Instant::now();
    let mut forged = 0u64;
    for (i, real) in d.iter().enumerate() {
        let now = t0 + Duration::from_micros(i as u64 * 20);
        if next() % 10 != 0 {
            let _ = s.push_at(real, now, |len| Some(vec![0; len]));
        }
        for _ in 0..3 {
            let near = 5000u32.wrapping_add((next() % 8000) as u32);
            let f = Fec {
                scheme: if next() % 8 == 0 {
                    (next() % 4) as u8
                } else {
                    2
                },
                repair_index: (next() % 12) as u16,
                first_seq: if next() % 4 == 0 { next() as u32 } else { near },
                protected_count: if next() % 2 == 0 {
                    30
                } else {
                    (next() % 300) as u16
                },
                repair_count: (next() % 12) as u16,
                symbol_len: if next() % 2 == 0 {
                    1000
                } else {
                    (next() % 1100) as u32
                },
            };
            let mut fd = dgram(77, next() as u32, Body::Fec(f), &[]);
            let len = if next() % 4 == 0 {
                (next() % 1100) as usize
            } else {
                f.symbol_len as usize
            };
            fd.extend((0..len).map(|_| next() as u8));
            let _ = s.push_at(&fd, now, |len| Some(vec![0; len]));
            forged += 1;
        }
        while s.poll(now).is_some() {}
        assert!(s.in_flight() <= 3);
        // Repairs kept never exceed what the frames in flight miss: at most their size.
        assert!(s.fec_bytes() <= s.bytes_in_flight() + 3 * 30);
    }
    let st = s.stats();
    assert!(st.datagrams_invalid > forged / 4, "{st:?}");
    assert!(st.datagrams_unknown > 0);
}

#[test]
fn a_nack_goes_out_twice_to_the_sender_from_this_receivers_id() {
    let fr = frames(2, 3000);
    let (_, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config {
        id: 0xABCD,
        ..Default::default()
    });
    let t0 = Instant::now();
    for (i, x) in d.iter().enumerate() {
        if i != 2 {
            s.push_at(x, t0, |n| Some(vec![0; n])).unwrap();
        }
    }
    let mut sent = Vec::new();
    while let Some(t) = s.poll_transmit(t0 + Duration::from_millis(3)) {
        sent.push(t);
    }
    // The first report, then the NACK.
    assert_eq!(sent.len(), 2, "{sent:?}");
    let nack = &sent[1];
    assert_eq!((nack.destination, nack.copies), (src(), NACK_COPIES));
    let p = protocol::decode(&nack.contents).unwrap();
    assert_eq!(p.header.session, 0xABCD);
    assert_eq!(p.header.seq, 1, "this receiver numbers what it sends");
    assert!(matches!(p.body, Body::Nack(Nack { session: 77, .. })));
    assert_eq!(
        protocol::nack_entries(p.payload).collect::<Vec<_>>(),
        [(2, 1)]
    );
    assert_eq!(s.stats().nacks_sent, 1);
}

#[test]
fn subscriptions_are_renewed_each_second_and_left_on_close() {
    let t0 = Instant::now();
    let sender: SocketAddr = "192.0.2.9:5004".parse().unwrap();
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let lease = |t: &Transmit| match protocol::decode(&t.contents).unwrap().body {
        Body::Subscribe(sub) => (t.destination, sub.lease_ms),
        other => panic!("not a SUBSCRIBE: {other:?}"),
    };
    assert_eq!(s.poll_transmit(t0), None);
    s.set_subscription(Some(sender));
    assert_eq!(s.poll_transmit(t0).map(|t| lease(&t)), Some((sender, 5000)));
    assert_eq!(s.poll_transmit(t0), None);
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + subscription::SUBSCRIBE_INTERVAL)
    );
    let t1 = t0 + subscription::SUBSCRIBE_INTERVAL;
    assert_eq!(s.poll_transmit(t1).map(|t| lease(&t)), Some((sender, 5000)));
    s.close();
    assert_eq!(s.poll_transmit(t1).map(|t| lease(&t)), Some((sender, 0)));
    assert_eq!(s.poll_transmit(t1 + Duration::from_secs(5)), None);
    // Closed: a target set later is not subscribed to.
    s.set_subscription(Some(sender));
    assert_eq!(s.poll_transmit(t1 + Duration::from_secs(5)), None);
}

#[test]
fn a_new_stream_and_its_caps_are_events_before_its_frames() {
    let fr = frames(1, 1000);
    let (caps, d) = stream(&fr, 1400, 0);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    for x in &d {
        s.handle_datagram(t0, src(), Meta::default(), &mut x.clone(), |n| {
            Some(vec![0; n])
        });
    }
    match s.poll_event() {
        Some(Event::Stream {
            track,
            session,
            from,
            caps: c,
        }) => assert_eq!((track, session, from, &*c), (0, 77, src(), caps.as_str())),
        other => panic!("expected the stream, got {other:?}"),
    }
    match s.poll_event() {
        Some(Event::Frame { frame, origin, .. }) => {
            assert_eq!(frame.buf, fr[0]);
            assert_eq!((origin.session, origin.from), (Some(77), Some(src())));
        }
        other => panic!("expected the frame, got {other:?}"),
    }
    assert!(s.poll_event().is_none());
}

#[test]
fn a_truncated_datagram_counts_as_received_and_invalid() {
    let mut s = Session::<Vec<u8>>::new(Config::default());
    s.handle_datagram(
        Instant::now(),
        src(),
        Meta { truncated: true },
        &mut [],
        |_| panic!("nothing to allocate"),
    );
    let st = s.stats();
    assert_eq!((st.datagrams_received, st.datagrams_invalid), (1, 1));
}

#[test]
fn frames_lost_on_the_way_are_warned_of_after_the_health_interval() {
    let fr = frames(3, 10_000);
    let (_, mut d) = stream(&fr, 1400, 0);
    d.remove(1 + 8 + 3); // a fragment of frame 1
    let mut s = Session::<Vec<u8>>::new(Config::default());
    let t0 = Instant::now();
    s.handle_timeout(t0);
    while s.poll_event().is_some() {}
    for x in &d {
        s.push_at(x, t0, |n| Some(vec![0; n])).unwrap();
    }
    let mut warnings = Vec::new();
    for t in [t0 + Duration::from_secs(1), t0 + health::HEALTH_INTERVAL] {
        s.handle_timeout(t);
        while let Some(ev) = s.poll_event() {
            if let Event::Warning(w) = ev {
                warnings.push((t, w));
            }
        }
    }
    assert_eq!(
        warnings,
        [(
            t0 + health::HEALTH_INTERVAL,
            Warning::Loss { frames: 1, lost: 1 }
        )]
    );
}

/// `dgrams` sealed as the sender session seals them.
fn sealed(dgrams: &[Vec<u8>], master: &Arc<MasterKey>) -> Vec<Vec<u8>> {
    let mut tx = Protection::new(master.clone(), Side::Sender);
    dgrams
        .iter()
        .map(|d| {
            let head = d.len() - protocol::decode(d).unwrap().payload.len();
            let mut out = Vec::new();
            assert!(tx.seal(&d[..head], &d[head..], &mut out));
            out
        })
        .collect()
}

#[test]
fn protected_fragments_decrypted_into_their_frame_are_exact_and_a_forged_one_leaves_no_trace() {
    let master = MasterKey::from_passphrase("correct horse battery", KeyLength::Aes128).unwrap();
    let fr = frames(3, 7000);
    // 1 stream info, then 5 fragments per frame.
    let (_, plain) = stream(&fr, 1400, 0);
    let d = sealed(&plain, &master);
    let mut s = Session::<Vec<u8>>::new(Config::default());
    s.protect(master);
    let now = Instant::now();
    let mut order: Vec<Vec<u8>> = Vec::new();
    // Frame 0 as sent.
    order.extend(d[..6].iter().cloned());
    // Frame 1: before its fragment 2, a forgery of it (a payload byte changed) and a replay
    // of its fragment 1, which the frame already has.
    order.extend(d[6..8].iter().cloned());
    let mut forged = d[8].clone();
    let at = forged.len() - 100;
    forged[at] ^= 0x55;
    order.push(forged);
    order.push(d[7].clone());
    order.extend(d[8..11].iter().cloned());
    // Frame 2: fragment 3 only as a resend (flag R on the sealed original).
    order.extend(d[11..14].iter().cloned());
    let mut resend = d[14].clone();
    resend[4] |= header_flags::RETRANSMISSION;
    order.push(resend);
    order.push(d[15].clone());
    let mut out = Vec::new();
    for x in &order {
        let _ = s.push_at(x, now, |len| Some(vec![0; len]));
        while let Some(ev) = s.poll_ready() {
            if let Event::Frame { frame, .. } = ev {
                out.push(frame);
            }
        }
    }
    assert_eq!(out.len(), 3);
    for (f, want) in out.iter().zip(&fr) {
        assert!(f.buf == *want, "frame {} differs", f.info.frame);
    }
    let st = s.stats();
    assert_eq!(st.datagrams_unauthenticated, 1);
    assert_eq!(st.datagrams_replayed, 1);
    assert_eq!(st.datagrams_retransmitted, 1);
    assert_eq!(st.frames_complete, 3);
}

#[path = "tracks_tests.rs"]
mod tracks;
