// SPDX-License-Identifier: MPL-2.0
//! Unit tests of a sender session carrying several tracks (PROTOCOL §7.12), on a virtual
//! clock: a video track of large frames and an audio track of small ones, every datagram
//! the session transmits decoded and counted per destination and per track.

use super::*;
use crate::protocol::tracks::decode as decode_table;
use crate::protocol::{decode, header_flags, push_nack_entry, CommonHeader, Nack, PacketType};

const MS: Duration = Duration::from_millis(1);
const FRAG: u16 = 1408;
/// 60 frames a second of video...
const VIDEO_INTERVAL: Duration = Duration::from_micros(16_667);
/// ...of 200 kB frames (compressed 2160p, say): 143 datagrams, paced over 13.3 ms.
const VIDEO_LEN: usize = 200_000;
/// 10 ms of 48 kHz stereo S16LE audio: 1920 bytes, 2 datagrams.
const AUDIO_INTERVAL: Duration = Duration::from_millis(10);
const AUDIO_LEN: usize = 1920;
const VIDEO: u16 = 0;
const AUDIO: u16 = 1;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

fn config(dest: Option<SocketAddr>, subscribers: Option<usize>) -> Config {
    Config {
        session: 0x5e55,
        track: VIDEO,
        first_seq: 1000,
        frag: FRAG,
        dest,
        max_subscribers: subscribers,
        pacing: Pacing::Frame,
        batch_size: 8,
        gso_align: 1,
        max_bitrate: None,
        fec_percentage: 0,
        max_retransmission_percentage: 50,
    }
}

fn entry(id: u16, kind: TrackKind, name: &str) -> TrackEntry {
    TrackEntry {
        id,
        kind,
        variant_of: None,
        name: name.into(),
    }
}

/// A session of a video track (0) and an audio track (1), with their caps and a clock.
fn av_session(
    dest: Option<SocketAddr>,
    subscribers: Option<usize>,
    t0: Instant,
) -> Session<Vec<u8>> {
    let mut s = Session::new(config(dest, subscribers));
    s.add_track(entry(VIDEO, TrackKind::Video, "video_0"))
        .expect("the first track is declared");
    s.add_track(entry(AUDIO, TrackKind::Audio, "audio_0"))
        .expect("a second track");
    s.handle_caps_on(VIDEO, "video/x-h265,width=3840,height=2160".into())
        .expect("video caps");
    s.handle_caps_on(
        AUDIO,
        "audio/x-raw,format=S16LE,rate=48000,channels=2".into(),
    )
    .expect("audio caps");
    s.handle_clock(ClockSample {
        at: t0,
        running_time: 0,
        reference_time: 0,
        clock: 0,
    });
    s
}

/// Frame `k` of `track`: bytes that tell the track and the frame apart.
fn frame(track: u16, k: u64, t0: Instant) -> Frame<Vec<u8>> {
    let (len, interval) = if track == AUDIO {
        (AUDIO_LEN, AUDIO_INTERVAL)
    } else {
        (VIDEO_LEN, VIDEO_INTERVAL)
    };
    let arrived = t0 + interval * k as u32;
    Frame {
        data: (0..len)
            .map(|i| (i as u64 * 7 + k * 13 + u64::from(track) * 101) as u8)
            .collect(),
        meta: FrameMeta {
            pts: (interval * k as u32).as_nanos() as u64,
            duration: interval.as_nanos() as u64,
            ..FrameMeta::default()
        },
        duration: Some(interval),
        key: true,
        live: true,
        arrived,
    }
}

/// One datagram as a destination got it.
#[derive(Debug, Clone)]
struct Sent {
    dest: SocketAddr,
    kind: Kind,
    track: u16,
    seq: u32,
    flags: u8,
    body: Body,
    payload: Vec<u8>,
    /// When it left, on the virtual clock.
    at: Instant,
}

/// Takes everything due at `now`.
fn drain(s: &mut Session<Vec<u8>>, now: Instant, out: &mut Vec<Sent>) {
    while let Some(t) = s.poll_transmit(now) {
        for &dest in t.dests {
            for k in 0..t.len() {
                let bytes = t.parts(k).concat();
                let p = decode(&bytes).expect("every datagram decodes");
                out.push(Sent {
                    dest,
                    kind: t.kind,
                    track: p.header.track,
                    seq: p.header.seq,
                    flags: p.header.flags,
                    body: p.body,
                    payload: p.payload.to_vec(),
                    at: now,
                });
            }
        }
    }
}

