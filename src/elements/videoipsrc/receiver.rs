// SPDX-License-Identifier: MPL-2.0
//! The receive thread of `videoipsrc` and the queue it fills.
//!
//! The socket is read, and frames reassembled, on a thread of the element's own, so that a
//! downstream clock wait (a synced sink straight after the source) never delays a read: every
//! datagram is taken from the kernel as soon as it arrives, and a frame's arrival time is when
//! its first datagram came, not when the streaming thread got round to it. Complete frames
//! wait in a [`Queue`] for `create()`. The queue holds frames no longer than the source's
//! maximum latency: when downstream stalls longer, the oldest frames are dropped, counted, and
//! the next frame handed out is marked discontinuous.
//!
//! Locks: `queue` and `stats` are each taken briefly and never together; the thread owns its
//! session, socket batch and buffer pool outright.

use crate::elements::lock;
use crate::net::{self, RecvBatch, SendBatch, UdpSocket, Waker};
use crate::protocol::{self, Body, CommonHeader};
use crate::reassembly::{self, Event, Session, Stats, NACK_COPIES};
use crate::send::packetizer;
use gst::prelude::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// A frame's bytes: a writable, mapped GStreamer buffer the fragments are copied into.
pub(super) type FrameBuf = gst::MappedBuffer<gst::buffer::Writable>;

/// Receive slot size: the largest UDP payload.
const SLOT_SIZE: usize = 65536;
/// Frame sizes at least this large, seen this many times in a row, get a buffer pool.
const POOL_MIN_SIZE: usize = 64 * 1024;
const POOL_AFTER_REPEATS: u32 = 3;
/// How often the thread looks at its counters for problems a user must act on (and so the
/// most often it warns about each).
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Most items the queue holds whatever their age (audio in 1 ms buffers fills 120 of them in
/// the default maximum latency).
const MAX_QUEUED: usize = 1024;

/// The source of a datagram the socket gave none for (it always does on Linux).
const UNKNOWN_SOURCE: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// Where a frame came from, and how its sender's timeline relates to a shared clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Origin {
    /// The sender's session id.
    pub session: Option<u64>,
    /// The address it sends from.
    pub from: Option<SocketAddr>,
    /// Its latest sender report.
    pub report: Option<protocol::SenderReport>,
}

/// What the receive thread hands to `create()` (moved once per frame: boxing the frame
/// would allocate per frame).
#[allow(clippy::large_enum_variant)]
pub(super) enum Item {
    /// A complete frame, the caps string of its stream info, and where it came from.
    Frame(reassembly::Frame<FrameBuf>, Arc<str>, Origin),
    /// The sender ended the stream.
    Eos,
    /// The socket failed; the thread has stopped.
    Error(String),
}

/// Frames waiting for `create()`, and what `unlock()` and the state changes tell it.
#[derive(Default)]
pub(super) struct Queue {
    pub items: VecDeque<Item>,
    /// Set by `unlock()`: `create()` returns at once.
    pub flushing: bool,
    /// Frames were dropped since the last one handed out.
    pub discont: bool,
    /// Complete frames dropped because downstream did not take them in time.
    pub dropped_late: u64,
    /// When the last datagram arrived (for the `timeout` message).
    pub last_data: Option<Instant>,
}

impl Queue {
    /// Drops frames at the head older than `max_age` (or beyond the count bound).
    pub fn drop_stale(&mut self, now: Instant, max_age: Duration) {
        while let Some(Item::Frame(f, ..)) = self.items.front() {
            if self.items.len() <= MAX_QUEUED && now.saturating_duration_since(f.arrival) <= max_age
            {
                break;
            }
            self.items.pop_front();
            self.dropped_late += 1;
            self.discont = true;
        }
    }

    /// Drops every queued frame (the stream goes on from what arrives next).
    pub fn clear_frames(&mut self) {
        let before = self.items.len();
        self.items.retain(|i| !matches!(i, Item::Frame(..)));
        let dropped = before - self.items.len();
        if dropped > 0 {
            self.dropped_late += dropped as u64;
            self.discont = true;
        }
    }
}

