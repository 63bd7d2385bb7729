// SPDX-License-Identifier: MPL-2.0
//! The clock mapping: maps a sender's timeline onto the receiver's running time.
//!
//! Two parts, both pure (nanoseconds in, nanoseconds out; no GStreamer, no I/O):
//!
//! - [`OffsetEstimator`] learns `offset ≈ arrival − sender time` from observations. It follows
//!   the **windowed minimum** of the observed differences (the frames that crossed the network
//!   fastest), so network jitter and a single late frame never move it; it moves toward that
//!   minimum at a bounded rate ([`MAX_SLEW`]), which follows clock drift between the machines
//!   without a step in the output. Only a jump that persists over [`RESYNC_RUN`] frames (the
//!   sender paused, or its timeline jumped) starts it over. One estimator may serve several
//!   streams whose sender times share one clock, so that they keep their relative timing.
//! - [`TimeMapper`] is one stream's output side: it applies the estimator's offset (or, in
//!   [`Mode::Arrival`], the arrival time itself) and guarantees that the timestamps it hands out
//!   never decrease.
//!
//! [`StreamClock`] puts them together for one stream's frames as the session hands them out:
//! a new sender starts the mapping over, and a sender that reports a real reference clock
//! (PROTOCOL §7.6) has its timestamps moved onto that clock first, so that the streams of one
//! sender host share one estimator (found in a [`ClockTable`] by [`ClockKey`]) and keep their
//! relative timing. The element only reads its clocks: running time of each arrival, and the
//! pipeline's base time.

use super::{FrameInfo, Origin};
use crate::protocol::{reference_clock, TIME_NONE};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Longest the windowed minimum remembers an observation: between one and two of these.
pub const MIN_WINDOW_NS: u64 = 1_000_000_000;
/// Fastest the offset moves toward its target: this fraction (1/N) of the sender time that
/// passed since the previous observation, i.e. at most 1 % faster or slower than real time.
pub const MAX_SLEW: i128 = 100;
/// Consecutive observations further than the resync tolerance from the offset that start the
/// mapping over (one late or early frame never does).
pub const RESYNC_RUN: u32 = 3;

/// How output timestamps are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The sender's timestamps, shifted onto local running time by the estimated offset: the
    /// sender's spacing is kept exactly, network jitter never reaches the timestamps.
    #[default]
    SenderClock,
    /// Each frame's arrival time (its first datagram's), made non-decreasing: follows the
    /// network, jitter included.
    Arrival,
}

/// Learns the offset between a sender's timeline and local running time.
#[derive(Debug, Clone)]
pub struct OffsetEstimator {
    resync: u64,
    /// The offset applied now.
    offset: Option<i128>,
    /// Minimum difference in the current window, and when (local time) the window started.
    cur_min: i128,
    cur_start: u64,
    /// Minimum of the previous window.
    prev_min: Option<i128>,
    /// Sender time of the previous observation (for the slew bound).
    last_sender: Option<u64>,
    /// Observations in a row further than the tolerance from the offset.
    outliers: u32,
}

/// The outcome of one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The offset to apply to this observation's frame (local = sender + offset).
    pub offset: i128,
    /// True when the mapping started over at this frame (a discontinuity).
    pub resynced: bool,
}

impl OffsetEstimator {
    /// An estimator that starts over once [`RESYNC_RUN`] observations in a row are more than
    /// `resync_ns` from its offset.
    pub fn new(resync_ns: u64) -> Self {
        OffsetEstimator {
            resync: resync_ns,
            offset: None,
            cur_min: 0,
            cur_start: 0,
            prev_min: None,
            last_sender: None,
            outliers: 0,
        }
    }

    /// Forgets everything (a new sender, or local running time jumped).
    pub fn reset(&mut self) {
        *self = Self::new(self.resync);
    }

    /// The current offset, if any observation was made.
    pub fn offset(&self) -> Option<i128> {
        self.offset
    }

    fn start_over(&mut self, arrival: u64, sender: u64, d: i128) {
        self.offset = Some(d);
        self.cur_min = d;
        self.cur_start = arrival;
        self.prev_min = None;
        self.last_sender = Some(sender);
        self.outliers = 0;
    }