/// Runs the session from `from` until `until` (relative to `t0`), handing in the video
/// frames (if `video`) and audio frames (if `audio`) arriving in between, waking exactly
/// when the session asks; gives the instant it stopped at (`t0 + until`, or later if it
/// still had datagrams to pace out then).
fn run(
    s: &mut Session<Vec<u8>>,
    t0: Instant,
    from: Instant,
    until: Duration,
    (video, audio): (bool, bool),
    out: &mut Vec<Sent>,
) -> Instant {
    let end = t0 + until;
    let next = |interval: Duration, at: Instant| {
        // The first frame index arriving at or after `at`.
        let since = at.saturating_duration_since(t0).as_nanos();
        since.div_ceil(interval.as_nanos()) as u64
    };
    let (mut v, mut a) = (next(VIDEO_INTERVAL, from), next(AUDIO_INTERVAL, from));
    let mut now = from;
    loop {
        while video && t0 + VIDEO_INTERVAL * (v as u32) <= now.min(end - MS / 1000) {
            s.handle_frame_on(VIDEO, frame(VIDEO, v, t0))
                .expect("a video track");
            v += 1;
        }
        while audio && t0 + AUDIO_INTERVAL * (a as u32) <= now.min(end - MS / 1000) {
            s.handle_frame_on(AUDIO, frame(AUDIO, a, t0))
                .expect("an audio track");
            a += 1;
        }
        drain(s, now, out);
        let arrivals = [
            (video, t0 + VIDEO_INTERVAL * v as u32),
            (audio, t0 + AUDIO_INTERVAL * a as u32),
        ];
        let wake = arrivals
            .iter()
            .filter(|(on, at)| *on && *at < end)
            .map(|(_, at)| *at)
            .chain(s.poll_timeout())
            .min();
        match wake {
            Some(w) => now = now.max(w),
            None => return now.max(end),
        }
    }
}

/// The datagrams of `track` (not resends), in the order they left.
fn of_track(sent: &[Sent], dest: SocketAddr, track: u16) -> Vec<&Sent> {
    sent.iter()
        .filter(|d| d.dest == dest && d.track == track)
        .filter(|d| d.flags & header_flags::RETRANSMISSION == 0)
        .collect()
}

fn media_of_frame<'a>(sent: &'a [&'a Sent], pts: u64) -> Vec<&'a Sent> {
    sent.iter()
        .filter(|d| matches!(d.body, Body::Media(m) if m.pts == pts))
        .copied()
        .collect()
}

#[test]
fn two_tracks_interleave_each_with_consecutive_sequence_numbers_of_its_own() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    run(&mut s, t0, t0, 100 * MS, (true, true), &mut sent);
    let video = of_track(&sent, host, VIDEO);
    let audio = of_track(&sent, host, AUDIO);
    // Every datagram of a track (stream info, reports, media) takes the next number of
    // that track's own sequence, in the order they leave, whatever the other track sends
    // in between.
    for t in [&video, &audio] {
        assert!(t.len() > 10);
        assert!(
            t.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)),
            "{:?}",
            t.iter().map(|d| d.seq).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        video[0].seq, 1000,
        "the first track starts where configured"
    );
    // The tracks' datagrams alternate on the wire: they are not sent one track after the
    // other.
    let order: Vec<u16> = sent
        .iter()
        .filter(|d| d.kind == Kind::Media)
        .map(|d| d.track)
        .collect();
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 18, "{switches} switches between tracks");
    // Every frame of both went out whole: 6 video frames, 10 audio frames.
    let frames = |t: &[&Sent]| {
        let mut f: Vec<u32> = t
            .iter()
            .filter_map(|d| match d.body {
                Body::Media(m) => Some(m.frame),
                _ => None,
            })
            .collect();
        f.dedup();
        f
    };
    assert_eq!(frames(&video), (0..6).collect::<Vec<_>>());
    assert_eq!(frames(&audio), (0..10).collect::<Vec<_>>());
    assert_eq!(
        media_of_frame(&video, 0).len(),
        VIDEO_LEN.div_ceil(usize::from(FRAG))
    );
    let st = s.stats(t0 + 100 * MS);
    assert_eq!(st.tracks.len(), 2);
    assert_eq!(st.tracks[0].frames_sent, 6);
    assert_eq!(st.tracks[1].frames_sent, 10);
    assert_eq!(st.tracks[0].datagrams_sent, video.len() as u64);
    assert_eq!(st.tracks[1].datagrams_sent, audio.len() as u64);
}

