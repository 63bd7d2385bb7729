// SPDX-License-Identifier: MPL-2.0
//! Unit tests of several tracks of one session (PROTOCOL §8.11) at the receiver: a video and
//! an audio track, each through a real packetizer of its own, with one session id.

use super::*;
use crate::protocol::tracks::{TrackKind, CONTROL_TRACK};

const VIDEO_CAPS: &str = "video/x-raw";
const AUDIO_CAPS: &str = "audio/x-raw";
/// Sequence numbers of the audio track start here, so that the two tracks' are told apart.
const AUDIO_SEQ: u32 = 1000;

/// One track's datagrams: its stream info, then each frame's datagrams.
struct TrackDatagrams {
    info: Vec<Vec<u8>>,
    frames: Vec<Vec<Vec<u8>>>,
}

fn track_datagrams(p: &mut Packetizer, caps: &str, frames: &[Vec<u8>]) -> TrackDatagrams {
    let info = p
        .info_datagrams(caps)
        .unwrap()
        .iter()
        .map(|(h, piece)| [&h[..], piece].concat())
        .collect();
    let frames = frames
        .iter()
        .enumerate()
        .map(|(n, data)| {
            let meta = FrameMeta {
                pts: n as u64 * 1000,
                duration: 1000,
                ..Default::default()
            };
            let mut plan = p.frame(data.len(), meta).unwrap();
            let count = plan.count();
            let b = plan.batch(data, 0, count);
            (0..b.len()).map(|k| b.parts(k).concat()).collect()
        })
        .collect();
    TrackDatagrams { info, frames }
}

/// Session 77: video frames of 5000 bytes on track 0 (4 fragments each) and audio frames of
/// `audio_len` bytes on track 1, with their packetizers for what comes next.
struct TwoTracks {
    video: TrackDatagrams,
    audio: TrackDatagrams,
    vfr: Vec<Vec<u8>>,
    afr: Vec<Vec<u8>>,
    vp: Packetizer,
    ap: Packetizer,
}

fn two_tracks(n: usize, audio_len: usize) -> TwoTracks {
    let vfr = frames(n, 5000);
    let afr: Vec<Vec<u8>> = frames(n, audio_len)
        .into_iter()
        .map(|f| f.iter().map(|b| b ^ 0xA5).collect())
        .collect();
    let mut vp = Packetizer::new(77, 0, 0, 1400);
    let mut ap = Packetizer::new(77, 1, AUDIO_SEQ, 1400);
    let video = track_datagrams(&mut vp, VIDEO_CAPS, &vfr);
    let audio = track_datagrams(&mut ap, AUDIO_CAPS, &afr);
    TwoTracks {
        video,
        audio,
        vfr,
        afr,
        vp,
        ap,
    }
}

impl TwoTracks {
    /// Both tracks as a sender sends them: both stream infos, then each video frame
    /// followed by the audio frame of its time.
    fn interleaved(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.video.info.clone();
        out.extend(self.audio.info.iter().cloned());
        for (v, a) in self.video.frames.iter().zip(&self.audio.frames) {
            out.extend(v.iter().cloned());
            out.extend(a.iter().cloned());
        }
        out
    }
}

fn session(tracks: TrackSelection) -> Session<Vec<u8>> {
    Session::new(Config {
        tracks,
        ..Default::default()
    })
}

/// Every frame that comes out, as (track, bytes, discont), after pushing `dgrams` at `now`,
/// then letting every window pass.
fn frames_out(
    s: &mut Session<Vec<u8>>,
    dgrams: &[Vec<u8>],
    now: Instant,
) -> Vec<(u16, Vec<u8>, bool)> {
    let mut out = Vec::new();
    for d in dgrams {
        let _ = s.push_at(d, now, |len| Some(vec![0; len]));
        while let Some(ev) = s.poll_event() {
            if let Event::Frame { track, frame, .. } = ev {
                out.push((track, frame.buf, frame.discont));
            }
        }
    }
    while let Some(ev) = s.poll(now + Duration::from_secs(10)) {
        if let Event::Frame { track, frame, .. } = ev {
            out.push((track, frame.buf, frame.discont));
        }
    }
    out
}

