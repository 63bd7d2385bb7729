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
//! [`info`] (stream info assembled from pieces), [`sequence`] (loss accounting),
//! [`reassembler`] (datagrams → frames, bounded), [`fec`] (repairs at the receiver),
//! [`recovery`] (NACK timing), [`subscription`] (leases), [`health`] (warnings), and
//! [`clock`] (the sender's clock → local running time, applied by the element at output).

pub mod clock;
pub mod fec;
pub mod health;
pub mod info;
pub mod lockon;
pub mod reassembler;
pub mod recovery;
pub mod sequence;
pub mod subscription;

pub use fec::FecPushed;
pub use health::Warning;
pub use lockon::{Source, SESSION_IDLE};
pub use reassembler::{Frame, FrameInfo, Pushed, Reassembler, MAX_FRAGMENTS, MAX_FRAME_JUMP};

use crate::crypto::{MasterKey, Protection, Refused, Side};
use crate::protocol::{
    self, header_flags, seq_diff, Body, CommonHeader, Nack, ReceiverReport, SenderReport,
    StreamInfo, MAX_CAPS_LEN, NO_DELAY,
};
use crate::ratelimit::RateLimit;
use health::Health;
use info::{InfoAssembly, StoredInfo};
use lockon::LockOn;
use reassembler::TOO_LARGE;
use recovery::NackTracker;
use sequence::{SeqEvent, SequenceTracker};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subscription::Subscription;

/// What a session is set up with: reassembly limits, and the receiver's own id.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Largest frame accepted, in bytes.
    pub max_frame_size: usize,
    /// Most frames assembled at once.
    pub max_in_flight: usize,
    /// How long an incomplete frame waits for a missing datagram after its latest one
    /// arrived.
    pub window: Duration,
    /// Most bytes of frames being assembled at once. A new frame that would exceed it
    /// evicts older frames in flight if that makes room; otherwise its datagram is dropped.
    /// A frame longer than this is refused outright.
    pub max_bytes_in_flight: usize,
    /// This receiver's id, in the session field of what it sends (reports, NACKs,
    /// subscriptions). The driver picks a random one.
    pub id: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 128 << 20,
            max_in_flight: 32,
            window: Duration::from_millis(50),
            max_bytes_in_flight: 256 << 20,
            id: 0,
        }
    }
}

/// Counters, all monotonic except `datagrams_lost`, which a late arrival corrects.
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
    /// session or source address while this one is active.
    pub datagrams_foreign: u64,
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
    /// A complete frame, with the caps string of its stream info generation and where it
    /// came from.
    Frame {
        /// The frame: bytes, timestamps, flags, arrival, discontinuity.
        frame: Frame<B>,
        /// The caps of its stream info generation.
        caps: Arc<str>,
        /// Its session and its sender's clock.
        origin: Origin,
    },
    /// The stream changed: a session was locked on to, or announced new caps.
    Stream {
        /// The session followed.
        session: u64,
        /// The address it sends from.
        from: SocketAddr,
        /// Its caps now.
        caps: Arc<str>,
    },
    /// The sender ended the stream (after the frames still being recovered).
    Eos,
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