    /// Takes one observation: a frame with sender time `sender` (its DTS, else PTS) whose
    /// first datagram arrived at local running time `arrival`.
    pub fn observe(&mut self, arrival: u64, sender: u64) -> Observed {
        let d = i128::from(arrival) - i128::from(sender);
        let Some(offset) = self.offset else {
            self.start_over(arrival, sender, d);
            return Observed {
                offset: d,
                resynced: false,
            };
        };
        if (d - offset).unsigned_abs() > u128::from(self.resync) {
            // Far off: one such frame is an outlier (it is mapped with the current offset and
            // kept out of the minimum); a run of them is a new timeline.
            self.outliers += 1;
            if self.outliers >= RESYNC_RUN {
                self.start_over(arrival, sender, d);
                return Observed {
                    offset: d,
                    resynced: true,
                };
            }
            return Observed {
                offset,
                resynced: false,
            };
        }
        self.outliers = 0;
        // Windowed minimum over one to two windows of local time.
        if arrival.saturating_sub(self.cur_start) >= MIN_WINDOW_NS {
            self.prev_min = Some(self.cur_min);
            self.cur_min = d;
            self.cur_start = arrival;
        } else {
            self.cur_min = self.cur_min.min(d);
        }
        let target = self.prev_min.map_or(self.cur_min, |p| p.min(self.cur_min));
        // Move toward the target no faster than MAX_SLEW allows for the sender time that
        // passed; a frame that went back in sender time (B-frames' PTS) allows no move.
        let elapsed = self
            .last_sender
            .map_or(0, |l| i128::from(sender.saturating_sub(l)));
        self.last_sender = Some(self.last_sender.map_or(sender, |l| l.max(sender)));
        let max_step = elapsed / MAX_SLEW;
        let offset = offset + (target - offset).clamp(-max_step, max_step);
        self.offset = Some(offset);
        Observed {
            offset,
            resynced: false,
        }
    }
}

/// A mapped frame's timestamps (ns, local running time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Presentation timestamp (None when the sender gave none but a DTS).
    pub pts: Option<u64>,
    /// Decoding timestamp, if the sender gave one.
    pub dts: Option<u64>,
    /// True when the mapping started over at this frame.
    pub resynced: bool,
}

/// One stream's output timestamps.
#[derive(Debug, Clone, Default)]
pub struct TimeMapper {
    mode: Mode,
    /// The last reference timestamp handed out (DTS, else PTS): none is ever earlier.
    last: Option<u64>,
}

impl TimeMapper {
    /// A mapper in `mode`.
    pub fn new(mode: Mode) -> Self {
        TimeMapper { mode, last: None }
    }

    /// The mode it maps in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Forgets the last timestamp handed out (after a discontinuity downstream knows of, such
    /// as a flush or a new segment).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Maps a frame whose first datagram arrived at local running time `arrival`, carrying
    /// sender timestamps `pts` and `dts` (None when the sender had none), with `est` learning
    /// the offset of the sender's clock.
    pub fn map(
        &mut self,
        est: &mut OffsetEstimator,
        arrival: u64,
        pts: Option<u64>,
        dts: Option<u64>,
    ) -> Mapped {
        // Frames leave the sender in decoding order, so the DTS (when there is one) is what
        // arrival times follow; without either timestamp a frame is placed at its arrival.
        let reference = dts.or(pts);
        let (mut pts, mut dts, resynced) = match (self.mode, reference) {
            (Mode::SenderClock, Some(r)) => {
                let o = est.observe(arrival, r);
                let apply =
                    |t: u64| (i128::from(t) + o.offset).clamp(0, i128::from(u64::MAX - 1)) as u64;
                (pts.map(apply), dts.map(apply), o.resynced)
            }
            // Arrival mode keeps the sender's PTS−DTS distance around the arrival time.
            (Mode::Arrival, Some(r)) => {
                let shift = |t: u64| {
                    (i128::from(arrival) + i128::from(t) - i128::from(r))
                        .clamp(0, i128::from(u64::MAX - 1)) as u64
                };
                (pts.map(shift), dts.map(shift), false)
            }
            (_, None) => (Some(arrival), None, false),
        };
        // Never earlier than the last frame: shift both timestamps by the same amount.
        let out_ref = dts.or(pts).unwrap_or(arrival);
        if let Some(last) = self.last {
            if out_ref < last {
                let lift = last - out_ref;
                pts = pts.map(|t| t.saturating_add(lift));
                dts = dts.map(|t| t.saturating_add(lift));
            }
        }
        self.last = Some(self.last.map_or(out_ref, |l| l.max(out_ref)));
        Mapped { pts, dts, resynced }
    }
}

/// What identifies a sender clock that streams may share an estimator for: the sender's
/// host, its reference clock kind, and the receiving pipeline's base time (running times of
/// other pipelines are not comparable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockKey {
    /// The sender's address.
    pub host: IpAddr,
    /// Its reference clock, see [`reference_clock`].
    pub clock: u8,
    /// The receiving pipeline's base time (ns).
    pub base_time: u64,
    /// The sender's session, for a sender that reports no reference clock: then only the
    /// tracks of one session are known to share a clock (PROTOCOL §7.12). None when the
    /// clock is a real one, which every session of the host shares.
    pub session: Option<u64>,
}

/// A shared offset estimator.
pub type SharedEstimator = Arc<Mutex<OffsetEstimator>>;

fn lock(e: &Mutex<OffsetEstimator>) -> MutexGuard<'_, OffsetEstimator> {
    e.lock().unwrap_or_else(|e| e.into_inner())
}

/// The estimators shared by streams, by sender clock; entries die with their last user.
#[derive(Debug, Default)]
pub struct ClockTable {
    clocks: Mutex<HashMap<ClockKey, Weak<Mutex<OffsetEstimator>>>>,
}

