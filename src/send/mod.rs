// SPDX-License-Identifier: MPL-2.0
//! The sender session: everything `videoipsink` decides about what goes out and when, as a
//! state machine free of GStreamer, sockets and clocks (in the shape of quinn-proto's
//! `Connection`).
//!
//! It is handed `now` with everything that happens: caps ([`Session::handle_caps`]), a frame
//! ([`Session::handle_frame`]), the end of the stream ([`Session::handle_eos`]), a datagram
//! from a receiver ([`Session::handle_datagram`]). It answers through
//! [`Session::poll_transmit`] (datagrams, their destinations, and whether they are due yet:
//! pacing is policy here, not sleeping), [`Session::poll_timeout`] (when to ask again) and
//! [`Session::poll_event`] (warnings for the user, the end of the stream sent). The driver
//! thread of the element does the I/O around it (`elements/videoipsink/driver.rs`).
//!
//! A session carries 1 to 32 **tracks** (PROTOCOL §7.12) under one session id, from one
//! socket: [`Session::add_track`] declares one, [`Session::remove_track`] ends one, and the
//! `*_on(track, ..)` methods ([`Session::handle_frame_on`], ...) take its input; the methods
//! that name no track are those of the first track ([`Config::track`]), so a sender of one
//! stream sends exactly what it sent before there were tracks (and no track table). Each
//! track is a stream of its own (sequence and frame numbers, stream info, history, FEC,
//! sender reports, end of stream); they share the pacer, the rate budget of each
//! destination, the clock mapping and the subscribers, each of which chose its tracks.
//!
//! What it decides:
//! - **the frame schedule** ([`schedule`]): each frame's batches leave at instants fixed
//!   when the frame arrived, spread over part of its duration. The instants are deadlines,
//!   not sleeps after the previous send: a driver that wakes late sends what is due at once,
//!   and a live frame still being paced out when the next one arrives is sent out at once,
//!   so lateness never carries over from one frame to the next;
//! - **admission and rate control** ([`rate`]), per destination: a destination that is a
//!   unicast subscriber has a rate of its own, driven by its own reports, so a slow receiver
//!   loses whole frames alone while the others get every frame. A live sender drops frames;
//!   it is never slowed. The `host` destination (unicast or a multicast group: one stream
//!   for every receiver there) follows the majority of the receivers that report on it:
//!   one receiver falling behind among several does not lower the rate for all. A non-live
//!   sender waits for the slowest destination instead;
//! - **one pacer for all tracks**: the track whose next batch is due first sends it, so a
//!   small audio frame leaves when it comes, between the batches of a large video frame;
//! - the track table (TRACKS, on the [`CONTROL_TRACK`]) when it changes and with the
//!   stream info, to every destination, once tracks were declared;
//! - stream info and sender reports (with the first frame, on a caps change, for a new
//!   subscriber, and every [`INFO_INTERVAL`]), end of stream ([`EOS_REPEAT`] times), FEC
//!   repairs after each frame, resends from the [`history`] within its budget, receivers
//!   ([`receivers`]) and subscribers ([`subscribers`]) with their leases.
//!
//! Payloads are never copied: a [`Transmit`] borrows the frame's bytes (any `B:
//! AsRef<[u8]>`, a mapped GStreamer buffer in the element) and the FEC encoder's symbols.

pub mod cookie;
pub mod history;
pub mod packetizer;
pub mod rate;
pub mod receivers;
pub mod schedule;
pub mod subscribers;

use crate::crypto::{MasterKey, Protection, Refused, Side};
use crate::protocol::tracks::{self, TrackEntry, TrackKind, MAX_TRACKS};
use crate::protocol::{
    self, fec, Body, SenderReport, EOS_HEADER_LEN, FEC_HEADER_LEN, INFO_HEADER_LEN,
    MEDIA_HEADER_LEN,
};
use crate::ratelimit::RateLimit;
use cookie::{Cookies, Verdict};
use history::{History, SentFrame};
use packetizer::{random_session_id, FrameMeta, PacketizeError, Packetizer};
use rate::{Admit, RateControl};
use receivers::{ReceiverInfo, Receivers};
use schedule::{FrameSchedule, Pacing};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subscribers::Subscribers;

/// How often the stream info is repeated so that late receivers get the caps, and a
/// restarted sender is followed quickly (receivers let a new session take over a port after
/// 200 ms of silence, but only with its complete stream info).
pub const INFO_INTERVAL: Duration = Duration::from_millis(250);
/// How many times the end-of-stream datagram is sent.
pub const EOS_REPEAT: usize = 3;
/// Most datagrams one NACK gets resent.
pub const MAX_RESEND_PER_NACK: u32 = 4096;
/// Most datagrams of a frame in one [`Transmit`]: what is due beyond goes in the next.
pub const MAX_TRANSMIT: usize = 1024;
/// Bytes each datagram adds to its payload on the wire: the media header, UDP and IPv4 (the
/// rate control counts what the link carries; IPv6 adds 20 more, a rounding error).
pub const WIRE_OVERHEAD: usize = MEDIA_HEADER_LEN + 8 + 20;
/// Least time between two warnings about frames dropped for a receiver that cannot keep up.
pub const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(5);
/// A receiver counts as falling behind for this long after a report that says so, when the
/// majority of the `host` destination's receivers is counted.
pub const OVERLOAD_MEMORY: Duration = Duration::from_secs(2);
/// How long a destination whose path cannot carry the datagrams is not sent to (a
/// subscriber: its subscriptions are not taken) before it is tried again.
pub const PATH_RETRY: Duration = Duration::from_secs(5);
/// Least time between two warnings about datagrams the network refused.
pub const SEND_WARNING_INTERVAL: Duration = Duration::from_secs(2);
pub use crate::protocol::tracks::CONTROL_TRACK;

/// Slack a `max-bitrate` ceiling allows a late batch: it may leave this much before the
/// ceiling would let it, so a wake-up a little late does not push every later one back.
const CEILING_SLACK: Duration = Duration::from_millis(1);

/// What a session is set up with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The random session id.
    pub session: u64,
    /// The track sent by the methods that name none (the session's first track, there
    /// from the start).
    pub track: u16,
    /// Sequence number of that track's first datagram (random; other tracks draw their
    /// own).
    pub first_seq: u32,
    /// Payload bytes per datagram.
    pub frag: u16,
    /// Where every frame goes (`host`: unicast or a multicast group), if anywhere.
    pub dest: Option<SocketAddr>,
    /// Whether receivers may subscribe, and at most how many at once.
    pub max_subscribers: Option<usize>,
    /// How each frame's batches are spread in time.
    pub pacing: Pacing,
    /// Least datagrams per batch.
    pub batch_size: usize,
    /// Datagrams one GSO send carries (1 without GSO): batches are whole multiples of it.
    pub gso_align: usize,
    /// `max-bitrate` in bits per second (None: unlimited).
    pub max_bitrate: Option<u64>,
    /// FEC repair symbols per block, in percent of its datagrams (0: no FEC).
    pub fec_percentage: u32,
    /// Resends may take at most this share of the bytes sent, in percent.
    pub max_retransmission_percentage: u32,
}

/// A frame handed to the session.
#[derive(Debug)]
pub struct Frame<B> {
    /// Its bytes.
    pub data: B,
    /// Timestamps and flags as they go on the wire.
    pub meta: FrameMeta,
    /// Its duration, if known: the window its datagrams are spread over derives from it.
    pub duration: Option<Duration>,
    /// Not a delta frame: the last to be dropped.
    pub key: bool,
    /// From a live source into a clock-synchronised sink: over the rate it is dropped, never
    /// waited for; its schedule starts when it arrived.
    pub live: bool,
    /// When it was handed over.
    pub arrived: Instant,
}

/// The sender pipeline's clock at one instant, for sender reports: its running time, and
/// the same instant on a clock all streams of the host share (see `docs/PROTOCOL.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// When it was read.
    pub at: Instant,
    /// Pipeline running time, ns.
    pub running_time: u64,
    /// The reference clock, ns.
    pub reference_time: u64,
    /// Which reference clock ([`protocol::reference_clock`]).
    pub clock: u8,
}

/// What the session tells the element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Something a user should act on (already rate-limited).
    Warning(String),
    /// The end-of-stream datagrams of the session's last track still going went out (with
    /// one track: its end of stream): everything before them was sent.
    EndOfStreamSent,
    /// One track's end-of-stream datagrams went out while other tracks go on.
    TrackEnded(u16),
}