/// One receiver's view of the stream on its port: lock-on, stream info, statistics,
/// reassembly, recovery, reports, subscription and end of stream.
pub struct Session<B> {
    cfg: Config,
    reasm: Reassembler<B>,
    seq: SequenceTracker,
    lock: LockOn,
    info: Option<StoredInfo>,
    assembly: Option<InfoAssembly>,
    /// The locked session's latest sender report: its sequence number, when it arrived, and
    /// what it said.
    sender_report: Option<(u32, Instant, SenderReport)>,
    /// When the next receiver report is due.
    report_at: Option<Instant>,
    /// Missing datagrams of the locked session, and when to ask for them.
    nacks: NackTracker,
    /// The newest frame number a media datagram carried.
    newest_frame: Option<u32>,
    eos_sent: bool,
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
            .field("info", &self.info)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<B: AsMut<[u8]>> Session<B> {
    /// A session that has not seen a stream yet.
    pub fn new(cfg: Config) -> Self {
        Session {
            cfg,
            reasm: Reassembler::new(cfg),
            seq: SequenceTracker::default(),
            lock: LockOn::default(),
            info: None,
            assembly: None,
            sender_report: None,
            report_at: None,
            nacks: NackTracker::new(recovery::Config {
                give_up: cfg.window,
                // FEC first, but leave NACKs two fifths of the window.
                fec_wait: cfg.window * 3 / 5,
                ..Default::default()
            }),
            newest_frame: None,
            eos_sent: false,
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

    /// A protected fragment of a frame being assembled, from the stream locked on to, is
    /// verified and decrypted straight into its frame: the payload is read once, by the
    /// cipher, as an unprotected one is read once, by the copy. True when the datagram was
    /// dealt with here (taken or refused); false when it must be opened in place (any other
    /// datagram, the first of a frame, one already had).
    fn open_into_frame(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) -> bool {
        let Ok(p) = protocol::decode(datagram) else {
            return false;
        };
        let Body::Media(m) = &p.body else {
            return false;
        };
        let from = Source {
            session: p.header.session,
            track: p.header.track,
            from: source,
        };
        if !self.lock.follows(from) {
            return false;
        }
        let (Some(protection), Some(dst)) = (
            self.protection.as_mut(),
            self.reasm.place(m, p.payload.len()),
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
            track: p.header.track,
            from: source,
        };
        let ours = self.lock.follows(source);
        if ours {
            self.subscription.heard_from(source.from, now);
        }
        if let Body::StreamInfo(si) = &p.body {
            self.stream_info(source, ours, si, p.header.seq, p.payload, now);
            return;
        }
        if let Body::Unknown(_) = p.body {
            self.stats.datagrams_unknown += 1;
        }
        // Everything else counts only from the session locked on to, from its address: a
        // flood of forged EOS or control datagrams with other ids cannot touch the stream.
        if !ours {
            if !matches!(p.body, Body::Unknown(_)) {
                self.stats.datagrams_foreign += 1;
            }
            return;
        }
        self.lock.seen(now);
        let resent = p.header.flags & header_flags::RETRANSMISSION != 0;
        let event = if resent {
            self.seq.track_resent(p.header.seq)
        } else {
            self.seq.track(p.header.seq)
        };
        if event == SeqEvent::Duplicate {
            return;
        }
        if resent {
            self.nacks.resent(p.header.seq, now);
            self.stats.datagrams_retransmitted += 1;
        } else {
            self.nacks.received(p.header.seq, now);
        }
        match &p.body {
            Body::Media(m) => {
                if !resent {
                    self.nacks.media_received(m, p.header.seq);
                }
                // A later frame has begun: every repair of the frames before it was sent.
                if self.newest_frame.is_none_or(|f| seq_diff(m.frame, f) > 0) {
                    self.newest_frame = Some(m.frame);
                    let idx = m.offset.checked_div(u32::from(m.frag_size)).unwrap_or(0);
                    self.nacks
                        .fec_release(p.header.seq.wrapping_sub(idx), p.header.seq);
                }
                let pushed = if placed {
                    self.reasm
                        .push_placed(m, p.header.seq, p.payload.len(), now)
                } else {
                    self.reasm.push(m, p.header.seq, p.payload, now, alloc)
                };
                match pushed {
                    Pushed::Accepted if resent => self.reasm.note_repaired(m.frame),
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
            Body::Fec(f) => {
                self.nacks.fec_seen(
                    p.header.seq,
                    f.first_seq,
                    f.protected_count,
                    f.repair_index,
                    f.repair_count,
                    now,
                );
                match self.reasm.push_fec(f, p.payload, now) {
                    FecPushed::Used | FecPushed::Unneeded => {}
                    FecPushed::Unknown => self.stats.datagrams_unknown += 1,
                    FecPushed::Invalid(_) => self.stats.datagrams_invalid += 1,
                }
            }
            Body::EndOfStream(_) => self.lock.end(),
            Body::SenderReport(r) => self.sender_report = Some((p.header.seq, now, *r)),
            // Understood, not acted on yet: metadata, and messages a
            // receiver should not get (receiver reports, NACKs, subscriptions, requests).
            _ => {}
        }
        for seq in self.reasm.take_recovered() {
            self.seq.recovered(seq);
            self.nacks.forget(seq);
            self.stats.datagrams_recovered_fec += 1;
        }
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

    /// A stream info piece: assembled, and once complete and acceptable, stored (locking on
    /// to its session first if it may).
    fn stream_info(
        &mut self,
        source: Source,
        ours: bool,
        si: &StreamInfo,
        seq: u32,
        piece: &[u8],
        now: Instant,
    ) {
        if ours {
            self.lock.seen(now);
            if self.seq.track(seq) == SeqEvent::Duplicate {
                return;
            }
            self.nacks.received(seq, now);
            // A piece of the info in use, repeated: only remember how recent it is.
            if let Some(info) = &mut self.info {
                if info.repeated_by(si, piece, seq) {
                    self.stats.info_received += 1;
                    return;
                }
            }
        } else if !self.lock.open_to_others(now) {
            self.stats.datagrams_foreign += 1;
            return;
        }
        let len = (si.caps_len as usize).min(MAX_CAPS_LEN);
        let same = self
            .assembly
            .as_ref()
            .is_some_and(|a| a.source == source && a.gen == si.info_gen && a.buf.len() == len);
        if !same {
            self.assembly = Some(InfoAssembly::new(source, si.info_gen, len, seq));
        }
        self.stats.info_received += 1;
        let complete = self
            .assembly
            .as_mut()
            .is_some_and(|a| a.add(si.offset as usize, piece, seq));
        if !complete {
            return;
        }
        let Some(a) = self.assembly.take() else {
            return;
        };
        let Ok(caps) = protocol::check_caps_bytes(&a.buf) else {
            self.stats.datagrams_invalid += 1;
            return;
        };
        if !ours {
            self.switch_to(source, now);
            self.seq.track(seq);
        }
        if info::store(&mut self.info, &a, caps) {
            if let Some(i) = &self.info {
                self.events.push_back(Event::Stream {
                    session: source.session,
                    from: source.from,
                    caps: i.caps.clone(),
                });
            }
        }
    }

    /// Follows `source` from now on: a new stream.
    fn switch_to(&mut self, source: Source, now: Instant) {
        let had_lock = self.lock.lock(source, now);
        self.reasm.reset();
        if had_lock {
            // Whatever the old session left behind, the new one starts a new stream.
            self.reasm.mark_discont();
        }
        self.seq = SequenceTracker::default();
        self.nacks.reset();
        self.newest_frame = None;
        self.info = None;
        self.sender_report = None;
        self.eos_sent = false;
    }

    /// Says that `now` has come: frames whose reassembly window passed by then are dropped,
    /// the end of stream given once nothing is left to recover, and the counters looked at
    /// for warnings (all as [`poll_event`](Self::poll_event) is called).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expired = Some(now);
    }

    /// The next event: a stream change or warning, a complete frame whose stream info is
    /// known, or the end of stream. Frames whose window has passed are dropped only as of
    /// the last [`handle_timeout`](Self::handle_timeout).
    pub fn poll_event(&mut self) -> Option<Event<B>> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            while let Some(f) = self.reasm.pop_ready() {
                if let Some(ev) = self.frame_event(f) {
                    return Some(ev);
                }
            }
            let now = self.expired?;
            while let Some(f) = self.reasm.poll(now) {
                if let Some(ev) = self.frame_event(f) {
                    return Some(ev);
                }
            }
            // End of stream once the frames still being recovered are complete or given
            // up: the sender's end-of-stream datagram overtakes the resends they wait for.
            if self.lock.ended() && self.reasm.in_flight() == 0 && !self.eos_sent {
                self.eos_sent = true;
                return Some(Event::Eos);
            }
            self.expired = None;
            let warnings = self.health.check(now, self.stats());
            if warnings.is_empty() {
                return None;
            }
            self.events.extend(warnings.into_iter().map(Event::Warning));
        }
    }

    fn frame_event(&mut self, f: Frame<B>) -> Option<Event<B>> {
        match &self.info {
            Some(info) if info.gen == f.info.info_gen => Some(Event::Frame {
                frame: f,
                caps: info.caps.clone(),
                origin: Origin {
                    session: self.session_id(),
                    from: self.source_addr(),
                    report: self.sender_report(),
                },
            }),
            _ => {
                self.stats.frames_without_info += 1;
                self.reasm.mark_discont();
                None
            }
        }
    }

    /// The next datagram to send, if one is due at `now`: a receiver report every
    /// [`REPORT_INTERVAL`] while a session is locked on to (the first at once), a NACK for
    /// the datagrams due to be asked for again, a SUBSCRIBE when one is due. Call until None
    /// after every [`handle_datagram`](Self::handle_datagram) batch and
    /// [`handle_timeout`](Self::handle_timeout). While the driver reads a backlog, `now` is
    /// the arrival of the latest datagram it read: a frame's end still queued in the socket
    /// is not yet missing.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if !self.closing {
            if let Some((to, track, report)) = self.report_due(now) {
                return self.control(to, track, &Body::ReceiverReport(report), &[], 1);
            }
            if let Some((source, ranges)) = self.nack_due(now) {
                let nack = Body::Nack(Nack {
                    session: source.session,
                    track: source.track,
                });
                return self.control(source.from, source.track, &nack, &ranges, NACK_COPIES);
            }
        }
        let (to, lease) = self.subscription.poll(now)?;
        let body = Body::Subscribe(protocol::Subscribe {
            session: 0,
            lease_ms: lease.as_millis().min(u128::from(u32::MAX)) as u32,
            flags: 0,
        });
        self.control(to, 0, &body, &[], 1)
    }

    /// When [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_transmit`](Self::poll_transmit) may next have something to do without new
    /// datagrams.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let locked = self.lock.locked().is_some() && !self.closing;
        let report = self.report_at.filter(|_| locked);
        let nack = self.nacks.next_deadline().filter(|_| locked);
        [
            self.reasm.next_deadline(),
            report,
            nack,
            self.subscription.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One datagram of this receiver's own (its id, its next sequence number), with NACK
    /// `ranges` as payload, for `copies` sends to `to`.
    fn control(
        &mut self,
        to: SocketAddr,
        track: u16,
        body: &Body,
        ranges: &[(u32, u32)],
        copies: usize,
    ) -> Option<Transmit> {
        let header = CommonHeader {
            flags: 0,
            track,
            session: self.cfg.id,
            seq: self.out_seq,
        };
        self.out_seq = self.out_seq.wrapping_add(1);
        let mut contents = Vec::with_capacity(84 + 8 * ranges.len());
        let cookie = self.cookie.as_ref().filter(|(a, _)| *a == to);
        let ext: &[protocol::Extension<'_>] = match cookie {
            Some((_, value)) => &[protocol::Extension::Other {
                kind: protocol::ext::COOKIE,
                value,
            }],
            None => &[],
        };
        protocol::encode(&header, ext, body, &mut contents).ok()?;
        let mut payload = Vec::with_capacity(8 * ranges.len());
        for &(first, count) in ranges {
            protocol::push_nack_entry(&mut payload, first, count);
        }
        match self.protection.as_mut() {
            Some(p) => {
                let mut sealed = Vec::with_capacity(contents.len() + payload.len() + 28);
                if !p.seal(&contents, &payload, &mut sealed) {
                    return None;
                }
                contents = sealed;
            }
            None => contents.extend_from_slice(&payload),
        }
        Some(Transmit {
            destination: to,
            copies,
            contents,
        })
    }

    /// The datagrams to ask the locked session to send again, if any are due.
    fn nack_due(&mut self, now: Instant) -> Option<(Source, Vec<(u32, u32)>)> {
        let source = self.lock.locked()?;
        let ranges = self.nacks.poll(now)?;
        self.stats.datagrams_requested += ranges.iter().map(|r| u64::from(r.1)).sum::<u64>();
        self.stats.nacks_sent += 1;
        Some((source, ranges))
    }

    /// The receiver report to send now, if one is due: every [`REPORT_INTERVAL`] while a
    /// session is locked on to, the first at once.
    fn report_due(&mut self, now: Instant) -> Option<(SocketAddr, u16, ReceiverReport)> {
        self.lock.locked()?;
        if self.report_at.is_some_and(|at| now < at) {
            return None;
        }
        self.report_at = Some(now + REPORT_INTERVAL);
        self.receiver_report(now)
    }

    /// The report to send the sender now, and where: None until a session is locked on to.
    /// It echoes the latest sender report's sequence number and how long ago it came, so that
    /// the sender can measure the round trip.
    fn receiver_report(&self, now: Instant) -> Option<(SocketAddr, u16, ReceiverReport)> {
        let source = self.lock.locked()?;
        let s = self.stats();
        let (echo_seq, delay_us) = match self.sender_report {
            Some((seq, at, _)) => (
                seq,
                u32::try_from(now.saturating_duration_since(at).as_micros())
                    .unwrap_or(NO_DELAY - 1),
            ),
            None => (0, NO_DELAY),
        };
        let report = ReceiverReport {
            session: source.session,
            track: source.track,
            highest_seq: self.seq.highest().unwrap_or(0),
            datagrams_received: s.datagrams_received,
            datagrams_lost: s.datagrams_lost,
            frames_complete: s.frames_complete as u32,
            frames_dropped: s.frames_dropped as u32,
            echoed_report_seq: echo_seq,
            delay_us,
        };
        Some((source.from, source.track, report))
    }

    /// Subscribes to the sender at `target` (None: to nobody; a change leaves the old one
    /// at once). What to send comes out of [`poll_transmit`](Self::poll_transmit).
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

    /// Rejects the current stream info (its caps could not be used): counted invalid, and
    /// frames wait for the next stream info.
    pub fn reject_info(&mut self) {
        if self.info.take().is_some() {
            self.stats.datagrams_invalid += 1;
        }
        // A stream without usable caps is not worth staying locked on to: the next valid
        // stream info, from it or from another sender, locks on afresh.
        self.lock.release();
    }

    /// The round trip to the sender, as measured from requests to the resends they brought.
    pub fn rtt(&self) -> Option<Duration> {
        self.nacks.rtt()
    }

    /// The locked session's latest sender report (what it said), if one came.
    pub fn sender_report(&self) -> Option<SenderReport> {
        self.sender_report.map(|(_, _, r)| r)
    }

    /// The current stream info: generation and caps string.
    pub fn info(&self) -> Option<(u16, &str)> {
        self.info.as_ref().map(|i| (i.gen, &*i.caps))
    }

    /// The statistics so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.datagrams_lost = self.seq.lost();
        s.datagrams_duplicate = self.seq.duplicate();
        s.datagrams_reordered = self.seq.reordered();
        (s.frames_complete, s.frames_dropped) = self.reasm.frame_counts();
        s.frames_recovered = self.reasm.frames_recovered();
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

    /// Frames being assembled.
    pub fn in_flight(&self) -> usize {
        self.reasm.in_flight()
    }

    /// Bytes of the frames being assembled.
    pub fn bytes_in_flight(&self) -> usize {
        self.reasm.bytes_in_flight()
    }

    /// Bytes of FEC repair symbols kept with them.
    pub fn fec_bytes(&self) -> usize {
        self.reasm.fec_bytes()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