/// The frames of `track` among `out`.
fn of_track(out: &[(u16, Vec<u8>, bool)], track: u16) -> Vec<Vec<u8>> {
    out.iter()
        .filter(|f| f.0 == track)
        .map(|f| f.1.clone())
        .collect()
}

/// Every datagram due at `now`, decoded: (destination, header track, body, payload).
fn sent(s: &mut Session<Vec<u8>>, now: Instant) -> Vec<(SocketAddr, u16, Body, Vec<u8>)> {
    std::iter::from_fn(|| s.poll_transmit(now))
        .map(|t| {
            let p = protocol::decode(&t.contents).unwrap();
            (t.destination, p.header.track, p.body, p.payload.to_vec())
        })
        .collect()
}

/// A datagram of `session` on `track`.
fn dgram_on(track: u16, session: u64, seq: u32, body: Body, payload: &[u8]) -> Vec<u8> {
    let h = CommonHeader {
        track,
        session,
        seq,
        ..Default::default()
    };
    let mut d = Vec::new();
    protocol::encode(&h, &[], &body, &mut d).unwrap();
    d.extend_from_slice(payload);
    d
}

fn entry(id: u16, kind: TrackKind, name: &str) -> TrackEntry {
    TrackEntry {
        id,
        kind,
        variant_of: None,
        name: name.into(),
    }
}

/// A TRACKS datagram of `session` with table generation `generation`.
fn tracks_datagram(session: u64, seq: u32, generation: u16, entries: &[TrackEntry]) -> Vec<u8> {
    let (body, payload) = protocol::tracks::encode(generation, entries).unwrap();
    dgram_on(CONTROL_TRACK, session, seq, Body::Tracks(body), &payload)
}

/// The tables handed out so far: (session, generation, tracks).
fn tables(s: &mut Session<Vec<u8>>) -> Vec<(u64, u16, Vec<TrackEntry>)> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|ev| match ev {
            Event::Tracks {
                session,
                generation,
                tracks,
            } => Some((session, generation, tracks.to_vec())),
            _ => None,
        })
        .collect()
}

