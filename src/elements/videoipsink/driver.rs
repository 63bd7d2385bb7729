// SPDX-License-Identifier: MPL-2.0
//! The driver thread of `videoipsink`: it owns the [`send::Session`] and its socket and does
//! only I/O. It waits until the session's next deadline, a datagram on the socket, or new
//! input; hands in what came; sends what the session gives out; hands its events to the
//! element. It decides nothing: what goes out, when, and to whom is the session's.
//!
//! The streaming thread hands items over through a small bounded [`Queue`] and returns at
//! once, so pacing never holds it. A non-live upstream faster than the link is slowed by
//! the queue (the session takes the next frame only once it may go); a live one waits at
//! most one frame interval for room, then the oldest frame waiting is dropped and counted.
//!
//! Locks: `queue` and `stats` are each taken briefly and never together; neither is held
//! across a system call, a post or a notify. The session is owned by the thread outright.

use crate::elements::lock;
use crate::net::{RecvBatch, SendBatch, UdpSocket, Wait, Waker};
use crate::send::{self, ClockSample, Event, Frame, SendError, Session};
use gst::glib;
use gst::prelude::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A frame's bytes, kept (a reference to the buffer, no copy) until it may no longer be
/// resent.
pub(super) type Kept = gst::MappedBuffer<gst::buffer::Readable>;

/// Frames the queue holds: one being taken, one waiting.
const QUEUE_FRAMES: usize = 2;
/// Reports and requests are small: slots of 2 KiB, a few per receive.
const RECV_SLOT: usize = 2048;
const RECV_BATCH: usize = 16;
/// Most receives per wake-up, so that a flood of datagrams cannot starve the sending.
const MAX_RECEIVES: usize = 64;
/// How often the counters are published for the `stats` property while sending.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(20);
/// Longest wait without a deadline: the counters are published at least this often.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How long the end of stream waits for the frames before it to be sent.
pub(super) const EOS_WAIT: Duration = Duration::from_secs(5);

/// What the streaming thread hands to the driver.
pub(super) enum Item {
    Caps(String),
    Clock(ClockSample),
    Frame(Frame<Kept>),
    Eos,
    /// Everything before was flushed.
    Flush,
}

/// Items waiting for the driver, and what both sides tell each other.
#[derive(Default)]
pub(super) struct Queue {
    items: VecDeque<Item>,
    frames: usize,
    /// Set by `unlock()`: waits return at once.
    pub flushing: bool,
    /// The driver failed (the error is posted); the stream cannot go on.
    pub failed: bool,
    /// The driver has ended.
    pub ended: bool,
    /// End-of-stream items the driver has sent.
    pub eos_sent: u64,
    /// Live frames dropped because the driver was a frame behind.
    pub dropped: u64,
}

/// What the `stats` property reads.
#[derive(Debug, Clone, Default)]
pub(super) struct Published {
    pub session: send::Stats,
    /// Datagrams the kernel refused.
    pub send_errors: u64,
}

/// What the driver and the element share.
pub(super) struct Shared {
    pub queue: Mutex<Queue>,
    /// Signalled when the queue has room, the end of stream was sent, or the driver ended.
    pub changed: Condvar,
    /// Wakes the driver for new input or to stop.
    work: Waker,
    /// Interrupts a send waiting on a full socket buffer: only to stop.
    stop_waker: Waker,
    stop: AtomicBool,
    pub stats: Mutex<Published>,
}

