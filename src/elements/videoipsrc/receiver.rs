// SPDX-License-Identifier: MPL-2.0
//! The driver thread of `videoipsrc` and the queue it fills.
//!
//! The thread owns the receiver session ([`crate::receive::Session`]) and does only I/O: it
//! waits until the session's next deadline or until the socket is readable, reads
//! (`recvmmsg` batches), hands each datagram in with its kernel receive time, sends what the
//! session has to send, and hands frames, end of stream and warnings on. What to send and
//! when, which sender to follow and what to warn about are the session's decisions.
//!
//! Reading on a thread of its own means a downstream clock wait (a synced sink straight
//! after the source) never delays a read: every datagram is taken from the kernel as soon as
//! it arrives, and a frame's arrival time is when its first datagram came, not when the
//! streaming thread got round to it. Complete frames wait in a [`Queue`] for `create()`. The
//! queue holds frames no longer than the source's maximum latency: when downstream stalls
//! longer, the oldest frames are dropped, counted, and the next frame handed out is marked
//! discontinuous. An error of the socket is posted at once and ends the stream.
//!
//! Locks: `queue`, `stats` and the subscription target are each taken briefly and never
//! together, and none across a system call; the thread owns its session, socket batches and
//! buffer pool outright.

use crate::elements::lock;
use crate::net::{self, RecvBatch, SendBatch, UdpSocket, Waker};
use crate::protocol::tracks::TrackEntry;
use crate::receive::{self, Event, Meta, Origin, Session, Stats, Warning};
use crate::send::packetizer;
use gst::prelude::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// A frame's bytes: a writable, mapped GStreamer buffer the fragments are copied into.
pub(crate) type FrameBuf = gst::MappedBuffer<gst::buffer::Writable>;

/// Receive slot size: the largest UDP payload.
const SLOT_SIZE: usize = 65536;
/// Frame sizes at least this large, seen this many times in a row, get a buffer pool.
const POOL_MIN_SIZE: usize = 64 * 1024;
const POOL_AFTER_REPEATS: u32 = 3;
/// Most items the queue holds whatever their age (audio in 1 ms buffers fills 120 of them in
/// the default maximum latency).
const MAX_QUEUED: usize = 1024;

/// The source of a datagram the socket gave none for (it always does on Linux).
const UNKNOWN_SOURCE: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// What the receive thread hands to `create()` (moved once per frame: boxing the frame
/// would allocate per frame).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    /// A complete frame, the caps string of its stream info, and where it came from.
    Frame(receive::Frame<FrameBuf>, Arc<str>, Origin),
    /// The sender ended the stream.
    Eos,
    /// The socket failed (the error is already posted); the thread has stopped.
    Error,
}