/// Counters published for the `stats` property.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RxStats {
    pub session: Stats,
    /// Most datagrams one receive found queued.
    pub largest_burst: u64,
    /// Receives that returned datagrams.
    pub receives: u64,
    /// Round trip to the sender (from NACKs to the resends they brought), once measured.
    pub rtt: Option<std::time::Duration>,
}

/// What the thread and the element share.
#[derive(Default)]
pub(super) struct Shared {
    pub queue: Mutex<Queue>,
    pub ready: Condvar,
    pub stats: Mutex<RxStats>,
    /// Set when the current caps cannot be used: the session lets go of them.
    reject_info: AtomicBool,
    stop: AtomicBool,
}

/// A warning for the user: what went wrong and which property to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Warning {
    /// Frames were dropped incomplete while some of their datagrams came after the window.
    WindowTooShort { frames: u64, late: u64 },
    /// Frames were dropped incomplete because datagrams were lost.
    Loss { frames: u64, lost: u64 },
    /// Datagrams of frames larger than max-frame-size were refused.
    FrameTooLarge { datagrams: u64, largest: u32 },
}

impl Warning {
    /// What happened and which property to change, for a receiver with `latency_ms` and
    /// `max_frame` bytes of max-frame-size.
    pub fn describe(&self, latency_ms: u32, max_frame: u32) -> String {
        match *self {
            Warning::WindowTooShort { frames, late } => format!(
                "{frames} frames dropped incomplete in the last 2 s while {late} of their datagrams came after the reassembly window: raise the latency property (now {latency_ms} ms)"
            ),
            Warning::FrameTooLarge { datagrams, largest } => format!(
                "{datagrams} datagrams in the last 2 s belonged to frames of up to {largest} bytes, larger than max-frame-size ({max_frame} bytes): raise the max-frame-size property"
            ),
            Warning::Loss { frames, lost } => format!(
                "{frames} frames dropped incomplete in the last 2 s: {lost} datagrams lost on the way (a network that drops them, or a receive buffer too small: raise buffer-size)"
            ),
        }
    }

    /// True when a property of this element is the fix (else the network, or the host).
    pub fn is_settings(&self) -> bool {
        !matches!(self, Warning::Loss { .. })
    }
}

/// How the thread runs.
pub(super) struct Config {
    pub session: reassembly::Config,
    pub batch_size: usize,
    /// Oldest a queued frame may get before it is dropped.
    pub max_age: Duration,
    /// Posts a warning (called at most once per kind per [`HEALTH_INTERVAL`]).
    pub warn: Box<dyn Fn(Warning) + Send>,
    /// The sender to subscribe to (it sends to this receiver only while subscribed); the
    /// element may change it while the thread runs (a source found by name moved).
    pub subscribe_to: Arc<Mutex<Option<SocketAddr>>>,
}

/// How often a subscriber renews its subscription...
pub(super) const SUBSCRIBE_INTERVAL: Duration = Duration::from_secs(1);
/// ...and for how long each renewal holds: a receiver that goes away without a word stops
/// costing its sender within this.
pub(super) const SUBSCRIBE_LEASE: Duration = Duration::from_secs(5);

/// Output buffers: a pool for the stream's steady frame size, plain allocations otherwise.
#[derive(Default)]
struct FramePool {
    pool: Option<gst::BufferPool>,
    size: usize,
    candidate: usize,
    repeats: u32,
}

impl FramePool {
    fn alloc(&mut self, len: usize) -> Option<FrameBuf> {
        if len != self.size || self.pool.is_none() {
            if len == self.candidate {
                self.repeats += 1;
            } else {
                self.candidate = len;
                self.repeats = 1;
            }
            if self.repeats >= POOL_AFTER_REPEATS && len >= POOL_MIN_SIZE {
                self.make_pool(len);
            }
        }
        let buffer = match &self.pool {
            Some(pool) if len == self.size => pool.acquire_buffer(None).ok(),
            _ => None,
        };
        let buffer = match buffer {
            Some(b) => b,
            None => gst::Buffer::with_size(len).ok()?,
        };
        buffer.into_mapped_buffer_writable().ok()
    }