#[test]
fn an_audio_frame_leaves_when_it_comes_not_behind_a_paced_video_frame() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    run(&mut s, t0, t0, 100 * MS, (true, true), &mut sent);
    let video = of_track(&sent, host, VIDEO);
    let audio = of_track(&sent, host, AUDIO);
    // The video frames are paced over 0.8 of their interval: 13.3 ms.
    let v0 = media_of_frame(&video, 0);
    let spread = v0[v0.len() - 1].at - v0[0].at;
    assert!(spread > 12 * MS, "video frame 0 spread over {spread:?}");
    // Each audio frame's datagrams leave the instant it arrives, on the virtual clock,
    // also those that arrive while a video frame is being paced out.
    for k in 0..10u64 {
        let pts = (AUDIO_INTERVAL * k as u32).as_nanos() as u64;
        let a = media_of_frame(&audio, pts);
        assert_eq!(a.len(), 2, "audio frame {k}");
        let arrived = t0 + AUDIO_INTERVAL * k as u32;
        for d in &a {
            assert_eq!(
                d.at,
                arrived,
                "audio frame {k} delayed by {:?}",
                d.at - arrived
            );
        }
    }
    // The one of 10 ms went out between video frame 0's datagrams.
    let at = t0 + AUDIO_INTERVAL;
    assert!(v0[0].at < at && v0[v0.len() - 1].at > at);
}

#[test]
fn a_track_without_input_holds_no_other_back() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    // The video source stalls: only audio comes.
    run(&mut s, t0, t0, 100 * MS, (false, true), &mut sent);
    let audio = of_track(&sent, host, AUDIO);
    let media: Vec<_> = audio.iter().filter(|d| d.kind == Kind::Media).collect();
    assert_eq!(media.len(), 20, "all 10 audio frames");
    for (i, d) in media.iter().enumerate() {
        assert_eq!(d.at, t0 + AUDIO_INTERVAL * (i / 2) as u32);
    }
    assert!(
        of_track(&sent, host, VIDEO).is_empty(),
        "no video: nothing of it"
    );
}

/// The TRACKS datagrams to `dest`: their control sequence numbers, generation and table.
fn tables(sent: &[Sent], dest: SocketAddr) -> Vec<(u32, u16, Vec<TrackEntry>)> {
    sent.iter()
        .filter(|d| d.dest == dest && d.kind == Kind::Tracks)
        .map(|d| {
            assert_eq!(d.track, CONTROL_TRACK);
            let Body::Tracks(t) = d.body else {
                panic!("a TRACKS body: {:?}", d.body);
            };
            let entries = decode_table(&d.payload).expect("a valid table");
            assert_eq!(entries.len(), usize::from(t.count));
            (d.seq, t.generation, entries)
        })
        .collect()
}

#[test]
fn the_track_table_goes_out_first_and_with_the_stream_info_repetitions() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    run(&mut s, t0, t0, 1000 * MS, (true, true), &mut sent);
    let t = tables(&sent, host);
    // Before anything else: a receiver learns every track before their stream info.
    assert_eq!(sent[0].kind, Kind::Tracks);
    assert_eq!(
        t[0].2,
        vec![
            entry(VIDEO, TrackKind::Video, "video_0"),
            entry(AUDIO, TrackKind::Audio, "audio_0")
        ]
    );
    // With the stream info, every 250 ms: at 0, 250, 500 and 750 ms.
    let infos = |track| {
        sent.iter()
            .filter(|d| d.track == track && d.kind == Kind::StreamInfo)
            .count()
    };
    assert_eq!(infos(VIDEO), 4);
    assert_eq!(infos(AUDIO), 4);
    assert_eq!(t.len(), 4, "{t:?}");
    // The same table each time (one generation), its sequence numbers the control
    // track's own.
    assert!(t.iter().all(|x| x.1 == t[0].1 && x.2 == t[0].2));
    assert!(t.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1)));
}