/// Frames waiting for `create()`, and what `unlock()` and the state changes tell it.
#[derive(Default)]
pub(crate) struct Queue {
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
pub(crate) struct RxStats {
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
pub(crate) struct Shared {
    pub queue: Mutex<Queue>,
    pub ready: Condvar,
    pub stats: Mutex<RxStats>,
    /// Set when the current caps cannot be used: the session lets go of them.
    reject_info: AtomicBool,
    stop: AtomicBool,
}

/// Where a receiver of several tracks (`videoipsrcbin`) wants what the session hands out:
/// each track's frames in a queue of its own (see `videoipsrcbin::router`), so that a track
/// nobody reads never holds another back. Called on the receive thread, with no lock of the
/// thread held; each call must return quickly (queue, notify, never wait).
pub(crate) trait Route: Send + Sync {
    /// A complete frame of `track`, its caps string and origin.
    fn frame(&self, track: u16, frame: receive::Frame<FrameBuf>, caps: Arc<str>, origin: Origin);
    /// `track` locked on or announced caps.
    fn stream(&self, track: u16, session: u64, caps: Arc<str>);
    /// The session's newer track table.
    fn tracks(&self, session: u64, generation: u16, tracks: Arc<[TrackEntry]>);
    /// `track` ended.
    fn eos(&self, track: u16);
    /// Every track followed ended.
    fn end(&self);
    /// The socket failed (the error is already posted); the thread has stopped.
    fn error(&self);
}

/// How the thread runs.
pub(crate) struct Config {
    pub session: receive::Config,
    pub batch_size: usize,
    /// With a passphrase: its key.
    pub master: Option<Arc<crate::crypto::MasterKey>>,
    /// Oldest a queued frame may get before it is dropped.
    pub max_age: Duration,
    /// Posts a warning (the session gives each kind at most once per
    /// [`receive::health::HEALTH_INTERVAL`]).
    pub warn: Box<dyn Fn(Warning) + Send>,
    /// Posts an error of the socket (the thread stops after it).
    pub fail: Box<dyn Fn(String) + Send>,
    /// The sender to subscribe to (it sends to this receiver only while subscribed); the
    /// element may change it while the thread runs (a source found by name moved).
    pub subscribe_to: Arc<Mutex<Vec<SocketAddr>>>,
    /// Per-track delivery (None: every frame to [`Shared::queue`], as `videoipsrc` wants).
    pub route: Option<Arc<dyn Route>>,
}

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
pub(crate) struct Thread {
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
        let window = cfg.session.window;
        let mut session = Session::new(receive::Config {
            id: packetizer::random_session_id(),
            ..cfg.session
        });
        if let Some(m) = cfg.master {
            session.protect(m);
        }
        let rx = Rx {
            batch: RecvBatch::new(cfg.batch_size, SLOT_SIZE),
            session,
            window,
            max_age: cfg.max_age,
            receiver,
            waker: waker.clone(),
            shared: shared.clone(),
            pool: FramePool::default(),
            stats: RxStats::default(),
            warn: cfg.warn,
            fail: cfg.fail,
            subscribe_to: cfg.subscribe_to,
            subscribed_to: Vec::new(),
            route: cfg.route,
            send: SendBatch::new(),
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
    fail: Box<dyn Fn(String) + Send>,
    subscribe_to: Arc<Mutex<Vec<SocketAddr>>>,
    /// The candidates last handed to the session.
    subscribed_to: Vec<SocketAddr>,
    send: SendBatch,
    route: Option<Arc<dyn Route>>,
}

impl Rx {
    fn run(mut self) {
        let result = self.drive();
        // Stopping (or failed): the sender need not wait for the lease to lapse.
        self.session.close();
        self.transmit(Instant::now());
        if let Err(msg) = result {
            (self.fail)(msg);
            match &self.route {
                Some(r) => r.error(),
                None => self.deliver(Item::Error),
            }
        }
    }

    /// Reads, hands in and sends until told to stop, or until the socket fails.
    fn drive(&mut self) -> Result<(), String> {
        // Frames are timed out when the socket is drained, and under traffic that never lets
        // it drain once per window: the window runs from a frame's latest datagram, so a frame
        // whose datagrams are merely still queued is not at risk.
        let mut last_expiry = Instant::now();
        while !self.shared.stop.load(Ordering::SeqCst) {
            if self.shared.reject_info.swap(false, Ordering::SeqCst) {
                // videoipsrc follows the primary track alone.
                self.session.reject_info(0);
            }
            let changed = {
                let t = lock(&self.subscribe_to);
                let changed = *t != self.subscribed_to;
                if changed {
                    self.subscribed_to.clone_from(&t);
                }
                changed
            };
            if changed {
                self.session
                    .set_subscription_candidates(self.subscribed_to.clone());
            }
            match self.batch.recv(&self.receiver) {
                Ok(0) => {}
                Ok(n) => {
                    let now = Instant::now();
                    self.stats.largest_burst = self.stats.largest_burst.max(n as u64);
                    self.stats.receives += 1;
                    // While a backlog is being read, the session's time is the arrival of
                    // what was read (the stream's own time): a frame's end still queued in
                    // the socket is not yet missing.
                    let caught_up_to = self.take_batch(n, now);
                    self.transmit(caught_up_to);
                    if now < last_expiry + self.window {
                        continue;
                    }
                }
                Err(e) => return Err(format!("receiving from the network failed: {e}")),
            }
            let now = Instant::now();
            last_expiry = now;
            self.session.handle_timeout(now);
            self.deliver_events();
            self.publish_stats();
            self.transmit(now);
            match self.waker.wait(
                Some(self.receiver.fd()),
                libc::POLLIN,
                self.session.poll_timeout(),
            ) {
                // A wake is a one-shot here: stop (checked at the top of the loop, set before
                // the wake) or a request such as reject_info or a new subscription target.
                Ok(net::Wait::Woken) => self.waker.reset(),
                Ok(net::Wait::Ready) | Ok(net::Wait::TimedOut) => {}
                Err(e) => return Err(format!("waiting for the network failed: {e}")),
            }
        }
        Ok(())
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
            let mut none = [0u8; 0];
            let (bytes, truncated) = match batch.get_mut(i) {
                Some(d) => (d, false),
                None => (&mut none[..], true),
            };
            session.handle_datagram(arrival, from, Meta { truncated }, bytes, |len| {
                pool.alloc(len)
            });
            self.deliver_events();
        }
        self.publish_stats();
        latest.unwrap_or(now)
    }