    fn make_pool(&mut self, len: usize) {
        self.release();
        let Ok(size) = u32::try_from(len) else {
            return;
        };
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        config.set_params(None, size, 0, 0);
        if pool.set_config(config).is_ok() && pool.set_active(true).is_ok() {
            self.pool = Some(pool);
            self.size = len;
        }
    }

    fn release(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = pool.set_active(false);
        }
    }
}

impl Drop for FramePool {
    fn drop(&mut self) {
        self.release();
    }
}

/// The running receive thread; dropping it stops and joins the thread.
pub(super) struct Thread {
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    handle: Option<JoinHandle<()>>,
}

impl Thread {
    /// Starts receiving on `receiver`; `waker` interrupts the thread's waits when it must stop.
    pub fn spawn(
        receiver: Arc<UdpSocket>,
        waker: Arc<Waker>,
        shared: Arc<Shared>,
        cfg: Config,
    ) -> std::io::Result<Thread> {
        waker.reset();
        shared.stop.store(false, Ordering::SeqCst);
        let rx = Rx {
            batch: RecvBatch::new(cfg.batch_size, SLOT_SIZE),
            session: Session::new(cfg.session),
            window: cfg.session.window,
            max_age: cfg.max_age,
            receiver,
            waker: waker.clone(),
            shared: shared.clone(),
            pool: FramePool::default(),
            stats: RxStats::default(),
            warn: cfg.warn,
            health_at: Instant::now(),
            health_prev: Stats::default(),
            subscribe_to: cfg.subscribe_to,
            subscribed: None,
            reporter: Reporter {
                id: packetizer::random_session_id(),
                seq: 0,
                batch: SendBatch::new(),
                buf: Vec::with_capacity(128),
            },
        };
        let handle = std::thread::Builder::new()
            .name("videoipsrc-rx".into())
            .spawn(move || rx.run())?;
        Ok(Thread {
            shared,
            waker,
            handle: Some(handle),
        })
    }
}

impl Thread {
    /// Wakes the thread to act on a new subscription target at once.
    pub fn retarget(&self) {
        self.waker.wake();
    }

    /// Tells the session that the current caps cannot be used (it lets go of the stream).
    pub fn reject_info(&self) {
        self.shared.reject_info.store(true, Ordering::SeqCst);
        self.waker.wake();
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.waker.wake();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.waker.reset();
    }
}

/// The thread's own state.
struct Rx {
    receiver: Arc<UdpSocket>,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
    batch: RecvBatch,
    session: Session<FrameBuf>,
    pool: FramePool,
    window: Duration,
    max_age: Duration,
    stats: RxStats,
    warn: Box<dyn Fn(Warning) + Send>,
    /// When the counters were last looked at, and what they were then.
    health_at: Instant,
    health_prev: Stats,
    subscribe_to: Arc<Mutex<Option<SocketAddr>>>,
    /// The sender subscribed to, and when the subscription was last sent (renewed).
    subscribed: Option<(SocketAddr, Instant)>,
    reporter: Reporter,
}

/// The receiver's side of the back-channel: its own id and sequence numbers (the session
/// says when a report is due and what it says).
struct Reporter {
    /// This receiver's random id, in the session field of what it sends.
    id: u64,
    seq: u32,
    batch: SendBatch,
    buf: Vec<u8>,
}

