// SPDX-License-Identifier: MPL-2.0
//! The receiver session: datagrams in, frames and control datagrams out, without I/O.
//!
//! In the shape of quinn-proto's `Connection`: [`Session`] never touches a socket or a clock.
//! Its driver hands it every received datagram ([`Session::handle_datagram`], with the
//! instant it arrived) and tells it when a deadline passed ([`Session::handle_timeout`]);
//! it takes out what the session has for the element ([`Session::poll_event`]: frames with
//! their caps, stream changes, end of stream, warnings), the encoded datagrams to send and
//! where ([`Session::poll_transmit`]: receiver reports, NACKs, SUBSCRIBE), and when to call
//! again ([`Session::poll_timeout`]).
//!
//! Inside, one concern per file: [`lockon`] (which sender's session is followed),
//! [`track`] (which of its tracks are wanted, and each one's own state), [`info`] (stream
//! info assembled from pieces), [`sequence`] (loss accounting), [`reassembler`] (datagrams →
//! frames, bounded), [`fec`] (repairs at the receiver), [`recovery`] (NACK timing),
//! [`subscription`] (leases), [`health`] (warnings), and [`clock`] (the sender's clock →
//! local running time, applied by the element at output).
//!
//! # Tracks
//!
//! A session is followed as a whole (its id and address, PROTOCOL §8.2), and in it the
//! tracks [`Config::tracks`] selects (§8.11). Each wanted track locks on by its own stream
//! info and is then received on its own: its own reassembler, sequence and NACK tracking,
//! FEC, stream info, sender report, receiver reports and NACKs naming it, and end of
//! stream. Its frames come out in its own order and never wait for another track's. The
//! first complete acceptable stream info of a wanted track locks the session on; takeover
//! is decided for the session as a whole (silent for [`SESSION_IDLE`], or every track
//! followed ended). Datagrams of tracks not wanted are counted
//! ([`Stats::datagrams_other_track`]) and dropped before any per-track work. The session's
//! track table (TRACKS, on the control track) is kept at its newest generation.
//!
//! # Memory
//!
//! Bounded whatever the network sends. At most [`MAX_TRACKS`] tracks have state. Frame
//! data: per track at most `max_in_flight` frames, each at most `max_frame_size` bytes,
//! and **at most `max_bytes_in_flight` bytes across all tracks together** (one budget, not
//! one per track). A new frame that does not fit evicts its own track's older frames, then
//! the oldest frames of whichever track holds more bytes than its own track would with it;
//! otherwise its datagram is dropped (invalid). So no track can take the room another
//! holds less of. With each frame: its fragment bitmap (at most 1/8 of its length plus 8
//! bytes) and its FEC repairs (at most about its own length). Per track: its stream info
//! (at most 64 KiB in use, plus one assembly of 64 KiB and an 8 KiB bitmap), 512 bytes of
//! sequence accounting and at most [`recovery::MAX_MISSING`] missing numbers; plus one
//! assembly of another source's stream info (a takeover candidate) and a table of at most
//! [`MAX_TRACKS`] entries.

pub mod clock;
pub mod fec;
pub mod health;
pub mod info;
pub mod lockon;
pub mod reassembler;
pub mod recovery;
pub mod sequence;
pub mod subscription;
pub mod track;

pub use fec::FecPushed;
pub use health::Warning;
pub use lockon::{Source, SESSION_IDLE};
pub use reassembler::{Frame, FrameInfo, Pushed, Reassembler, MAX_FRAGMENTS, MAX_FRAME_JUMP};
pub use track::{TrackSelection, TrackStats};

use crate::crypto::{MasterKey, Protection, Refused, Side};
use crate::protocol::tracks::{self as table, TrackEntry, CONTROL_TRACK, MAX_TRACKS};
use crate::protocol::{
    self, header_flags, seq_diff, Body, CommonHeader, Nack, ReceiverReport, SenderReport,
    StreamInfo, MAX_CAPS_LEN, NO_DELAY,
};
use crate::ratelimit::RateLimit;
use health::Health;
use info::InfoAssembly;
use lockon::LockOn;
use reassembler::{NO_ROOM, TOO_LARGE};
use sequence::SeqEvent;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subscription::Subscription;
use track::Track;

/// What a session is set up with: reassembly limits, the tracks wanted, and the receiver's
/// own id.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest frame accepted, in bytes.
    pub max_frame_size: usize,
    /// Most frames assembled at once, per track.
    pub max_in_flight: usize,
    /// How long an incomplete frame waits for a missing datagram after its latest one
    /// arrived.
    pub window: Duration,
    /// Most bytes of frames being assembled at once, all tracks together. A new frame
    /// that would exceed it evicts older frames in flight if that makes room (see the
    /// module docs); otherwise its datagram is dropped. A frame longer than this is refused
    /// outright.
    pub max_bytes_in_flight: usize,
    /// This receiver's id, in the session field of what it sends (reports, NACKs,
    /// subscriptions). The driver picks a random one.
    pub id: u64,
    /// The tracks of the session followed that are received; the others' datagrams are
    /// counted and dropped.
    pub tracks: TrackSelection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 128 << 20,
            max_in_flight: 32,
            window: Duration::from_millis(50),
            max_bytes_in_flight: 256 << 20,
            id: 0,
            tracks: TrackSelection::Primary,
        }
    }
}

