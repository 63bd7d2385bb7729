// SPDX-License-Identifier: MPL-2.0
//! What a sender knows of its receivers, from their reports: an I/O-free table driven by
//! `now`. The sender records the sender reports it sends ([`SenderSession::report_sent`]);
//! each receiver report that echoes one gives that receiver's round trip. Receivers not heard
//! from for [`RECEIVER_TIMEOUT`] are no longer listed, and the table is bounded
//! ([`MAX_RECEIVERS`]), so forged reports cannot grow it. What each report says happened
//! since the previous one of the same receiver drives the [`RateControl`] it holds.

use crate::protocol::{
    header_flags, patch_seq_offset, seq_diff, ReceiverReport, MEDIA_HEADER_LEN, NO_DELAY,
};
use crate::ratecontrol::{RateControl, ReportDelta};
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
}

/// The sender's side of the two-way session.
#[derive(Debug)]
pub struct SenderSession {
    session: u64,
    track: u16,
    /// Sender reports sent: sequence number and when.
    reports: VecDeque<(u32, Instant)>,
    receivers: HashMap<(SocketAddr, u64), ReceiverInfo>,
    /// Sequence number of the latest datagram sent ([`on_sent`](Self::on_sent)): how far
    /// a receiver's highest sequence number lags behind it is its backlog.
    last_sent: Option<u32>,
    rate: RateControl,
}

impl SenderSession {
    /// The table of session `session`, track `track`.
    pub fn new(session: u64, track: u16) -> Self {
        SenderSession {
            session,
            track,
            reports: VecDeque::with_capacity(REPORTS_KEPT),
            receivers: HashMap::new(),
            last_sent: None,
            rate: RateControl::new(None, 1500),
        }
    }

    /// Replaces the rate controller (by default unlimited).
    pub fn set_rate_control(&mut self, rate: RateControl) {
        self.rate = rate;
    }

    /// The rate controller, which the sender asks before each frame.
    pub fn rate_control(&mut self) -> &mut RateControl {
        &mut self.rate
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

    /// Takes a receiver report from `from`, whose sender calls itself `id`. False (and
    /// ignored) when it reports on another session or track.
    pub fn on_receiver_report(
        &mut self,
        from: SocketAddr,
        id: u64,
        r: &ReceiverReport,
        now: Instant,
    ) -> bool {
        if r.session != self.session || r.track != self.track {
            return false;
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
        });
        // What happened since its previous report. Counters that went back (a receiver
        // restarted under the same id) or a first report give no delta.
        if entry.last_heard < now && r.datagrams_received >= entry.datagrams_received {
            let backlog = self
                .last_sent
                .map_or(0, |s| seq_diff(s, r.highest_seq).max(0) as u64);
            let delta = ReportDelta {
                elapsed: now.saturating_duration_since(entry.last_heard),
                received: r.datagrams_received - entry.datagrams_received,
                frames_dropped: r.frames_dropped.wrapping_sub(entry.frames_dropped),
                backlog,
                rtt: rtt.or(entry.rtt),
            };
            // A wrapped or forged frame counter jumping by more than any report interval
            // holds is not believed.
            if delta.frames_dropped < 1 << 20 {
                self.rate.on_report(&delta, now);
            }
        }
        entry.rtt = rtt.or(entry.rtt);
        entry.datagrams_received = r.datagrams_received;
        entry.datagrams_lost = r.datagrams_lost;
        entry.frames_complete = r.frames_complete;
        entry.frames_dropped = r.frames_dropped;
        entry.last_heard = now;
        true
    }