#[test]
fn removing_a_track_sends_its_end_of_stream_then_the_new_table_and_the_other_goes_on() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    let now = run(&mut s, t0, t0, 50 * MS, (true, true), &mut sent);
    let before = tables(&sent, host);
    let generation = before[0].1;
    s.remove_track(AUDIO).expect("removed");
    assert!(s.handle_frame_on(AUDIO, frame(AUDIO, 5, t0)).is_err());
    let from = sent.len();
    run(&mut s, t0, now, 150 * MS, (true, false), &mut sent);
    let after = &sent[from..];
    let eos: Vec<_> = after
        .iter()
        .filter(|d| d.kind == Kind::EndOfStream)
        .collect();
    assert_eq!(eos.len(), EOS_REPEAT);
    assert!(eos.iter().all(|d| d.track == AUDIO));
    // Right after its end of stream, the table without it, one generation on.
    let t = tables(after, host);
    assert_eq!(t[0].1, generation.wrapping_add(1));
    assert_eq!(t[0].2, vec![entry(VIDEO, TrackKind::Video, "video_0")]);
    let eos_at = after
        .iter()
        .position(|d| d.kind == Kind::EndOfStream)
        .expect("its end of stream");
    let table_at = after
        .iter()
        .position(|d| d.kind == Kind::Tracks)
        .expect("the new table");
    assert!(table_at > eos_at);
    // Nothing more of it; video goes on (frames 3 to 8).
    assert!(after[eos_at + EOS_REPEAT..]
        .iter()
        .all(|d| d.track != AUDIO));
    assert!(after
        .iter()
        .any(|d| matches!(d.body, Body::Media(m) if d.track == VIDEO && m.frame == 8)));
    assert_eq!(s.tracks().len(), 1);
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(events, vec![Event::TrackEnded(AUDIO)]);
}

#[test]
fn the_session_ends_once_every_track_has_ended() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    let now = run(&mut s, t0, t0, 20 * MS, (true, true), &mut sent);
    s.handle_eos_on(AUDIO).expect("audio");
    drain(&mut s, now, &mut sent);
    assert_eq!(s.poll_event(), Some(Event::TrackEnded(AUDIO)));
    assert_eq!(
        s.poll_event(),
        None,
        "video goes on: the session has not ended"
    );
    s.handle_eos_on(VIDEO).expect("video");
    let mut later = now;
    for _ in 0..100 {
        drain(&mut s, later, &mut sent);
        match s.poll_timeout() {
            Some(w) => later = w,
            None => break,
        }
    }
    assert_eq!(s.poll_event(), Some(Event::EndOfStreamSent));
    for track in [VIDEO, AUDIO] {
        let eos: Vec<_> = sent
            .iter()
            .filter(|d| d.track == track && d.kind == Kind::EndOfStream)
            .collect();
        assert_eq!(eos.len(), EOS_REPEAT, "track {track}");
        // Each its own: the next frame number of that track.
        let Body::EndOfStream(e) = eos[0].body else {
            panic!("an end of stream");
        };
        // Each its own frame count: video frames at 0 and 16.7 ms, audio at 0 and 10 ms.
        assert_eq!(e.next_frame, 2, "track {track}");
    }
    let st = s.stats(later);
    assert!(st.tracks.iter().all(|t| t.ended));
}

/// A SUBSCRIBE asking for `tracks` (empty: all), with the cookie the address was given.
fn subscribe(s: &mut Session<Vec<u8>>, now: Instant, from: SocketAddr, tracks: &[u16]) {
    let payload: Vec<u8> = tracks.iter().flat_map(|t| t.to_be_bytes()).collect();
    feed(
        s,
        now,
        from,
        Body::Subscribe(protocol::Subscribe {
            session: 0,
            lease_ms: 5000,
            flags: 0,
        }),
        &payload,
    );
}

/// Hands the session a datagram from `from` with the cookie `from` was given.
fn feed(s: &mut Session<Vec<u8>>, now: Instant, from: SocketAddr, body: Body, payload: &[u8]) {
    let cookie = s.cookie_for(from, now);
    let common = CommonHeader {
        flags: 0,
        track: 0,
        session: 0xabc,
        seq: 0,
    };
    let ext = [protocol::Extension::Other {
        kind: protocol::ext::COOKIE,
        value: &cookie,
    }];
    let mut out = Vec::new();
    protocol::encode(&common, &ext, &body, &mut out).expect("encodes");
    out.extend_from_slice(payload);
    s.handle_datagram(now, from, &out);
}