/// Why a track cannot be declared (or named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackError {
    /// The session has no such track (or it is being removed).
    Unknown(u16),
    /// The id is taken by a declared track.
    Duplicate(u16),
    /// The control track's id ([`CONTROL_TRACK`]) is no track's.
    ControlTrack,
    /// The session carries [`MAX_TRACKS`] tracks already.
    TooMany,
    /// The name is not 1 to 32 letters, digits, `_` or `-`, or another track has it.
    BadName,
    /// "Variant of" names no other track of the session.
    BadVariant,
    /// The table would not fit one datagram at this MTU (shorter names make it fit).
    TableTooLarge,
}

impl std::fmt::Display for TrackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackError::Unknown(t) => write!(f, "the session has no track {t}"),
            TrackError::Duplicate(t) => write!(f, "track {t} is declared already"),
            TrackError::ControlTrack => write!(f, "track {CONTROL_TRACK} is the control track"),
            TrackError::TooMany => write!(f, "a session carries at most {MAX_TRACKS} tracks"),
            TrackError::BadName => write!(
                f,
                "a track name is 1 to 32 letters, digits, '_' or '-', distinct in the session"
            ),
            TrackError::BadVariant => write!(f, "a track is a variant of another track"),
            TrackError::TableTooLarge => write!(
                f,
                "the track table does not fit one datagram: shorter names or a larger mtu"
            ),
        }
    }
}

impl std::error::Error for TrackError {}

/// Why the datagrams to one destination were refused, as the driver tells
/// [`Session::handle_send_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Larger than the path to it carries (EMSGSIZE: the socket does not fragment), with
    /// the largest datagram it does carry, IP header included, if known.
    TooLarge {
        /// That largest datagram, in bytes.
        path_mtu: Option<u32>,
    },
    /// Every datagram of a frame refused for another reason (no route, a firewall).
    Refused(std::io::ErrorKind),
}

/// What a [`Transmit`] carries, for the driver's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Datagrams of a frame.
    Media,
    /// Stream info (the caps), in pieces.
    StreamInfo,
    /// A sender report.
    SenderReport,
    /// FEC repair symbols of a frame.
    Fec,
    /// Datagrams resent on a NACK.
    Resend,
    /// End of stream.
    EndOfStream,
    /// A return-routability cookie for an address not yet verified.
    Challenge,
    /// The session's track table, on the control track.
    Tracks,
}

/// Where a datagram's payload is.
#[derive(Debug, Clone, Copy)]
enum Payload {
    None,
    /// Bytes of the transmit's frame.
    Frame {
        start: u32,
        len: u32,
    },
    /// Repair symbol `i` of the FEC encoder.
    Fec(usize),
    /// Owned bytes `i` of the group.
    Owned(usize),
}

/// One datagram: a header (up to a media header's length) and its payload.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    header: [u8; MEDIA_HEADER_LEN],
    header_len: u8,
    payload: Payload,
}

impl Datagram {
    fn new(header: &[u8], payload: Payload) -> Self {
        let mut h = [0u8; MEDIA_HEADER_LEN];
        let n = header.len().min(MEDIA_HEADER_LEN);
        h[..n].copy_from_slice(&header[..n]);
        Datagram {
            header: h,
            header_len: n as u8,
            payload,
        }
    }
}

/// Datagrams of one track to send to the same destinations.
#[derive(Debug)]
struct Group {
    dests: Vec<SocketAddr>,
    kind: Kind,
    /// Their track ([`CONTROL_TRACK`] for CHALLENGE and TRACKS).
    track: u16,
    datagrams: Vec<Datagram>,
    owned: Vec<Vec<u8>>,
    /// The kept frame of the track (by its first sequence number) that `Payload::Frame`
    /// refers to.
    frame: Option<u32>,
}

impl Group {
    fn new(kind: Kind, track: u16, dests: Vec<SocketAddr>) -> Self {
        Group {
            dests,
            kind,
            track,
            datagrams: Vec::new(),
            owned: Vec::new(),
            frame: None,
        }
    }
}

/// Datagrams to send now, to one or more destinations, each datagram to each destination.
/// Borrows the session until it is dropped.
#[derive(Debug)]
pub struct Transmit<'a> {
    /// Where each datagram goes.
    pub dests: &'a [SocketAddr],
    /// What the datagrams are.
    pub kind: Kind,
    datagrams: &'a [Datagram],
    owned: &'a [Vec<u8>],
    frame: &'a [u8],
    fec: &'a fec::Encoder,
    /// With a passphrase: each datagram sealed whole (then `parts` gives it as its header).
    sealed: Option<&'a [Vec<u8>]>,
}

impl<'a> Transmit<'a> {
    /// Number of datagrams (each sent to every destination).
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// True when there is no datagram.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Datagram `k` as `[header, payload]`, the payload borrowed where it lives (with a
    /// passphrase: the sealed datagram, and nothing).
    pub fn parts(&self, k: usize) -> [&'a [u8]; 2] {
        if let Some(sealed) = self.sealed {
            return [sealed.get(k).map_or(&[][..], |v| &v[..]), &[]];
        }
        self.plain_parts(k)
    }

    /// Datagram `k` unprotected, as `[header, payload]`.
    fn plain_parts(&self, k: usize) -> [&'a [u8]; 2] {
        let Some(d) = self.datagrams.get(k) else {
            return [&[], &[]];
        };
        let header = &d.header[..usize::from(d.header_len)];
        let payload: &'a [u8] = match d.payload {
            Payload::None => &[],
            Payload::Frame { start, len } => {
                let start = (start as usize).min(self.frame.len());
                let end = (start + len as usize).min(self.frame.len());
                &self.frame[start..end]
            }
            Payload::Fec(i) => self.fec.repair(i).map_or(&[][..], |(_, s)| s),
            Payload::Owned(i) => self.owned.get(i).map_or(&[][..], |v| &v[..]),
        };
        [header, payload]
    }

    /// Bytes of all datagrams, once (headers included).
    pub fn bytes(&self) -> usize {
        if let Some(sealed) = self.sealed {
            return sealed.iter().take(self.datagrams.len()).map(Vec::len).sum();
        }
        self.datagrams
            .iter()
            .map(|d| {
                usize::from(d.header_len)
                    + match d.payload {
                        Payload::None => 0,
                        Payload::Frame { len, .. } => len as usize,
                        Payload::Fec(i) => self.fec.repair(i).map_or(0, |(_, s)| s.len()),
                        Payload::Owned(i) => self.owned.get(i).map_or(0, Vec::len),
                    }
            })
            .sum()
    }
}

/// What the session counts, for the `stats` property.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Datagrams emitted, each destination counted.
    pub datagrams_sent: u64,
    /// Bytes emitted, each destination counted.
    pub bytes_sent: u64,
    /// Frames sent to at least one destination.
    pub frames_sent: u64,
    /// Frames some destination did not get because it could not keep up, or that nobody got
    /// because a live sender fell a frame behind ([`frames_behind`](Self::frames_behind)).
    pub frames_dropped: u64,
    /// Live frames dropped because the next one came before they could start.
    pub frames_behind: u64,
    /// NACKs received.
    pub nacks_received: u64,
    /// NACKs ignored: from an address the stream does not go to.
    pub nacks_refused: u64,
    /// Datagrams from receivers ignored because their source address had not proved that
    /// it receives (no valid cookie): each was answered by a CHALLENGE, within a rate.
    pub datagrams_unverified: u64,
    /// CHALLENGEs sent.
    pub challenges_sent: u64,
    /// With a passphrase: datagrams from receivers without a valid tag (no passphrase,
    /// another one, or forged), dropped.
    pub datagrams_unauthenticated: u64,
    /// With a passphrase: authentic datagrams from receivers seen before, dropped.
    pub datagrams_replayed: u64,
    /// Datagrams resent.
    pub datagrams_retransmitted: u64,
    /// FEC repair datagrams emitted.
    pub fec_datagrams_sent: u64,
    /// The lowest allowed rate of any destination, bits per second (None: unlimited).
    pub allowed_bitrate: Option<u64>,
    /// Times a destination's rate was lowered.
    pub rate_decreases: u64,
    /// Subscribers now.
    pub subscribers: u64,
    /// Subscriptions refused (table full).
    pub subscribers_refused: u64,
    /// The receivers heard from, with what the sender did not send them.
    pub receivers: Vec<ReceiverStats>,
    /// Each track's own counts, in the table's order.
    pub tracks: Vec<TrackStats>,
}

/// One track's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackStats {
    /// Its table entry.
    pub entry: TrackEntry,
    /// Its datagrams emitted (media, stream info, sender reports, FEC, resends, end of
    /// stream), each destination counted: what its sender reports say.
    pub datagrams_sent: u64,
    /// Its frames sent to at least one destination.
    pub frames_sent: u64,
    /// Its end of stream went out and no frame came after it.
    pub ended: bool,
}