/// Counters of all tracks together, all monotonic except `datagrams_lost`, which a late
/// arrival corrects. Per track: [`Session::track_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received, valid or not.
    pub datagrams_received: u64,
    /// Bytes received, headers included.
    pub bytes_received: u64,
    /// Datagrams that were malformed, contradicted their frame, were too large, carried an
    /// authentication tag (not verifiable yet) or an unknown must-understand extension, or
    /// completed unacceptable caps.
    pub datagrams_invalid: u64,
    /// Datagrams of no session locked on to: before the first stream info, or from another
    /// session or source address while this one is active, or of a wanted track that has
    /// not locked on yet (no stream info).
    pub datagrams_foreign: u64,
    /// Datagrams of the session followed on tracks not wanted (dropped).
    pub datagrams_other_track: u64,
    /// Datagrams of a packet type this receiver does not know (ignored).
    pub datagrams_unknown: u64,
    /// Ignorable extensions of unknown type that were skipped.
    pub extensions_ignored: u64,
    /// Sequence numbers never seen (net of late arrivals).
    pub datagrams_lost: u64,
    /// Datagrams received twice.
    pub datagrams_duplicate: u64,
    /// Datagrams that arrived after a later one.
    pub datagrams_reordered: u64,
    /// Datagrams for frames already pushed or dropped.
    pub datagrams_late: u64,
    /// Frames complete and handed out.
    pub frames_complete: u64,
    /// Of those, frames that were complete only thanks to recovered datagrams.
    pub frames_recovered: u64,
    /// Frames dropped incomplete (window passed, evicted, or never seen at all).
    pub frames_dropped: u64,
    /// Complete frames dropped because their stream info (caps) had not arrived.
    pub frames_without_info: u64,
    /// Stream info datagrams (pieces) accepted.
    pub info_received: u64,
    /// Resent datagrams (retransmissions) received and kept.
    pub datagrams_retransmitted: u64,
    /// Datagrams asked for again (counted once per request).
    pub datagrams_requested: u64,
    /// NACKs sent (each request goes out as [`NACK_COPIES`] datagrams).
    pub nacks_sent: u64,
    /// Lost datagrams restored from FEC repair symbols.
    pub datagrams_recovered_fec: u64,
    /// Datagrams of frames larger than max-frame-size (also counted invalid).
    pub datagrams_too_large: u64,
    /// The largest frame length such a datagram claimed.
    pub largest_refused_frame: u32,
    /// CHALLENGEs taken from the sender followed or subscribed to (their cookie is echoed
    /// on what this receiver sends it from then on).
    pub challenges_received: u64,
    /// Datagrams dropped for authentication: with a passphrase, those without a tag or
    /// whose tag does not verify (they count as lost, and are asked for again); without one,
    /// those of an encrypted stream.
    pub datagrams_unauthenticated: u64,
    /// With a passphrase: authentic datagrams received before (replayed), dropped.
    pub datagrams_replayed: u64,
}

/// Least time between two warnings about datagrams dropped for authentication.
pub const AUTH_WARNING_INTERVAL: Duration = Duration::from_secs(2);

/// Copies sent of each NACK: a lost request costs a whole retry interval, a second copy
/// (a few hundred bytes) makes that rare; the sender answers a request once per
/// [`crate::send::history::RESEND_INTERVAL`], so the copy adds no resend.
pub const NACK_COPIES: usize = 2;

/// How often a receiver reports to the sender it is locked on to.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// What the socket layer knows of a datagram besides its bytes and arrival.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// It was cut short (longer than the receive slot): its bytes are not given, and it
    /// counts as received and invalid.
    pub truncated: bool,
}

/// Where a frame came from: the session it belongs to and what its sender said of its
/// clock (for [`clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The sender's session id.
    pub session: Option<u64>,
    /// The address it sends from.
    pub from: Option<SocketAddr>,
    /// Its latest sender report.
    pub report: Option<SenderReport>,
}

/// What a [`Session`] hands out.
#[derive(Debug)]
pub enum Event<B> {
    /// A complete frame of `track`, with the caps string of its stream info generation and
    /// where it came from.
    Frame {
        /// The track it belongs to.
        track: u16,
        /// The frame: bytes, timestamps, flags, arrival, discontinuity.
        frame: Frame<B>,
        /// The caps of its stream info generation.
        caps: Arc<str>,
        /// Its session and its sender's clock.
        origin: Origin,
    },
    /// A track's stream changed: it locked on (the first track of a session locks the
    /// session on), or announced new caps.
    Stream {
        /// The track.
        track: u16,
        /// The session followed.
        session: u64,
        /// The address it sends from.
        from: SocketAddr,
        /// Its caps now.
        caps: Arc<str>,
    },
    /// The session followed sent a newer track table: every track it has (the element can
    /// make its pads, and knows when it has them all).
    Tracks {
        /// The session.
        session: u64,
        /// The table's generation.
        generation: u16,
        /// Its tracks.
        tracks: Arc<[TrackEntry]>,
    },
    /// The sender ended `track` (after its frames still being recovered).
    Eos {
        /// The track that ended.
        track: u16,
    },
    /// Every track followed has ended (after their own [`Event::Eos`]): the session's end.
    End,
    /// Something the user must act on (at most once per kind per
    /// [`health::HEALTH_INTERVAL`]).
    Warning(Warning),
}

/// A datagram for the driver to send: encoded, with its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub destination: SocketAddr,
    /// How many identical copies to send (NACKs go out [`NACK_COPIES`] times).
    pub copies: usize,
    /// The datagram.
    pub contents: Vec<u8>,
}

