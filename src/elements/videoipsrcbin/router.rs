// SPDX-License-Identifier: MPL-2.0
//! The per-track queues of `videoipsrcbin`: the receive thread ([`Route`]) hands each
//! track's frames to that track's [`Port`], and each track's child source takes them from
//! there on its own streaming thread.
//!
//! A port is bounded in frames ([`MAX_QUEUED`]), in bytes ([`MAX_QUEUED_BYTES`]) and in age
//! (the source's maximum latency): a track nobody reads (a stalled or unlinked branch)
//! drops its own oldest frames, counts them and marks the next one discontinuous, and never
//! blocks the receive thread or another track, nor grows memory.
//!
//! Locks: the router's `state`, then a port's `queue`, each taken briefly; `notify` is
//! called with none held.

use crate::elements::lock;
use crate::elements::videoipsrc::receiver::{FrameBuf, Route};
use crate::protocol::tracks::{TrackEntry, TrackKind};
use crate::receive::{self, Origin};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Most frames one track's queue holds whatever their age.
pub(crate) const MAX_QUEUED: usize = 1024;
/// Most bytes one track's queue holds (it always keeps its newest frame).
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;
/// How long a track waits for the session's table before its pad is named by its caps.
pub(crate) const TABLE_WAIT: Duration = Duration::from_millis(1500);

/// What a track's child source takes from its port.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    /// A complete frame, the caps string of its stream info, and where it came from.
    Frame(receive::Frame<FrameBuf>, Arc<str>, Origin),
    /// The sender ended this track.
    Eos,
    /// The socket failed (the error is already posted).
    Error,
}

/// One track's queue and what its child source is told.
#[derive(Default)]
pub(crate) struct Queue {
    pub items: VecDeque<Item>,
    /// Bytes of the frames queued.
    pub bytes: usize,
    /// Set by the child's `unlock()`.
    pub flushing: bool,
    /// Frames were dropped since the last one handed out.
    pub discont: bool,
    /// Frames dropped because nobody took them in time (or the queue was full).
    pub dropped_late: u64,
    /// Frames handed out.
    pub taken: u64,
    /// Most bytes the queue ever held.
    pub peak_bytes: usize,
}

fn frame_len(item: &Item) -> usize {
    match item {
        Item::Frame(f, ..) => f.info.len as usize,
        _ => 0,
    }
}

impl Queue {
    /// Drops frames at the head older than `max_age`, or beyond the frame and byte bounds
    /// (the newest frame stays).
    pub fn drop_stale(&mut self, now: Instant, max_age: Duration) {
        while let Some(Item::Frame(f, ..)) = self.items.front() {
            let over = self.items.len() > MAX_QUEUED
                || (self.bytes > MAX_QUEUED_BYTES && self.items.len() > 1);
            if !over && now.saturating_duration_since(f.arrival) <= max_age {
                break;
            }
            if let Some(item) = self.items.pop_front() {
                self.bytes = self.bytes.saturating_sub(frame_len(&item));
            }
            self.dropped_late += 1;
            self.discont = true;
        }
    }

    fn push(&mut self, item: Item, max_age: Duration) {
        self.bytes += frame_len(&item);
        self.items.push_back(item);
        self.drop_stale(Instant::now(), max_age);
        self.peak_bytes = self.peak_bytes.max(self.bytes);
    }

    /// Takes the next item (and whether frames were dropped before it).
    pub fn pop(&mut self) -> Option<(Item, bool)> {
        let item = self.items.pop_front()?;
        self.bytes = self.bytes.saturating_sub(frame_len(&item));
        if matches!(item, Item::Frame(..)) {
            self.taken += 1;
        }
        Some((item, std::mem::take(&mut self.discont)))
    }
}

/// One track: its queue, and what the bin decided about it.
pub(crate) struct Port {
    pub id: u16,
    pub queue: Mutex<Queue>,
    pub ready: Condvar,
    /// Oldest a queued frame may get.
    pub max_age: Duration,
    /// When its first frame or stream info came.
    pub first_seen: Instant,
    /// The caps of its stream, once known.
    pub caps: Mutex<Option<Arc<str>>>,
    /// Set once the bin gave it a pad.
    pub padded: AtomicBool,
    /// Set once the bin was asked to look again after [`TABLE_WAIT`].
    waited: AtomicBool,
}

impl Port {
    fn new(id: u16, max_age: Duration) -> Port {
        Port {
            id,
            queue: Default::default(),
            ready: Condvar::new(),
            max_age,
            first_seen: Instant::now(),
            caps: Mutex::new(None),
            padded: AtomicBool::new(false),
            waited: AtomicBool::new(false),
        }
    }