/// One receiver, as the sender sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverStats {
    /// What its reports say.
    pub info: ReceiverInfo,
    /// Frames not sent to it because it could not keep up (subscribers: their own count;
    /// receivers of the `host` destination: that destination's).
    pub frames_not_sent: u64,
    /// The rate allowed to it, bits per second (None: unlimited).
    pub allowed_bitrate: Option<u64>,
}

/// One destination's rate control and what it was not sent.
#[derive(Debug)]
struct Dest {
    rate: RateControl,
    frames_not_sent: u64,
    /// The receiver whose report last lowered its rate.
    slowed_by: Option<SocketAddr>,
    warning: RateLimit,
}

/// What waits to be sent, in order.
#[derive(Debug)]
enum Incoming<B> {
    Caps(String),
    Frame(Frame<B>),
    Eos,
}

/// The frame being sent.
#[derive(Debug)]
struct Active {
    first_seq: u32,
    count: usize,
    frag: usize,
    len: usize,
    template: [u8; MEDIA_HEADER_LEN],
    schedule: FrameSchedule,
    next_batch: usize,
    dests: Vec<SocketAddr>,
    fec_pending: bool,
    /// When its last batch went out.
    last_emit: Option<Instant>,
}

/// One track of the session: a stream of its own (sequence and frame numbers, caps,
/// history for resends, end of stream), sharing the session's pacer, rate budget, clock
/// and destinations.
#[derive(Debug)]
struct Track<B> {
    entry: TrackEntry,
    /// Declared by [`Session::add_track`] (the first track is there undeclared).
    declared: bool,
    packetizer: Packetizer,
    history: History<B>,
    caps: Option<String>,
    info_sent: Option<Instant>,
    incoming: VecDeque<Incoming<B>>,
    active: Option<Active>,
    /// Its end of stream was taken, and no frame since.
    ended: bool,
    /// Leaves the table once its end of stream is out ([`Session::remove_track`]).
    removing: bool,
    datagrams_sent: u64,
    frames_sent: u64,
    /// Bits per second of its latest frame of known duration (a non-live sender starts its
    /// rate at the sum of its tracks').
    rate: Option<u64>,
}

impl<B: AsRef<[u8]>> Track<B> {
    fn new(entry: TrackEntry, first_seq: u32, cfg: &Config) -> Self {
        Track {
            packetizer: Packetizer::new(cfg.session, entry.id, first_seq, cfg.frag),
            history: History::new(cfg.max_retransmission_percentage as usize),
            entry,
            declared: false,
            caps: None,
            info_sent: None,
            incoming: VecDeque::new(),
            active: None,
            ended: false,
            removing: false,
            datagrams_sent: 0,
            frames_sent: 0,
            rate: None,
        }
    }

    /// True when it takes another item now: nothing waits before it but live frames.
    fn wants_input(&self) -> bool {
        self.incoming
            .iter()
            .all(|i| matches!(i, Incoming::Frame(f) if f.live))
    }

    /// A live frame waits behind the one being sent.
    fn behind(&self) -> bool {
        self.incoming
            .iter()
            .any(|i| matches!(i, Incoming::Frame(f) if f.live))
    }
}

/// The sender session. `B` is a frame's bytes.
#[derive(Debug)]
pub struct Session<B> {
    cfg: Config,
    /// The tracks, in the table's order; the first is [`Config::track`] until removed.
    tracks: Vec<Track<B>>,
    receivers: Receivers,
    subscribers: Option<Subscribers>,
    subscribers_seen: u64,
    dests: HashMap<SocketAddr, Dest>,
    fec: fec::Encoder,
    clock: Option<ClockSample>,
    outbox: VecDeque<Group>,
    /// The group the last [`Transmit`] borrowed.
    out: Group,
    /// When what is pending is due (or a non-live frame may go).
    wake_at: Option<Instant>,
    /// `max-bitrate`: when the bits emitted so far have left at the ceiling.
    ceiling_free_at: Option<Instant>,
    events: VecDeque<Event>,
    behind_warning: RateLimit,
    /// Destinations not sent to until the instant given: their path could not carry the
    /// datagrams ([`PATH_RETRY`]).
    suspended: HashMap<SocketAddr, Instant>,
    send_warning: RateLimit,
    cookies: Cookies,
    /// With a passphrase: sealing what goes out, opening what comes in.
    protection: Option<Protection>,
    /// The datagrams of the last transmit, sealed.
    sealed: Vec<Vec<u8>>,
    /// Sequence number of the next datagram of the [`CONTROL_TRACK`] (CHALLENGE, TRACKS).
    control_seq: u32,
    /// The track table was declared or changed ([`add_track`](Self::add_track),
    /// [`remove_track`](Self::remove_track)): TRACKS goes out. A session that only ever
    /// had its first track sends none.
    table_explicit: bool,
    /// The table's generation: +1 whenever it changes.
    table_gen: u16,
    /// When TRACKS last went out (None: due with the next stream info).
    table_sent: Option<Instant>,
    /// Some stream info went out: a receiver may follow the session.
    started: bool,
    stats: Stats,
}

impl<B: AsRef<[u8]>> Session<B> {
    /// A session set up with `cfg`, of one track ([`Config::track`]).
    pub fn new(cfg: Config) -> Self {
        let first = TrackEntry {
            id: cfg.track,
            kind: TrackKind::Video,
            variant_of: None,
            name: format!("video_{}", cfg.track),
        };
        let mut s = Session {
            tracks: vec![Track::new(first, cfg.first_seq, &cfg)],
            receivers: Receivers::new(cfg.session, cfg.track),
            subscribers: cfg.max_subscribers.map(Subscribers::new),
            subscribers_seen: u64::MAX,
            dests: HashMap::new(),
            fec: fec::Encoder::new(),
            clock: None,
            outbox: VecDeque::new(),
            out: Group::new(Kind::Media, CONTROL_TRACK, Vec::new()),
            wake_at: None,
            ceiling_free_at: None,
            events: VecDeque::new(),
            behind_warning: RateLimit::new(DROP_WARNING_INTERVAL),
            suspended: HashMap::new(),
            send_warning: RateLimit::new(SEND_WARNING_INTERVAL),
            cookies: Cookies::new(),
            protection: None,
            sealed: Vec::new(),
            control_seq: 0,
            table_explicit: false,
            table_gen: 0,
            table_sent: None,
            started: false,
            stats: Stats::default(),
            cfg,
        };
        if let Some(d) = s.cfg.dest {
            s.dests.insert(d, s.new_dest());
        }
        s
    }

    fn new_dest(&self) -> Dest {
        Dest {
            rate: RateControl::new(
                self.cfg.max_bitrate,
                usize::from(self.cfg.frag) + WIRE_OVERHEAD,
            ),
            frames_not_sent: 0,
            slowed_by: None,
            warning: RateLimit::new(DROP_WARNING_INTERVAL),
        }
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.cfg.session
    }

    /// The index of track `id` (one being removed included).
    fn index(&self, id: u16) -> Option<usize> {
        self.tracks.iter().position(|t| t.entry.id == id)
    }

    /// The index of track `id` if it takes input (not being removed).
    fn open_index(&self, id: u16) -> Result<usize, TrackError> {
        self.index(id)
            .filter(|&i| !self.tracks[i].removing)
            .ok_or(TrackError::Unknown(id))
    }

    /// The track table now (PROTOCOL §5.12).
    pub fn tracks(&self) -> Vec<TrackEntry> {
        self.tracks.iter().map(|t| t.entry.clone()).collect()
    }

