// SPDX-License-Identifier: MPL-2.0
//! Unit tests of the sender session, on a virtual clock: a driver loop in the test hands in
//! frames and datagrams at virtual instants and takes out what the session transmits,
//! decoding every datagram.

use super::*;
use crate::protocol::{
    decode, header_flags, push_nack_entry, CommonHeader, Nack, ReceiverReport, Subscribe,
};

const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);
/// 1080p UYVY.
const FRAME_1080: usize = 1920 * 1080 * 2;
const FRAME_60: Duration = Duration::from_micros(16_667);
const FRAG: u16 = 1408;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

fn config(dest: Option<SocketAddr>, subscribers: Option<usize>) -> Config {
    Config {
        session: 0x5e55,
        track: 0,
        first_seq: 1000,
        frag: FRAG,
        dest,
        max_subscribers: subscribers,
        pacing: Pacing::Frame,
        batch_size: 64,
        gso_align: 44,
        max_bitrate: None,
        fec_percentage: 0,
        max_retransmission_percentage: 50,
    }
}

fn frame(len: usize, k: u64, arrived: Instant, live: bool) -> Frame<Vec<u8>> {
    Frame {
        data: vec![(k % 251) as u8; len],
        meta: FrameMeta {
            pts: k * FRAME_60.as_nanos() as u64,
            ..FrameMeta::default()
        },
        duration: Some(FRAME_60),
        key: true,
        live,
        arrived,
    }
}

/// A deterministic generator of wake-up overshoots like those measured on a 2-core machine:
/// 100 µs on average, now and then 3.3 ms.
struct Overshoot(u64);

impl Overshoot {
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        match self.0 % 100 {
            0 => 3300 * US,
            1..=10 => 400 * US,
            _ => US * (self.0 % 120) as u32,
        }
    }
}

/// What one destination got: media datagrams as (seq, frame index by PTS, instant), and
/// how many of the other kinds.
#[derive(Debug, Default)]
struct Seen {
    media: Vec<(u32, u32, Instant)>,
    info: usize,
    reports: usize,
    eos: usize,
}

/// Takes everything the session transmits at `now`, charging `cost_per_datagram` of
/// virtual time per datagram sent (the system calls); returns the instant after.
fn drain(
    s: &mut Session<Vec<u8>>,
    now: Instant,
    cost_per_datagram: Duration,
    seen: &mut HashMap<SocketAddr, Seen>,
) -> Instant {
    drain_failing(s, now, cost_per_datagram, seen, |_, _| None)
}

/// [`drain`], where the network refuses what `fails(dest, kind)` says: that destination
/// sees none of it, and the session is told as a driver tells it.
fn drain_failing(
    s: &mut Session<Vec<u8>>,
    mut now: Instant,
    cost_per_datagram: Duration,
    seen: &mut HashMap<SocketAddr, Seen>,
    fails: impl Fn(SocketAddr, Kind) -> Option<SendError>,
) -> Instant {
    let start = now;
    let mut refused = Vec::new();
    while let Some(t) = s.poll_transmit(start) {
        for &d in t.dests {
            if let Some(e) = fails(d, t.kind) {
                refused.push((d, e));
                continue;
            }
            let e = seen.entry(d).or_default();
            for k in 0..t.len() {
                let [h, p] = t.parts(k);
                let bytes = [h, p].concat();
                let packet = decode(&bytes).expect("every datagram decodes");
                match packet.body {
                    // Frames are told apart by their PTS (frame k at k intervals): dropped
                    // frames take no frame number.
                    Body::Media(m) => e.media.push((
                        packet.header.seq,
                        (m.pts / FRAME_60.as_nanos() as u64) as u32,
                        now,
                    )),
                    Body::StreamInfo(_) => e.info += 1,
                    Body::SenderReport(_) => e.reports += 1,
                    Body::EndOfStream(_) => e.eos += 1,
                    _ => {}
                }
            }
            now += cost_per_datagram * t.len() as u32;
        }
        for (d, e) in refused.drain(..) {
            s.handle_send_error(start, d, e);
        }
    }
    now
}

/// Runs `frames` live 1080p60 frames through a session with overshooting wake-ups and
/// returns, per frame sent, how long after its arrival its last datagram left, and the
/// session's counters.
fn live_run(frames: u64, overshoot: &mut Overshoot, cost: Duration) -> (Vec<Duration>, Stats) {
    let dest = addr(5004);
    let mut s = Session::new(config(Some(dest), None));
    let t0 = Instant::now();
    let mut now = t0;
    let mut seen = HashMap::new();
    s.handle_caps("video/x-raw".into());
    let mut next_frame = 0u64;
    let arrival = |k: u64| t0 + FRAME_60 * k as u32;
    while next_frame < frames || s.poll_timeout().is_some() {
        // Frames arrive on time, whatever the driver does.
        while next_frame < frames && arrival(next_frame) <= now && s.wants_input() {
            s.handle_frame(frame(FRAME_1080, next_frame, arrival(next_frame), true));
            next_frame += 1;
        }
        now = drain(&mut s, now, cost, &mut seen);
        let mut wake = s.poll_timeout();
        if next_frame < frames {
            let a = arrival(next_frame);
            wake = Some(wake.map_or(a, |w| w.min(a)));
        }
        let Some(w) = wake else {
            break;
        };
        now = now.max(w) + overshoot.next();
    }
    let media = &seen[&dest].media;
    let done = (0..frames as u32)
        .filter_map(|f| {
            let last = media.iter().filter(|m| m.1 == f).map(|m| m.2).max()?;
            Some(last.saturating_duration_since(arrival(u64::from(f))))
        })
        .collect();
    (done, s.stats(now))
}