    /// Hands on what the session has: frames and end of stream to the queue, warnings to
    /// the bus.
    fn deliver_events(&mut self) {
        if let Some(route) = self.route.clone() {
            return self.route_events(&*route);
        }
        while let Some(ev) = self.session.poll_event() {
            match ev {
                Event::Frame {
                    frame,
                    caps,
                    origin,
                    ..
                } => {
                    // Counters first, so that whoever gets the frame sees it counted.
                    self.publish_stats();
                    self.deliver(Item::Frame(frame, caps, origin));
                }
                // The session's end: with the primary track alone, its end of stream.
                Event::End => {
                    self.publish_stats();
                    self.deliver(Item::Eos);
                }
                Event::Eos { .. } | Event::Tracks { .. } => {}
                Event::Warning(w) => (self.warn)(w),
                Event::Stream {
                    session,
                    from,
                    caps,
                    ..
                } => gst::info!(
                    super::imp::CAT,
                    "following session {session:016x} from {from}: {caps:.200}"
                ),
            }
        }
    }

    /// Hands on what the session has to a per-track [`Route`].
    fn route_events(&mut self, route: &dyn Route) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                Event::Frame {
                    track,
                    frame,
                    caps,
                    origin,
                } => {
                    self.publish_stats();
                    route.frame(track, frame, caps, origin);
                }
                Event::Stream {
                    track,
                    session,
                    from,
                    caps,
                } => {
                    gst::info!(
                        super::imp::CAT,
                        "track {track} of session {session:016x} from {from}: {caps:.200}"
                    );
                    route.stream(track, session, caps);
                }
                Event::Tracks {
                    session,
                    generation,
                    tracks,
                } => route.tracks(session, generation, tracks),
                Event::Eos { track } => {
                    self.publish_stats();
                    route.eos(track);
                }
                Event::End => {
                    self.publish_stats();
                    route.end();
                }
                Event::Warning(w) => (self.warn)(w),
            }
        }
    }

    fn deliver(&self, item: Item) {
        {
            let mut q = lock(&self.shared.queue);
            q.items.push_back(item);
            q.drop_stale(Instant::now(), self.max_age);
        }
        self.shared.ready.notify_one();
    }

    /// Sends what the session has to send at `now`. Best effort: what does not go out is
    /// replaced by the next report or request.
    fn transmit(&mut self, now: Instant) {
        while let Some(t) = self.session.poll_transmit(now) {
            let contents = &t.contents[..];
            let _ = self.send.send(
                &self.receiver,
                t.destination,
                t.copies,
                |_| [contents],
                &self.waker,
            );
        }
    }

    fn publish_stats(&self) {
        let mut s = self.stats;
        s.session = self.session.stats();
        s.rtt = self.session.rtt();
        *lock(&self.shared.stats) = s;
    }
}