/// Datagrams to `dest` by (track, kind).
fn count(sent: &[Sent], dest: SocketAddr, track: u16, kind: Kind) -> usize {
    sent.iter()
        .filter(|d| d.dest == dest && d.track == track && d.kind == kind)
        .count()
}

#[test]
fn an_audio_only_subscriber_is_sent_no_video_datagram_at_all() {
    let (audio_only, everything) = (addr(6000), addr(6001));
    let t0 = Instant::now();
    let mut s = av_session(None, Some(8), t0);
    subscribe(&mut s, t0, audio_only, &[AUDIO]);
    subscribe(&mut s, t0, everything, &[]);
    let mut sent = Vec::new();
    run(&mut s, t0, t0, 500 * MS, (true, true), &mut sent);
    // Not one datagram of the video track, of any kind; all of the audio track.
    let to_audio_only: Vec<_> = sent.iter().filter(|d| d.dest == audio_only).collect();
    assert_eq!(
        to_audio_only.iter().filter(|d| d.track == VIDEO).count(),
        0,
        "video datagrams to the audio-only subscriber"
    );
    assert_eq!(count(&sent, audio_only, AUDIO, Kind::Media), 50 * 2);
    assert_eq!(count(&sent, audio_only, AUDIO, Kind::StreamInfo), 2);
    assert_eq!(count(&sent, audio_only, AUDIO, Kind::SenderReport), 2);
    // The table (the control track) goes to it all the same: it lists both tracks.
    let t = tables(&sent, audio_only);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].2.len(), 2);
    // The other subscriber gets both tracks whole.
    let per_video_frame = VIDEO_LEN.div_ceil(usize::from(FRAG));
    assert_eq!(
        count(&sent, everything, VIDEO, Kind::Media),
        30 * per_video_frame
    );
    assert_eq!(count(&sent, everything, AUDIO, Kind::Media), 50 * 2);
    assert_eq!(tables(&sent, everything).len(), 2);
    // Before its first audio frame it had the table and the audio stream info.
    let first = |kind: Kind| {
        to_audio_only
            .iter()
            .position(|d| d.kind == kind)
            .expect("sent")
    };
    assert!(first(Kind::Tracks) < first(Kind::StreamInfo));
    assert!(first(Kind::StreamInfo) < first(Kind::Media));
    // Asking for video resends, it gets none: it did not choose video.
    let seq = of_track(&sent, everything, VIDEO)
        .iter()
        .find(|d| d.kind == Kind::Media)
        .map(|d| d.seq)
        .expect("video media");
    let mut entries = Vec::new();
    push_nack_entry(&mut entries, seq, 4);
    let nack = Body::Nack(Nack {
        session: 0x5e55,
        track: VIDEO,
    });
    let at = t0 + 500 * MS;
    feed(&mut s, at, audio_only, nack, &entries);
    assert!(s.poll_transmit(at).is_none());
    assert_eq!(s.stats(at).nacks_refused, 1);
}

#[test]
fn a_subscriber_that_adds_a_track_gets_its_stream_info_before_its_next_frame() {
    let sub = addr(6000);
    let t0 = Instant::now();
    let mut s = av_session(None, Some(8), t0);
    subscribe(&mut s, t0, sub, &[AUDIO]);
    let mut sent = Vec::new();
    let now = run(&mut s, t0, t0, 100 * MS, (true, true), &mut sent);
    assert_eq!(count(&sent, sub, VIDEO, Kind::Media), 0);
    // Renewed with video too.
    subscribe(&mut s, now, sub, &[VIDEO, AUDIO]);
    let from = sent.len();
    run(&mut s, t0, now, 200 * MS, (true, true), &mut sent);
    let video: Vec<_> = sent[from..]
        .iter()
        .filter(|d| d.dest == sub && d.track == VIDEO)
        .collect();
    assert_eq!(video[0].kind, Kind::StreamInfo, "{:?}", video[0]);
    assert!(video.iter().any(|d| d.kind == Kind::Media));
}