fn average(d: &[Duration]) -> Duration {
    d.iter().sum::<Duration>() / d.len().max(1) as u32
}

#[test]
fn paced_frames_leave_within_their_interval_however_late_the_wakeups() {
    // 600 frames of 1080p60, each wake-up late by up to 3.3 ms, 1 µs per datagram sent.
    let (done, stats) = live_run(600, &mut Overshoot(0x9e37_79b9), US);
    assert_eq!(done.len(), 600, "every frame is sent");
    assert_eq!(stats.frames_dropped, 0);
    let worst = done.iter().max().copied().unwrap_or_default();
    assert!(worst < FRAME_60, "a frame took {worst:?} to leave");
    // No drift: the last 100 frames leave no later than the first 100 did.
    let (first, last) = (average(&done[..100]), average(&done[500..]));
    assert!(last <= first + MS, "first {first:?}, last {last:?}");
}

#[test]
fn a_frame_still_being_paced_when_the_next_live_one_arrives_goes_out_at_once() {
    // Sending costs 4 µs per datagram: 12 ms of a frame's 16.7 ms interval, so with the
    // overshoots the driver is often still sending when the next frame arrives; lateness
    // must not carry over.
    let (done, stats) = live_run(600, &mut Overshoot(7), 4 * US);
    assert_eq!(done.len(), 600, "every frame is sent");
    assert_eq!(stats.frames_dropped, 0);
    let late: Vec<_> = done.iter().filter(|d| **d > 2 * FRAME_60).collect();
    assert!(late.is_empty(), "frames over two intervals late: {late:?}");
    assert!(average(&done[500..]) <= average(&done[..100]) + 2 * MS);
}

#[test]
fn a_live_sender_slower_than_its_frames_drops_frames_and_never_falls_behind() {
    // 8 µs per datagram: a frame takes 24 ms to send, its interval is 16.7 ms. A third of
    // the frames must go, and those sent leave no later at the end than at the start.
    let (done, stats) = live_run(600, &mut Overshoot(11), 8 * US);
    assert!(
        (150..=450).contains(&done.len()),
        "{} of 600 sent",
        done.len()
    );
    assert_eq!(stats.frames_dropped, 600 - done.len() as u64);
    assert_eq!(stats.frames_behind, stats.frames_dropped);
    let worst = done.iter().max().copied().unwrap_or_default();
    assert!(worst < 4 * FRAME_60, "a frame took {worst:?} to leave");
    assert!(average(&done[done.len() - 50..]) <= average(&done[..50]) + 5 * MS);
}

#[test]
fn the_stream_info_and_a_sender_report_precede_the_first_frame_and_repeat() {
    let dest = addr(5004);
    let mut s = Session::new(config(Some(dest), None));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw,format=GRAY8,width=8,height=8".into());
    s.handle_clock(ClockSample {
        at: t0,
        running_time: 0,
        reference_time: 0,
        clock: 0,
    });
    let mut order = Vec::new();
    for k in 0..40u64 {
        let now = t0 + 10 * MS * k as u32;
        s.handle_frame(frame(64, k, now, true));
        while let Some(t) = s.poll_transmit(now) {
            for i in 0..t.len() {
                let bytes = t.parts(i).concat();
                let p = decode(&bytes).expect("decodes");
                order.push((p.header.seq, p.body.packet_type()));
            }
        }
    }
    use crate::protocol::PacketType;
    assert_eq!(order[0].1, PacketType::StreamInfo);
    assert_eq!(order[1].1, PacketType::SenderReport);
    assert_eq!(order[2].1, PacketType::Media);
    // Sequence numbers go up in the order datagrams leave.
    assert!(order.windows(2).all(|w| seq_diff(w[1].0, w[0].0) == 1));
    // 400 ms of frames: the info went out at 0 and again at 250 ms.
    let infos = order
        .iter()
        .filter(|o| o.1 == PacketType::StreamInfo)
        .count();
    assert_eq!(infos, 2);
}

/// Drains the session from `t0`, following its timeouts, until it has nothing left to do
/// (at most 100 wake-ups); returns the instant it went idle.
fn drain_until_idle(
    s: &mut Session<Vec<u8>>,
    t0: Instant,
    seen: &mut HashMap<SocketAddr, Seen>,
) -> Instant {
    let mut now = t0;
    for _ in 0..100 {
        now = drain(s, now, Duration::ZERO, seen);
        match s.poll_timeout() {
            Some(t) => now = t,
            None => break,
        }
    }
    now
}

/// Hands `bytes` from `from` to the session as a receiver that completed the cookie
/// exchange sends them: with the cookie `from` was given.
fn feed(s: &mut Session<Vec<u8>>, now: Instant, from: SocketAddr, bytes: &[u8]) {
    let cookie = s.cookie_for(from, now);
    s.handle_datagram(now, from, &with_cookie(bytes, &cookie));
}

/// `bytes` again with a COOKIE extension carrying `cookie`.
fn with_cookie(bytes: &[u8], cookie: &[u8]) -> Vec<u8> {
    let p = decode(bytes).expect("a valid datagram");
    let mut out = Vec::new();
    let ext = [protocol::Extension::Other {
        kind: protocol::ext::COOKIE,
        value: cookie,
    }];
    protocol::encode(&p.header, &ext, &p.body, &mut out).expect("encodes");
    out.extend_from_slice(p.payload);
    out
}