impl Rx {
    fn run(mut self) {
        // Frames are timed out when the socket is drained, and under traffic that never lets
        // it drain once per window: the window runs from a frame's latest datagram, so a frame
        // whose datagrams are merely still queued is not at risk.
        let mut last_expiry = Instant::now();
        while !self.shared.stop.load(Ordering::SeqCst) {
            if self.shared.reject_info.swap(false, Ordering::SeqCst) {
                self.session.reject_info();
            }
            match self.batch.recv(&self.receiver) {
                Ok(0) => {}
                Ok(n) => {
                    let now = Instant::now();
                    self.stats.largest_burst = self.stats.largest_burst.max(n as u64);
                    self.stats.receives += 1;
                    // While a backlog is being read, requests are timed by the arrival of
                    // what was read (the stream's own time): a frame's end still queued in
                    // the socket is not yet missing.
                    let caught_up_to = self.take_batch(n, now);
                    self.nack_if_due(caught_up_to);
                    if now < last_expiry + self.window {
                        continue;
                    }
                }
                Err(e) => {
                    self.deliver(Item::Error(format!(
                        "receiving from the network failed: {e}"
                    )));
                    return;
                }
            }
            let now = Instant::now();
            last_expiry = now;
            while let Some(ev) = self.session.poll(now) {
                self.deliver_event(ev);
            }
            self.publish_stats();
            self.check_health(now);
            self.report_if_due(now);
            self.nack_if_due(now);
            self.subscribe_if_due(now);
            let renew = self.subscribed.map(|(_, t)| t + SUBSCRIBE_INTERVAL);
            let deadline = match (self.session.next_deadline(), renew) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match self
                .waker
                .wait(Some(self.receiver.fd()), libc::POLLIN, deadline)
            {
                // A wake is a one-shot here: stop (checked at the top of the loop, set before
                // the wake) or a request such as reject_info.
                Ok(net::Wait::Woken) => self.waker.reset(),
                Ok(net::Wait::Ready) | Ok(net::Wait::TimedOut) => {}
                Err(e) => {
                    self.deliver(Item::Error(format!("waiting for the network failed: {e}")));
                    return;
                }
            }
        }
        // Stopping: the sender need not wait for the lease to lapse.
        if let Some((to, _)) = self.subscribed {
            self.send_subscribe(to, Duration::ZERO);
        }
    }

    /// Hands the `n` datagrams of the last receive to the session, queueing each frame as soon
    /// as it completes. Each datagram counts as arrived when the kernel received it (the
    /// receive time, where the socket gives one), not when it was read. Returns the latest
    /// such arrival.
    fn take_batch(&mut self, n: usize, now: Instant) -> Instant {
        lock(&self.shared.queue).last_data = Some(now);
        let now_system = SystemTime::now();
        let mut latest: Option<Instant> = None;
        for i in 0..n {
            let Rx {
                batch,
                session,
                pool,
                ..
            } = self;
            let meta = batch.meta(i);
            let arrival = meta.and_then(|m| m.timestamp).map_or(now, |ts| {
                net::system_time_to_instant_at(ts, now_system, now)
            });
            let from = meta.map_or(UNKNOWN_SOURCE, |m| m.source);
            latest = latest.max(Some(arrival));
            match batch.get(i) {
                Some(d) => match session.push(d, from, arrival, |len| pool.alloc(len)) {
                    Ok(true) => {
                        while let Some(ev) = self.session.poll_ready() {
                            self.deliver_event(ev);
                        }
                    }
                    Ok(false) => {}
                    Err(_) => {}
                },
                None => session.count_invalid(),
            }
        }
        self.publish_stats();
        latest.unwrap_or(now)
    }

    fn deliver_event(&mut self, ev: Event<FrameBuf>) {
        // Counters first, so that whoever gets the frame sees it counted.
        self.publish_stats();
        let item = match ev {
            Event::Frame(f, caps) => Item::Frame(
                f,
                caps,
                Origin {
                    session: self.session.session_id(),
                    from: self.session.source_addr(),
                    report: self.session.sender_report(),
                },
            ),
            Event::Eos => Item::Eos,
        };
        self.deliver(item);
    }

    fn deliver(&self, item: Item) {
        {
            let mut q = lock(&self.shared.queue);
            q.items.push_back(item);
            q.drop_stale(Instant::now(), self.max_age);
        }
        self.shared.ready.notify_one();
    }

