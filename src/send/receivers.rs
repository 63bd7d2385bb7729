// SPDX-License-Identifier: MPL-2.0
//! What a sender knows of its receivers, from their reports: an I/O-free table driven by
//! `now`. The sender records the sender reports it sends ([`Receivers::report_sent`]);
//! each receiver report that echoes one gives that receiver's round trip. Receivers not heard
//! from for [`RECEIVER_TIMEOUT`] are no longer listed, and the table is bounded
//! ([`MAX_RECEIVERS`]), so forged reports cannot grow it. What each report says happened
//! since the previous one of the same receiver ([`ReportDelta`]) is handed back to the
//! session, which feeds it to the rate control of that receiver's destination.

use crate::protocol::{seq_diff, ReceiverReport, NO_DELAY};
use crate::send::rate::{ReportDelta, DROP_WINDOW};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A receiver not heard from for this long is no longer listed.
pub const RECEIVER_TIMEOUT: Duration = Duration::from_secs(2);
/// Most receivers tracked at once; a report from one more evicts the longest silent.
pub const MAX_RECEIVERS: usize = 1024;
/// Sender reports remembered for round-trip measurement.
const REPORTS_KEPT: usize = 32;

/// One receiver, as its latest report describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverInfo {
    /// Where its reports come from.
    pub addr: SocketAddr,
    /// Its own random id.
    pub id: u64,
    /// Round trip, from the latest report that echoed a sender report we remember.
    pub rtt: Option<Duration>,
    /// Datagrams it received.
    pub datagrams_received: u64,
    /// Datagrams it found missing.
    pub datagrams_lost: u64,
    /// Frames it completed.
    pub frames_complete: u32,
    /// Frames it dropped.
    pub frames_dropped: u32,
    /// When its latest report came.
    pub last_heard: Instant,
    /// When it last reported falling behind.
    pub overloaded: Option<Instant>,
}

/// One report's counts, for the window: when, frames dropped and frames complete since the
/// one before.
type Recent = (Instant, u32, u32);

/// A report that was not about this sender's session and track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Foreign;

/// The receivers a sender heard from.
#[derive(Debug)]
pub struct Receivers {
    session: u64,
    track: u16,
    /// Sender reports sent: sequence number and when.
    reports: VecDeque<(u32, Instant)>,
    receivers: HashMap<(SocketAddr, u64), ReceiverInfo>,
    /// Sequence number of the latest datagram sent ([`on_sent`](Self::on_sent)): how far
    /// a receiver's highest sequence number lags behind it is its backlog.
    last_sent: Option<u32>,
    /// Each receiver's recent reports (when, frames dropped and complete since the one
    /// before), over the last [`DROP_WINDOW`].
    recent: HashMap<(SocketAddr, u64), VecDeque<Recent>>,
}

impl Receivers {
    /// The table of session `session`, track `track`.
    pub fn new(session: u64, track: u16) -> Self {
        Receivers {
            session,
            track,
            reports: VecDeque::with_capacity(REPORTS_KEPT),
            receivers: HashMap::new(),
            last_sent: None,
            recent: HashMap::new(),
        }
    }