fn datagram(body: Body, payload: &[u8]) -> Vec<u8> {
    let common = CommonHeader {
        flags: 0,
        track: 0,
        session: 0xabc,
        seq: 0,
    };
    let mut out = Vec::new();
    protocol::encode(&common, &[], &body, &mut out).expect("encodes");
    out.extend_from_slice(payload);
    out
}

fn subscribe(lease_ms: u32) -> Vec<u8> {
    datagram(
        Body::Subscribe(Subscribe {
            session: 0,
            lease_ms,
            flags: 0,
        }),
        &[],
    )
}

fn report(highest_seq: u32, received: u64, dropped: u32) -> Vec<u8> {
    datagram(
        Body::ReceiverReport(ReceiverReport {
            session: 0x5e55,
            track: 0,
            highest_seq,
            datagrams_received: received,
            datagrams_lost: 0,
            frames_complete: 0,
            frames_dropped: dropped,
            echoed_report_seq: 0,
            delay_us: NO_DELAY,
        }),
        &[],
    )
}

use crate::protocol::{seq_diff, NO_DELAY};

#[test]
fn a_slow_subscriber_loses_frames_alone_and_is_named_in_a_warning() {
    let (fast, slow) = (addr(6000), addr(6001));
    let mut s = Session::new(config(None, Some(8)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    feed(&mut s, t0, fast, &subscribe(5000));
    feed(&mut s, t0, slow, &subscribe(5000));
    let mut seen = HashMap::new();
    let per_frame = FRAME_1080.div_ceil(usize::from(FRAG)) as u64;
    let mut slow_rx = 0u64;
    for k in 0..600u64 {
        let now = t0 + FRAME_60 * k as u32;
        s.handle_frame(frame(FRAME_1080, k, now, true));
        drain(&mut s, now, Duration::ZERO, &mut seen);
        // Every 250 ms both report. The slow one takes 800 Mbit/s and drops frames.
        if k % 15 == 14 {
            let later = now + MS;
            feed(&mut s, later, fast, &subscribe(5000));
            feed(&mut s, later, slow, &subscribe(5000));
            let fast_rx = seen[&fast].media.len() as u64;
            let fast_seq = seen[&fast].media.last().map_or(0, |m| m.0);
            feed(&mut s, later, fast, &report(fast_seq, fast_rx, 0));
            slow_rx += (800e6 * 0.25 / (1500.0 * 8.0)) as u64;
            let slow_seq = seen[&slow].media.last().map_or(0, |m| m.0);
            feed(
                &mut s,
                later,
                slow,
                &report(slow_seq, slow_rx, (k / 15) as u32 * 3),
            );
        }
    }
    // The last frame's pacing runs out.
    let end = t0 + FRAME_60 * 600;
    drain(&mut s, end, Duration::ZERO, &mut seen);
    let frames = |a: &SocketAddr| {
        let mut f: Vec<u32> = seen[a].media.iter().map(|m| m.1).collect();
        f.dedup();
        f.len() as u64
    };
    let st = s.stats(t0 + 10_000 * MS);
    assert_eq!(
        frames(&fast),
        600,
        "the healthy subscriber gets every frame: {st:?}"
    );
    assert_eq!(seen[&fast].media.len() as u64, 600 * per_frame);
    let slow_frames = frames(&slow);
    assert!(slow_frames < 400, "the slow one gets {slow_frames} of 600");
    let st = s.stats(t0 + 10_000 * MS);
    let slow_stats = st
        .receivers
        .iter()
        .find(|r| r.info.addr == slow)
        .expect("the slow receiver is listed");
    assert_eq!(slow_stats.frames_not_sent, 600 - slow_frames);
    let fast_stats = st
        .receivers
        .iter()
        .find(|r| r.info.addr == fast)
        .expect("listed");
    assert_eq!(fast_stats.frames_not_sent, 0);
    assert!(st.frames_dropped > 0);
    let warnings: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| matches!(w, Event::Warning(t) if t.contains(&slow.to_string()))),
        "{warnings:?}"
    );
}

#[test]
fn one_slow_receiver_of_a_multicast_stream_does_not_slow_it_for_the_others() {
    let group = SocketAddr::from(([239, 1, 1, 1], 5004));
    let mut s = Session::new(config(Some(group), None));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let mut seen = HashMap::new();
    let (a, b, slow) = (addr(7000), addr(7001), addr(7002));
    let mut received = [0u64; 3];
    for k in 0..300u64 {
        let now = t0 + FRAME_60 * k as u32;
        s.handle_frame(frame(FRAME_1080, k, now, true));
        drain(&mut s, now, Duration::ZERO, &mut seen);
        if k % 15 == 14 {
            let got = seen[&group].media.len() as u64;
            let seq = seen[&group].media.last().map_or(0, |m| m.0);
            received[0] = got;
            received[1] = got;
            received[2] += (800e6 * 0.25 / (1500.0 * 8.0)) as u64;
            feed(&mut s, now + MS, a, &report(seq, received[0], 0));
            feed(&mut s, now + MS, b, &report(seq, received[1], 0));
            feed(
                &mut s,
                now + MS,
                slow,
                &report(seq, received[2], (k / 15) as u32 * 5),
            );
        }
    }
    let mut frames: Vec<u32> = seen[&group].media.iter().map(|m| m.1).collect();
    frames.dedup();
    assert_eq!(frames.len(), 300, "the group gets every frame");
    assert_eq!(s.stats(t0 + 5000 * MS).allowed_bitrate, None);
    let warned = std::iter::from_fn(|| s.poll_event())
        .any(|e| matches!(e, Event::Warning(t) if t.contains(&slow.to_string())));
    assert!(warned, "the outlier is named");
}

