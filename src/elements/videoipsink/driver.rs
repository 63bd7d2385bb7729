// SPDX-License-Identifier: MPL-2.0
//! The driver thread of `videoipsink` and `videoipsinkbin`: it owns the [`send::Session`]
//! and its socket and does only I/O. It waits until the session's next deadline, a datagram
//! on the socket, or new input; hands in what came; sends what the session gives out; hands
//! its events to the element. It decides nothing: what goes out, when, and to whom is the
//! session's.
//!
//! Streaming threads hand items over through a small bounded [`Queue`] and return at once,
//! so pacing never holds them. The queue keeps **one lane per track**: each track's frames
//! are bounded on their own, and each lane is handed to the session only when that track
//! takes input ([`Session::wants_input_on`]), so a track that is stalled or held back
//! (a non-live frame over the rate) never blocks another track's streaming thread. A
//! non-live upstream faster than the link is slowed by its lane (the session takes its next
//! frame only once it may go); a live one waits at most one frame interval for room, then
//! the oldest frame waiting in its own lane is dropped and counted.
//!
//! Locks: `queue` and `stats` are each taken briefly and never together; neither is held
//! across a system call, a post or a notify. The session is owned by the thread outright.

use crate::elements::lock;
use crate::net::{RecvBatch, SendBatch, UdpSocket, Wait, Waker};
use crate::protocol::tracks::TrackEntry;
use crate::send::{self, ClockSample, Event, Frame, SendError, Session, TrackError};
use gst::glib;
use gst::prelude::*;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A frame's bytes, kept (a reference to the buffer, no copy) until it may no longer be
/// resent.
pub(crate) type Kept = gst::MappedBuffer<gst::buffer::Readable>;

/// Frames each track's lane holds: one being taken, one waiting.
const QUEUE_FRAMES: usize = 2;
/// Reports and requests are small: slots of 2 KiB, a few per receive.
const RECV_SLOT: usize = 2048;
const RECV_BATCH: usize = 16;
/// Most receives per wake-up, so that a flood of datagrams cannot starve the sending.
const MAX_RECEIVES: usize = 64;
/// How often the counters are published for the `stats` property while sending.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(20);
/// Longest wait without a deadline: the counters are published at least this often (and a
/// track re-declared while its old self is still ending is tried again).
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How long the end of stream waits for the frames before it to be sent.
pub(crate) const EOS_WAIT: Duration = Duration::from_secs(5);

/// What a streaming thread hands to the driver for one track.
pub(crate) enum Item {
    Caps(String),
    Frame(Frame<Kept>),
    Eos,
    /// Everything of this track before was flushed.
    Flush,
    /// Everything of every track before was flushed (`videoipsink`, whose session is its
    /// one track).
    FlushAll,
    /// Declares the track (before its caps).
    Add(TrackEntry),
    /// Ends the track (its end of stream goes out) and takes it out of the table.
    Remove,
}

/// One track's items waiting for the driver, and what its streaming thread is told.
#[derive(Default)]
pub(crate) struct Lane {
    items: VecDeque<Item>,
    frames: usize,
    /// Set by the track's `unlock()`: its waits return at once.
    pub flushing: bool,
    /// End-of-stream items handed over.
    eos_handed: u64,
    /// End-of-stream items the driver has sent.
    pub eos_sent: u64,
    /// Live frames dropped because the driver was a frame behind on this track.
    pub dropped: u64,
}

/// Items waiting for the driver, one lane per track, and what both sides tell each other.
#[derive(Default)]
pub(crate) struct Queue {
    lanes: BTreeMap<u16, Lane>,
    /// The latest clock reading (only the latest matters).
    clock: Option<ClockSample>,
    /// The driver failed (the error is posted); the stream cannot go on.
    pub failed: bool,
    /// The driver has ended.
    pub ended: bool,
    /// Live frames dropped because the driver was a frame behind, all tracks.
    pub dropped: u64,
}

impl Queue {
    /// The lane of `track`, made if new.
    fn lane(&mut self, track: u16) -> &mut Lane {
        self.lanes.entry(track).or_default()
    }