    /// Records that datagrams up to sequence number `last_seq` were sent.
    pub fn on_sent(&mut self, last_seq: u32) {
        self.last_sent = Some(last_seq);
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Records a sender report sent with sequence number `seq`.
    pub fn report_sent(&mut self, seq: u32, now: Instant) {
        if self.reports.len() >= REPORTS_KEPT {
            self.reports.pop_front();
        }
        self.reports.push_back((seq, now));
    }

    /// Takes a receiver report from `from`, whose sender calls itself `id`, and returns
    /// what happened since that receiver's previous report (None for a first report, or one
    /// whose counters went back or jumped beyond belief). [`Foreign`] (and ignored) when it
    /// reports on another session or track.
    pub fn on_receiver_report(
        &mut self,
        from: SocketAddr,
        id: u64,
        r: &ReceiverReport,
        now: Instant,
    ) -> Result<Option<ReportDelta>, Foreign> {
        if r.session != self.session || r.track != self.track {
            return Err(Foreign);
        }
        let rtt = (r.delay_us != NO_DELAY)
            .then(|| {
                self.reports
                    .iter()
                    .find(|(seq, _)| seq_diff(*seq, r.echoed_report_seq) == 0)
                    .and_then(|(_, sent)| {
                        now.saturating_duration_since(*sent)
                            .checked_sub(Duration::from_micros(u64::from(r.delay_us)))
                    })
            })
            .flatten();
        let key = (from, id);
        if !self.receivers.contains_key(&key) && self.receivers.len() >= MAX_RECEIVERS {
            self.expire(now);
            if self.receivers.len() >= MAX_RECEIVERS {
                let oldest = self
                    .receivers
                    .iter()
                    .min_by_key(|(_, v)| v.last_heard)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.receivers.remove(&k);
                }
            }
        }
        let entry = self.receivers.entry(key).or_insert(ReceiverInfo {
            addr: from,
            id,
            rtt: None,
            datagrams_received: 0,
            datagrams_lost: 0,
            frames_complete: 0,
            frames_dropped: 0,
            last_heard: now,
            overloaded: None,
        });
        // What happened since its previous report. Counters that went back (a receiver
        // restarted under the same id) or a first report give no delta.
        let mut out = None;
        if entry.last_heard < now && r.datagrams_received >= entry.datagrams_received {
            let backlog = self
                .last_sent
                .map_or(0, |s| seq_diff(s, r.highest_seq).max(0) as u64);
            let frames_dropped = r.frames_dropped.wrapping_sub(entry.frames_dropped);
            let frames_complete = r.frames_complete.wrapping_sub(entry.frames_complete);
            let recent = self.recent.entry(key).or_default();
            recent.retain(|(t, _, _)| now.saturating_duration_since(*t) < DROP_WINDOW);
            if recent.len() >= 16 {
                recent.pop_front();
            }
            recent.push_back((
                now,
                frames_dropped.min(1 << 20),
                frames_complete.min(1 << 20),
            ));
            let (recent_dropped, recent_complete) = recent
                .iter()
                .fold((0u32, 0u32), |(d, c), r| (d + r.1, c + r.2));
            let delta = ReportDelta {
                elapsed: now.saturating_duration_since(entry.last_heard),
                received: r.datagrams_received - entry.datagrams_received,
                frames_dropped,
                frames_complete,
                recent_dropped,
                recent_complete,
                backlog,
                rtt: rtt.or(entry.rtt),
            };
            // A wrapped or forged frame counter jumping by more than any report interval
            // holds is not believed.
            if delta.frames_dropped < 1 << 20 && delta.frames_complete < 1 << 20 {
                out = Some(delta);
            }
        }
        entry.rtt = rtt.or(entry.rtt);
        entry.datagrams_received = r.datagrams_received;
        entry.datagrams_lost = r.datagrams_lost;
        entry.frames_complete = r.frames_complete;
        entry.frames_dropped = r.frames_dropped;
        entry.last_heard = now;
        Ok(out)
    }

    /// Records that receiver (`from`, `id`) reported falling behind at `now`.
    pub fn mark_overloaded(&mut self, from: SocketAddr, id: u64, now: Instant) {
        if let Some(e) = self.receivers.get_mut(&(from, id)) {
            e.overloaded = Some(now);
        }
    }

    /// Of the receivers listed at `now` that `count` selects, how many reported falling
    /// behind within `within`, and how many there are.
    pub fn overloaded_share(
        &self,
        now: Instant,
        within: Duration,
        count: impl Fn(&ReceiverInfo) -> bool,
    ) -> (usize, usize) {
        // One vote per address: many receiver ids from one address (one host, or one
        // attacker) are one receiver.
        let mut votes: HashMap<SocketAddr, bool> = HashMap::new();
        let listed = self
            .receivers
            .values()
            .filter(|r| now.saturating_duration_since(r.last_heard) < RECEIVER_TIMEOUT && count(r));
        for r in listed {
            let over = r
                .overloaded
                .is_some_and(|t| now.saturating_duration_since(t) < within);
            *votes.entry(r.addr).or_default() |= over;
        }
        let over = votes.values().filter(|o| **o).count();
        (over, votes.len())
    }

    /// Forgets receivers silent for [`RECEIVER_TIMEOUT`].
    pub fn expire(&mut self, now: Instant) {
        self.receivers
            .retain(|_, v| now.saturating_duration_since(v.last_heard) < RECEIVER_TIMEOUT);
        let listed = &self.receivers;
        self.recent.retain(|k, _| listed.contains_key(k));
    }

    /// The receivers heard from within [`RECEIVER_TIMEOUT`] of `now`, by address.
    pub fn receivers(&self, now: Instant) -> Vec<ReceiverInfo> {
        let mut v: Vec<ReceiverInfo> = self
            .receivers
            .values()
            .filter(|r| now.saturating_duration_since(r.last_heard) < RECEIVER_TIMEOUT)
            .copied()
            .collect();
        v.sort_by_key(|r| (r.addr, r.id));
        v
    }
}

#[cfg(test)]
#[path = "receivers_tests.rs"]
mod tests;