/// One receiver's view of the session on its port: lock-on, the tracks wanted (each with
/// its own stream info, statistics, reassembly, recovery, reports and end of stream), the
/// track table, and subscription.
pub struct Session<B> {
    cfg: Config,
    lock: LockOn,
    /// The wanted tracks of the session followed that locked on, at most [`MAX_TRACKS`].
    tracks: Vec<Track<B>>,
    /// Stream info being assembled for wanted tracks of the session followed, one per
    /// track (at most [`MAX_TRACKS`]).
    assemblies: Vec<InfoAssembly>,
    /// Stream info of another source being assembled (to lock on, or take over).
    candidate: Option<InfoAssembly>,
    /// The track table of the session followed: generation and tracks.
    table: Option<(u16, Arc<[TrackEntry]>)>,
    /// The session followed replaced another: each of its tracks starts discontinuous.
    took_over: bool,
    /// The session's end was handed out.
    end_sent: bool,
    /// Counts of the tracks of sessions followed before.
    retired: TrackStats,
    /// The session's latest sender report, of any track: its sequence number, when it
    /// arrived, and what it said (every track shares one clock mapping).
    sender_report: Option<(u32, Instant, SenderReport)>,
    stats: Stats,
    subscription: Subscription,
    /// Closing: only the zero-lease SUBSCRIBE is still sent.
    closing: bool,
    health: Health,
    /// Stream changes and warnings not yet taken out.
    events: VecDeque<Event<B>>,
    /// The instant of the last [`handle_timeout`](Self::handle_timeout), until the frames
    /// whose window had passed by then are out.
    expired: Option<Instant>,
    /// The sequence number of the next datagram this receiver sends.
    out_seq: u32,
    /// The cookie the sender at this address challenged this receiver with, echoed on what
    /// is sent to it (PROTOCOL §7.11).
    cookie: Option<(SocketAddr, Vec<u8>)>,
    /// With a passphrase: opening what comes in, sealing what goes out.
    protection: Option<Protection>,
    auth_warning: RateLimit,
}

impl<B> std::fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("locked", &self.lock.locked())
            .field(
                "tracks",
                &self.tracks.iter().map(|t| t.id).collect::<Vec<_>>(),
            )
            .field("stats", &self.stats)
            .finish()
    }
}

impl<B: AsMut<[u8]>> Session<B> {
    /// A session that has not seen a stream yet.
    pub fn new(cfg: Config) -> Self {
        Session {
            cfg,
            lock: LockOn::default(),
            tracks: Vec::new(),
            assemblies: Vec::new(),
            candidate: None,
            table: None,
            took_over: false,
            end_sent: false,
            retired: TrackStats::default(),
            sender_report: None,
            stats: Stats::default(),
            subscription: Subscription::default(),
            closing: false,
            health: Health::default(),
            events: VecDeque::new(),
            expired: None,
            out_seq: 0,
            cookie: None,
            protection: None,
            auth_warning: RateLimit::new(AUTH_WARNING_INTERVAL),
        }
    }

    /// The index of wanted track `id` in `tracks`, if it locked on.
    fn index(&self, id: u16) -> Option<usize> {
        self.tracks.iter().position(|t| t.id == id)
    }