    /// Declares a track (PROTOCOL §7.12): its id, kind and name (the sender's pad name).
    /// The session's first track ([`Config::track`]) is there from the start, undeclared:
    /// declaring its id gives it its kind and name. Refused: an id declared already, the
    /// control track's, a 33rd track, a name that is invalid or taken, a variant of no
    /// other track, a table too large for one datagram. From then on the session sends its
    /// table (TRACKS) with its stream info and whenever it changes.
    pub fn add_track(&mut self, entry: TrackEntry) -> Result<(), TrackError> {
        if entry.id == CONTROL_TRACK {
            return Err(TrackError::ControlTrack);
        }
        if !tracks::valid_name(&entry.name) {
            return Err(TrackError::BadName);
        }
        let existing = self.index(entry.id);
        if let Some(i) = existing {
            if self.tracks[i].declared || self.tracks[i].removing {
                return Err(TrackError::Duplicate(entry.id));
            }
        } else if self.tracks.len() >= MAX_TRACKS {
            return Err(TrackError::TooMany);
        }
        if self
            .tracks
            .iter()
            .any(|t| t.entry.id != entry.id && t.entry.name == entry.name)
        {
            return Err(TrackError::BadName);
        }
        if let Some(v) = entry.variant_of {
            if v == entry.id || !self.tracks.iter().any(|t| t.entry.id == v) {
                return Err(TrackError::BadVariant);
            }
        }
        // The table must fit one datagram, as large as a full media datagram.
        let mut table = self.tracks();
        match existing {
            Some(i) => table[i] = entry.clone(),
            None => table.push(entry.clone()),
        }
        let fits = tracks::encode(0, &table).is_ok_and(|(_, payload)| {
            protocol::COMMON_LEN + 8 + payload.len()
                <= usize::from(self.cfg.frag) + MEDIA_HEADER_LEN
        });
        if !fits {
            return Err(TrackError::TableTooLarge);
        }
        match existing {
            Some(i) => {
                self.tracks[i].entry = entry;
                self.tracks[i].declared = true;
            }
            None => {
                // Each track starts its sequence numbers where it likes: random.
                let mut t = Track::new(entry, random_session_id() as u32, &self.cfg);
                t.declared = true;
                self.receivers.add_track(t.entry.id);
                self.tracks.push(t);
            }
        }
        self.table_explicit = true;
        self.table_changed();
        Ok(())
    }

    /// Ends track `id` and takes it out of the table: what was handed over for it goes out,
    /// then its end of stream, then the new table. The others go on.
    pub fn remove_track(&mut self, id: u16) -> Result<(), TrackError> {
        let i = self.open_index(id)?;
        let t = &mut self.tracks[i];
        t.removing = true;
        t.incoming.push_back(Incoming::Eos);
        Ok(())
    }

    /// The table changed: its next generation goes out with the next stream info.
    fn table_changed(&mut self) {
        self.table_gen = self.table_gen.wrapping_add(1);
        self.table_sent = None;
    }

    /// True when the session takes another item for its first track now (see
    /// [`wants_input_on`](Self::wants_input_on)).
    pub fn wants_input(&self) -> bool {
        self.wants_input_on(self.cfg.track)
    }

    /// True when track `track` takes another item now: nothing waits before it. A driver
    /// hands over the next item only then, so that what waits stays in its bounded queue
    /// (and a non-live upstream is slowed by it). Each track waits on its own: one held
    /// back (a non-live frame over the rate) holds no other back. A track the session does
    /// not have takes anything (and drops it).
    pub fn wants_input_on(&self, track: u16) -> bool {
        // Live frames are always taken: a newer one replaces one still waiting.
        self.index(track)
            .is_none_or(|i| self.tracks[i].wants_input())
    }

    /// The caps of the first track's frames that follow.
    pub fn handle_caps(&mut self, caps: String) {
        let _ = self.handle_caps_on(self.cfg.track, caps);
    }

    /// The caps of the frames of `track` that follow (the caps string, as announced in its
    /// stream info).
    pub fn handle_caps_on(&mut self, track: u16, caps: String) -> Result<(), TrackError> {
        let i = self.open_index(track)?;
        self.tracks[i].incoming.push_back(Incoming::Caps(caps));
        Ok(())
    }

    /// A frame of the first track (see [`handle_frame_on`](Self::handle_frame_on)).
    pub fn handle_frame(&mut self, frame: Frame<B>) {
        let _ = self.handle_frame_on(self.cfg.track, frame);
    }

    /// A frame of `track` to send, after what was handed over for it before. A live frame
    /// replaces a live one of its track that is still waiting to start: that one is a
    /// frame interval late already, and a live sender never falls behind real time (the
    /// drop is counted and warned of). Refused (and dropped) for a track the session does
    /// not have.
    pub fn handle_frame_on(&mut self, track: u16, frame: Frame<B>) -> Result<(), TrackError> {
        let i = self.open_index(track)?;
        let t = &mut self.tracks[i];
        if frame.live {
            let before = t.incoming.len();
            t.incoming
                .retain(|i| !matches!(i, Incoming::Frame(f) if f.live));
            let dropped = (before - t.incoming.len()) as u64;
            if dropped > 0 {
                self.stats.frames_dropped += dropped;
                self.stats.frames_behind += dropped;
                if let Some(held) = self.behind_warning.check(frame.arrived) {
                    self.events.push_back(Event::Warning(format!(
                        "the sender cannot send frames as fast as they come: {} frames \
                         dropped so far; lower the resolution or frame rate, or raise the mtu \
                         (mtu=9000 on a network with jumbo frames){}",
                        self.stats.frames_behind,
                        held_note(held)
                    )));
                }
            }
        }
        t.incoming.push_back(Incoming::Frame(frame));
        Ok(())
    }

    /// The end of the first track's stream (see [`handle_eos_on`](Self::handle_eos_on)).
    pub fn handle_eos(&mut self) {
        let _ = self.handle_eos_on(self.cfg.track);
    }

    /// The end of `track`'s stream: sent once everything before it is. The session ends
    /// ([`Event::EndOfStreamSent`]) when every track has; a frame after it starts the
    /// track again.
    pub fn handle_eos_on(&mut self, track: u16) -> Result<(), TrackError> {
        let i = self.open_index(track)?;
        self.tracks[i].incoming.push_back(Incoming::Eos);
        Ok(())
    }

    /// The pipeline's clock, for the sender reports that follow (of every track: one clock
    /// mapping for the session).
    pub fn handle_clock(&mut self, sample: ClockSample) {
        self.clock = Some(sample);
    }

    /// Forgets everything waiting to be sent and the frames kept for resending, on every
    /// track (flushing: their buffers go back upstream). The stream goes on from the next
    /// frame.
    pub fn flush(&mut self) {
        for t in &mut self.tracks {
            t.incoming.retain(|i| matches!(i, Incoming::Caps(_)));
            t.active = None;
            t.history.clear();
        }
        self.outbox.clear();
        self.wake_at = None;
    }

    /// Forgets what waits to be sent on `track` and its frames kept for resending; the
    /// other tracks go on.
    pub fn flush_on(&mut self, track: u16) -> Result<(), TrackError> {
        let i = self.open_index(track)?;
        let t = &mut self.tracks[i];
        t.incoming.retain(|i| matches!(i, Incoming::Caps(_)));
        t.active = None;
        t.history.clear();
        self.outbox.retain(|g| g.track != track);
        Ok(())
    }

    /// Protects everything sent from now on with `master` (a passphrase's key), and takes
    /// from receivers only what it authenticates (PROTOCOL §4.2). Call before the first
    /// frame.
    pub fn protect(&mut self, master: Arc<MasterKey>) {
        self.protection = Some(Protection::new(master, Side::Sender));
    }

