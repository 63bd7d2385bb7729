// SPDX-License-Identifier: MPL-2.0
//! What a sender knows of its receivers, from their reports: an I/O-free table driven by
//! `now`. The sender records the sender reports it sends ([`Receivers::report_sent`]);
//! each receiver report that echoes one gives that receiver's round trip. Receivers not heard
//! from for [`RECEIVER_TIMEOUT`] are no longer listed, and the table is bounded
//! ([`MAX_RECEIVERS`]), so forged reports cannot grow it. What each report says happened
//! since the previous one of the same receiver on the same track ([`ReportDelta`]) is handed
//! back to the session, which feeds it to the rate control of that receiver's destination.
//! A session of several tracks gets a report per track from each receiver: each track's
//! counters are kept apart (they count different sequences), and a delta carries what the
//! receiver took lately on the other tracks, so a decrease is to what it takes in all.

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

/// A report that was not about this sender's session, or about a track it does not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Foreign;

/// What the sender sent on one track: its sender reports (sequence number and when) and
/// its latest sequence number.
#[derive(Debug)]
struct TrackLog {
    track: u16,
    reports: VecDeque<(u32, Instant)>,
    last_sent: Option<u32>,
}

/// One receiver's cumulative counters of one track, as its latest report on it gave them:
/// each track's counters are its own, so reports on different tracks never mix.
#[derive(Debug)]
struct Counters {
    track: u16,
    received: u64,
    lost: u64,
    complete: u32,
    dropped: u32,
    last_heard: Instant,
    /// Its recent reports (when, frames dropped and complete since the one before), over
    /// the last [`DROP_WINDOW`].
    recent: VecDeque<Recent>,
    /// Datagrams per second it took on the track over its latest report interval, and when.
    rate: Option<(Instant, f64)>,
}

/// One receiver: what the stats show (sums over its tracks) and each track's counters.
#[derive(Debug)]
struct Entry {
    info: ReceiverInfo,
    tracks: Vec<Counters>,
}

/// The receivers a sender heard from, over every track of its session.
#[derive(Debug)]
pub struct Receivers {
    session: u64,
    /// The tracks reported on, the first the primary one.
    tracks: Vec<TrackLog>,
    receivers: HashMap<(SocketAddr, u64), Entry>,
}

impl Receivers {
    /// The table of session `session`, whose (first) track is `track`.
    pub fn new(session: u64, track: u16) -> Self {
        let mut r = Receivers {
            session,
            tracks: Vec::new(),
            receivers: HashMap::new(),
        };
        r.add_track(track);
        r
    }

    /// Takes reports on `track` too.
    pub fn add_track(&mut self, track: u16) {
        if !self.tracks.iter().any(|t| t.track == track) {
            self.tracks.push(TrackLog {
                track,
                reports: VecDeque::with_capacity(REPORTS_KEPT),
                last_sent: None,
            });
        }
    }

    /// Takes no more reports on `track`, and forgets what receivers said of it.
    pub fn remove_track(&mut self, track: u16) {
        self.tracks.retain(|t| t.track != track);
        for e in self.receivers.values_mut() {
            e.tracks.retain(|c| c.track != track);
        }
    }

    fn log(&mut self, track: u16) -> Option<&mut TrackLog> {
        self.tracks.iter_mut().find(|t| t.track == track)
    }

    /// Records that datagrams of the first track up to sequence number `last_seq` were sent.
    pub fn on_sent(&mut self, last_seq: u32) {
        if let Some(t) = self.tracks.first_mut() {
            t.last_sent = Some(last_seq);
        }
    }