    /// The lane of `track`, if it has one.
    pub fn lane_of(&self, track: u16) -> Option<&Lane> {
        self.lanes.get(&track)
    }
}

/// What the `stats` property reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Published {
    pub session: send::Stats,
    /// Datagrams the kernel refused.
    pub send_errors: u64,
}

/// What the driver and the elements share.
pub(crate) struct Shared {
    pub queue: Mutex<Queue>,
    /// Signalled when a lane has room, an end of stream was sent, or the driver ended.
    pub changed: Condvar,
    /// Wakes the driver for new input or to stop.
    work: Waker,
    /// Interrupts a send waiting on a full socket buffer: only to stop.
    stop_waker: Waker,
    stop: AtomicBool,
    pub stats: Mutex<Published>,
}

impl Shared {
    /// Hands `item` of `track` to the driver. A frame waits for room in its track's lane: a
    /// live one at most `max_wait`, after which the oldest frame waiting there is dropped.
    /// Err(true) when the track is flushing, Err(false) when the driver failed or ended.
    pub fn push(&self, track: u16, item: Item, live: bool, max_wait: Duration) -> Result<(), bool> {
        let is_frame = matches!(item, Item::Frame(_));
        let start = Instant::now();
        let mut q = lock(&self.queue);
        loop {
            if q.failed || q.ended {
                return Err(false);
            }
            let lane = q.lane(track);
            // Declaring and ending a track are the bin's, not the streaming thread's: they
            // go in while it flushes.
            if lane.flushing && !matches!(item, Item::Add(_) | Item::Remove) {
                return Err(true);
            }
            if !is_frame || lane.frames < QUEUE_FRAMES {
                break;
            }
            let waited = start.elapsed();
            if live && waited >= max_wait {
                if let Some(i) = lane.items.iter().position(|i| matches!(i, Item::Frame(_))) {
                    lane.items.remove(i);
                    lane.frames -= 1;
                    lane.dropped += 1;
                    q.dropped += 1;
                }
                break;
            }
            let left = if live {
                max_wait - waited
            } else {
                Duration::from_millis(100)
            };
            q = self
                .changed
                .wait_timeout(q, left)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
        let lane = q.lane(track);
        lane.frames += usize::from(is_frame);
        lane.eos_handed += u64::from(matches!(item, Item::Eos | Item::Remove));
        lane.items.push_back(item);
        drop(q);
        self.work.wake();
        Ok(())
    }

    /// Hands the pipeline's clock now to the driver, for every track's sender reports
    /// (only the latest reading matters: one waiting is replaced).
    pub fn push_clock(&self, sample: ClockSample) -> Result<(), bool> {
        let mut q = lock(&self.queue);
        if q.failed || q.ended {
            return Err(false);
        }
        q.clock = Some(sample);
        drop(q);
        self.work.wake();
        Ok(())
    }

    /// End-of-stream items of `track` handed over so far.
    pub fn eos_handed(&self, track: u16) -> u64 {
        lock(&self.queue)
            .lanes
            .get(&track)
            .map_or(0, |l| l.eos_handed)
    }

    /// Waits until the driver has sent `eos` end-of-stream items of `track`, at most
    /// [`EOS_WAIT`]. False when flushing, failed or timed out.
    pub fn wait_eos_sent(&self, track: u16, eos: u64) -> bool {
        let deadline = Instant::now() + EOS_WAIT;
        let mut q = lock(&self.queue);
        loop {
            let (sent, flushing) = q
                .lanes
                .get(&track)
                .map_or((u64::MAX, false), |l| (l.eos_sent, l.flushing));
            if sent >= eos {
                return true;
            }
            let now = Instant::now();
            if flushing || q.failed || q.ended || now >= deadline {
                return false;
            }
            q = self
                .changed
                .wait_timeout(q, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
    }

    /// Flushing of `track` on (its `unlock()`) or off (`unlock_stop()`).
    pub fn set_flushing(&self, track: u16, on: bool) {
        lock(&self.queue).lane(track).flushing = on;
        self.changed.notify_all();
    }

    /// Drops the frames of `track` waiting (a flush) and tells the session to forget its
    /// own: of that track alone, or with `all` of every track.
    pub fn flush(&self, track: u16, all: bool) {
        let mut q = lock(&self.queue);
        let lane = q.lane(track);
        let before = lane.items.len();
        lane.items
            .retain(|i| !matches!(i, Item::Frame(_) | Item::Eos));
        // What was dropped of the ends of stream handed over counts as sent: nobody waits.
        let gone_eos = (before - lane.items.len()) as u64 - lane.frames as u64;
        lane.eos_handed = lane.eos_handed.saturating_sub(gone_eos);
        lane.frames = 0;
        lane.items
            .push_back(if all { Item::FlushAll } else { Item::Flush });
        drop(q);
        self.changed.notify_all();
        self.work.wake();
    }
}

/// The running driver; dropping it stops and joins the thread.
pub(crate) struct Driver {
    pub shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

/// What the driver needs besides its session.
pub(crate) struct Setup {
    pub socket: UdpSocket,
    pub element: glib::WeakRef<gst::Element>,
}

impl Driver {
    /// Starts the thread.
    pub fn spawn(session: Session<Kept>, setup: Setup) -> std::io::Result<Driver> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            work: Waker::new()?,
            stop_waker: Waker::new()?,
            stop: AtomicBool::new(false),
            stats: Mutex::new(Published::default()),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("videoipsink".into())
            .spawn(move || {
                run(session, &setup, &s);
                lock(&s.queue).ended = true;
                s.changed.notify_all();
            })?;
        Ok(Driver {
            shared,
            handle: Some(handle),
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.stop_waker.wake();
        self.shared.work.wake();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Why the driver stopped sending.
enum Stop {
    /// Asked to.
    Asked,
    /// A fatal error, to post.
    Error(gst::ErrorMessage),
}

fn run(mut session: Session<Kept>, setup: &Setup, shared: &Shared) {
    let mut recv = RecvBatch::new(RECV_BATCH, RECV_SLOT);
    let mut out = SendBatch::new();
    let mut errors = 0u64;
    let mut published: Option<Instant> = None;
    // Whether the socket may have datagrams to read.
    let mut readable = true;
    let result = loop {
        if shared.stop.load(Ordering::SeqCst) {
            break Stop::Asked;
        }
        shared.work.reset();
        let more = take_input(&mut session, setup, shared);
        let now = Instant::now();
        // Read only when the last wait said there is something to read (a receive costs a
        // system call, and the driver wakes for every paced batch).
        for _ in 0..MAX_RECEIVES {
            if !readable {
                break;
            }
            // A socket error (an ICMP error queued on it, say) is no reason to stop.
            let n = recv.recv(&setup.socket).unwrap_or(0);
            for i in 0..n {
                if let (Some(d), Some(meta)) = (recv.get(i), recv.meta(i)) {
                    session.handle_datagram(now, meta.source, d);
                }
            }
            readable = n == RECV_BATCH;
        }
        if let Err(stop) = transmit(&mut session, setup, shared, &mut out, &mut errors) {
            break stop;
        }
        let mut ended: Vec<Option<u16>> = Vec::new();
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Warning(text) => {
                    if let Some(e) = setup.element.upgrade() {
                        gst::element_warning!(e, gst::ResourceError::Write, ("{}", text));
                    }
                }
                Event::EndOfStreamSent => ended.push(None),
                Event::TrackEnded(t) => ended.push(Some(t)),
            }
        }
        // Published often, and whenever nothing is due: a reader who waited for the last
        // frame sees it counted.
        let now = Instant::now();
        if !ended.is_empty()
            || session.poll_timeout().is_none()
            || published.is_none_or(|t| now.saturating_duration_since(t) >= PUBLISH_INTERVAL)
        {
            publish(&mut session, shared, errors, now);
            published = Some(now);
        }
        if !ended.is_empty() {
            confirm_ends(&mut lock(&shared.queue), &ended);
            shared.changed.notify_all();
        }
        // Sending may have let a track take its next item (a frame begun, or given up):
        // look again before waiting, or a non-live input waits a whole idle wait per frame.
        if more || input_waiting(&session, shared) {
            continue;
        }
        let deadline = Some(
            session
                .poll_timeout()
                .map_or(now + IDLE_WAIT, |t| t.min(now + IDLE_WAIT)),
        );
        match shared
            .work
            .wait(Some(setup.socket.fd()), libc::POLLIN, deadline)
        {
            Ok(Wait::Ready) => readable = true,
            Ok(_) => {}
            Err(e) => {
                break Stop::Error(gst::error_msg!(
                    gst::ResourceError::Read,
                    ["waiting on the socket failed: {}", e]
                ));
            }
        }
    };
    publish(&mut session, shared, errors, Instant::now());
    if let Stop::Error(msg) = result {
        lock(&shared.queue).failed = true;
        shared.changed.notify_all();
        if let Some(e) = setup.element.upgrade() {
            e.post_error_message(msg);
        }
    }
}

/// Marks the ends of stream the session says went out: a track's (`Some`), or the
/// session's last one (`None`: every track has ended, so every end handed over is out).
fn confirm_ends(q: &mut Queue, ended: &[Option<u16>]) {
    for e in ended {
        match e {
            Some(t) => {
                let lane = q.lane(*t);
                lane.eos_sent = (lane.eos_sent + 1).min(lane.eos_handed);
            }
            None => {
                for lane in q.lanes.values_mut() {
                    lane.eos_sent = lane.eos_handed;
                }
            }
        }
    }
}

/// True when a lane holds an item its track would take now.
fn input_waiting(session: &Session<Kept>, shared: &Shared) -> bool {
    lock(&shared.queue).lanes.iter().any(|(&track, lane)| {
        lane.items
            .front()
            .is_some_and(|first| !matches!(first, Item::Add(_)))
            && session.wants_input_on(track)
    })
}

/// Hands the session what waits in each track's lane, while that track takes input. True
/// when more waits that the session would take now.
fn take_input(session: &mut Session<Kept>, setup: &Setup, shared: &Shared) -> bool {
    let mut took = false;
    let mut more = false;
    let mut errors: Vec<String> = Vec::new();
    let mut refused_ends: Vec<Option<u16>> = Vec::new();
    {
        let mut q = lock(&shared.queue);
        if let Some(c) = q.clock.take() {
            session.handle_clock(c);
        }
        for (&track, lane) in q.lanes.iter_mut() {
            // Handing over is a move into the session's own queue: no system call, so the
            // lock is kept for the pass.
            while session.wants_input_on(track) {
                let Some(item) = lane.items.pop_front() else {
                    break;
                };
                took = true;
                let result = match item {
                    Item::Caps(c) => session.handle_caps_on(track, c),
                    Item::Frame(f) => {
                        lane.frames -= 1;
                        session.handle_frame_on(track, f)
                    }
                    Item::Eos => session.handle_eos_on(track),
                    Item::Flush => session.flush_on(track),
                    Item::FlushAll => {
                        session.flush();
                        Ok(())
                    }
                    Item::Add(entry) => match session.add_track(entry.clone()) {
                        // The track of this id is still sending its end (it was removed
                        // just before): tried again on a later pass.
                        Err(TrackError::Duplicate(_))
                            if session.tracks().iter().any(|t| t.id == track) =>
                        {
                            lane.items.push_front(Item::Add(entry));
                            break;
                        }
                        r => r,
                    },
                    Item::Remove => session.remove_track(track),
                };
                if let Err(e) = result {
                    // An end of stream the session refused (no such track) will never be
                    // confirmed: it is, at once, so nobody waits for it.
                    if lane.eos_handed > lane.eos_sent && matches!(e, TrackError::Unknown(_)) {
                        refused_ends.push(Some(track));
                    }
                    errors.push(format!("track {track}: {e}"));
                }
            }
            if lane
                .items
                .front()
                .is_some_and(|first| !matches!(first, Item::Add(_)))
                && session.wants_input_on(track)
            {
                more = true;
            }
        }
        if !refused_ends.is_empty() {
            confirm_ends(&mut q, &refused_ends);
        }
    }
    if took {
        shared.changed.notify_all();
    }
    if let (false, Some(el)) = (errors.is_empty(), setup.element.upgrade()) {
        for e in errors {
            gst::debug!(gst::CAT_DEFAULT, obj = el, "refused by the session: {}", e);
        }
    }
    more
}

/// Sends everything the session has due. Datagrams one destination refuses are the
/// session's to judge (a path too narrow for them, a frame refused whole): they are handed
/// back to it, and the others are sent to all the same. Only a failure of the socket itself
/// stops the driver.
fn transmit(
    session: &mut Session<Kept>,
    setup: &Setup,
    shared: &Shared,
    out: &mut SendBatch,
    errors: &mut u64,
) -> Result<(), Stop> {
    let now = Instant::now();
    let mut refused: Vec<(SocketAddr, SendError)> = Vec::new();
    while let Some(t) = session.poll_transmit(now) {
        for &dest in t.dests {
            let report = out
                .send(
                    &setup.socket,
                    dest,
                    t.len(),
                    |k| t.parts(k),
                    &shared.stop_waker,
                )
                .map_err(|e| {
                    Stop::Error(gst::error_msg!(
                        gst::ResourceError::Write,
                        ["sending to {} failed: {}", dest, e]
                    ))
                })?;
            *errors += report.errors as u64;
            if report.interrupted {
                return Err(Stop::Asked);
            }
            if report.too_large {
                refused.push((
                    dest,
                    SendError::TooLarge {
                        path_mtu: report.path_mtu,
                    },
                ));
            } else if let (0, Some(kind), send::Kind::Media) =
                (report.sent, report.first_error, t.kind)
            {
                refused.push((dest, SendError::Refused(kind)));
            }
        }
        for (dest, error) in refused.drain(..) {
            session.handle_send_error(now, dest, error);
        }
    }
    Ok(())
}

fn publish(session: &mut Session<Kept>, shared: &Shared, errors: u64, now: Instant) {
    let stats = session.stats(now);
    let mut p = lock(&shared.stats);
    p.session = stats;
    p.send_errors = errors;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::packetizer::FrameMeta;

    fn shared() -> Shared {
        Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            work: Waker::new().expect("a waker"),
            stop_waker: Waker::new().expect("a waker"),
            stop: AtomicBool::new(false),
            stats: Mutex::new(Published::default()),
        }
    }

    fn frame(live: bool) -> Item {
        let _ = gst::init();
        let data = gst::Buffer::from_slice(vec![0u8; 16])
            .into_mapped_buffer_readable()
            .expect("maps");
        Item::Frame(Frame {
            data,
            meta: FrameMeta::default(),
            duration: None,
            key: true,
            live,
            arrived: Instant::now(),
        })
    }

    #[test]
    fn test_a_full_lane_holds_back_its_own_track_alone() {
        let s = shared();
        // Track 1's lane fills (nobody takes it: a track held back by the session).
        for _ in 0..QUEUE_FRAMES {
            assert!(s.push(1, frame(false), false, Duration::ZERO).is_ok());
        }
        // Track 0 still hands its frames over at once.
        let start = Instant::now();
        for _ in 0..QUEUE_FRAMES {
            assert!(s.push(0, frame(false), false, Duration::ZERO).is_ok());
        }
        assert!(start.elapsed() < Duration::from_millis(50));
        // A live frame of the full track 1 replaces its own oldest, and none of track 0's.
        assert!(s.push(1, frame(true), true, Duration::ZERO).is_ok());
        let q = lock(&s.queue);
        assert_eq!(q.lane_of(1).map(|l| (l.frames, l.dropped)), Some((2, 1)));
        assert_eq!(q.lane_of(0).map(|l| (l.frames, l.dropped)), Some((2, 0)));
    }

    #[test]
    fn test_flushing_one_track_leaves_the_others_streaming() {
        let s = shared();
        s.set_flushing(1, true);
        assert_eq!(s.push(1, frame(false), false, Duration::ZERO), Err(true));
        assert!(s.push(0, frame(false), false, Duration::ZERO).is_ok());
        // Ending a track goes in while it flushes; its end counts as handed over.
        assert!(s.push(1, Item::Remove, false, Duration::ZERO).is_ok());
        assert_eq!(s.eos_handed(1), 1);
    }
}