    /// Asks the sender for missing datagrams when a request is due.
    fn nack_if_due(&mut self, now: Instant) {
        if let Some(reassembly::NackRequest { to, nack, ranges }) = self.session.poll_nack(now) {
            self.send_control(to, nack.track, &Body::Nack(nack), &ranges, NACK_COPIES);
        }
    }

    /// Subscribes to (or renews the subscription with) the sender given, when due; when
    /// the sender changed, leaves the old one at once and subscribes to the new one.
    fn subscribe_if_due(&mut self, now: Instant) {
        let target = *lock(&self.subscribe_to);
        match (self.subscribed, target) {
            (Some((old, _)), new) if Some(old) != new => {
                self.send_subscribe(old, Duration::ZERO);
                self.subscribed = None;
            }
            (Some((_, t)), _) if now.saturating_duration_since(t) < SUBSCRIBE_INTERVAL => {
                return;
            }
            _ => {}
        }
        if let Some(to) = target {
            self.subscribed = Some((to, now));
            self.send_subscribe(to, SUBSCRIBE_LEASE);
        }
    }

    /// Sends a SUBSCRIBE for a lease of `lease` (zero: unsubscribe) to `to`.
    fn send_subscribe(&mut self, to: SocketAddr, lease: Duration) {
        let body = Body::Subscribe(protocol::Subscribe {
            session: 0,
            lease_ms: lease.as_millis().min(u128::from(u32::MAX)) as u32,
            flags: 0,
        });
        self.send_control(to, 0, &body, &[], 1);
    }

    /// Sends the sender a receiver report when one is due (and a sender is locked on to).
    fn report_if_due(&mut self, now: Instant) {
        if let Some((to, track, report)) = self.session.poll_report(now) {
            self.send_control(to, track, &Body::ReceiverReport(report), &[], 1);
        }
    }

    /// Sends `copies` of one datagram of this receiver's own (its id, its next sequence
    /// number) to the sender, with NACK `ranges` as payload. Best effort: what does not go out
    /// is replaced by the next report or request.
    fn send_control(
        &mut self,
        to: SocketAddr,
        track: u16,
        body: &Body,
        ranges: &[(u32, u32)],
        copies: usize,
    ) {
        let r = &mut self.reporter;
        let header = CommonHeader {
            flags: 0,
            track,
            session: r.id,
            seq: r.seq,
        };
        r.seq = r.seq.wrapping_add(1);
        r.buf.clear();
        if protocol::encode(&header, &[], body, &mut r.buf).is_err() {
            return;
        }
        for &(first, count) in ranges {
            protocol::push_nack_entry(&mut r.buf, first, count);
        }
        let buf = &r.buf;
        let _ = r
            .batch
            .send(&self.receiver, to, copies, |_| [&buf[..]], &self.waker);
    }

    /// Warns, once per [`HEALTH_INTERVAL`], about frames dropped for a cause the user can act
    /// on: frames larger than allowed, the reassembly window, or loss on the way.
    fn check_health(&mut self, now: Instant) {
        if now.saturating_duration_since(self.health_at) < HEALTH_INTERVAL {
            return;
        }
        let (s, p) = (self.session.stats(), self.health_prev);
        self.health_at = now;
        self.health_prev = s;
        let too_large = s.datagrams_too_large.saturating_sub(p.datagrams_too_large);
        if too_large > 0 {
            (self.warn)(Warning::FrameTooLarge {
                datagrams: too_large,
                largest: s.largest_refused_frame,
            });
        }
        let frames = s.frames_dropped.saturating_sub(p.frames_dropped);
        if frames == 0 {
            return;
        }
        let late = s.datagrams_late.saturating_sub(p.datagrams_late);
        let lost = s.datagrams_lost.saturating_sub(p.datagrams_lost);
        if late > 0 {
            (self.warn)(Warning::WindowTooShort { frames, late });
        } else if lost > 0 {
            (self.warn)(Warning::Loss { frames, lost });
        }
    }

    fn publish_stats(&self) {
        let mut s = self.stats;
        s.session = self.session.stats();
        s.rtt = self.session.rtt();
        *lock(&self.shared.stats) = s;
    }
}