    fn push(&self, item: Item) {
        lock(&self.queue).push(item, self.max_age);
        self.ready.notify_one();
    }
}

/// The session as the router saw it.
#[derive(Default)]
pub(crate) struct State {
    pub ports: BTreeMap<u16, Arc<Port>>,
    /// The session followed, once one is.
    pub session: Option<u64>,
    /// The sender's track table (generation, entries), once one came.
    pub table: Option<(u16, Arc<[TrackEntry]>)>,
    /// Every track followed ended.
    pub ended: bool,
}

/// The receive thread's side: routes each track's frames to its port.
pub(crate) struct Router {
    pub state: Mutex<State>,
    max_age: Duration,
    /// Tells the bin to look at the state again (new track, table, end); called with no
    /// lock held, on the receive thread: it must only schedule the work.
    notify: Box<dyn Fn() + Send + Sync>,
}

impl Router {
    pub fn new(max_age: Duration, notify: Box<dyn Fn() + Send + Sync>) -> Router {
        Router {
            state: Default::default(),
            max_age,
            notify,
        }
    }

    /// The port of `track`, made on first use (true: it is new).
    fn port(&self, st: &mut State, track: u16) -> (Arc<Port>, bool) {
        if let Some(p) = st.ports.get(&track) {
            return (p.clone(), false);
        }
        let p = Arc::new(Port::new(track, self.max_age));
        st.ports.insert(track, p.clone());
        (p, true)
    }

    /// Every port (for flushing them all, say).
    pub fn ports(&self) -> Vec<Arc<Port>> {
        lock(&self.state).ports.values().cloned().collect()
    }
}

/// A pad name for `track`: its name in the table, else by its caps.
pub(crate) fn pad_name(track: u16, table: Option<&[TrackEntry]>, caps: Option<&str>) -> String {
    if let Some(e) = table.and_then(|t| t.iter().find(|e| e.id == track)) {
        return e.name.clone();
    }
    let kind = match caps {
        Some(c) if c.starts_with("video/") || c.starts_with("image/") => "video",
        Some(c) if c.starts_with("audio/") => "audio",
        _ => "meta",
    };
    format!("{kind}_{track}")
}

/// The GStreamer stream type of a track.
pub(crate) fn stream_type(kind: Option<TrackKind>, caps: Option<&str>) -> gst::StreamType {
    match (kind, caps) {
        (Some(TrackKind::Video), _) => gst::StreamType::VIDEO,
        (Some(TrackKind::Audio), _) => gst::StreamType::AUDIO,
        (Some(TrackKind::Metadata), _) => gst::StreamType::TEXT,
        (_, Some(c)) if c.starts_with("video/") || c.starts_with("image/") => {
            gst::StreamType::VIDEO
        }
        (_, Some(c)) if c.starts_with("audio/") => gst::StreamType::AUDIO,
        (_, Some(c)) if c.starts_with("text/") => gst::StreamType::TEXT,
        _ => gst::StreamType::UNKNOWN,
    }
}

impl Route for Router {
    fn frame(&self, track: u16, frame: receive::Frame<FrameBuf>, caps: Arc<str>, origin: Origin) {
        let (port, new, late) = {
            let mut st = lock(&self.state);
            if st.session.is_none() {
                st.session = origin.session;
            }
            let (port, new) = self.port(&mut st, track);
            let late = st.table.is_none()
                && !port.padded.load(Ordering::Relaxed)
                && port.first_seen.elapsed() >= TABLE_WAIT
                && !port.waited.swap(true, Ordering::Relaxed);
            (port, new, late)
        };
        {
            let mut c = lock(&port.caps);
            if c.is_none() {
                *c = Some(caps.clone());
            }
        }
        port.push(Item::Frame(frame, caps, origin));
        if new || late {
            (self.notify)();
        }
    }

    fn stream(&self, track: u16, session: u64, caps: Arc<str>) {
        let new = {
            let mut st = lock(&self.state);
            st.session = Some(session);
            let (port, new) = self.port(&mut st, track);
            *lock(&port.caps) = Some(caps);
            new
        };
        if new {
            (self.notify)();
        }
    }

    fn tracks(&self, session: u64, generation: u16, tracks: Arc<[TrackEntry]>) {
        {
            let mut st = lock(&self.state);
            st.session = Some(session);
            st.table = Some((generation, tracks));
        }
        (self.notify)();
    }

    fn eos(&self, track: u16) {
        let port = {
            let mut st = lock(&self.state);
            self.port(&mut st, track).0
        };
        port.push(Item::Eos);
    }