impl ClockTable {
    /// The estimator of sender clock `key`, shared with the other streams that follow it
    /// (a new one starting over beyond `resync_ns`, if none does).
    pub fn estimator(&self, key: ClockKey, resync_ns: u64) -> SharedEstimator {
        let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        clocks.retain(|_, e| e.strong_count() > 0);
        if let Some(e) = clocks.get(&key).and_then(Weak::upgrade) {
            return e;
        }
        let e = Arc::new(Mutex::new(OffsetEstimator::new(resync_ns)));
        clocks.insert(key, Arc::downgrade(&e));
        e
    }
}

/// A frame's output timestamps (ns, local running time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamped {
    /// Presentation timestamp, if any (none without a running time to map onto).
    pub pts: Option<u64>,
    /// Decoding timestamp, if any.
    pub dts: Option<u64>,
    /// Duration, if the sender gave one.
    pub duration: Option<u64>,
    /// True when the mapping started over at this frame (a new sender after another, or the
    /// sender's timeline jumped): the frame is a discontinuity.
    pub discont: bool,
    /// True when the sender's timeline jumped and the mapping started over.
    pub resynced: bool,
}

/// One stream's mapping from its senders' clocks onto local running time.
#[derive(Debug)]
pub struct StreamClock {
    mapper: TimeMapper,
    /// The estimator in use: the stream's own, or one shared by sender clock.
    estimator: SharedEstimator,
    /// The key of the shared estimator in use (None: the stream's own).
    key: Option<ClockKey>,
    /// Resync tolerance of new estimators.
    resync_ns: u64,
    /// The session the mapping belongs to.
    stream: Option<u64>,
}

impl StreamClock {
    /// A mapping in `mode` whose estimators start over once arrivals are consistently
    /// further than `resync_ns` from what they expect.
    pub fn new(mode: Mode, resync_ns: u64) -> Self {
        StreamClock {
            mapper: TimeMapper::new(mode),
            estimator: Arc::new(Mutex::new(OffsetEstimator::new(resync_ns))),
            key: None,
            resync_ns,
            stream: None,
        }
    }

    /// Starts the mapping over (local running time moved: the pipeline went to PLAYING).
    pub fn restart(&mut self) {
        lock(&self.estimator).reset();
        self.mapper.reset();
    }

    /// Maps `frame`, of a stream from `origin`, whose first datagram arrived at local running
    /// time `arrival` (None: no clock to map onto), in a pipeline of base time `base_time`;
    /// sender clocks are shared through `table`.
    pub fn map(
        &mut self,
        table: &ClockTable,
        origin: &Origin,
        base_time: Option<u64>,
        arrival: Option<u64>,
        frame: &FrameInfo,
    ) -> Stamped {
        let mut discont = false;
        if self.stream != origin.session {
            // A new sender: its timeline has nothing to do with the last one's (a shared
            // sender clock stays valid: it is the sender host's).
            if self.key.is_none() {
                self.estimator = Arc::new(Mutex::new(OffsetEstimator::new(self.resync_ns)));
            }
            self.mapper.reset();
            discont = self.stream.is_some();
            self.stream = origin.session;
        }
        // With a sender report on a real clock, the sender's timestamps move onto that clock,
        // which every stream of the sender's host shares.
        let report = origin
            .report
            .filter(|r| r.clock != reference_clock::NONE)
            .filter(|_| self.mapper.mode() == Mode::SenderClock);
        // Without one, the tracks of one session still share the sender's timeline: one
        // estimator for all of them keeps their relative timing (lip sync).
        let key = match (report, origin.from, base_time) {
            (Some(r), Some(from), Some(base)) => Some(ClockKey {
                host: from.ip(),
                clock: r.clock,
                base_time: base,
                session: None,
            }),
            (None, Some(from), Some(base))
                if self.mapper.mode() == Mode::SenderClock && origin.session.is_some() =>
            {
                Some(ClockKey {
                    host: from.ip(),
                    clock: reference_clock::NONE,
                    base_time: base,
                    session: origin.session,
                })
            }
            _ => None,
        };
        if key != self.key {
            self.estimator = match key {
                Some(k) => table.estimator(k, self.resync_ns),
                None => Arc::new(Mutex::new(OffsetEstimator::new(self.resync_ns))),
            };
            self.key = key;
        }
        let shift = report.map_or(0, |r| {
            i128::from(r.reference_time) - i128::from(r.running_time)
        });
        let on_clock = |t: u64| {
            (t != TIME_NONE)
                .then(|| (i128::from(t) + shift).clamp(0, i128::from(u64::MAX - 1)) as u64)
        };
        let (mut pts, mut dts, mut resynced) = (None, None, false);
        if let Some(arrival) = arrival {
            let m = self.mapper.map(
                &mut lock(&self.estimator),
                arrival,
                on_clock(frame.pts),
                on_clock(frame.dts),
            );
            (pts, dts, resynced) = (m.pts, m.dts, m.resynced);
        }
        Stamped {
            pts,
            dts,
            duration: (frame.duration != TIME_NONE).then_some(frame.duration),
            discont: discont || resynced,
            resynced,
        }
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