impl Shared {
    /// Hands `item` to the driver. A frame waits for room: a live one at most `max_wait`,
    /// after which the oldest frame waiting is dropped. Err(true) when flushing, Err(false)
    /// when the driver failed or ended.
    pub fn push(&self, item: Item, live: bool, max_wait: Duration) -> Result<(), bool> {
        let is_frame = matches!(item, Item::Frame(_));
        let start = Instant::now();
        let mut q = lock(&self.queue);
        loop {
            if q.flushing {
                return Err(true);
            }
            if q.failed || q.ended {
                return Err(false);
            }
            if !is_frame || q.frames < QUEUE_FRAMES {
                break;
            }
            let waited = start.elapsed();
            if live && waited >= max_wait {
                if let Some(i) = q.items.iter().position(|i| matches!(i, Item::Frame(_))) {
                    q.items.remove(i);
                    q.frames -= 1;
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
        q.frames += usize::from(is_frame);
        // Only the latest clock reading matters: one waiting is replaced, so the queue
        // stays bounded by its frames.
        if let (Item::Clock(_), Some(Item::Clock(last))) = (&item, q.items.back_mut()) {
            if let Item::Clock(c) = item {
                *last = c;
            }
        } else {
            q.items.push_back(item);
        }
        drop(q);
        self.work.wake();
        Ok(())
    }

    /// Waits until the driver has sent `eos` end-of-stream items, at most [`EOS_WAIT`].
    /// False when flushing, failed or timed out.
    pub fn wait_eos_sent(&self, eos: u64) -> bool {
        let deadline = Instant::now() + EOS_WAIT;
        let mut q = lock(&self.queue);
        loop {
            if q.eos_sent >= eos {
                return true;
            }
            let now = Instant::now();
            if q.flushing || q.failed || q.ended || now >= deadline {
                return false;
            }
            q = self
                .changed
                .wait_timeout(q, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
    }

    /// Flushing on (`unlock()`) or off (`unlock_stop()`).
    pub fn set_flushing(&self, on: bool) {
        lock(&self.queue).flushing = on;
        self.changed.notify_all();
    }

    /// Drops the frames waiting (a flush) and tells the session to forget its own.
    pub fn flush(&self) {
        let mut q = lock(&self.queue);
        q.items.retain(|i| !matches!(i, Item::Frame(_) | Item::Eos));
        q.frames = 0;
        q.items.push_back(Item::Flush);
        drop(q);
        self.changed.notify_all();
        self.work.wake();
    }
}

/// The running driver; dropping it stops and joins the thread.
pub(super) struct Driver {
    pub shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

/// What the driver needs besides its session.
pub(super) struct Setup {
    pub socket: UdpSocket,
    pub element: glib::WeakRef<super::VideoIpSink>,
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
        take_input(&mut session, shared);
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
        let mut eos = 0;
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Warning(text) => {
                    if let Some(e) = setup.element.upgrade() {
                        gst::element_warning!(e, gst::ResourceError::Write, ("{}", text));
                    }
                }
                Event::EndOfStreamSent => eos += 1,
                // One track of several ended (this element sends one track).
                Event::TrackEnded(_) => {}
            }
        }
        // Published often, and whenever nothing is due: a reader who waited for the last
        // frame sees it counted.
        let now = Instant::now();
        if eos > 0
            || session.poll_timeout().is_none()
            || published.is_none_or(|t| now.saturating_duration_since(t) >= PUBLISH_INTERVAL)
        {
            publish(&mut session, shared, errors, now);
            published = Some(now);
        }
        if eos > 0 {
            lock(&shared.queue).eos_sent += eos;
            shared.changed.notify_all();
        }
        if session.wants_input() && !lock(&shared.queue).items.is_empty() {
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

/// Hands the session what waits in the queue, while it takes input.
fn take_input(session: &mut Session<Kept>, shared: &Shared) {
    let mut took = false;
    while session.wants_input() {
        let item = {
            let mut q = lock(&shared.queue);
            let item = q.items.pop_front();
            if matches!(item, Some(Item::Frame(_))) {
                q.frames -= 1;
            }
            item
        };
        let Some(item) = item else {
            break;
        };
        took = true;
        match item {
            Item::Caps(c) => session.handle_caps(c),
            Item::Clock(c) => session.handle_clock(c),
            Item::Frame(f) => session.handle_frame(f),
            Item::Eos => session.handle_eos(),
            Item::Flush => session.flush(),
        }
    }
    if took {
        shared.changed.notify_all();
    }
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