    /// Forgets receivers silent for [`RECEIVER_TIMEOUT`].
    pub fn expire(&mut self, now: Instant) {
        self.receivers
            .retain(|_, v| now.saturating_duration_since(v.last_heard) < RECEIVER_TIMEOUT);
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

/// Longest lease a subscriber may ask for: one that went away without a word is dropped
/// within it.
pub const MAX_LEASE: Duration = Duration::from_secs(30);

/// The receivers that subscribed to a sender with no fixed destination: each gets the
/// stream by unicast until its lease lapses or it unsubscribes. An I/O-free table driven by
/// `now`, bounded by `max` entries.
#[derive(Debug)]
pub struct Subscribers {
    max: usize,
    /// Subscriber, and when its lease ends, in order of subscription.
    leases: Vec<(SocketAddr, Instant)>,
    /// Changes whenever the set of subscribers does.
    generation: u64,
    /// Subscriptions refused because the table was full.
    pub refused: u64,
}

impl Subscribers {
    /// An empty table of at most `max` subscribers (at least 1, at most [`MAX_RECEIVERS`]).
    pub fn new(max: usize) -> Self {
        Subscribers {
            max: max.clamp(1, MAX_RECEIVERS),
            leases: Vec::new(),
            generation: 0,
            refused: 0,
        }
    }

    /// Takes a SUBSCRIBE from `from` asking for a lease of `lease` (zero: unsubscribe),
    /// capped at [`MAX_LEASE`]. False when refused (the table is full).
    pub fn subscribe(&mut self, from: SocketAddr, lease: Duration, now: Instant) -> bool {
        self.expire(now);
        let pos = self.leases.iter().position(|(a, _)| *a == from);
        if lease.is_zero() {
            if let Some(i) = pos {
                self.leases.remove(i);
                self.generation += 1;
            }
            return true;
        }
        let until = now + lease.min(MAX_LEASE);
        match pos {
            Some(i) => self.leases[i].1 = until,
            None if self.leases.len() >= self.max => {
                self.refused += 1;
                return false;
            }
            None => {
                self.leases.push((from, until));
                self.generation += 1;
            }
        }
        true
    }

    /// Drops the subscribers whose lease has lapsed.
    pub fn expire(&mut self, now: Instant) {
        let before = self.leases.len();
        self.leases.retain(|(_, until)| *until > now);
        if self.leases.len() != before {
            self.generation += 1;
        }
    }

    /// The subscribers now, after expiring lapsed leases, and the table's generation.
    pub fn current(&mut self, now: Instant) -> (Vec<SocketAddr>, u64) {
        self.expire(now);
        (
            self.leases.iter().map(|(a, _)| *a).collect(),
            self.generation,
        )
    }

    /// The table's generation: it changes whenever a subscriber comes or goes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of subscribers (lapsed leases included until the next expiry).
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// True when nobody subscribed.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;

/// How long sent frames are kept for resending: a receiver gives up on a datagram after its
/// window (50 ms by default), and holding buffers longer could starve an upstream pool.
pub const HISTORY_KEEP: Duration = Duration::from_millis(200);
/// A datagram is resent at most once per this interval, however many receivers ask (one
/// resend to a multicast group serves them all).
pub const RESEND_INTERVAL: Duration = Duration::from_millis(5);

/// One sent frame, kept (by reference to its buffer) for resending.
#[derive(Debug)]
pub struct SentFrame<B> {
    /// Sequence number of its first datagram.
    pub first_seq: u32,
    /// Its datagrams.
    pub count: u32,
    /// Payload bytes per datagram (all but the last).
    pub frag: usize,
    /// Its encoded media headers (sequence number and offset of the first datagram).
    pub header: [u8; MEDIA_HEADER_LEN],
    /// The frame's bytes.
    pub data: B,
    /// When it was sent.
    pub at: Instant,
}

/// Recently sent frames, and what was resent when: answers NACKs.
#[derive(Debug)]
pub struct History<B> {
    frames: VecDeque<SentFrame<B>>,
    /// Datagrams resent within the last [`RESEND_INTERVAL`], and when. (Each is resent once
    /// per request: sending repeats twice was tried and, through a congested bottleneck,
    /// doubled the congestion that had lost them.)
    resent: HashMap<u32, Instant>,
    /// The newest sequence number sent: later ones of a frame being paced out are not
    /// resent (they are on their way; a receiver that asks for them took a pause of the
    /// sender's for their loss).
    sent_through: Option<u32>,
    /// Bytes that may still be resent: refilled by a share of what is sent.
    budget: usize,
    /// That share, in percent.
    limit_percent: usize,
}

impl<B: AsRef<[u8]>> History<B> {
    /// An empty history whose resends may take at most `limit_percent` % of the bytes sent.
    pub fn new(limit_percent: usize) -> Self {
        History {
            frames: VecDeque::new(),
            resent: HashMap::new(),
            sent_through: None,
            budget: 0,
            limit_percent,
        }
    }

    /// Keeps a frame about to be sent; forgets frames older than [`HISTORY_KEEP`].
    pub fn push(&mut self, frame: SentFrame<B>, now: Instant) {
        let bytes = frame.data.as_ref().len() + frame.count as usize * MEDIA_HEADER_LEN;
        // The budget refills with each frame and holds at most one second's worth of the
        // current rate (roughly: the frames kept).
        self.budget = (self.budget + bytes * self.limit_percent / 100)
            .min(bytes.saturating_mul(self.limit_percent).saturating_mul(60) / 100);
        self.frames.push_back(frame);
        while self
            .frames
            .front()
            .is_some_and(|f| now.saturating_duration_since(f.at) > HISTORY_KEEP)
        {
            self.frames.pop_front();
        }
        self.resent
            .retain(|_, t| now.saturating_duration_since(*t) < RESEND_INTERVAL);
    }

    /// Records that every datagram up to `seq` has been sent.
    pub fn sent_through(&mut self, seq: u32) {
        self.sent_through = Some(seq);
    }

    /// The payload of datagram `seq`, if its frame is kept.
    pub fn payload(&self, seq: u32) -> Option<&[u8]> {
        let f = self.frame_of(seq)?;
        let data = f.data.as_ref();
        let start = (seq.wrapping_sub(f.first_seq) as usize * f.frag).min(data.len());
        data.get(start..(start + f.frag).min(data.len()))
    }

    /// The header, with the R flag, of datagram `seq` to resend now (its payload is
    /// [`payload`](Self::payload)), or None: not kept (too old, not media), not sent yet,
    /// resent too recently, or over the budget.
    pub fn resend(&mut self, seq: u32, now: Instant) -> Option<[u8; MEDIA_HEADER_LEN]> {
        if self.sent_through.is_some_and(|s| seq_diff(seq, s) > 0) {
            return None;
        }
        if self
            .resent
            .get(&seq)
            .is_some_and(|t| now.saturating_duration_since(*t) < RESEND_INTERVAL)
        {
            return None;
        }
        let f = self.frame_of(seq)?;
        let start = (seq.wrapping_sub(f.first_seq) as usize * f.frag).min(f.data.as_ref().len());
        let mut header = f.header;
        let cost = self.payload(seq)?.len() + MEDIA_HEADER_LEN;
        if cost > self.budget {
            return None;
        }
        self.budget -= cost;
        self.resent.insert(seq, now);
        patch_seq_offset(&mut header, seq, start as u32);
        header[4] |= header_flags::RETRANSMISSION;
        Some(header)
    }

    /// The kept frame datagram `seq` belongs to.
    fn frame_of(&self, seq: u32) -> Option<&SentFrame<B>> {
        self.frames
            .iter()
            .find(|f| seq.wrapping_sub(f.first_seq) < f.count)
    }
}