    /// A datagram from a receiver, from `from`: with a passphrase, opened first (one that
    /// does not authenticate, or a replay, is counted and dropped).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(mut p) = self.protection.take() else {
            self.handle_plain(now, from, bytes);
            return;
        };
        p.open_copy(bytes, |_, opened| match opened {
            Ok(plain) => self.handle_plain(now, from, plain),
            Err(Refused::Replayed) => self.stats.datagrams_replayed += 1,
            Err(_) => self.stats.datagrams_unauthenticated += 1,
        });
        self.protection = Some(p);
    }

    /// A datagram from a receiver (a report, a NACK, a subscription), from `from`. Anything
    /// else, or anything malformed, is ignored.
    ///
    /// Nothing is done for an address before it has proved that it receives what is sent to
    /// it (return routability, PROTOCOL §7.11): a datagram without a valid cookie is only
    /// answered with a CHALLENGE carrying one, no larger than 48 bytes, so a forged source
    /// address gets its owner at most that, never a stream or resends.
    fn handle_plain(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(p) = protocol::decode(bytes) else {
            return;
        };
        if !matches!(
            p.body,
            Body::Subscribe(_) | Body::ReceiverReport(_) | Body::Nack(_)
        ) {
            return;
        }
        // Who subscribes asks by unicast for itself: its cookie goes to it.
        let subscribing = matches!(p.body, Body::Subscribe(_));
        match self.cookies.check(from, p.extensions.cookie, now) {
            Verdict::Valid => {}
            Verdict::Stale => self.challenge(from, p.header.session, subscribing, now),
            Verdict::Invalid => {
                self.stats.datagrams_unverified += 1;
                // A subscriber that left needs no cookie to say so.
                let leaving = matches!(p.body, Body::Subscribe(s) if s.lease_ms == 0);
                if !leaving {
                    self.challenge(from, p.header.session, subscribing, now);
                }
                return;
            }
        }
        match p.body {
            Body::Subscribe(sub) => {
                let held_off = self.is_suspended(from, now);
                let Some(table) = self.subscribers.as_mut() else {
                    return;
                };
                // Session 0 asks for whatever this sender sends. One whose path could not
                // carry the datagrams is taken again only after a while.
                if (sub.session == 0 || sub.session == self.cfg.session) && !held_off {
                    let lease = Duration::from_millis(sub.lease_ms.into());
                    // The tracks it wants (none listed: all).
                    let wanted: Vec<u16> = p
                        .payload
                        .chunks_exact(2)
                        .take(4 * MAX_TRACKS)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    let before = table.tracks_of(from).map(<[u16]>::to_vec);
                    table.subscribe_tracks(from, lease, &wanted, now);
                    let after = table.tracks_of(from);
                    if before.is_some() && after.is_some() && before.as_deref() != after {
                        // It chose other tracks: their stream info (and the table) before
                        // their next frame.
                        self.info_due_everywhere();
                    }
                }
            }
            Body::ReceiverReport(r) => {
                if let Ok(Some(delta)) =
                    self.receivers
                        .on_receiver_report(from, p.header.session, &r, now)
                {
                    self.on_report_delta(from, p.header.session, &delta, now);
                }
            }
            Body::Nack(nack) if nack.session == self.cfg.session => {
                let Some(track) = self.index(nack.track) else {
                    // About a track this session does not send: nothing to resend.
                    return;
                };
                self.stats.nacks_received += 1;
                // Resends go only where the stream goes: to a subscriber that asks, else to
                // the host destination (a multicast group, asked by any of its receivers:
                // one resend serves every receiver that missed it; a unicast host, asked by
                // itself). Never to an address only because a request names it as its
                // source: a forged NACK cannot aim resends at anyone. Each asker spends its
                // own budget.
                // A subscriber gets resends of the tracks it chose only.
                let subscriber = Some(from) != self.cfg.dest
                    && self.dests.contains_key(&from)
                    && self
                        .subscribers
                        .as_ref()
                        .is_some_and(|t| t.wants(from, nack.track));
                let to = match (subscriber, self.cfg.dest) {
                    (true, _) => from,
                    // A unicast host asks for itself; a multicast group's members for it.
                    (false, Some(d)) if d.ip().is_multicast() || d.ip() == from.ip() => d,
                    (false, _) => {
                        self.stats.nacks_refused += 1;
                        return;
                    }
                };
                if self.is_suspended(to, now) {
                    return;
                }
                // A destination held to a lowered rate gets resends within it too: resending
                // a whole frame to a receiver that cannot take frames helps nobody.
                let max = self.dests.get(&to).and_then(|d| d.rate.rate()).map_or(
                    MAX_RESEND_PER_NACK,
                    |r| {
                        let bits = (usize::from(self.cfg.frag) + WIRE_OVERHEAD) as f64 * 8.0;
                        (r as f64 * rate::BUCKET_DEPTH.as_secs_f64() / bits) as u32
                    },
                );
                self.queue_resends(track, protocol::nack_entries(p.payload), from, to, max, now);
            }
            _ => {}
        }
    }

    /// The cookie `addr` would be given now (tests play receivers that echo it).
    #[cfg(test)]
    pub(crate) fn cookie_for(
        &mut self,
        addr: SocketAddr,
        now: Instant,
    ) -> [u8; cookie::COOKIE_LEN] {
        self.cookies.make(addr, now)
    }

    /// Queues a CHALLENGE for receiver `id` at `from` (within [`cookie::CHALLENGE_RATE`]).
    /// It goes to `from`, except to a receiver of the multicast group the stream goes to
    /// (neither `subscribing` nor a subscriber): that one hears the group, not its own
    /// address (its socket is bound to the group), and the group is sent the stream anyway.
    fn challenge(&mut self, from: SocketAddr, id: u64, subscribing: bool, now: Instant) {
        if !self.cookies.may_challenge(now) {
            return;
        }
        let cookie = self.cookies.make(from, now);
        let to = match self.cfg.dest {
            Some(group)
                if group.ip().is_multicast()
                    && !subscribing
                    && !self.subscribers.as_ref().is_some_and(|t| t.contains(from)) =>
            {
                group
            }
            _ => from,
        };
        let header = protocol::CommonHeader {
            flags: 0,
            track: CONTROL_TRACK,
            session: self.cfg.session,
            seq: self.control_seq,
        };
        self.control_seq = self.control_seq.wrapping_add(1);
        let mut head = Vec::with_capacity(protocol::COMMON_LEN + 12);
        let body = Body::Challenge(protocol::Challenge { receiver: id });
        if protocol::encode(&header, &[], &body, &mut head).is_err() {
            return;
        }
        let mut g = Group::new(Kind::Challenge, CONTROL_TRACK, vec![to]);
        g.owned.push(cookie.to_vec());
        g.datagrams.push(Datagram::new(&head, Payload::Owned(0)));
        self.stats.challenges_sent += 1;
        self.outbox.push_back(g);
    }

    /// Datagrams to `dest` were refused (the driver's report of a send). The stream goes
    /// on for everyone else; `dest` is warned about (rate-limited), and:
    /// - too large for its path: a subscriber's subscription is dropped and its renewals are
    ///   not taken for [`PATH_RETRY`]; the `host` destination is not sent to for as long,
    ///   then tried again (its interface may have changed);
    /// - refused otherwise: a subscriber's subscription is dropped (until it subscribes
    ///   again); the `host` destination is still sent to (no route may be a passing state).
    pub fn handle_send_error(&mut self, now: Instant, dest: SocketAddr, error: SendError) {
        let host = self.cfg.dest == Some(dest);
        let subscriber = !host && self.dests.contains_key(&dest);
        if !host && !subscriber {
            // A resend to someone not sent the stream: nothing to stop.
            return;
        }
        if self.is_suspended(dest, now) {
            // Already dealt with: what was queued for it before is dropped.
            self.forget(dest);
            return;
        }
        let text = match error {
            SendError::TooLarge { path_mtu } => {
                self.suspended.retain(|_, until| *until > now);
                self.suspended.insert(dest, now + PATH_RETRY);
                let ours = self.datagram_size(dest);
                let carries = path_mtu.map_or(String::new(), |m| format!(" at most {m} bytes,"));
                let set = path_mtu.map_or("a lower mtu".into(), |m| format!("mtu={m} or lower"));
                let what = if host {
                    format!(
                        "nothing is sent to it, tried again every {} s",
                        PATH_RETRY.as_secs()
                    )
                } else {
                    format!(
                        "its subscription is dropped, and not taken again for {} s",
                        PATH_RETRY.as_secs()
                    )
                };
                format!(
                    "datagrams to {dest} are too large for the path: it carries{carries} less \
                     than the {ours} bytes sent (mtu={ours}); {what}; set {set} to reach it"
                )
            }
            SendError::Refused(kind) if subscriber => format!(
                "could not send to {dest}: {}; its subscription is dropped until it subscribes \
                 again",
                std::io::Error::from(kind)
            ),
            SendError::Refused(kind) => format!(
                "could not send to {dest}: {}; frames are being lost",
                std::io::Error::from(kind)
            ),
        };
        if subscriber {
            if let Some(t) = self.subscribers.as_mut() {
                t.remove(dest);
            }
            self.dests.remove(&dest);
        }
        if subscriber || self.suspended.contains_key(&dest) {
            self.forget(dest);
        }
        if let Some(held) = self.send_warning.check(now) {
            self.events
                .push_back(Event::Warning(format!("{text}{}", held_note(held))));
        }
    }

    /// Whether `dest` is not sent to now ([`PATH_RETRY`]).
    fn is_suspended(&self, dest: SocketAddr, now: Instant) -> bool {
        self.suspended.get(&dest).is_some_and(|until| *until > now)
    }

    /// Drops `dest` from what is queued: the frame being sent and the groups waiting.
    fn forget(&mut self, dest: SocketAddr) {
        for a in self.tracks.iter_mut().filter_map(|t| t.active.as_mut()) {
            a.dests.retain(|d| *d != dest);
        }
        for g in &mut self.outbox {
            g.dests.retain(|d| *d != dest);
        }
        self.outbox.retain(|g| !g.dests.is_empty());
    }

    /// Bytes of a full media datagram to `dest`, IP and UDP headers included: what `mtu`
    /// was set to.
    fn datagram_size(&self, dest: SocketAddr) -> usize {
        let ip = if dest.is_ipv6() { 40 } else { 20 };
        let auth = if self.protection.is_some() {
            crate::crypto::OVERHEAD
        } else {
            0
        };
        usize::from(self.cfg.frag) + MEDIA_HEADER_LEN + auth + 8 + ip
    }

    /// Routes what a receiver reported to the rate control of its destination.
    fn on_report_delta(
        &mut self,
        from: SocketAddr,
        id: u64,
        delta: &rate::ReportDelta,
        now: Instant,
    ) {
        let subscribed = self.cfg.dest != Some(from) && self.dests.contains_key(&from);
        if subscribed {
            if let Some(d) = self.dests.get_mut(&from) {
                if let Some(took) = d.rate.observe(delta) {
                    d.slowed_by = Some(from);
                    d.rate.decrease(took, now);
                }
            }
            return;
        }
        let Some(host) = self.cfg.dest else {
            return;
        };
        // A unicast host is one receiver: what others say about the stream to it is not
        // its say (through a relay, its reports come from the relay's address, the host).
        if !host.ip().is_multicast() && from.ip() != host.ip() {
            return;
        }
        let Some(d) = self.dests.get_mut(&host) else {
            return;
        };
        let Some(took) = d.rate.observe(delta) else {
            return;
        };
        self.receivers.mark_overloaded(from, id, now);
        // One stream serves every receiver of the host destination: follow the majority of
        // them, never one outlier (it loses what it cannot take, alone).
        let dests = &self.dests;
        let (over, all) = self.receivers.overloaded_share(now, OVERLOAD_MEMORY, |r| {
            r.addr == host || !dests.contains_key(&r.addr)
        });
        if let Some(d) = self.dests.get_mut(&host) {
            if over * 2 > all {
                d.slowed_by = Some(from);
                d.rate.decrease(took, now);
            } else if let Some(held) = d.warning.check(now) {
                self.events.push_back(Event::Warning(format!(
                    "the receiver at {from} cannot keep up with the stream to {host} \
                     ({over} of {all} receivers report falling behind): it loses frames, \
                     the stream goes on at its rate for the others{}",
                    held_note(held)
                )));
            }
        }
    }

    /// Queues resends of what `requester`'s NACK asks for on the track at `track` (an
    /// index), from its history, to `to`, at most `max`, within `requester`'s budget there.
    fn queue_resends(
        &mut self,
        track: usize,
        ranges: impl Iterator<Item = (u32, u32)>,
        requester: SocketAddr,
        to: SocketAddr,
        max: u32,
        now: Instant,
    ) {
        let mut left = max.min(MAX_RESEND_PER_NACK);
        if left == 0 {
            return;
        }
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        let id = t.entry.id;
        let history = &mut t.history;
        let mut group: Option<Group> = None;
        for (first, count) in ranges {
            for k in 0..count.min(left) {
                let seq = first.wrapping_add(k);
                let Some(frame) = history.frame_first_seq(seq) else {
                    continue;
                };
                let Some(header) = history.resend(seq, now, requester) else {
                    continue;
                };
                let payload = history.payload(seq).map_or(0, <[u8]>::len);
                if group.as_ref().is_some_and(|g| g.frame != Some(frame)) {
                    self.outbox.extend(group.take());
                }
                let g = group.get_or_insert_with(|| {
                    let mut g = Group::new(Kind::Resend, id, vec![to]);
                    g.frame = Some(frame);
                    g
                });
                let start = u32::from_be_bytes([header[24], header[25], header[26], header[27]]);
                g.datagrams.push(Datagram::new(
                    &header,
                    Payload::Frame {
                        start,
                        len: payload as u32,
                    },
                ));
            }
            left = left.saturating_sub(count);
            if left == 0 {
                break;
            }
        }
        self.outbox.extend(group);
    }

    /// What to send now, if anything: call until None, then wait until
    /// [`poll_timeout`](Self::poll_timeout) (or the next input).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        self.wake_at = None;
        if !self.fill(now) {
            return None;
        }
        let g = &self.out;
        let count = g.datagrams.len() as u64 * g.dests.len() as u64;
        self.stats.datagrams_sent += count;
        match g.kind {
            Kind::Resend => self.stats.datagrams_retransmitted += count,
            Kind::Fec => self.stats.fec_datagrams_sent += count,
            _ => {}
        }
        let track = self.tracks.iter_mut().find(|t| t.entry.id == g.track);
        let frame = match track {
            Some(t) => {
                t.datagrams_sent += count;
                g.frame.and_then(|f| t.history.frame_data(f)).unwrap_or(&[])
            }
            None => &[],
        };
        let mut t = Transmit {
            dests: &g.dests,
            kind: g.kind,
            datagrams: &g.datagrams,
            owned: &g.owned,
            frame,
            fec: &self.fec,
            sealed: None,
        };
        if let Some(p) = self.protection.as_mut() {
            // Each datagram sealed whole: a resend is sealed again from the kept frame with
            // its original's sequence number, so it is byte for byte its original (flag R
            // aside, which the tag leaves out).
            if self.sealed.len() < t.len() {
                self.sealed.resize_with(t.len(), Vec::new);
            }
            for (k, out) in self.sealed.iter_mut().enumerate().take(t.len()) {
                let [head, payload] = t.plain_parts(k);
                if !p.seal(head, payload, out) {
                    out.clear();
                }
            }
            t.sealed = Some(&self.sealed[..t.len()]);
        }
        let bytes = t.bytes() as u64;
        self.stats.bytes_sent += bytes * g.dests.len() as u64;
        if let (Some(max), Kind::Media | Kind::Fec) = (self.cfg.max_bitrate, g.kind) {
            let free = self.ceiling_free_at.map_or(now, |t| t.max(now));
            self.ceiling_free_at =
                Some(free + Duration::from_secs_f64((bytes * 8) as f64 / max.max(1) as f64));
        }
        Some(t)
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) again, if nothing else happens
    /// before: what is pending is due then. Valid after `poll_transmit` returned None.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wake_at
    }

    /// The next thing the element should know.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Wakes at `at` at the latest.
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Puts the next group to send in `self.out`; false when nothing is due.
    ///
    /// One pacer for every track: what waits in the outbox (stream info, reports, ends of
    /// stream, resends, control) goes first; then every track without a frame being sent
    /// takes what waits for it; then, of the tracks sending a frame, the one whose next
    /// batch is due first sends it. So a small audio frame leaves when it comes, between
    /// the batches of a large video frame spread over its interval, and a track with no
    /// input holds no other back; each track's datagrams keep their order.
    fn fill(&mut self, now: Instant) -> bool {
        loop {
            if let Some(g) = self.outbox.pop_front() {
                self.out = g;
                return true;
            }
            let mut took = false;
            for i in 0..self.tracks.len() {
                if self.tracks[i].active.is_none() && self.start_next(i, now) {
                    // Caps taken, a frame started (its stream info first), dropped, or an
                    // end of stream queued (a track removed): go on from the outbox.
                    took = true;
                    break;
                }
            }
            if took {
                continue;
            }
            let mut best: Option<(Instant, usize)> = None;
            for i in 0..self.tracks.len() {
                if let Some(due) = self.step_due(i, now) {
                    if best.is_none_or(|(b, _)| due < b) {
                        best = Some((due, i));
                    }
                }
            }
            let Some((due, i)) = best else {
                return false;
            };
            if due > now {
                self.wake(due);
                return false;
            }
            if self.step(i, now) {
                return true;
            }
            // The frame finished: go on.
        }
    }

    /// Takes the next item waiting on the track at `i`: caps, a frame to start, or the end
    /// of stream. False when there is none, or a non-live frame must wait for the rate.
    fn start_next(&mut self, i: usize, now: Instant) -> bool {
        let Some(item) = self.tracks[i].incoming.pop_front() else {
            return false;
        };
        match item {
            Incoming::Caps(caps) => {
                let t = &mut self.tracks[i];
                if t.caps.as_deref() != Some(caps.as_str()) {
                    if t.caps.is_some() {
                        t.packetizer.next_info_gen();
                    }
                    t.caps = Some(caps);
                    t.info_sent = None;
                }
            }
            Incoming::Eos => self.end_track(i, now),
            Incoming::Frame(frame) => {
                self.tracks[i].ended = false;
                if let Err(frame) = self.start_frame(i, frame, now) {
                    self.tracks[i].incoming.push_front(Incoming::Frame(frame));
                    return false;
                }
            }
        }
        true
    }

    /// Queues the end of stream of the track at `i` (a track being removed leaves the
    /// table then, and the new table follows); the session ends when every track has.
    fn end_track(&mut self, i: usize, now: Instant) {
        let id = self.tracks[i].entry.id;
        // Before any stream info no receiver can follow this track (lock-on needs it): an
        // end of stream then tells nobody anything (a source that failed before its first
        // frame sends one), and sends nothing.
        let dests = if self.tracks[i].info_sent.is_some() {
            self.dests_for(id, now)
        } else {
            Vec::new()
        };
        let t = &mut self.tracks[i];
        let mut g = Group::new(Kind::EndOfStream, id, dests);
        for _ in 0..EOS_REPEAT {
            let h: [u8; EOS_HEADER_LEN] = t.packetizer.eos_datagram();
            g.datagrams.push(Datagram::new(&h, Payload::None));
        }
        if !g.dests.is_empty() {
            self.outbox.push_back(g);
        }
        t.ended = true;
        if t.removing {
            self.tracks.remove(i);
            self.receivers.remove_track(id);
            // Resends of its frames cannot go: its history is gone.
            self.outbox
                .retain(|g| !(g.track == id && g.frame.is_some()));
            self.table_changed();
            if self.table_explicit && self.started {
                let all = self.all_dests(now);
                if !all.is_empty() {
                    self.queue_table(&all, now);
                }
            }
        }
        if self.tracks.iter().all(|t| t.ended) {
            self.events.push_back(Event::EndOfStreamSent);
        } else {
            self.events.push_back(Event::TrackEnded(id));
        }
    }

    /// Every track's stream info (and the table) is due with its next frame.
    fn info_due_everywhere(&mut self) {
        for t in &mut self.tracks {
            t.info_sent = None;
        }
        self.table_sent = None;
    }

    /// The destinations now: `host`, then the subscribers (after their leases are checked).
    /// A new subscriber gets the stream info with the next frame.
    fn all_dests(&mut self, now: Instant) -> Vec<SocketAddr> {
        if let Some(h) = self.cfg.dest {
            if self.suspended.get(&h).is_some_and(|until| *until <= now) {
                // Tried again: with the stream info first.
                self.suspended.remove(&h);
                self.info_due_everywhere();
            }
        }
        let suspended = &self.suspended;
        let mut out: Vec<SocketAddr> = self
            .cfg
            .dest
            .into_iter()
            .filter(|h| suspended.get(h).is_none_or(|until| *until <= now))
            .collect();
        let Some(table) = self.subscribers.as_mut() else {
            return out;
        };
        let (current, generation) = table.current(now);
        if generation != self.subscribers_seen {
            self.subscribers_seen = generation;
            let new = current.iter().any(|a| !self.dests.contains_key(a));
            let host = self.cfg.dest;
            self.dests
                .retain(|a, _| Some(*a) == host || current.contains(a));
            for a in &current {
                if !self.dests.contains_key(a) {
                    let d = self.new_dest();
                    self.dests.insert(*a, d);
                }
            }
            if new {
                self.info_due_everywhere();
            }
        }
        out.extend(current.into_iter().filter(|a| Some(*a) != self.cfg.dest));
        out
    }

    /// The destinations of track `track` now: `host` (every track goes there), and the
    /// subscribers that chose it.
    fn dests_for(&mut self, track: u16, now: Instant) -> Vec<SocketAddr> {
        let mut all = self.all_dests(now);
        let host = self.cfg.dest;
        if let Some(t) = self.subscribers.as_ref() {
            all.retain(|a| Some(*a) == host || t.wants(*a, track));
        }
        all
    }

    /// Starts sending `frame` on the track at `i`: admission per destination (one rate
    /// budget for all tracks), stream info if due, packetizing. Gives the frame back when
    /// it must wait (a non-live sender over its rate).
    fn start_frame(&mut self, i: usize, frame: Frame<B>, now: Instant) -> Result<(), Frame<B>> {
        let id = self.tracks[i].entry.id;
        let all = self.dests_for(id, now);
        if all.is_empty() {
            // Nobody to send to: nothing is sent (nor packetized).
            return Ok(());
        }
        let len = frame.data.as_ref().len();
        let datagrams = len.div_ceil(usize::from(self.cfg.frag.max(1))).max(1);
        let bits = ((len + datagrams * WIRE_OVERHEAD) * 8) as u64;
        let mut dests = Vec::with_capacity(all.len());
        let mut min_spread = Duration::ZERO;
        if frame.live {
            for &a in &all {
                let Some(d) = self.dests.get_mut(&a) else {
                    continue;
                };
                match d.rate.admit(now, bits, frame.key, true) {
                    Admit::Now => dests.push(a),
                    _ => {
                        d.frames_not_sent += 1;
                        if let Some(held) = d.warning.check(now) {
                            let who = d.slowed_by.map_or(String::new(), |r| {
                                format!(", as the receiver at {r} reported falling behind")
                            });
                            let rate = d.rate.rate().map_or("unlimited".into(), |r| {
                                format!("{:.0} Mbit/s", r as f64 / 1e6)
                            });
                            self.events.push_back(Event::Warning(format!(
                                "dropping frames to {a}: it is allowed {rate}{who}; \
                                 {} frames not sent to it so far{}",
                                d.frames_not_sent,
                                held_note(held)
                            )));
                        }
                    }
                }
            }
            // A live frame's spread is bounded by its interval (the next frame comes then);
            // only `max-bitrate` spreads it wider.
            if let Some(max) = self.cfg.max_bitrate {
                min_spread = Duration::from_secs_f64(bits as f64 / max.max(1) as f64);
            }
        } else {
            // A non-live sender waits for its slowest destination, then sends to all. It
            // starts at the rate of all its tracks together (once each has a frame).
            if let Some(dur) = frame.duration.filter(|d| !d.is_zero()) {
                self.tracks[i].rate = Some((bits as f64 / dur.as_secs_f64()) as u64);
            }
            let tracks_rate: Option<u64> = self
                .tracks
                .iter()
                .enumerate()
                .filter(|(k, t)| *k == i || t.caps.is_some())
                .map(|(_, t)| t.rate)
                .sum();
            let slowest = all
                .iter()
                .filter_map(|a| self.dests.get(a).map(|d| (a, d.rate.rate())))
                .min_by_key(|(_, r)| r.unwrap_or(u64::MAX))
                .map(|(a, _)| *a);
            if let Some(d) = slowest.and_then(|a| self.dests.get_mut(&a)) {
                if let Some(rate) = tracks_rate {
                    d.rate.start_at(rate, now);
                }
                match d.rate.admit(now, bits, frame.key, false) {
                    Admit::At(at) => {
                        self.wake(at);
                        return Err(frame);
                    }
                    _ => min_spread = d.rate.min_spread(bits),
                }
            }
            dests = all.clone();
        }
        if dests.len() < all.len() {
            self.stats.frames_dropped += 1;
        }
        if dests.is_empty() {
            return Ok(());
        }
        if check_frame(len, self.cfg.frag).is_err() {
            // Too large for the protocol at this MTU: the element refuses such frames
            // before they get here.
            return Ok(());
        }
        let info_due = self.tracks[i]
            .info_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= INFO_INTERVAL);
        // The stream info (with the sequence numbers before the frame's) goes to every
        // destination of the track, also one whose frame was dropped: it must not wait for
        // a frame to learn the caps.
        if info_due {
            self.queue_info(i, &all, now);
        }
        let t = &mut self.tracks[i];
        let Ok(plan) = t.packetizer.frame(len, frame.meta) else {
            return Ok(());
        };
        let count = plan.count();
        let (template, first_seq, frag) = plan.template();
        let start = if frame.live {
            frame.arrived.min(now)
        } else {
            now
        };
        let schedule = FrameSchedule::new(
            self.cfg.pacing,
            start,
            frame.duration,
            min_spread,
            count,
            self.cfg.batch_size,
            self.cfg.gso_align,
        );
        t.history.push(
            SentFrame {
                first_seq,
                count: count as u32,
                frag,
                header: template,
                data: frame.data,
                at: now,
            },
            now,
        );
        t.active = Some(Active {
            first_seq,
            count,
            frag,
            len,
            template,
            schedule,
            next_batch: 0,
            dests,
            fec_pending: self.cfg.fec_percentage > 0,
            last_emit: None,
        });
        Ok(())
    }

    /// Queues the stream info and a sender report of the track at `i` to `dests`; first
    /// the track table to every destination, when the session sends one and it is due
    /// (changed, or not sent for [`INFO_INTERVAL`]: it goes with the stream info's
    /// repetitions).
    fn queue_info(&mut self, i: usize, dests: &[SocketAddr], now: Instant) {
        if self.tracks[i].caps.is_none() {
            return;
        }
        let table_due = self.table_explicit
            && self
                .table_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= INFO_INTERVAL);
        if table_due {
            let all = self.all_dests(now);
            self.queue_table(&all, now);
        }
        let t = &mut self.tracks[i];
        let Some(caps) = t.caps.as_deref() else {
            return;
        };
        let Ok(pieces) = t.packetizer.info_datagrams(caps) else {
            return;
        };
        let mut g = Group::new(Kind::StreamInfo, t.entry.id, dests.to_vec());
        for (k, (header, slice)) in pieces.iter().enumerate() {
            let h: &[u8; INFO_HEADER_LEN] = header;
            g.owned.push(slice.to_vec());
            g.datagrams.push(Datagram::new(h, Payload::Owned(k)));
        }
        self.outbox.push_back(g);
        t.info_sent = Some(now);
        self.started = true;
        if let Some(c) = self.clock {
            // The clock as of now, from the latest sample (both clocks run at one rate):
            // the same mapping on every track.
            let since = now.saturating_duration_since(c.at).as_nanos() as u64;
            let (seq, datagram) = t.packetizer.sender_report(SenderReport {
                running_time: c.running_time.saturating_add(since),
                reference_time: c.reference_time.saturating_add(since),
                clock: c.clock,
                datagrams_sent: t.datagrams_sent,
                frames_sent: t.frames_sent as u32,
            });
            self.receivers.report_sent_on(t.entry.id, seq, now);
            let mut g = Group::new(Kind::SenderReport, t.entry.id, dests.to_vec());
            // All header and body (56 bytes): sealed as such with a passphrase.
            g.datagrams.push(Datagram::new(&datagram, Payload::None));
            self.outbox.push_back(g);
        }
    }

    /// Queues the track table (TRACKS, on the [`CONTROL_TRACK`]) to `dests`.
    fn queue_table(&mut self, dests: &[SocketAddr], now: Instant) {
        let Ok((body, payload)) = tracks::encode(self.table_gen, &self.tracks()) else {
            // `add_track` refuses what would not encode.
            return;
        };
        let header = protocol::CommonHeader {
            flags: 0,
            track: CONTROL_TRACK,
            session: self.cfg.session,
            seq: self.control_seq,
        };
        let mut head = Vec::with_capacity(protocol::COMMON_LEN + 8);
        if protocol::encode(&header, &[], &Body::Tracks(body), &mut head).is_err() {
            return;
        }
        self.control_seq = self.control_seq.wrapping_add(1);
        let mut g = Group::new(Kind::Tracks, CONTROL_TRACK, dests.to_vec());
        g.owned.push(payload);
        g.datagrams.push(Datagram::new(&head, Payload::Owned(0)));
        self.outbox.push_back(g);
        self.table_sent = Some(now);
    }

    /// When the frame being sent on the track at `i` may take its next step (None: it
    /// sends none): its next batch's deadline, or now for its FEC repairs and its end.
    fn step_due(&self, i: usize, now: Instant) -> Option<Instant> {
        let t = &self.tracks[i];
        let a = t.active.as_ref()?;
        if a.next_batch >= a.schedule.batches() {
            return Some(now);
        }
        // Behind a live frame, what is left is due at once; `max-bitrate` still holds.
        // Otherwise a batch found late catches up at twice the paced rate (a burst of
        // everything due could overflow a small queue on the path), but never past the
        // end of the frame's spread: by then all of it goes, so the frame leaves within
        // its interval however late the wake-ups were.
        let mut due = if t.behind() {
            now
        } else {
            let end_of_spread = a.schedule.send_at(a.schedule.batches());
            let gap = a.schedule.spread() / (2 * a.schedule.batches().max(1)) as u32;
            let paced = a.schedule.send_at(a.next_batch);
            a.last_emit
                .map_or(paced, |last| paced.max(last + gap))
                .min(end_of_spread)
        };
        if let Some(free) = self.ceiling_free_at {
            due = due.max(free.checked_sub(CEILING_SLACK).unwrap_or(free));
        }
        Some(due)
    }

    /// Takes the next step of the frame being sent on the track at `i`, due now: puts its
    /// batches that are due in `self.out` (all that are left when a live frame waits
    /// behind it), or its FEC repairs once they are all out (true); or finishes it (false).
    fn step(&mut self, i: usize, now: Instant) -> bool {
        let t = &mut self.tracks[i];
        let behind = t.behind();
        let Some(a) = t.active.as_mut() else {
            return false;
        };
        if a.next_batch < a.schedule.batches() {
            let end_of_spread = a.schedule.send_at(a.schedule.batches());
            let batch_len = a.schedule.batch_len();
            let first = a.next_batch * batch_len;
            let mut end = first;
            let all_due = behind || now >= end_of_spread;
            while a.next_batch < a.schedule.batches()
                && end - first < MAX_TRANSMIT
                && (all_due || (end == first && a.schedule.send_at(a.next_batch) <= now))
            {
                end = ((a.next_batch + 1) * batch_len).min(a.count);
                a.next_batch += 1;
                if self.cfg.max_bitrate.is_some() {
                    // Under a ceiling, one batch at a time.
                    break;
                }
            }
            a.last_emit = Some(now);
            let g = &mut self.out;
            g.kind = Kind::Media;
            g.track = t.entry.id;
            g.dests.clone_from(&a.dests);
            g.owned.clear();
            g.frame = Some(a.first_seq);
            g.datagrams.clear();
            for i in first..end {
                let mut h = a.template;
                let start = i * a.frag;
                protocol::patch_seq_offset(
                    &mut h,
                    a.first_seq.wrapping_add(i as u32),
                    start as u32,
                );
                g.datagrams.push(Datagram {
                    header: h,
                    header_len: MEDIA_HEADER_LEN as u8,
                    payload: Payload::Frame {
                        start: start as u32,
                        len: a.frag.min(a.len.saturating_sub(start)) as u32,
                    },
                });
            }
            t.history
                .sent_through(a.first_seq.wrapping_add(end as u32).wrapping_sub(1));
            return true;
        }
        if std::mem::take(&mut a.fec_pending) {
            let data = t.history.frame_data(a.first_seq).unwrap_or(&[]);
            let n = self
                .fec
                .encode(data, a.frag as u16, a.first_seq, self.cfg.fec_percentage);
            if n > 0 {
                let g = &mut self.out;
                g.kind = Kind::Fec;
                g.track = t.entry.id;
                g.dests.clone_from(&a.dests);
                g.owned.clear();
                g.frame = None;
                g.datagrams.clear();
                for i in 0..n {
                    if let Some((body, _)) = self.fec.repair(i) {
                        let h: [u8; FEC_HEADER_LEN] = t.packetizer.fec_header(&body);
                        g.datagrams.push(Datagram::new(&h, Payload::Fec(i)));
                    }
                }
                return true;
            }
        }
        // Every datagram of the frame is out.
        let last = a.first_seq.wrapping_add(a.count as u32).wrapping_sub(1);
        self.receivers.on_sent_on(t.entry.id, last);
        self.stats.frames_sent += 1;
        t.frames_sent += 1;
        t.active = None;
        false
    }

    /// What the session counts, as of `now`.
    pub fn stats(&mut self, now: Instant) -> Stats {
        let mut s = self.stats.clone();
        let host = self.cfg.dest;
        s.allowed_bitrate = self.dests.values().filter_map(|d| d.rate.rate()).min();
        s.rate_decreases = self.dests.values().map(|d| d.rate.decreases()).sum();
        if let Some(t) = self.subscribers.as_mut() {
            s.subscribers = t.current(now).0.len() as u64;
            s.subscribers_refused = t.refused;
        }
        s.receivers = self
            .receivers
            .receivers(now)
            .into_iter()
            .map(|info| {
                let d = if host != Some(info.addr) && self.dests.contains_key(&info.addr) {
                    self.dests.get(&info.addr)
                } else {
                    host.and_then(|h| self.dests.get(&h))
                };
                ReceiverStats {
                    info,
                    frames_not_sent: d.map_or(0, |d| d.frames_not_sent),
                    allowed_bitrate: d.and_then(|d| d.rate.rate()),
                }
            })
            .collect();
        s.tracks = self
            .tracks
            .iter()
            .map(|t| TrackStats {
                entry: t.entry.clone(),
                datagrams_sent: t.datagrams_sent,
                frames_sent: t.frames_sent,
                ended: t.ended,
            })
            .collect();
        s
    }
}

/// Checks that a frame of `len` bytes can be sent at `frag` payload bytes per datagram.
pub fn check_frame(len: usize, frag: u16) -> Result<(), PacketizeError> {
    let frame_len = u32::try_from(len).map_err(|_| PacketizeError::FrameTooLarge(len))?;
    if protocol::fragment_count(frame_len, frag) > protocol::MAX_FRAGMENTS {
        return Err(PacketizeError::TooManyFragments(len));
    }
    Ok(())
}

/// ", N more held back" for a rate-limited warning.
fn held_note(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} more such warnings held back)")
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "tracks_tests.rs"]
mod tracks_tests;