#[test]
fn both_tracks_of_one_session_come_out_byte_exact_with_their_track_ids() {
    let tt = two_tracks(4, 3000);
    let mut s = session(TrackSelection::All);
    let now = Instant::now();
    let mut streams = Vec::new();
    let mut out = Vec::new();
    for d in tt.interleaved() {
        s.push_at(&d, now, |len| Some(vec![0; len])).unwrap();
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Stream {
                    track,
                    session,
                    caps,
                    ..
                } => streams.push((track, session, caps.to_string())),
                Event::Frame {
                    track,
                    frame,
                    caps,
                    origin,
                } => {
                    assert_eq!(origin.session, Some(77));
                    let want = if track == 0 { VIDEO_CAPS } else { AUDIO_CAPS };
                    assert_eq!(&*caps, want, "each frame carries its own track's caps");
                    out.push((track, frame.buf, frame.discont));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        streams,
        [
            (0, 77, VIDEO_CAPS.to_string()),
            (1, 77, AUDIO_CAPS.to_string())
        ]
    );
    assert_eq!(of_track(&out, 0), tt.vfr);
    assert_eq!(of_track(&out, 1), tt.afr);
    assert!(out.iter().all(|f| !f.2), "nothing lost, nothing discont");
    assert_eq!(s.tracks(), [0, 1]);
    assert_eq!(s.track_info(1), Some((0, AUDIO_CAPS)));
    let st = s.stats();
    assert_eq!(st.frames_complete, 8);
    assert_eq!((st.datagrams_lost, st.datagrams_foreign), (0, 0));
    assert_eq!(st.datagrams_other_track, 0);
}

#[test]
fn a_lost_video_fragment_drops_and_nacks_only_its_frame_while_audio_comes_out_at_once() {
    let tt = two_tracks(3, 200);
    let mut s = session(TrackSelection::All);
    let t0 = Instant::now();
    for d in tt.video.info.iter().chain(&tt.audio.info) {
        s.push_at(d, t0, |_| None).unwrap();
    }
    while s.poll_event().is_some() {}
    // Fragment 1 of video frame 0 is lost (sequence number 2: info 0, fragments 1..=4).
    let lost = &tt.video.frames[0][1];
    assert_eq!(protocol::decode(lost).unwrap().header.seq, 2);
    for k in 0..3 {
        for (i, d) in tt.video.frames[k].iter().enumerate() {
            if (k, i) != (0, 1) {
                s.push_at(d, t0, |len| Some(vec![0; len])).unwrap();
            }
        }
        assert!(s.poll_ready().is_none(), "video waits for its frame 0");
        s.push_at(&tt.audio.frames[k][0], t0, |len| Some(vec![0; len]))
            .unwrap();
        match s.poll_ready() {
            Some(Event::Frame {
                track: 1, frame, ..
            }) => {
                assert_eq!(frame.buf, tt.afr[k]);
                assert!(!frame.discont);
            }
            other => panic!("audio frame {k} at once, got {other:?}"),
        }
    }
    // The NACK asks the video track for its sequence number 2, and nothing of audio.
    let out = sent(&mut s, t0 + Duration::from_millis(3));
    let nacks: Vec<_> = out
        .iter()
        .filter_map(|(to, track, body, payload)| match body {
            Body::Nack(n) => Some((
                *to,
                *track,
                *n,
                protocol::nack_entries(payload).collect::<Vec<_>>(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        nacks,
        [(
            src(),
            0,
            Nack {
                session: 77,
                track: 0
            },
            vec![(2, 1)]
        )]
    );
    // The window passes: video frame 0 is given up, frames 1 and 2 follow (discont).
    let mut video = Vec::new();
    while let Some(ev) = s.poll(t0 + Duration::from_secs(1)) {
        if let Event::Frame { track, frame, .. } = ev {
            assert_eq!(track, 0);
            video.push((frame.buf, frame.discont));
        }
    }
    assert_eq!(
        video,
        [(tt.vfr[1].clone(), true), (tt.vfr[2].clone(), false)]
    );
    let (v, a) = (s.track_stats(0).unwrap(), s.track_stats(1).unwrap());
    assert_eq!(
        (v.frames_dropped, v.frames_complete, v.datagrams_lost),
        (1, 2, 1)
    );
    assert_eq!(
        (a.frames_dropped, a.frames_complete, a.datagrams_lost),
        (0, 3, 0)
    );
}

#[test]
fn each_track_is_reported_on_by_name_with_its_own_sequence_numbers_and_sender_report() {
    let mut tt = two_tracks(2, 200);
    let mut s = session(TrackSelection::All);
    let t0 = Instant::now();
    for d in tt.interleaved() {
        s.push_at(&d, t0, |len| Some(vec![0; len])).unwrap();
    }
    // A sender report on the audio track alone.
    let (sr_seq, sr) = tt.ap.sender_report(SenderReport::default());
    s.push_at(&sr, t0, |_| None).unwrap();
    while s.poll_event().is_some() {}
    let reports: Vec<(u16, ReceiverReport)> = sent(&mut s, t0 + Duration::from_millis(10))
        .into_iter()
        .filter_map(|(to, track, body, _)| match body {
            Body::ReceiverReport(r) => {
                assert_eq!(to, src());
                Some((track, r))
            }
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let (vt, v) = reports[0];
    let (at, a) = reports[1];
    // Video: info 0, frames 1..=8. Audio: info 1000, frames 1001 and 1002, report 1003.
    assert_eq!((vt, v.session, v.track), (0, 77, 0));
    assert_eq!((v.highest_seq, v.datagrams_received), (8, 9));
    assert_eq!((v.frames_complete, v.delay_us), (2, NO_DELAY));
    assert_eq!((at, a.session, a.track), (1, 77, 1));
    assert_eq!((a.highest_seq, a.datagrams_received), (AUDIO_SEQ + 3, 4));
    assert_eq!(a.frames_complete, 2);
    assert_eq!((a.echoed_report_seq, a.delay_us), (sr_seq, 10_000));
    // Frames of either track carry the session's clock, which the audio report gave.
    let f = tt
        .vp
        .frame(10, FrameMeta::default())
        .unwrap()
        .batch(&[0; 10], 0, 1)
        .parts(0)
        .concat();
    s.push_at(&f, t0, |len| Some(vec![0; len])).unwrap();
    match s.poll_ready() {
        Some(Event::Frame {
            track: 0, origin, ..
        }) => assert!(origin.report.is_some()),
        other => panic!("expected a video frame, got {other:?}"),
    }
}

#[test]
fn primary_follows_track_0_alone_and_counts_the_other_tracks_datagrams() {
    let tt = two_tracks(3, 200);
    let mut s = session(TrackSelection::Primary);
    let out = frames_out(&mut s, &tt.interleaved(), Instant::now());
    assert_eq!(of_track(&out, 0), tt.vfr);
    assert!(of_track(&out, 1).is_empty());
    assert_eq!(s.tracks(), [0]);
    let st = s.stats();
    // The audio info and three audio frames of one datagram each.
    assert_eq!(st.datagrams_other_track, 4);
    assert_eq!((st.datagrams_foreign, st.datagrams_invalid), (0, 0));
    // A single-stream subscriber asks for track 0 alone.
    let sender: SocketAddr = "192.0.2.9:5004".parse().unwrap();
    let mut payloads = Vec::new();
    for sel in [
        TrackSelection::Primary,
        TrackSelection::All,
        TrackSelection::Only(vec![1, 3]),
    ] {
        let mut s = session(sel);
        s.set_subscription(Some(sender));
        let out = sent(&mut s, Instant::now());
        assert!(matches!(out[0].2, Body::Subscribe(_)));
        payloads.push(out[0].3.clone());
    }
    assert_eq!(payloads, [vec![0, 0], vec![], vec![0, 1, 0, 3]]);
}

#[test]
fn only_track_1_gives_the_audio_alone() {
    let tt = two_tracks(3, 200);
    let mut s = session(TrackSelection::Only(vec![1]));
    let out = frames_out(&mut s, &tt.interleaved(), Instant::now());
    assert_eq!(of_track(&out, 1), tt.afr);
    assert!(of_track(&out, 0).is_empty());
    assert_eq!(s.tracks(), [1]);
    assert_eq!(
        s.session_id(),
        Some(77),
        "the audio's stream info locked on"
    );
    assert_eq!((s.info(), s.track_info(1)), (None, Some((0, AUDIO_CAPS))));
    let st = s.stats();
    // The video info came before the lock-on (foreign); its 12 fragments after it.
    assert_eq!((st.datagrams_foreign, st.datagrams_other_track), (1, 12));
}

#[test]
fn the_track_table_is_handed_out_and_replaced_only_by_a_newer_generation() {
    let tt = two_tracks(1, 200);
    let mut s = session(TrackSelection::All);
    let now = Instant::now();
    let table = [
        entry(0, TrackKind::Video, "video_0"),
        entry(1, TrackKind::Audio, "audio_0"),
    ];
    // Before any stream info: not the session followed, ignored.
    s.push_at(&tracks_datagram(77, 0, 5, &table), now, |_| None)
        .unwrap();
    assert_eq!(tables(&mut s), []);
    for d in tt.interleaved() {
        s.push_at(&d, now, |len| Some(vec![0; len])).unwrap();
    }
    s.push_at(&tracks_datagram(77, 1, 5, &table), now, |_| None)
        .unwrap();
    assert_eq!(tables(&mut s), [(77, 5, table.to_vec())]);
    // The same generation repeated, and an older one overtaken on the way: no change.
    let smaller = [entry(0, TrackKind::Video, "video_0")];
    s.push_at(&tracks_datagram(77, 2, 5, &table), now, |_| None)
        .unwrap();
    s.push_at(&tracks_datagram(77, 3, 4, &smaller), now, |_| None)
        .unwrap();
    assert_eq!(tables(&mut s), []);
    assert_eq!(s.track_table(), Some((5, &table[..])));
    // A newer generation replaces it, also across the wrap (serial number arithmetic).
    let bigger = [
        entry(0, TrackKind::Video, "video_0"),
        entry(1, TrackKind::Audio, "audio_0"),
        entry(2, TrackKind::Metadata, "meta_0"),
    ];
    for (seq, gen, t) in [
        (4, 0x7000, &bigger[..]),
        (5, 0xE000, &smaller),
        (6, 2, &table),
    ] {
        s.push_at(&tracks_datagram(77, seq, gen, t), now, |_| None)
            .unwrap();
    }
    assert_eq!(
        tables(&mut s),
        [
            (77, 0x7000, bigger.to_vec()),
            (77, 0xE000, smaller.to_vec()),
            (77, 2, table.to_vec())
        ]
    );
    // And 0x8003 is older than 2 (the other half of the circle).
    s.push_at(&tracks_datagram(77, 7, 0x8003, &bigger), now, |_| None)
        .unwrap();
    assert_eq!(tables(&mut s), []);
    assert_eq!(s.stats().datagrams_invalid, 0);
}

#[test]
fn a_forged_track_table_from_another_session_or_address_is_ignored() {
    let tt = two_tracks(1, 200);
    let mut s = session(TrackSelection::All);
    let now = Instant::now();
    for d in tt.interleaved() {
        s.push_at(&d, now, |len| Some(vec![0; len])).unwrap();
    }
    let table = [entry(0, TrackKind::Video, "video_0")];
    s.push_at(&tracks_datagram(77, 1, 1, &table), now, |_| None)
        .unwrap();
    assert_eq!(tables(&mut s).len(), 1);
    let foreign_before = s.stats().datagrams_foreign;
    let forged = [entry(9, TrackKind::Data, "evil")];
    let elsewhere = SocketAddr::from(([198, 51, 100, 7], 5004));
    // Another session id from the sender's address, and the right id from elsewhere.
    s.push_at(&tracks_datagram(78, 2, 2, &forged), now, |_| None)
        .unwrap();
    s.push(&tracks_datagram(77, 3, 2, &forged), elsewhere, now, |_| {
        None
    })
    .unwrap();
    assert_eq!(tables(&mut s), []);
    assert_eq!(s.track_table(), Some((1, &table[..])));
    assert_eq!(s.stats().datagrams_foreign, foreign_before + 2);
}

#[test]
fn eos_on_one_track_ends_only_that_track_and_the_session_ends_after_all() {
    let mut tt = two_tracks(1, 200);
    let mut s = session(TrackSelection::All);
    let t0 = Instant::now();
    for d in tt.interleaved() {
        s.push_at(&d, t0, |len| Some(vec![0; len])).unwrap();
    }
    while s.poll(t0).is_some() {}
    let ends = |s: &mut Session<Vec<u8>>, now| -> Vec<String> {
        s.handle_timeout(now);
        std::iter::from_fn(|| s.poll_event())
            .filter_map(|ev| match ev {
                Event::Eos { track } => Some(format!("eos {track}")),
                Event::End => Some("end".into()),
                Event::Frame { track, .. } => Some(format!("frame {track}")),
                _ => None,
            })
            .collect()
    };
    s.push_at(&tt.ap.eos_datagram(), t0, |_| None).unwrap();
    assert_eq!(ends(&mut s, t0), ["eos 1"]);
    // The video goes on; another session cannot take over the one still running.
    let f = tt
        .vp
        .frame(10, FrameMeta::default())
        .unwrap()
        .batch(&[3; 10], 0, 1)
        .parts(0)
        .concat();
    s.push_at(&f, t0, |len| Some(vec![0; len])).unwrap();
    s.push_at(&info_of(78, 0, 0, b"test"), t0, |_| None)
        .unwrap();
    assert_eq!(ends(&mut s, t0), ["frame 0"]);
    assert_eq!(s.session_id(), Some(77));
    // Its end ends the session, once.
    s.push_at(&tt.vp.eos_datagram(), t0, |_| None).unwrap();
    assert_eq!(ends(&mut s, t0), ["eos 0", "end"]);
    assert_eq!(
        ends(&mut s, t0 + Duration::from_secs(1)),
        Vec::<String>::new()
    );
    // Now another session takes over at once, and each of its tracks starts discontinuous.
    s.push_at(&info_of(78, 0, 0, b"test"), t0, |_| None)
        .unwrap();
    assert_eq!(s.session_id(), Some(78));
    let mut audio = Packetizer::new(78, 1, 0, 1400);
    let next = track_datagrams(&mut audio, AUDIO_CAPS, &frames(2, 100));
    let out = frames_out(
        &mut s,
        &[&next.info[..], &next.frames[0], &next.frames[1]].concat(),
        t0,
    );
    assert_eq!(
        out.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>(),
        [(1, true), (1, false)]
    );
    assert_eq!(s.tracks(), [0, 1]);
}

#[test]
fn a_lost_audio_datagram_is_asked_for_on_track_1_by_its_own_number() {
    let tt = two_tracks(3, 200);
    let mut s = session(TrackSelection::All);
    let t0 = Instant::now();
    let d = tt.interleaved();
    // Audio frame 1 (its sequence number 1002) is lost.
    let lost = &tt.audio.frames[1][0];
    assert_eq!(protocol::decode(lost).unwrap().header.seq, AUDIO_SEQ + 2);
    for x in d.iter().filter(|x| *x != lost) {
        s.push_at(x, t0, |len| Some(vec![0; len])).unwrap();
    }
    let nacks: Vec<_> = sent(&mut s, t0 + Duration::from_millis(3))
        .into_iter()
        .filter_map(|(_, track, body, payload)| match body {
            Body::Nack(n) => Some((
                track,
                n.track,
                protocol::nack_entries(&payload).collect::<Vec<_>>(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(nacks, [(1, 1, vec![(AUDIO_SEQ + 2, 1)])]);
    assert_eq!(s.track_stats(1).unwrap().datagrams_lost, 1);
    assert_eq!(s.track_stats(0).unwrap().datagrams_lost, 0);
}

#[test]
fn one_byte_budget_holds_for_all_tracks_and_a_big_track_cannot_starve_a_small_one() {
    let mut s = Session::<Vec<u8>>::new(Config {
        max_bytes_in_flight: 100_000,
        window: Duration::from_secs(100),
        tracks: TrackSelection::All,
        ..Default::default()
    });
    let now = Instant::now();
    s.push_at(
        &dgram_on(0, 77, 0, info_body(VIDEO_CAPS), VIDEO_CAPS.as_bytes()),
        now,
        |_| None,
    )
    .unwrap();
    s.push_at(
        &dgram_on(1, 77, 0, info_body(AUDIO_CAPS), AUDIO_CAPS.as_bytes()),
        now,
        |_| None,
    )
    .unwrap();
    let first_fragment = |track: u16, frame: u32, len: u32| {
        dgram_on(
            track,
            77,
            frame + 1,
            media_body(frame, len, 1000),
            &[0; 1000],
        )
    };
    let alloc = |len| Some(vec![0; len]);
    // Video holds 80,000 bytes in two incomplete frames.
    for f in 0..2 {
        s.push_at(&first_fragment(0, f, 40_000), now, alloc)
            .unwrap();
    }
    assert_eq!(s.bytes_in_flight(), 80_000);
    // Audio needs 30,000: video, holding more, gives back its oldest frame.
    s.push_at(&first_fragment(1, 0, 30_000), now, alloc)
        .unwrap();
    assert_eq!(s.bytes_in_flight(), 70_000);
    assert_eq!(s.track_stats(0).unwrap().frames_dropped, 1);
    // Another video frame fits only in place of video's own older frame, not audio's.
    s.push_at(&first_fragment(0, 2, 40_000), now, alloc)
        .unwrap();
    assert_eq!(s.bytes_in_flight(), 70_000);
    assert_eq!(s.track_stats(0).unwrap().frames_dropped, 2);
    assert_eq!(s.track_stats(1).unwrap().frames_dropped, 0);
    // A second audio frame of 75,000 does not fit even in place of audio's own older one,
    // and audio would then hold more than video's 40,000: video gives nothing back, and
    // the datagram is refused before anything is allocated.
    s.push_at(&first_fragment(1, 1, 75_000), now, |_| panic!("no room"))
        .unwrap();
    assert_eq!(s.bytes_in_flight(), 70_000);
    assert_eq!(s.stats().datagrams_invalid, 1);
}

/// A one-piece stream info body for `caps`.
fn info_body(caps: &str) -> Body {
    Body::StreamInfo(StreamInfo {
        caps_len: caps.len() as u32,
        ..Default::default()
    })
}

#[test]
fn arbitrary_datagrams_on_32_tracks_never_panic_or_exceed_the_byte_budget() {
    const BUDGET: usize = 150_000;
    let (_, mut next) = fuzzed(99);
    let mut s = Session::<Vec<u8>>::new(Config {
        max_frame_size: 1 << 16,
        max_in_flight: 3,
        window: Duration::from_millis(50),
        max_bytes_in_flight: BUDGET,
        tracks: TrackSelection::All,
        ..Default::default()
    });
    let t0 = Instant::now();
    // Stream info on 40 tracks of session 0: 32 lock on, the others are refused.
    for track in 0..40u16 {
        s.push_at(
            &dgram_on(track, 0, 0, info_body("test"), b"test"),
            t0,
            |_| None,
        )
        .unwrap();
    }
    assert_eq!(s.tracks().len(), MAX_TRACKS);
    assert_eq!(s.stats().datagrams_invalid, 8);
    let mut most = 0;
    for i in 0..40_000u64 {
        let track = match next() % 20 {
            0 => CONTROL_TRACK,
            1 => (next() % 0x1_0000) as u16,
            _ => (next() % 40) as u16,
        };
        let body = match next() % 10 {
            0 => info_body("test"),
            1 => Body::EndOfStream(EndOfStream::default()),
            2 => Body::Unknown(0x80),
            _ => {
                // Frame numbers that move on, as a stream's do, so frames keep opening.
                let mut m = Media {
                    frame: (i / 200) as u32 + (next() % 8) as u32,
                    frame_len: (next() % 70_000) as u32,
                    frag_size: (next() % 2000) as u16,
                    offset: (next() % 70_000) as u32,
                    ..Default::default()
                };
                if next() % 3 != 0 {
                    m.offset -= m.offset % u32::from(m.frag_size.max(1));
                }
                Body::Media(m)
            }
        };
        // Mostly a fragment's exact length, so that frames open and fill the budget.
        let exact = match body {
            Body::Media(m) if next() % 4 != 0 => {
                (m.frame_len.saturating_sub(m.offset)).min(u32::from(m.frag_size)) as usize
            }
            _ => (next() % 2100) as usize,
        };
        let session = next() % 2;
        let mut d = dgram_on(track, session, next() as u32, body, &[]);
        d.extend(std::iter::repeat_n(0u8, exact));
        if next() % 5 == 0 {
            let k = (next() as usize) % d.len();
            d[k] ^= 0xFF;
        }
        let now = t0 + Duration::from_micros(i * 10);
        let _ = s.push_at(&d, now, |len| Some(vec![0; len]));
        while s.poll(now).is_some() {}
        let _ = sent(&mut s, now);
        assert!(
            s.bytes_in_flight() <= BUDGET,
            "{} bytes",
            s.bytes_in_flight()
        );
        assert!(s.tracks.len() <= MAX_TRACKS);
        assert!(s.in_flight() <= 3 * MAX_TRACKS);
        assert!(s.assemblies.len() <= MAX_TRACKS);
        most = most.max(s.bytes_in_flight());
    }
    assert!(
        most > BUDGET * 2 / 3,
        "the budget was put to the test: {most} {:?}",
        s.stats()
    );
    let st = s.stats();
    assert_eq!(st.datagrams_received, 40_040);
    assert!(st.datagrams_invalid > 0 && st.datagrams_other_track == 0);
}

#[test]
fn protected_fragments_of_track_1_are_decrypted_into_their_frame_and_a_forged_one_leaves_no_trace()
{
    let master = MasterKey::from_passphrase("correct horse battery", KeyLength::Aes128).unwrap();
    // Audio frames of 3 fragments: all but the first are decrypted into their frame.
    let tt = two_tracks(2, 3000);
    let d = sealed(&tt.interleaved(), &master);
    let mut s = session(TrackSelection::All);
    s.protect(master);
    let now = Instant::now();
    // Layout: 2 infos, then per frame 4 video and 3 audio fragments. Audio frame 0 is at
    // 6..9: before its fragment 1 comes a forgery of it (a payload byte changed).
    let mut order: Vec<Vec<u8>> = d[..7].to_vec();
    let mut forged = d[7].clone();
    let at = forged.len() - 100;
    forged[at] ^= 0x55;
    order.push(forged);
    for x in &order {
        let _ = s.push_at(x, now, |len| Some(vec![0; len]));
    }
    // The genuine fragment is decrypted straight into its frame of track 1.
    assert!(
        s.open_into_frame(now, src(), &d[7]),
        "decrypted into its frame"
    );
    let out = frames_out(&mut s, &d[8..], now);
    assert_eq!(of_track(&out, 1), tt.afr);
    assert_eq!(of_track(&out, 0), tt.vfr);
    let st = s.stats();
    assert_eq!(st.datagrams_unauthenticated, 1);
    assert_eq!(st.frames_complete, 4);
}