    /// Takes one received datagram, which came from `source` and arrived at `now` (when the
    /// kernel received it, where the socket says). `alloc(len)` is called when a new frame
    /// needs `len` bytes: the driver owns the memory frames are assembled in, as a
    /// quinn-proto caller owns the buffer `poll_transmit` writes to. Call
    /// [`poll_event`](Self::poll_event) after each datagram: complete frames not taken out
    /// still count against the frames in flight.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        meta: Meta,
        datagram: &mut [u8],
        alloc: impl FnOnce(usize) -> Option<B>,
    ) {
        self.stats.datagrams_received += 1;
        if meta.truncated {
            self.stats.datagrams_invalid += 1;
            return;
        }
        self.stats.bytes_received += datagram.len() as u64;
        let tagged = datagram
            .get(4)
            .is_some_and(|f| f & header_flags::AUTH_TAG != 0);
        if self.protection.is_some() {
            if tagged && self.open_into_frame(now, source, datagram) {
                return;
            }
            // Opened in place: nothing unauthenticated goes further, and nothing twice.
            if let Some(Err(why)) = self.protection.as_mut().map(|p| p.open(datagram)) {
                self.refused(now, source, why);
                return;
            }
        } else if tagged {
            self.refused(now, source, Refused::BadTag);
            return;
        }
        let Ok(p) = protocol::decode(datagram) else {
            self.stats.datagrams_invalid += 1;
            return;
        };
        self.accept(now, source, p, false, alloc);
    }

    /// A protected fragment of a frame being assembled, of a track followed, is verified
    /// and decrypted straight into its frame: the payload is read once, by the cipher, as
    /// an unprotected one is read once, by the copy. True when the datagram was dealt with
    /// here (taken or refused); false when it must be opened in place (any other datagram,
    /// the first of a frame, one already had).
    fn open_into_frame(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) -> bool {
        let Ok(p) = protocol::decode(datagram) else {
            return false;
        };
        let Body::Media(m) = &p.body else {
            return false;
        };
        let from = Source {
            session: p.header.session,
            from: source,
        };
        if !self.lock.follows(from) || !self.cfg.tracks.wants(p.header.track) {
            return false;
        }
        let Some(i) = self.index(p.header.track) else {
            return false;
        };
        let (Some(protection), Some(dst)) = (
            self.protection.as_mut(),
            self.tracks[i].reasm.place(m, p.payload.len()),
        ) else {
            return false;
        };
        match protection.open_into(datagram, dst) {
            Ok(_) => self.accept(now, source, p, true, |_| None),
            Err(why) => self.refused(now, source, why),
        }
        true
    }

    /// Acts on an authentic (or unprotected, without a passphrase) datagram. `placed`: its
    /// payload is already in its frame (see [`open_into_frame`](Self::open_into_frame)).
    fn accept(
        &mut self,
        now: Instant,
        source: SocketAddr,
        p: protocol::Packet<'_>,
        placed: bool,
        alloc: impl FnOnce(usize) -> Option<B>,
    ) {
        self.stats.extensions_ignored += u64::from(p.extensions.ignored);
        if let Body::Challenge(c) = p.body {
            self.challenged(source, c.receiver, p.payload);
            return;
        }
        let source = Source {
            session: p.header.session,
            from: source,
        };
        let ours = self.lock.follows(source);
        if ours {
            self.subscription.heard_from(source.from, now);
        }
        let track = p.header.track;
        let unknown = matches!(p.body, Body::Unknown(_));
        // Everything but stream info counts only from the session locked on to, from its
        // address: a flood of forged EOS or control datagrams with other ids cannot touch
        // the stream.
        let foreign = |s: &mut Stats| {
            if unknown {
                s.datagrams_unknown += 1;
            } else {
                s.datagrams_foreign += 1;
            }
        };
        if track == CONTROL_TRACK {
            if !ours {
                foreign(&mut self.stats);
                return;
            }
            self.lock.seen(now);
            match &p.body {
                Body::Tracks(t) => self.table_received(source.session, t.generation, p.payload),
                Body::Unknown(_) => self.stats.datagrams_unknown += 1,
                _ => {}
            }
            return;
        }
        if !self.cfg.tracks.wants(track) {
            if ours {
                // The session's activity all the same (§8.2): it is not silent.
                self.lock.seen(now);
                self.stats.datagrams_other_track += 1;
            } else {
                foreign(&mut self.stats);
            }
            return;
        }
        if let Body::StreamInfo(si) = &p.body {
            self.stream_info(source, ours, track, si, p.header.seq, p.payload, now);
            return;
        }
        // A wanted track counts from its own stream info on (§8.2).
        let Some(i) = self.index(track).filter(|_| ours) else {
            foreign(&mut self.stats);
            return;
        };
        if unknown {
            self.stats.datagrams_unknown += 1;
        }
        self.lock.seen(now);
        let t = &mut self.tracks[i];
        t.datagrams += 1;
        let resent = p.header.flags & header_flags::RETRANSMISSION != 0;
        let event = if resent {
            t.seq.track_resent(p.header.seq)
        } else {
            t.seq.track(p.header.seq)
        };
        if event == SeqEvent::Duplicate {
            return;
        }
        if resent {
            t.nacks.resent(p.header.seq, now);
            self.stats.datagrams_retransmitted += 1;
        } else {
            t.nacks.received(p.header.seq, now);
        }
        match &p.body {
            Body::Media(m) => self.media(i, m, p.header.seq, p.payload, placed, resent, now, alloc),
            Body::Fec(f) => {
                t.nacks.fec_seen(
                    p.header.seq,
                    f.first_seq,
                    f.protected_count,
                    f.repair_index,
                    f.repair_count,
                    now,
                );
                match t.reasm.push_fec(f, p.payload, now) {
                    FecPushed::Used | FecPushed::Unneeded => {}
                    FecPushed::Unknown => self.stats.datagrams_unknown += 1,
                    FecPushed::Invalid(_) => self.stats.datagrams_invalid += 1,
                }
            }
            Body::EndOfStream(_) => {
                t.ended = true;
                if self.tracks.iter().all(|t| t.ended) {
                    self.lock.end();
                }
            }
            Body::SenderReport(r) => {
                t.sender_report = Some((p.header.seq, now, *r));
                self.sender_report = Some((p.header.seq, now, *r));
            }
            // Understood, not acted on yet: metadata, and messages a
            // receiver should not get (receiver reports, NACKs, subscriptions, requests).
            _ => {}
        }
        let t = &mut self.tracks[i];
        for seq in t.reasm.take_recovered() {
            t.seq.recovered(seq);
            t.nacks.forget(seq);
            self.stats.datagrams_recovered_fec += 1;
        }
    }

    /// A media datagram of `tracks[i]`, new (not a duplicate), into its frame.
    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        i: usize,
        m: &protocol::Media,
        seq: u32,
        payload: &[u8],
        placed: bool,
        resent: bool,
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<B>,
    ) {
        let t = &mut self.tracks[i];
        if !resent {
            t.nacks.media_received(m, seq);
        }
        // A later frame has begun: every repair of the frames before it was sent.
        if t.newest_frame.is_none_or(|f| seq_diff(m.frame, f) > 0) {
            t.newest_frame = Some(m.frame);
            let idx = m.offset.checked_div(u32::from(m.frag_size)).unwrap_or(0);
            t.nacks.fec_release(seq.wrapping_sub(idx), seq);
        }
        let pushed = if placed {
            t.reasm.push_placed(m, seq, payload.len(), now)
        } else {
            // One byte budget for all tracks: this track may use what the others leave,
            // and may make the others give back room while they hold more than it would.
            let mut alloc = Some(alloc);
            let mut take = |len| alloc.take().and_then(|f| f(len));
            loop {
                let others = self.bytes_in_flight() - self.tracks[i].reasm.bytes_in_flight();
                let t = &mut self.tracks[i];
                t.reasm
                    .set_budget(self.cfg.max_bytes_in_flight.saturating_sub(others));
                let pushed = t.reasm.push(m, seq, payload, now, &mut take);
                if pushed != Pushed::Invalid(NO_ROOM) || !self.evict_for(i, m.frame_len) {
                    break pushed;
                }
            }
        };
        match pushed {
            Pushed::Accepted if resent => self.tracks[i].reasm.note_repaired(m.frame),
            Pushed::Accepted | Pushed::Duplicate => {}
            Pushed::Late => self.stats.datagrams_late += 1,
            Pushed::Invalid(why) if why == TOO_LARGE => {
                self.stats.datagrams_invalid += 1;
                self.stats.datagrams_too_large += 1;
                self.stats.largest_refused_frame =
                    self.stats.largest_refused_frame.max(m.frame_len);
            }
            Pushed::Invalid(_) | Pushed::NoBuffer => self.stats.datagrams_invalid += 1,
        }
    }

    /// Makes room for a new frame of `len` bytes of `tracks[i]`: drops the oldest frame of
    /// the track holding the most bytes in flight, if that is another track and it holds
    /// more than track `i` would with the new frame. False when no frame was dropped.
    fn evict_for(&mut self, i: usize, len: u32) -> bool {
        let want = self.tracks[i].reasm.bytes_in_flight() + len as usize;
        let largest = (0..self.tracks.len())
            .filter(|&j| j != i)
            .max_by_key(|&j| self.tracks[j].reasm.bytes_in_flight());
        match largest {
            Some(j) if self.tracks[j].reasm.bytes_in_flight() > want => {
                self.tracks[j].reasm.drop_oldest()
            }
            _ => false,
        }
    }

    /// A TRACKS datagram of the session followed: its table replaces the one kept when its
    /// generation is newer (serial number arithmetic), and is handed out.
    fn table_received(&mut self, session: u64, generation: u16, payload: &[u8]) {
        let newer = self
            .table
            .as_ref()
            .is_none_or(|(g, _)| (generation.wrapping_sub(*g) as i16) > 0);
        if !newer {
            return;
        }
        // Validated when decoded; a table that does not decode is invalid all the same.
        let Ok(entries) = table::decode(payload) else {
            self.stats.datagrams_invalid += 1;
            return;
        };
        let tracks: Arc<[TrackEntry]> = entries.into();
        self.table = Some((generation, tracks.clone()));
        self.events.push_back(Event::Tracks {
            session,
            generation,
            tracks,
        });
    }

    /// Protects everything this receiver sends from now on with `master` (a passphrase's
    /// key), and takes only what it authenticates (PROTOCOL §4.2).
    pub fn protect(&mut self, master: Arc<MasterKey>) {
        self.protection = Some(Protection::new(master, Side::Receiver));
    }

    /// Counts a datagram dropped for authentication, and warns (rate-limited) when the user
    /// must act: a missing, wrong or unneeded passphrase.
    fn refused(&mut self, now: Instant, from: SocketAddr, why: Refused) {
        if why == Refused::Replayed {
            self.stats.datagrams_replayed += 1;
            return;
        }
        self.stats.datagrams_unauthenticated += 1;
        if self.auth_warning.check(now).is_none() {
            return;
        }
        let datagrams = self.stats.datagrams_unauthenticated;
        self.events
            .push_back(Event::Warning(match (why, &self.protection) {
                (_, None) => Warning::Encrypted { datagrams, from },
                (Refused::Unprotected, Some(_)) => Warning::Unprotected { datagrams, from },
                _ => Warning::BadTag { datagrams, from },
            }));
    }

    /// A CHALLENGE from `from`: taken when it names this receiver and comes from the sender
    /// followed or subscribed to (anything else is someone else's, or forged).
    fn challenged(&mut self, from: SocketAddr, receiver: u64, cookie: &[u8]) {
        let followed = self.lock.locked().is_some_and(|l| l.from == from);
        let target = self.subscription.target() == Some(from);
        if receiver != self.cfg.id || !(followed || target) {
            self.stats.datagrams_foreign += 1;
            return;
        }
        self.stats.challenges_received += 1;
        self.cookie = Some((from, cookie.to_vec()));
        if target {
            // The sender takes the subscription only with the cookie: renew it now.
            self.subscription.renew_now();
        }
    }

    /// A stream info piece of wanted track `track`: assembled, and once complete and
    /// acceptable, stored (locking the track on, and the session first if it may).
    #[allow(clippy::too_many_arguments)]
    fn stream_info(
        &mut self,
        source: Source,
        ours: bool,
        track: u16,
        si: &StreamInfo,
        seq: u32,
        piece: &[u8],
        now: Instant,
    ) {
        let len = (si.caps_len as usize).min(MAX_CAPS_LEN);
        let matches = |a: &InfoAssembly| {
            a.source == source && a.track == track && a.gen == si.info_gen && a.buf.len() == len
        };
        let complete = if ours {
            self.lock.seen(now);
            if let Some(t) = self.tracks.iter_mut().find(|t| t.id == track) {
                t.datagrams += 1;
                if t.seq.track(seq) == SeqEvent::Duplicate {
                    return;
                }
                t.nacks.received(seq, now);
                // A piece of the info in use, repeated: only remember how recent it is.
                if let Some(info) = &mut t.info {
                    if info.repeated_by(si, piece, seq) {
                        self.stats.info_received += 1;
                        return;
                    }
                }
            }
            let pos = match self.assemblies.iter().position(|a| a.track == track) {
                Some(k) if matches(&self.assemblies[k]) => k,
                Some(k) => {
                    self.assemblies[k] = InfoAssembly::new(source, track, si.info_gen, len, seq);
                    k
                }
                // One per track followed, so at most MAX_TRACKS (of tracks that can lock on).
                None if self.assemblies.len() < MAX_TRACKS => {
                    self.assemblies
                        .push(InfoAssembly::new(source, track, si.info_gen, len, seq));
                    self.assemblies.len() - 1
                }
                None => {
                    self.stats.datagrams_invalid += 1;
                    return;
                }
            };
            self.stats.info_received += 1;
            if !self.assemblies[pos].add(si.offset as usize, piece, seq) {
                return;
            }
            self.assemblies.swap_remove(pos)
        } else {
            if !self.lock.open_to_others(now) {
                self.stats.datagrams_foreign += 1;
                return;
            }
            if !self.candidate.as_ref().is_some_and(matches) {
                self.candidate = Some(InfoAssembly::new(source, track, si.info_gen, len, seq));
            }
            self.stats.info_received += 1;
            let done = self
                .candidate
                .as_mut()
                .is_some_and(|a| a.add(si.offset as usize, piece, seq));
            match self.candidate.take() {
                Some(a) if done => a,
                other => {
                    self.candidate = other;
                    return;
                }
            }
        };
        let Ok(caps) = protocol::check_caps_bytes(&complete.buf) else {
            self.stats.datagrams_invalid += 1;
            return;
        };
        if !ours {
            self.switch_to(source, now);
        }
        let i = match self.index(track) {
            Some(i) => i,
            None if self.tracks.len() < MAX_TRACKS => {
                let mut t = Track::new(track, &self.cfg);
                if self.took_over {
                    // The stream replaced another: it starts discontinuous.
                    t.reasm.mark_discont();
                }
                t.seq.track(seq);
                t.datagrams += 1;
                self.tracks.push(t);
                // A track that goes on: the session has not ended after all.
                self.lock.resume();
                self.end_sent = false;
                self.tracks.len() - 1
            }
            None => {
                self.stats.datagrams_invalid += 1;
                return;
            }
        };
        let t = &mut self.tracks[i];
        if info::store(&mut t.info, &complete, caps) {
            if let Some(info) = &t.info {
                self.events.push_back(Event::Stream {
                    track,
                    session: source.session,
                    from: source.from,
                    caps: info.caps.clone(),
                });
            }
        }
    }

    /// Follows `source` from now on: a new session, its tracks to lock on afresh.
    fn switch_to(&mut self, source: Source, now: Instant) {
        self.took_over = self.lock.lock(source, now);
        for t in self.tracks.drain(..) {
            self.retired.add(&t.stats());
        }
        self.assemblies.clear();
        self.table = None;
        self.sender_report = None;
        self.end_sent = false;
    }

    /// Says that `now` has come: frames whose reassembly window passed by then are dropped,
    /// the end of stream given once nothing is left to recover, and the counters looked at
    /// for warnings (all as [`poll_event`](Self::poll_event) is called).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expired = Some(now);
    }

    /// The next event: a stream change, table or warning, a complete frame whose stream
    /// info is known, a track's end of stream, or the session's end. Each track's frames
    /// come out in its order, as soon as they are complete, whatever the other tracks
    /// wait for. Frames whose window has passed are dropped only as of the last
    /// [`handle_timeout`](Self::handle_timeout).
    pub fn poll_event(&mut self) -> Option<Event<B>> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            for i in 0..self.tracks.len() {
                while let Some(f) = self.tracks[i].reasm.pop_ready() {
                    if let Some(ev) = self.frame_event(i, f) {
                        return Some(ev);
                    }
                }
            }
            let now = self.expired?;
            for i in 0..self.tracks.len() {
                while let Some(f) = self.tracks[i].reasm.poll(now) {
                    if let Some(ev) = self.frame_event(i, f) {
                        return Some(ev);
                    }
                }
            }
            // A track's end once its frames still being recovered are complete or given
            // up: the sender's end-of-stream datagram overtakes the resends they wait for.
            for t in &mut self.tracks {
                if t.ended && t.reasm.in_flight() == 0 && !t.eos_sent {
                    t.eos_sent = true;
                    return Some(Event::Eos { track: t.id });
                }
            }
            if !self.end_sent && !self.tracks.is_empty() && self.tracks.iter().all(|t| t.eos_sent) {
                self.end_sent = true;
                return Some(Event::End);
            }
            self.expired = None;
            let warnings = self.health.check(now, self.stats());
            if warnings.is_empty() {
                return None;
            }
            self.events.extend(warnings.into_iter().map(Event::Warning));
        }
    }

    fn frame_event(&mut self, i: usize, f: Frame<B>) -> Option<Event<B>> {
        let origin = Origin {
            session: self.session_id(),
            from: self.source_addr(),
            report: None,
        };
        let t = &mut self.tracks[i];
        match &t.info {
            Some(info) if info.gen == f.info.info_gen => Some(Event::Frame {
                track: t.id,
                frame: f,
                caps: info.caps.clone(),
                origin: Origin {
                    report: t.sender_report.or(self.sender_report).map(|(_, _, r)| r),
                    ..origin
                },
            }),
            _ => {
                self.stats.frames_without_info += 1;
                t.reasm.mark_discont();
                None
            }
        }
    }

    /// The next datagram to send, if one is due at `now`: per track followed, a receiver
    /// report every [`REPORT_INTERVAL`] (the first at once) and a NACK for its datagrams
    /// due to be asked for again; a SUBSCRIBE when one is due. Call until None after every
    /// [`handle_datagram`](Self::handle_datagram) batch and
    /// [`handle_timeout`](Self::handle_timeout). While the driver reads a backlog, `now` is
    /// the arrival of the latest datagram it read: a frame's end still queued in the socket
    /// is not yet missing.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if !self.closing {
            if let Some(source) = self.lock.locked() {
                for i in 0..self.tracks.len() {
                    if let Some(report) = self.report_due(i, source, now) {
                        let body = Body::ReceiverReport(report);
                        return self.control(source.from, report.track, &body, &[], 1);
                    }
                }
                for i in 0..self.tracks.len() {
                    if let Some(ranges) = self.nack_due(i, now) {
                        let track = self.tracks[i].id;
                        let nack = Body::Nack(Nack {
                            session: source.session,
                            track,
                        });
                        let mut payload = Vec::with_capacity(8 * ranges.len());
                        for &(first, count) in &ranges {
                            protocol::push_nack_entry(&mut payload, first, count);
                        }
                        return self.control(source.from, track, &nack, &payload, NACK_COPIES);
                    }
                }
            }
        }
        let (to, lease) = self.subscription.poll(now)?;
        let body = Body::Subscribe(protocol::Subscribe {
            session: 0,
            lease_ms: lease.as_millis().min(u128::from(u32::MAX)) as u32,
            flags: 0,
        });
        let payload = self.cfg.tracks.subscribe_payload();
        self.control(to, 0, &body, &payload, 1)
    }

    /// When [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_transmit`](Self::poll_transmit) may next have something to do without new
    /// datagrams.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let locked = self.lock.locked().is_some() && !self.closing;
        let tracks = self.tracks.iter().flat_map(|t| {
            let report = t.report_at.filter(|_| locked);
            let nack = t.nacks.next_deadline().filter(|_| locked);
            [t.reasm.next_deadline(), report, nack]
        });
        tracks
            .chain([self.subscription.next_deadline()])
            .flatten()
            .min()
    }

    /// One datagram of this receiver's own (its id, its next sequence number), with
    /// `payload`, for `copies` sends to `to`.
    fn control(
        &mut self,
        to: SocketAddr,
        track: u16,
        body: &Body,
        payload: &[u8],
        copies: usize,
    ) -> Option<Transmit> {
        let header = CommonHeader {
            flags: 0,
            track,
            session: self.cfg.id,
            seq: self.out_seq,
        };
        self.out_seq = self.out_seq.wrapping_add(1);
        let mut contents = Vec::with_capacity(84 + payload.len());
        let cookie = self.cookie.as_ref().filter(|(a, _)| *a == to);
        let ext: &[protocol::Extension<'_>] = match cookie {
            Some((_, value)) => &[protocol::Extension::Other {
                kind: protocol::ext::COOKIE,
                value,
            }],
            None => &[],
        };
        protocol::encode(&header, ext, body, &mut contents).ok()?;
        match self.protection.as_mut() {
            Some(p) => {
                let mut sealed = Vec::with_capacity(contents.len() + payload.len() + 28);
                if !p.seal(&contents, payload, &mut sealed) {
                    return None;
                }
                contents = sealed;
            }
            None => contents.extend_from_slice(payload),
        }
        Some(Transmit {
            destination: to,
            copies,
            contents,
        })
    }

    /// The datagrams of `tracks[i]` to ask the locked session to send again, if any are due.
    fn nack_due(&mut self, i: usize, now: Instant) -> Option<Vec<(u32, u32)>> {
        let ranges = self.tracks[i].nacks.poll(now)?;
        self.stats.datagrams_requested += ranges.iter().map(|r| u64::from(r.1)).sum::<u64>();
        self.stats.nacks_sent += 1;
        Some(ranges)
    }

    /// The receiver report on `tracks[i]` to send now, if one is due: every
    /// [`REPORT_INTERVAL`], the first at once.
    fn report_due(&mut self, i: usize, source: Source, now: Instant) -> Option<ReceiverReport> {
        let t = &mut self.tracks[i];
        if t.report_at.is_some_and(|at| now < at) {
            return None;
        }
        t.report_at = Some(now + REPORT_INTERVAL);
        Some(self.receiver_report(i, source, now))
    }

    /// The report on `tracks[i]` to send the sender now, naming the track and carrying its
    /// counts and sequence numbers. It echoes the track's latest sender report's sequence
    /// number and how long ago it came, so that the sender can measure the round trip.
    fn receiver_report(&self, i: usize, source: Source, now: Instant) -> ReceiverReport {
        let t = &self.tracks[i];
        let s = t.stats();
        let (echo_seq, delay_us) = match t.sender_report {
            Some((seq, at, _)) => (
                seq,
                u32::try_from(now.saturating_duration_since(at).as_micros())
                    .unwrap_or(NO_DELAY - 1),
            ),
            None => (0, NO_DELAY),
        };
        ReceiverReport {
            session: source.session,
            track: t.id,
            highest_seq: t.seq.highest().unwrap_or(0),
            datagrams_received: s.datagrams_received,
            datagrams_lost: s.datagrams_lost,
            frames_complete: s.frames_complete as u32,
            frames_dropped: s.frames_dropped as u32,
            echoed_report_seq: echo_seq,
            delay_us,
        }
    }

    /// Subscribes to the sender at `target` (None: to nobody; a change leaves the old one
    /// at once). What to send comes out of [`poll_transmit`](Self::poll_transmit); the
    /// SUBSCRIBE lists the tracks wanted ([`TrackSelection::subscribe_payload`]).
    pub fn set_subscription(&mut self, target: Option<SocketAddr>) {
        self.set_subscription_candidates(target.into_iter().collect());
    }

    /// Subscribes to the first of `candidates` (addresses of one source, then of others of
    /// its name), and to the next whenever one gives no stream this receiver takes for
    /// [`subscription::TRY_NEXT_AFTER`]: with a passphrase, a forged announcement that put
    /// an attacker's address first costs that long, then the real source plays.
    pub fn set_subscription_candidates(&mut self, candidates: Vec<SocketAddr>) {
        if !self.closing {
            self.subscription.set_candidates(candidates);
        }
    }

    /// The receiver stops: the sender subscribed to is left (a zero lease, from
    /// [`poll_transmit`](Self::poll_transmit)) rather than left to wait for the lease to
    /// lapse, and nothing else is sent.
    pub fn close(&mut self) {
        self.subscription.set_target(None);
        self.closing = true;
    }

    /// Rejects the current stream info of `track` (its caps could not be used): counted
    /// invalid, and its frames wait for its next stream info.
    pub fn reject_info(&mut self, track: u16) {
        if let Some(t) = self.tracks.iter_mut().find(|t| t.id == track) {
            if t.info.take().is_some() {
                self.stats.datagrams_invalid += 1;
            }
        }
        // A session without a track of usable caps is not worth staying locked on to: the
        // next valid stream info, from it or from another sender, locks on afresh.
        if self.tracks.iter().all(|t| t.info.is_none()) {
            self.lock.release();
        }
    }

    /// The round trip to the sender, as measured from requests to the resends they brought
    /// (on the first track that measured it: all tracks share the path).
    pub fn rtt(&self) -> Option<Duration> {
        self.tracks.iter().find_map(|t| t.nacks.rtt())
    }

    /// The locked session's latest sender report (what it said), of any track, if one came.
    pub fn sender_report(&self) -> Option<SenderReport> {
        self.sender_report.map(|(_, _, r)| r)
    }

    /// The current stream info of track 0 (the primary): generation and caps string.
    pub fn info(&self) -> Option<(u16, &str)> {
        self.track_info(0)
    }

    /// The current stream info of `track`, if it is followed: generation and caps string.
    pub fn track_info(&self, track: u16) -> Option<(u16, &str)> {
        let t = self.tracks.iter().find(|t| t.id == track)?;
        t.info.as_ref().map(|i| (i.gen, &*i.caps))
    }

    /// The tracks followed (locked on by their stream info), in the order they locked on.
    pub fn tracks(&self) -> Vec<u16> {
        self.tracks.iter().map(|t| t.id).collect()
    }

    /// The track table of the session followed, if it sent one: generation and tracks.
    pub fn track_table(&self) -> Option<(u16, &[TrackEntry])> {
        self.table.as_ref().map(|(g, t)| (*g, &t[..]))
    }

    /// The counts of `track`, if it is followed (since it locked on).
    pub fn track_stats(&self, track: u16) -> Option<TrackStats> {
        self.tracks.iter().find(|t| t.id == track).map(Track::stats)
    }

    /// The statistics so far, of all tracks together.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        let mut all = self.retired;
        for t in &self.tracks {
            all.add(&t.stats());
        }
        s.datagrams_lost = all.datagrams_lost;
        s.datagrams_duplicate = all.datagrams_duplicate;
        s.datagrams_reordered = all.datagrams_reordered;
        s.frames_complete = all.frames_complete;
        s.frames_dropped = all.frames_dropped;
        s.frames_recovered = all.frames_recovered;
        s
    }

    /// The session id locked on to, if any.
    pub fn session_id(&self) -> Option<u64> {
        self.lock.locked().map(|l| l.session)
    }

    /// The address the session locked on to sends from.
    pub fn source_addr(&self) -> Option<SocketAddr> {
        self.lock.locked().map(|l| l.from)
    }

    /// Frames being assembled, all tracks together.
    pub fn in_flight(&self) -> usize {
        self.tracks.iter().map(|t| t.reasm.in_flight()).sum()
    }

    /// Bytes of the frames being assembled, all tracks together (at most
    /// `max_bytes_in_flight`).
    pub fn bytes_in_flight(&self) -> usize {
        self.tracks.iter().map(|t| t.reasm.bytes_in_flight()).sum()
    }

    /// Bytes of FEC repair symbols kept with them.
    pub fn fec_bytes(&self) -> usize {
        self.tracks.iter().map(|t| t.reasm.fec_bytes()).sum()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