    fn end(&self) {
        let ports = {
            let mut st = lock(&self.state);
            st.ended = true;
            st.ports.values().cloned().collect::<Vec<_>>()
        };
        // Tracks that never said so end too.
        for p in ports {
            let ended = lock(&p.queue)
                .items
                .back()
                .is_some_and(|i| matches!(i, Item::Eos));
            if !ended {
                p.push(Item::Eos);
            }
        }
        (self.notify)();
    }

    fn error(&self) {
        for p in self.ports() {
            p.push(Item::Error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::{Frame, FrameInfo};

    fn frame(len: usize, arrival: Instant) -> receive::Frame<FrameBuf> {
        let _ = gst::init();
        let buf = gst::Buffer::with_size(len)
            .and_then(|b| b.into_mapped_buffer_writable().map_err(|_| glib_err()))
            .unwrap_or_else(|_| panic!("a buffer"));
        Frame {
            buf,
            info: FrameInfo {
                frame: 0,
                flags: 0,
                pts: 0,
                dts: crate::protocol::TIME_NONE,
                duration: 0,
                info_gen: 0,
                len: len as u32,
            },
            arrival,
            discont: false,
        }
    }

    fn glib_err() -> gst::glib::BoolError {
        gst::glib::bool_error!("no buffer")
    }

    fn origin() -> Origin {
        Origin {
            session: Some(7),
            from: None,
            report: None,
        }
    }

    fn router() -> Router {
        Router::new(Duration::from_millis(120), Box::new(|| {}))
    }

    fn queued(r: &Router, track: u16) -> (usize, usize, u64) {
        let st = lock(&r.state);
        let q = lock(&st.ports[&track].queue);
        (q.items.len(), q.bytes, q.dropped_late)
    }

    #[test]
    fn a_track_nobody_reads_drops_its_own_oldest_and_leaves_the_others_alone() {
        let r = router();
        let now = Instant::now();
        for _ in 0..(MAX_QUEUED + 50) {
            r.frame(1, frame(16, now), "audio/x-raw".into(), origin());
        }
        r.frame(0, frame(1000, now), "video/x-raw".into(), origin());
        assert_eq!(queued(&r, 1), (MAX_QUEUED, MAX_QUEUED * 16, 50));
        assert_eq!(queued(&r, 0), (1, 1000, 0));
    }

    #[test]
    fn a_queue_holds_no_more_bytes_than_its_bound_and_no_frame_older_than_its_age() {
        let r = router();
        let now = Instant::now();
        let big = MAX_QUEUED_BYTES / 4 + 1;
        for _ in 0..6 {
            r.frame(0, frame(big, now), "video/x-raw".into(), origin());
        }
        let (n, bytes, dropped) = queued(&r, 0);
        assert!(bytes <= MAX_QUEUED_BYTES, "{bytes} bytes queued");
        assert_eq!((n, dropped), (3, 3));
        // Frames past the maximum latency go when the next one comes.
        let old = now - Duration::from_millis(500);
        r.frame(2, frame(10, old), "audio/x-raw".into(), origin());
        r.frame(2, frame(10, now), "audio/x-raw".into(), origin());
        assert_eq!(queued(&r, 2), (1, 10, 1));
        let st = lock(&r.state);
        assert!(lock(&st.ports[&2].queue).discont);
    }

    #[test]
    fn the_sessions_end_ends_every_track_once() {
        let r = router();
        r.frame(0, frame(10, Instant::now()), "video/x-raw".into(), origin());
        r.stream(1, 7, "audio/x-raw".into());
        r.eos(0);
        r.end();
        let st = lock(&r.state);
        assert!(st.ended);
        for p in st.ports.values() {
            let q = lock(&p.queue);
            let eos = q.items.iter().filter(|i| matches!(i, Item::Eos)).count();
            assert_eq!(eos, 1, "track {}", p.id);
        }
    }

    #[test]
    fn pads_are_named_by_the_table_else_by_caps() {
        let table = [TrackEntry {
            id: 3,
            kind: TrackKind::Audio,
            variant_of: None,
            name: "mic-left".into(),
        }];
        assert_eq!(pad_name(3, Some(&table), Some("audio/x-raw")), "mic-left");
        assert_eq!(pad_name(0, Some(&table), Some("video/x-raw")), "video_0");
        assert_eq!(pad_name(1, None, Some("audio/x-opus")), "audio_1");
        assert_eq!(pad_name(2, None, Some("meta/x-klv")), "meta_2");
    }
}