#[test]
fn a_nack_on_the_audio_track_resends_that_tracks_bytes_exactly() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    let now = run(&mut s, t0, t0, 30 * MS, (true, true), &mut sent);
    // The second datagram of audio frame 1.
    let audio = of_track(&sent, host, AUDIO);
    let pts = AUDIO_INTERVAL.as_nanos() as u64;
    let original = media_of_frame(&audio, pts)[1].clone();
    let mut entries = Vec::new();
    push_nack_entry(&mut entries, original.seq, 1);
    let nack = Body::Nack(Nack {
        session: 0x5e55,
        track: AUDIO,
    });
    feed(&mut s, now, host, nack, &entries);
    let mut resent = Vec::new();
    drain(&mut s, now, &mut resent);
    assert_eq!(resent.len(), 1, "{resent:?}");
    let r = &resent[0];
    assert_eq!(r.kind, Kind::Resend);
    assert_eq!((r.track, r.seq), (AUDIO, original.seq));
    assert_ne!(r.flags & header_flags::RETRANSMISSION, 0);
    assert_eq!(r.body, original.body);
    assert_eq!(r.payload, original.payload);
    // Those bytes are the audio frame's, from its second fragment on.
    let data = frame(AUDIO, 1, t0).data;
    assert_eq!(r.payload, &data[usize::from(FRAG)..]);
    // The same number on the video track is another datagram (or none): never audio's.
    let nack = Body::Nack(Nack {
        session: 0x5e55,
        track: VIDEO,
    });
    feed(&mut s, now + MS, host, nack, &entries);
    let mut other = Vec::new();
    drain(&mut s, now + MS, &mut other);
    assert!(other.iter().all(|d| d.track == VIDEO));
}

#[test]
fn with_a_passphrase_the_track_table_is_sealed_like_every_datagram() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let master = || {
        crate::crypto::MasterKey::from_passphrase(
            "correct horse battery",
            crate::crypto::KeyLength::Aes128,
        )
        .expect("valid")
    };
    s.protect(master());
    s.handle_frame_on(AUDIO, frame(AUDIO, 0, t0))
        .expect("audio");
    let mut rx = crate::crypto::Protection::new(master(), crate::crypto::Side::Receiver);
    let mut opened_tables = 0;
    while let Some(t) = s.poll_transmit(t0) {
        for k in 0..t.len() {
            let bytes = t.parts(k).concat();
            assert_ne!(bytes[4] & header_flags::AUTH_TAG, 0, "{:?} sealed", t.kind);
            let opened = rx
                .open_copy(&bytes, |_, r| r.map(<[u8]>::to_vec))
                .expect("opens with the passphrase");
            let p = decode(&opened).expect("decodes");
            if t.kind == Kind::Tracks {
                assert_eq!(p.header.track, CONTROL_TRACK);
                assert_eq!(p.body.packet_type(), PacketType::Tracks);
                assert_eq!(decode_table(p.payload).expect("a table").len(), 2);
                opened_tables += 1;
            }
        }
    }
    assert_eq!(opened_tables, 1);
}