#[test]
fn a_nack_is_answered_with_the_original_bytes_flagged_as_resent() {
    let dest = addr(5004);
    let mut s = Session::new(config(Some(dest), None));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    s.handle_frame(Frame {
        data: data.clone(),
        ..frame(0, 0, t0, true)
    });
    let mut seen = HashMap::new();
    drain(&mut s, t0, Duration::ZERO, &mut seen);
    let second = seen[&dest].media[1].0;
    let mut entries = Vec::new();
    push_nack_entry(&mut entries, second, 2);
    let nack = datagram(
        Body::Nack(Nack {
            session: 0x5e55,
            track: 0,
        }),
        &entries,
    );
    // From the host's address (any port: through a relay, or its own socket), the resends
    // go to the receiver the stream goes to.
    let from = addr(9000);
    feed(&mut s, t0 + MS, from, &nack);
    let t = s.poll_transmit(t0 + MS).expect("the resends go out");
    assert_eq!(t.kind, Kind::Resend);
    assert_eq!(t.dests, [dest]);
    assert_eq!(t.len(), 2);
    for k in 0..2 {
        let [h, p] = t.parts(k);
        let bytes = [h, p].concat();
        let packet = decode(&bytes).expect("decodes");
        assert_ne!(packet.header.flags & header_flags::RETRANSMISSION, 0);
        let Body::Media(m) = packet.body else {
            panic!("a media datagram");
        };
        let start = m.offset as usize;
        assert_eq!(p, &data[start..(start + usize::from(FRAG)).min(data.len())]);
    }
    assert_eq!(s.stats(t0).datagrams_retransmitted, 2);
}

#[test]
fn the_end_of_stream_follows_the_last_frame_and_nobody_subscribed_gets_nothing() {
    let mut s = Session::new(config(None, Some(4)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    s.handle_frame(frame(FRAME_1080, 0, t0, true));
    assert!(
        s.poll_transmit(t0).is_none(),
        "nobody subscribed: nothing sent"
    );
    let sub = addr(6000);
    feed(&mut s, t0, sub, &subscribe(5000));
    s.handle_frame(frame(FRAME_1080, 1, t0 + FRAME_60, true));
    s.handle_eos();
    let mut seen = HashMap::new();
    let mut now = t0 + FRAME_60;
    for _ in 0..1000 {
        now = drain(&mut s, now, Duration::ZERO, &mut seen);
        match s.poll_timeout() {
            Some(t) => now = t,
            None => break,
        }
    }
    let e = &seen[&sub];
    assert_eq!(e.eos, EOS_REPEAT);
    assert_eq!(
        e.media.len(),
        FRAME_1080.div_ceil(usize::from(FRAG)),
        "one frame"
    );
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == Event::EndOfStreamSent));
    // Unsubscribing (a zero lease) stops the stream to it.
    feed(&mut s, now, sub, &subscribe(0));
    s.handle_frame(frame(64, 2, now, true));
    assert!(s.poll_transmit(now).is_none());
}