    /// Records that datagrams of `track` up to sequence number `last_seq` were sent: how
    /// far a receiver's highest sequence number of it lags behind is its backlog.
    pub fn on_sent_on(&mut self, track: u16, last_seq: u32) {
        if let Some(t) = self.log(track) {
            t.last_sent = Some(last_seq);
        }
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Records a sender report of the first track sent with sequence number `seq`.
    pub fn report_sent(&mut self, seq: u32, now: Instant) {
        if let Some(track) = self.tracks.first().map(|t| t.track) {
            self.report_sent_on(track, seq, now);
        }
    }

    /// Records a sender report of `track` sent with sequence number `seq`.
    pub fn report_sent_on(&mut self, track: u16, seq: u32, now: Instant) {
        let Some(t) = self.log(track) else {
            return;
        };
        if t.reports.len() >= REPORTS_KEPT {
            t.reports.pop_front();
        }
        t.reports.push_back((seq, now));
    }

    /// Takes a receiver report from `from`, whose sender calls itself `id`, and returns
    /// what happened on its track since that receiver's previous report on it (None for a
    /// first report, or one whose counters went back or jumped beyond belief), with the
    /// rate it took lately on the session's other tracks. [`Foreign`] (and ignored) when it
    /// reports on another session or a track not sent.
    pub fn on_receiver_report(
        &mut self,
        from: SocketAddr,
        id: u64,
        r: &ReceiverReport,
        now: Instant,
    ) -> Result<Option<ReportDelta>, Foreign> {
        if r.session != self.session {
            return Err(Foreign);
        }
        let Some(log) = self.tracks.iter().find(|t| t.track == r.track) else {
            return Err(Foreign);
        };
        let rtt = (r.delay_us != NO_DELAY)
            .then(|| {
                log.reports
                    .iter()
                    .find(|(seq, _)| seq_diff(*seq, r.echoed_report_seq) == 0)
                    .and_then(|(_, sent)| {
                        now.saturating_duration_since(*sent)
                            .checked_sub(Duration::from_micros(u64::from(r.delay_us)))
                    })
            })
            .flatten();
        let last_sent = log.last_sent;
        let key = (from, id);
        if !self.receivers.contains_key(&key) && self.receivers.len() >= MAX_RECEIVERS {
            self.expire(now);
            if self.receivers.len() >= MAX_RECEIVERS {
                let oldest = self
                    .receivers
                    .iter()
                    .min_by_key(|(_, v)| v.info.last_heard)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.receivers.remove(&k);
                }
            }
        }
        let entry = self.receivers.entry(key).or_insert(Entry {
            info: ReceiverInfo {
                addr: from,
                id,
                rtt: None,
                datagrams_received: 0,
                datagrams_lost: 0,
                frames_complete: 0,
                frames_dropped: 0,
                last_heard: now,
                overloaded: None,
            },
            tracks: Vec::new(),
        });
        // What it took lately on the other tracks: a decrease is to what it takes in all.
        let other_rate: f64 = entry
            .tracks
            .iter()
            .filter(|c| c.track != r.track)
            .filter_map(|c| c.rate)
            .filter(|(t, _)| now.saturating_duration_since(*t) < DROP_WINDOW)
            .map(|(_, rate)| rate)
            .sum();
        let c = match entry.tracks.iter().position(|c| c.track == r.track) {
            Some(i) => &mut entry.tracks[i],
            None => {
                entry.tracks.push(Counters {
                    track: r.track,
                    received: 0,
                    lost: 0,
                    complete: 0,
                    dropped: 0,
                    last_heard: now,
                    recent: VecDeque::new(),
                    rate: None,
                });
                let last = entry.tracks.len() - 1;
                &mut entry.tracks[last]
            }
        };
        // What happened since its previous report. Counters that went back (a receiver
        // restarted under the same id) or a first report give no delta.
        let mut out = None;
        if c.last_heard < now && r.datagrams_received >= c.received {
            let backlog = last_sent.map_or(0, |s| seq_diff(s, r.highest_seq).max(0) as u64);
            let frames_dropped = r.frames_dropped.wrapping_sub(c.dropped);
            let frames_complete = r.frames_complete.wrapping_sub(c.complete);
            c.recent
                .retain(|(t, _, _)| now.saturating_duration_since(*t) < DROP_WINDOW);
            if c.recent.len() >= 16 {
                c.recent.pop_front();
            }
            c.recent.push_back((
                now,
                frames_dropped.min(1 << 20),
                frames_complete.min(1 << 20),
            ));
            let (recent_dropped, recent_complete) = c
                .recent
                .iter()
                .fold((0u32, 0u32), |(d, k), r| (d + r.1, k + r.2));
            let elapsed = now.saturating_duration_since(c.last_heard);
            let received = r.datagrams_received - c.received;
            c.rate = Some((now, received as f64 / elapsed.as_secs_f64().max(1e-9)));
            let delta = ReportDelta {
                elapsed,
                received,
                frames_dropped,
                frames_complete,
                recent_dropped,
                recent_complete,
                backlog,
                rtt: rtt.or(entry.info.rtt),
                other_tracks_rate: other_rate as u64,
            };
            // A wrapped or forged frame counter jumping by more than any report interval
            // holds is not believed.
            if delta.frames_dropped < 1 << 20 && delta.frames_complete < 1 << 20 {
                out = Some(delta);
            }
        }
        c.received = r.datagrams_received;
        c.lost = r.datagrams_lost;
        c.complete = r.frames_complete;
        c.dropped = r.frames_dropped;
        c.last_heard = now;
        let info = &mut entry.info;
        info.rtt = rtt.or(info.rtt);
        info.datagrams_received = entry.tracks.iter().map(|c| c.received).sum();
        info.datagrams_lost = entry.tracks.iter().map(|c| c.lost).sum();
        info.frames_complete = entry
            .tracks
            .iter()
            .fold(0u32, |n, c| n.wrapping_add(c.complete));
        info.frames_dropped = entry
            .tracks
            .iter()
            .fold(0u32, |n, c| n.wrapping_add(c.dropped));
        info.last_heard = now;
        Ok(out)
    }

    /// Records that receiver (`from`, `id`) reported falling behind at `now`.
    pub fn mark_overloaded(&mut self, from: SocketAddr, id: u64, now: Instant) {
        if let Some(e) = self.receivers.get_mut(&(from, id)) {
            e.info.overloaded = Some(now);
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
        let listed =
            self.receivers.values().map(|e| &e.info).filter(|r| {
                now.saturating_duration_since(r.last_heard) < RECEIVER_TIMEOUT && count(r)
            });
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
            .retain(|_, v| now.saturating_duration_since(v.info.last_heard) < RECEIVER_TIMEOUT);
    }

    /// The receivers heard from within [`RECEIVER_TIMEOUT`] of `now`, by address.
    pub fn receivers(&self, now: Instant) -> Vec<ReceiverInfo> {
        let mut v: Vec<ReceiverInfo> = self
            .receivers
            .values()
            .map(|e| e.info)
            .filter(|r| now.saturating_duration_since(r.last_heard) < RECEIVER_TIMEOUT)
            .collect();
        v.sort_by_key(|r| (r.addr, r.id));
        v
    }
}

#[cfg(test)]
#[path = "receivers_tests.rs"]
mod tests;