#[test]
fn tracks_are_declared_at_most_once_and_at_most_thirty_two_and_never_the_control_track() {
    let mut s = Session::<Vec<u8>>::new(config(Some(addr(5004)), None));
    // The first track, there from the start, takes a kind and name once.
    assert_eq!(s.add_track(entry(0, TrackKind::Video, "cam")), Ok(()));
    assert_eq!(
        s.add_track(entry(0, TrackKind::Video, "cam2")),
        Err(TrackError::Duplicate(0))
    );
    assert_eq!(
        s.add_track(entry(CONTROL_TRACK, TrackKind::Data, "ctl")),
        Err(TrackError::ControlTrack)
    );
    assert_eq!(
        s.add_track(entry(1, TrackKind::Audio, "cam")),
        Err(TrackError::BadName)
    );
    assert_eq!(
        s.add_track(entry(1, TrackKind::Audio, "no spaces")),
        Err(TrackError::BadName)
    );
    assert_eq!(
        s.add_track(TrackEntry {
            variant_of: Some(9),
            ..entry(1, TrackKind::Video, "proxy")
        }),
        Err(TrackError::BadVariant)
    );
    for id in 1..32u16 {
        assert_eq!(
            s.add_track(entry(id, TrackKind::Data, &format!("d{id}"))),
            Ok(())
        );
    }
    assert_eq!(
        s.add_track(entry(40, TrackKind::Data, "d40")),
        Err(TrackError::TooMany)
    );
    assert_eq!(s.tracks().len(), 32);
    assert_eq!(
        s.handle_caps_on(77, "x".into()),
        Err(TrackError::Unknown(77))
    );
    // A table that would not fit one datagram at a small MTU is refused.
    let mut small = Session::<Vec<u8>>::new(Config {
        frag: 484,
        ..config(Some(addr(5004)), None)
    });
    let long = "n".repeat(32);
    let mut refused = None;
    for id in 1..32u16 {
        if let Err(e) = small.add_track(entry(id, TrackKind::Data, &format!("{long:.30}{id:02}"))) {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(refused, Some(TrackError::TableTooLarge));
}

/// A RECEIVER_REPORT on `track`.
fn report(track: u16, highest_seq: u32, received: u64, complete: u32, dropped: u32) -> Body {
    Body::ReceiverReport(protocol::ReceiverReport {
        session: 0x5e55,
        track,
        highest_seq,
        datagrams_received: received,
        datagrams_lost: 0,
        frames_complete: complete,
        frames_dropped: dropped,
        echoed_report_seq: 0,
        delay_us: protocol::NO_DELAY,
    })
}

#[test]
fn a_subscriber_falling_behind_on_its_audio_track_is_held_below_what_it_takes_on_all() {
    let sub = addr(6000);
    let t0 = Instant::now();
    let mut s = av_session(None, Some(8), t0);
    subscribe(&mut s, t0, sub, &[]);
    let mut sent = Vec::new();
    let mut now = t0;
    let mut dropped = 0;
    // Three rounds: the first reports give no delta, the second lowers the rate, the
    // third is within the hold after a decrease.
    for round in 1..=3u32 {
        now = run(&mut s, t0, now, 250 * MS * round, (true, true), &mut sent);
        // Every 250 ms it reports on each track what it got of it, all of it; on the audio
        // track it also says it dropped 3 of the last 25 frames (its audio sink is late).
        for track in [VIDEO, AUDIO] {
            let got = of_track(&sent, sub, track);
            let last = got.last().map_or(0, |d| d.seq);
            let mut frames: Vec<u32> = got
                .iter()
                .filter_map(|d| match d.body {
                    Body::Media(m) => Some(m.frame),
                    _ => None,
                })
                .collect();
            frames.dedup();
            let frames = frames.len() as u32;
            if track == AUDIO && round > 1 {
                dropped += 3;
            }
            let body = report(track, last, got.len() as u64, frames, dropped);
            feed(&mut s, now, sub, body, &[]);
        }
    }
    let st = s.stats(now);
    let r = st
        .receivers
        .iter()
        .find(|r| r.info.addr == sub)
        .expect("it reported");
    // It takes about 105 Mbit/s in all (video 97, audio 2.4, counted as full datagrams):
    // held to 0.85 of that, not to 0.85 of its audio alone (2 Mbit/s).
    let allowed = r.allowed_bitrate.expect("lowered");
    assert!(
        (80_000_000..100_000_000).contains(&allowed),
        "{allowed} bit/s: {st:?}"
    );
    assert_eq!(st.rate_decreases, 1);
}

#[test]
fn a_forged_nack_on_the_audio_track_gets_its_address_one_challenge_and_no_resend() {
    let host = addr(5004);
    let t0 = Instant::now();
    let mut s = av_session(Some(host), None, t0);
    let mut sent = Vec::new();
    let now = run(&mut s, t0, t0, 30 * MS, (true, true), &mut sent);
    let first = of_track(&sent, host, AUDIO)
        .iter()
        .find(|d| d.kind == Kind::Media)
        .map(|d| d.seq)
        .expect("audio media");
    let mut entries = Vec::new();
    push_nack_entry(&mut entries, first, 4);
    let nack = Body::Nack(Nack {
        session: 0x5e55,
        track: AUDIO,
    });
    let common = CommonHeader {
        flags: 0,
        track: 0,
        session: 0xabc,
        seq: 0,
    };
    let mut bytes = Vec::new();
    protocol::encode(&common, &[], &nack, &mut bytes).expect("encodes");
    bytes.extend_from_slice(&entries);
    // Without the cookie only the victim's address could have: one CHALLENGE, no larger.
    let victim = SocketAddr::from(([198, 51, 100, 7], 9999));
    s.handle_datagram(now, victim, &bytes);
    let mut got = Vec::new();
    drain(&mut s, now, &mut got);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].dest, got[0].kind), (victim, Kind::Challenge));
    // With its cookie, but the stream does not go there: refused.
    feed(&mut s, now + MS, victim, nack, &entries);
    assert!(s.poll_transmit(now + MS).is_none());
    assert_eq!(s.stats(now).nacks_refused, 1);
}