#[test]
fn a_subscriber_that_goes_silent_is_dropped_when_its_lease_lapses() {
    let mut s = Session::new(config(None, Some(4)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let sub = addr(6000);
    feed(&mut s, t0, sub, &subscribe(1000));
    let mut seen = HashMap::new();
    for k in 0..120u64 {
        let now = t0 + 20 * MS * k as u32;
        s.handle_frame(frame(64, k, now, true));
        drain(&mut s, now, Duration::ZERO, &mut seen);
    }
    // 50 frames in its 1 s lease, none after it.
    let mut frames: Vec<u32> = seen[&sub].media.iter().map(|m| m.1).collect();
    frames.dedup();
    assert_eq!(frames.len(), 50);
    assert_eq!(s.stats(t0 + 2400 * MS).subscribers, 0);
}

#[test]
fn a_non_live_sender_over_max_bitrate_waits_and_keeps_the_ceiling() {
    let dest = addr(5004);
    let mut cfg = config(Some(dest), None);
    cfg.max_bitrate = Some(100_000_000);
    let mut s = Session::new(cfg);
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let mut seen = HashMap::new();
    let mut now = t0;
    let mut handed = 0u64;
    // Frames of 1 ms: their pacing spread is below what the ceiling asks.
    // 100 frames of 100 kB, as fast as the session takes them: 80 Mbit at 100 Mbit/s.
    for _ in 0..100_000 {
        while handed < 100 && s.wants_input() {
            s.handle_frame(Frame {
                duration: Some(MS),
                ..frame(100_000, handed, now, false)
            });
            handed += 1;
        }
        now = drain(&mut s, now, Duration::ZERO, &mut seen);
        match s.poll_timeout() {
            Some(t) => now = now.max(t),
            None if handed == 100 => break,
            None => {}
        }
    }
    let media = &seen[&dest].media;
    assert_eq!(media.len(), 100 * 100_000usize.div_ceil(usize::from(FRAG)));
    let span = media.last().map(|m| m.2).unwrap_or(t0) - t0;
    let bits = 100.0 * (100_000.0 + 72.0 * (WIRE_OVERHEAD as f64)) * 8.0;
    let rate = bits / span.as_secs_f64();
    assert!(rate < 105e6, "{rate} bit/s over {span:?}");
    assert!(rate > 80e6, "{rate} bit/s over {span:?}");
}

/// The frames (by number) `a` got media of.
fn frames_of(seen: &HashMap<SocketAddr, Seen>, a: &SocketAddr) -> Vec<u32> {
    let mut f: Vec<u32> = seen
        .get(a)
        .map_or(Vec::new(), |e| e.media.iter().map(|m| m.1).collect());
    f.dedup();
    f
}

fn warnings(s: &mut Session<Vec<u8>>) -> Vec<String> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::Warning(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// 10,000-byte live frames at 60 fps for `secs` seconds; both subscribers renew every
/// second, as receivers do. `fails` says what the network refuses, by instant.
fn two_subscribers_run(
    secs: u32,
    fails: impl Fn(Instant, SocketAddr, Kind) -> Option<SendError>,
) -> (HashMap<SocketAddr, Seen>, Vec<String>, Stats) {
    let (good, narrow) = (addr(6000), addr(6001));
    let mut s = Session::new(config(None, Some(8)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let mut seen = HashMap::new();
    let mut said = Vec::new();
    for k in 0..60 * u64::from(secs) {
        let now = t0 + FRAME_60 * k as u32;
        if k % 60 == 0 {
            feed(&mut s, now, good, &subscribe(5000));
            feed(&mut s, now, narrow, &subscribe(5000));
        }
        s.handle_frame(frame(10_000, k, now, true));
        drain_failing(&mut s, now, Duration::ZERO, &mut seen, |d, kind| {
            fails(now, d, kind)
        });
        said.extend(warnings(&mut s));
    }
    let end = t0 + FRAME_60 * 60 * secs;
    drain(&mut s, end, Duration::ZERO, &mut seen);
    let st = s.stats(end);
    (seen, said, st)
}

#[test]
fn a_subscriber_whose_path_is_too_narrow_is_dropped_and_named_and_the_other_gets_every_frame() {
    let (good, narrow) = (addr(6000), addr(6001));
    // Its path carries 1000 bytes: every media datagram (1500 bytes) is refused; the small
    // stream info and sender reports would go.
    let (seen, said, st) = two_subscribers_run(12, |_, d, kind| {
        (d == narrow && kind == Kind::Media).then_some(SendError::TooLarge {
            path_mtu: Some(1000),
        })
    });
    assert_eq!(frames_of(&seen, &good).len(), 720, "{st:?}");
    // Tried at the start, after 5 s and after 10 s (its renewals in between not taken).
    let tries: Vec<_> = said
        .iter()
        .filter(|w| w.contains(&narrow.to_string()))
        .collect();
    assert_eq!(tries.len(), 3, "{said:?}");
    for w in &tries {
        assert!(w.contains("at most 1000 bytes"), "{w}");
        assert!(w.contains("mtu=1500"), "{w}");
        assert!(w.contains("set mtu=1000 or lower"), "{w}");
        assert!(w.contains("subscription is dropped"), "{w}");
    }
    assert_eq!(said.len(), 3, "nothing else is warned about: {said:?}");
    // Dropped: it is not counted as a subscriber once refused.
    assert_eq!(st.subscribers, 1, "{st:?}");
}

#[test]
fn a_subscriber_the_network_refuses_is_dropped_until_it_subscribes_again() {
    let (good, gone) = (addr(6000), addr(6001));
    let (seen, said, _) = two_subscribers_run(3, |_, d, kind| {
        (d == gone && kind == Kind::Media)
            .then_some(SendError::Refused(std::io::ErrorKind::HostUnreachable))
    });
    assert_eq!(frames_of(&seen, &good).len(), 180);
    // Refused at each renewal (one a second), warned about at most every 2 s.
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].contains(&gone.to_string()), "{said:?}");
    assert!(said[0].contains("until it subscribes again"), "{said:?}");
}

/// 10,000-byte live frames at 60 fps for `secs` seconds to a `host` destination; `fails`
/// says what the network refuses, by frame number. Gives what the host got, the warnings,
/// and the frames whose media datagrams were refused.
fn host_run(
    secs: u32,
    fails: impl Fn(u64, Kind) -> Option<SendError>,
) -> (HashMap<SocketAddr, Seen>, Vec<String>, Vec<u64>) {
    let mut s = Session::new(config(Some(addr(5004)), None));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let mut seen = HashMap::new();
    let mut said = Vec::new();
    let mut refused = Vec::new();
    for k in 0..60 * u64::from(secs) {
        let now = t0 + FRAME_60 * k as u32;
        s.handle_frame(frame(10_000, k, now, true));
        let failing = std::cell::Cell::new(false);
        drain_failing(&mut s, now, Duration::ZERO, &mut seen, |_, kind| {
            let e = fails(k, kind).filter(|_| kind == Kind::Media);
            failing.set(failing.get() || e.is_some());
            e
        });
        if failing.get() {
            refused.push(k);
        }
        said.extend(warnings(&mut s));
    }
    (seen, said, refused)
}

#[test]
fn the_host_whose_path_is_too_narrow_is_retried_every_few_seconds_and_then_gets_every_frame() {
    let host = addr(5004);
    // Too narrow for 12 s (say, until a tunnel's MTU is raised), then fine.
    let (seen, said, tried) = host_run(20, |k, _| {
        (k < 720).then_some(SendError::TooLarge { path_mtu: None })
    });
    // Tried at 0, 5 and 10 s only, each time warned about, naming what to set.
    assert_eq!(tried, vec![0, 300, 600], "{said:?}");
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(said[0].contains(&host.to_string()), "{said:?}");
    assert!(said[0].contains("tried again every 5 s"), "{said:?}");
    assert!(said[0].contains("set a lower mtu"), "{said:?}");
    // From the try at 15 s on it gets every frame, its stream info first.
    let got = frames_of(&seen, &host);
    assert_eq!(got.first(), Some(&900), "{got:?}");
    assert_eq!(got.len(), 300);
    assert!(seen[&host].info >= 1);
}

#[test]
fn a_host_the_network_refuses_is_still_sent_every_frame_and_warned_about_every_two_seconds() {
    let (_, said, tried) = host_run(10, |_, _| {
        Some(SendError::Refused(std::io::ErrorKind::NetworkUnreachable))
    });
    assert_eq!(tried.len(), 600, "every frame is tried");
    assert_eq!(said.len(), 5, "{said:?}");
    assert!(
        said[0].contains("could not send to 192.0.2.1:5004"),
        "{said:?}"
    );
    assert!(said[1].contains("more such warnings held back"), "{said:?}");
}

#[test]
fn a_forged_nack_aims_no_resend_at_an_address_the_stream_does_not_go_to() {
    // A named sender without host: resends go to a subscriber that asks, and nowhere else.
    let mut s = Session::new(config(None, Some(4)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let sub = addr(6000);
    feed(&mut s, t0, sub, &subscribe(5000));
    s.handle_frame(frame(100_000, 0, t0, true));
    let mut seen = HashMap::new();
    let now = drain_until_idle(&mut s, t0, &mut seen);
    let first = seen[&sub].media[0].0;
    let mut entries = Vec::new();
    push_nack_entry(&mut entries, first, 64);
    let nack = datagram(
        Body::Nack(Nack {
            session: 0x5e55,
            track: 0,
        }),
        &entries,
    );
    // Forged from a victim's address, without the cookie only the victim could have: the
    // victim gets one CHALLENGE per NACK, no larger than it.
    let victim = addr(9999);
    let mut to_victim = 0;
    for k in 0..100u32 {
        s.handle_datagram(now + MS * k, victim, &nack);
        while let Some(t) = s.poll_transmit(now + MS * k) {
            assert_eq!(t.kind, Kind::Challenge);
            assert_eq!(t.dests, [victim]);
            to_victim += t.bytes();
        }
    }
    assert!(to_victim <= 100 * 48, "{to_victim}");
    assert!(to_victim <= 100 * nack.len() * 3 / 2, "{to_victim}");
    assert_eq!(s.stats(now).datagrams_unverified, 100);
    // Verified, but not a subscriber (the stream does not go there): refused all the same.
    for k in 0..100u32 {
        feed(&mut s, now + MS * k, victim, &nack);
        assert!(
            s.poll_transmit(now + MS * k).is_none(),
            "nothing for the victim"
        );
    }
    assert_eq!(s.stats(now).nacks_refused, 100);
    assert!(!seen.contains_key(&victim));
    // The subscriber's own request is answered, to it.
    feed(&mut s, now + 200 * MS, sub, &nack);
    let t = s
        .poll_transmit(now + 200 * MS)
        .expect("resends to the subscriber");
    assert_eq!(t.dests, [sub]);
    // Within the resend budget: half the bytes of the one frame sent.
    assert!((30..=64).contains(&t.len()), "{}", t.len());
}

#[test]
fn a_forged_subscribe_gets_its_address_one_small_challenge_and_no_stream() {
    let mut s = Session::new(config(None, Some(4)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    // 64 forged SUBSCRIBEs from victims' addresses, with no cookie (or a made-up one).
    let forged = subscribe(30_000);
    let mut sent_to_victims = 0;
    let mut attacker_bytes = 0;
    for k in 0..64u16 {
        let bytes = if k % 2 == 0 {
            forged.clone()
        } else {
            with_cookie(&forged, &[0xA5; 16])
        };
        attacker_bytes += bytes.len();
        s.handle_datagram(t0, addr(7000 + k), &bytes);
    }
    s.handle_frame(frame(100_000, 0, t0, true));
    let mut now = t0;
    for _ in 0..100 {
        while let Some(t) = s.poll_transmit(now) {
            assert_eq!(t.kind, Kind::Challenge, "only challenges go out");
            sent_to_victims += t.bytes() * t.dests.len();
        }
        match s.poll_timeout() {
            Some(t) => now = t,
            None => break,
        }
    }
    assert!(
        sent_to_victims <= attacker_bytes * 3 / 2,
        "{sent_to_victims} bytes for {attacker_bytes}"
    );
    let st = s.stats(now);
    assert_eq!(st.subscribers, 0);
    assert_eq!(st.challenges_sent, 64);
    assert_eq!(st.frames_sent, 0, "nobody proved it receives");
}

#[test]
fn a_subscriber_that_echoes_its_challenge_gets_the_stream_and_forged_leases_take_no_seat() {
    let mut s = Session::new(config(None, Some(2)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    for k in 0..1000u16 {
        s.handle_datagram(t0, addr(20_000 + k), &subscribe(30_000));
    }
    // A real receiver: its SUBSCRIBE is challenged, it echoes the cookie from the CHALLENGE.
    let real = addr(6000);
    s.handle_datagram(t0, real, &subscribe(5000));
    let mut cookie = None;
    while let Some(t) = s.poll_transmit(t0) {
        if t.dests == [real] {
            let [h, p] = t.parts(0);
            let bytes = [h, p].concat();
            let packet = decode(&bytes).expect("decodes");
            let Body::Challenge(c) = packet.body else {
                panic!("a challenge");
            };
            assert_eq!(c.receiver, 0xabc);
            assert_eq!(packet.header.track, CONTROL_TRACK);
            cookie = Some(packet.payload.to_vec());
        }
    }
    let cookie = cookie.expect("the real receiver was challenged");
    s.handle_datagram(t0, real, &with_cookie(&subscribe(5000), &cookie));
    s.handle_frame(frame(100_000, 0, t0, true));
    let mut seen = HashMap::new();
    let now = drain_until_idle(&mut s, t0, &mut seen);
    assert_eq!(frames_of(&seen, &real), vec![0]);
    assert_eq!(s.stats(now).subscribers, 1);
    assert_eq!(s.stats(now).subscribers_refused, 0);
}

/// The first datagram `s` sends at `now` of kind `kind`, whole, and where it goes.
fn first_of(
    s: &mut Session<Vec<u8>>,
    now: Instant,
    kind: Kind,
) -> Option<(Vec<SocketAddr>, Vec<u8>)> {
    while let Some(t) = s.poll_transmit(now) {
        if t.kind == kind {
            return Some((t.dests.to_vec(), t.parts(0).concat()));
        }
    }
    None
}

#[test]
fn a_multicast_senders_challenge_reaches_a_unicast_subscriber_and_its_receivers_by_the_group() {
    let group = SocketAddr::from(([239, 1, 1, 1], 5004));
    let mut s = Session::new(config(Some(group), Some(4)));
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    // A receiver by name subscribes by unicast: its cookie comes to it.
    let sub = addr(6000);
    s.handle_datagram(t0, sub, &subscribe(5000));
    let (to, _) = first_of(&mut s, t0, Kind::Challenge).expect("challenged");
    assert_eq!(to, [sub]);
    // A receiver of the group reports: its cookie goes to the group, where it listens.
    s.handle_datagram(t0, addr(7000), &report(0, 10, 0));
    let (to, _) = first_of(&mut s, t0, Kind::Challenge).expect("challenged");
    assert_eq!(to, [group]);
}

#[test]
fn with_a_passphrase_a_resend_is_its_original_byte_for_byte_but_for_flag_r() {
    let dest = addr(5004);
    let mut s = Session::new(config(Some(dest), None));
    s.protect(
        crate::crypto::MasterKey::from_passphrase(
            "correct horse battery",
            crate::crypto::KeyLength::Aes128,
        )
        .expect("valid"),
    );
    let t0 = Instant::now();
    s.handle_caps("video/x-raw".into());
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    s.handle_frame(Frame {
        data,
        ..frame(0, 0, t0, true)
    });
    let mut originals = Vec::new();
    while let Some(t) = s.poll_transmit(t0) {
        if t.kind == Kind::Media {
            originals.extend((0..t.len()).map(|k| t.parts(k).concat()));
        }
    }
    let second = &originals[1];
    let seq = u32::from_be_bytes([second[16], second[17], second[18], second[19]]);
    assert_ne!(second[4] & header_flags::AUTH_TAG, 0, "sealed");
    let mut entries = Vec::new();
    push_nack_entry(&mut entries, seq, 1);
    let nack = datagram(
        Body::Nack(Nack {
            session: 0x5e55,
            track: 0,
        }),
        &entries,
    );
    // The NACK, sealed as a receiver seals it, with its cookie.
    let cookie = s.cookie_for(dest, t0);
    let plain = with_cookie(&nack, &cookie);
    let p = decode(&plain).expect("decodes");
    let body_end = plain.len() - p.payload.len();
    let mut rx = crate::crypto::Protection::new(
        crate::crypto::MasterKey::from_passphrase(
            "correct horse battery",
            crate::crypto::KeyLength::Aes128,
        )
        .expect("valid"),
        crate::crypto::Side::Receiver,
    );
    let mut sealed = Vec::new();
    assert!(rx.seal(&plain[..body_end], p.payload, &mut sealed));
    s.handle_datagram(t0 + MS, dest, &sealed);
    let (_, resend) = first_of(&mut s, t0 + MS, Kind::Resend).expect("resent");
    assert_eq!(resend.len(), second.len());
    let differ: Vec<usize> = (0..resend.len())
        .filter(|&i| resend[i] != second[i])
        .collect();
    assert_eq!(differ, [4], "only the flags byte");
    assert_eq!(resend[4] ^ second[4], header_flags::RETRANSMISSION);
    // An unsealed NACK is not taken.
    s.handle_datagram(t0 + 2 * MS, dest, &plain);
    assert_eq!(s.stats(t0).datagrams_unauthenticated, 1);
}

#[test]
fn an_end_of_stream_before_any_stream_info_sends_nothing_and_is_still_reported_sent() {
    let dest = addr(5004);
    let mut s = Session::<Vec<u8>>::new(config(Some(dest), None));
    let t0 = Instant::now();
    s.handle_eos();
    assert!(s.poll_transmit(t0).is_none(), "nothing to tell anyone");
    assert!(matches!(s.poll_event(), Some(Event::EndOfStreamSent)));
    assert_eq!(s.stats(t0).datagrams_sent, 0);
}

/// FNV-1a, 64 bits: a digest that stays the same across Rust releases.
fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

/// Everything one single-track session emits over a scenario of every kind of datagram
/// (stream info and its repetition, sender reports, media of many sizes, FEC, a caps
/// change, resends, end of stream), digested with where each goes; and whether any
/// datagram was on the control track.
fn single_track_digest(passphrase: bool) -> (u64, usize, bool) {
    let dest = addr(5004);
    let mut cfg = config(Some(dest), None);
    cfg.fec_percentage = 20;
    let mut s = Session::new(cfg);
    if passphrase {
        s.protect(
            crate::crypto::MasterKey::from_passphrase(
                "correct horse battery",
                crate::crypto::KeyLength::Aes128,
            )
            .expect("valid"),
        );
    }
    let t0 = Instant::now();
    s.handle_caps("video/x-raw,format=GRAY8,width=8,height=8".into());
    s.handle_clock(ClockSample {
        at: t0,
        running_time: 1_000_000,
        reference_time: 1_700_000_000_000_000_000,
        clock: protocol::reference_clock::REALTIME,
    });
    let (mut h, mut n, mut control) = (0xcbf2_9ce4_8422_2325u64, 0usize, false);
    let sizes = [0usize, 64, 10_000, 200_000, 1920, 1408, 1409, 100_000];
    let mut now = t0;
    let mut first_media = None;
    let mut kinds = Vec::new();
    for (k, len) in sizes.iter().cycle().take(40).enumerate() {
        let at = t0 + FRAME_60 * k as u32;
        if k == 20 {
            s.handle_caps("video/x-raw,format=GRAY8,width=16,height=8".into());
        }
        let data: Vec<u8> = (0..*len).map(|i| (i * 31 + k) as u8).collect();
        s.handle_frame(Frame {
            data,
            ..frame(0, k as u64, at, true)
        });
        if k == 30 {
            if let Some(seq) = first_media {
                let mut entries = Vec::new();
                push_nack_entry(&mut entries, seq, 3);
                let nack = datagram(
                    Body::Nack(Nack {
                        session: 0x5e55,
                        track: 0,
                    }),
                    &entries,
                );
                if passphrase {
                    let cookie = s.cookie_for(dest, at);
                    let plain = with_cookie(&nack, &cookie);
                    let p = decode(&plain).expect("decodes");
                    let body_end = plain.len() - p.payload.len();
                    let mut rx = crate::crypto::Protection::new(
                        crate::crypto::MasterKey::from_passphrase(
                            "correct horse battery",
                            crate::crypto::KeyLength::Aes128,
                        )
                        .expect("valid"),
                        crate::crypto::Side::Receiver,
                    );
                    let mut sealed = Vec::new();
                    assert!(rx.seal(&plain[..body_end], p.payload, &mut sealed));
                    s.handle_datagram(at, dest, &sealed);
                } else {
                    feed(&mut s, at, dest, &nack);
                }
            }
        }
        now = now.max(at);
        loop {
            while let Some(t) = s.poll_transmit(now) {
                fnv(&mut h, format!("{:?}{:?}", t.dests, t.kind).as_bytes());
                if !kinds.contains(&t.kind) {
                    kinds.push(t.kind);
                }
                for i in 0..t.len() {
                    let bytes = t.parts(i).concat();
                    control |= bytes[6..8] == CONTROL_TRACK.to_be_bytes();
                    if t.kind == Kind::Media && first_media.is_none() && k >= 26 {
                        first_media = Some(u32::from_be_bytes([
                            bytes[16], bytes[17], bytes[18], bytes[19],
                        ]));
                    }
                    fnv(&mut h, &bytes);
                    n += 1;
                }
            }
            match s.poll_timeout() {
                Some(w) if w < at + FRAME_60 => now = now.max(w),
                _ => break,
            }
        }
    }
    s.handle_eos();
    while let Some(t) = s.poll_transmit(now) {
        kinds.push(t.kind);
        for i in 0..t.len() {
            fnv(&mut h, &t.parts(i).concat());
            n += 1;
        }
    }
    use Kind::*;
    for kind in [StreamInfo, SenderReport, Media, Fec, Resend, EndOfStream] {
        assert!(kinds.contains(&kind), "{kind:?} not in {kinds:?}");
    }
    (h, n, control)
}

#[test]
fn a_single_track_session_sends_byte_for_byte_what_it_sent_before_tracks_and_no_table() {
    // The digests of what the sender of one stream sent before sessions had tracks
    // (commit e1e71b7), plain and with a passphrase.
    let (plain, n, control) = single_track_digest(false);
    assert!(!control, "nothing on the control track: no TRACKS");
    let (sealed, m, control) = single_track_digest(true);
    assert!(!control);
    assert_eq!((plain, n), (GOLDEN_PLAIN, GOLDEN_PLAIN_N));
    assert_eq!((sealed, m), (GOLDEN_SEALED, GOLDEN_SEALED_N));
}

const GOLDEN_PLAIN: u64 = 0xd955_2cb3_36ab_c008;
const GOLDEN_PLAIN_N: usize = 1414;
const GOLDEN_SEALED: u64 = 0x16dc_d812_27a3_5699;
const GOLDEN_SEALED_N: usize = 1414;
