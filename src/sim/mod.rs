// SPDX-License-Identifier: MPL-2.0
//! Tests only: the sender and receiver sessions joined by a virtual network, on a virtual
//! clock. Thousands of frames cross it in milliseconds of wall time, through what real
//! networks do: delay, jitter, random and burst loss, reordering, a rate-limited queue, and
//! drivers that wake up late.
//!
//! [`Sim`] plays both drivers. Each step it takes the earliest of: the next frame of the
//! source, a datagram arriving at either end, or a session's deadline (plus the drivers'
//! wake-up overshoot); hands it to the session; and moves what the sessions transmit onto
//! the [`Link`] in its direction. Every datagram is encoded and decoded as on a socket.

use crate::protocol::{self, Body};
use crate::receive::{self, clock, Event as RxEvent};
use crate::send::{self, packetizer::FrameMeta, Frame};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A deterministic random number generator (xorshift64*): every run of a test is the same.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform duration in [0, max).
    pub fn below(&mut self, max: Duration) -> Duration {
        max.mul_f64(self.unit())
    }
}

/// How a link loses datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// None lost.
    None,
    /// Each lost with this probability.
    Random(f64),
    /// Runs of `len` lost, a run starting with probability `p` at each datagram.
    Burst { len: u32, p: f64 },
}

/// One direction of the virtual network.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter), without reordering.
    pub jitter: Duration,
    /// Loss.
    pub loss: Loss,
    /// A bottleneck: bits per second, and the bytes its queue holds (tail drop beyond).
    pub rate: Option<(u64, usize)>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: Loss::None,
            rate: None,
        }
    }
}

/// A datagram on its way.
#[derive(Debug)]
struct InFlight {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// One direction of the network: what is on its way, by arrival instant.
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    rng: Rng,
    /// Arrival instant and a tie-breaking counter → datagram.
    queue: BTreeMap<(Instant, u64), InFlight>,
    counter: u64,
    /// Datagrams left in the current loss burst.
    burst_left: u32,
    /// When the bottleneck's queue has drained what it holds.
    busy_until: Option<Instant>,
    /// Datagrams lost, and dropped at the full bottleneck queue.
    pub lost: u64,
    pub dropped: u64,
    /// Datagrams delivered, and their bytes, by destination.
    pub delivered: HashMap<SocketAddr, (u64, u64)>,
    /// The media datagrams of this frame number are held back this much longer.
    pub late_frame: Option<(u32, Duration)>,
    last_arrival: Option<Instant>,
}

impl Link {
    /// A link set up as `cfg`, its randomness from `seed`.
    pub fn new(cfg: LinkConfig, seed: u64) -> Self {
        Link {
            cfg,
            rng: Rng::new(seed),
            queue: BTreeMap::new(),
            counter: 0,
            burst_left: 0,
            busy_until: None,
            lost: 0,
            dropped: 0,
            delivered: HashMap::new(),
            late_frame: None,
            last_arrival: None,
        }
    }

    /// Sends `bytes` from `from` to `to` at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let lose = match self.cfg.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.unit() < p,
            Loss::Burst { len, p } => {
                if self.burst_left == 0 && self.rng.unit() < p {
                    self.burst_left = len;
                }
                if self.burst_left > 0 {
                    self.burst_left -= 1;
                    true
                } else {
                    false
                }
            }
        };
        if lose {
            self.lost += 1;
            return;
        }
        let mut leaves = now;
        if let Some((bps, queue_bytes)) = self.cfg.rate {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            // What waits in the queue ahead of this datagram, in bytes.
            let backlog = start.saturating_duration_since(now).as_secs_f64() * bps as f64 / 8.0;
            if backlog + bytes.len() as f64 > queue_bytes as f64 {
                self.dropped += 1;
                return;
            }
            let wire = Duration::from_secs_f64((bytes.len() + 28) as f64 * 8.0 / bps as f64);
            self.busy_until = Some(start + wire);
            leaves = start + wire;
        }
        let jitter = if self.cfg.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.rng.below(self.cfg.jitter)
        };
        let held = self.late_frame.map_or(Duration::ZERO, |(frame, by)| {
            match protocol::decode(&bytes).map(|p| p.body) {
                Ok(Body::Media(m)) if m.frame == frame => by,
                _ => Duration::ZERO,
            }
        });
        // Jitter delays, it does not reorder: a path keeps its order (only a datagram held
        // back on purpose, `late_frame`, is overtaken).
        let mut at = leaves + self.cfg.delay + jitter;
        if let Some(last) = self.last_arrival {
            at = at.max(last);
        }
        self.last_arrival = Some(at);
        let at = at + held;
        self.counter += 1;
        self.queue
            .insert((at, self.counter), InFlight { from, to, bytes });
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.keys().next().map(|k| k.0)
    }

    /// The next datagram that has arrived by `now`: (arrival, from, to, bytes).
    fn pop(&mut self, now: Instant) -> Option<(Instant, SocketAddr, SocketAddr, Vec<u8>)> {
        let key = *self.queue.keys().next()?;
        if key.0 > now {
            return None;
        }
        let d = self.queue.remove(&key)?;
        let e = self.delivered.entry(d.to).or_default();
        e.0 += 1;
        e.1 += d.bytes.len() as u64;
        Some((key.0, d.from, d.to, d.bytes))
    }
}

/// The source's frames: `count` frames of `len` bytes every `interval`, live (handed over
/// on time) or not (as fast as the sender takes them).
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub len: usize,
    pub interval: Duration,
    pub count: u64,
    pub live: bool,
}

/// The bytes of frame `k`: a pattern the receiver checks exactly.
pub fn frame_bytes(len: usize, k: u64) -> Vec<u8> {
    let mut rng = Rng::new(k + 1);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A track besides the first: its id and its frames.
#[derive(Debug, Clone, Copy)]
pub struct Track {
    pub id: u16,
    pub source: Source,
    /// Frames handed to the sender so far.
    pub next: u64,
}

/// The bytes of frame `k` of track `track` (track 0's are [`frame_bytes`]).
pub fn track_frame_bytes(track: u16, len: usize, k: u64) -> Vec<u8> {
    frame_bytes(len, k | u64::from(track) << 40)
}

/// A receiver: its session, and what it output.
pub struct Receiver {
    pub addr: SocketAddr,
    pub session: receive::Session<Vec<u8>>,
    /// Frames output: frame index (from the PTS), whether its bytes were exact, output PTS.
    pub frames: Vec<(u64, bool, Option<u64>)>,
    pub eos: bool,
    /// Warnings it gave.
    pub warnings: Vec<receive::Warning>,
    /// While false the receiver is gone: it neither reads nor sends.
    pub alive: bool,
    /// Frames of the other tracks output: track, frame index, exact, output PTS.
    pub track_frames: Vec<(u16, u64, bool, Option<u64>)>,
    clock: clock::StreamClock,
    /// The other tracks' mappings, sharing the session's estimator through `clocks`.
    track_clocks: HashMap<u16, clock::StreamClock>,
    clocks: clock::ClockTable,
}

/// Both sessions over a virtual network.
pub struct Sim {
    pub now: Instant,
    pub t0: Instant,
    pub sender_addr: SocketAddr,
    pub sender: send::Session<Vec<u8>>,
    pub receivers: Vec<Receiver>,
    /// Sender → receivers, and back.
    pub forward: Link,
    pub back: Link,
    pub source: Source,
    /// Frames handed to the sender so far.
    pub next_frame: u64,
    /// How late each driver wakes for a deadline: up to this, at random.
    pub overshoot: Duration,
    rng: Rng,
    /// Source frames handed over, by index: arrival.
    pub handed: Vec<Instant>,
    /// Tracks besides the first (see [`Sim::add_track`]).
    pub tracks: Vec<Track>,
}

/// A receiver session as `videoipsrc` sets one up, with a reassembly window of `window`.
pub fn receiver(addr: SocketAddr, id: u64, window: Duration) -> Receiver {
    Receiver {
        addr,
        session: receive::Session::new(receive::Config {
            window,
            id,
            ..receive::Config::default()
        }),
        frames: Vec::new(),
        eos: false,
        warnings: Vec::new(),
        alive: true,
        track_frames: Vec::new(),
        clock: clock::StreamClock::new(clock::Mode::SenderClock, 1_000_000_000),
        track_clocks: HashMap::new(),
        clocks: clock::ClockTable::default(),
    }
}

impl Sim {
    /// A sender set up as `cfg` (its destination, if any, should be a receiver's address),
    /// sending `source` over `forward`, reports coming back over `back`.
    pub fn new(
        cfg: send::Config,
        source: Source,
        receivers: Vec<Receiver>,
        forward: LinkConfig,
        back: LinkConfig,
    ) -> Sim {
        let t0 = Instant::now();
        let mut sender = send::Session::new(cfg);
        sender.handle_caps("video/x-raw,format=GRAY8,width=8,height=8".into());
        sender.handle_clock(send::ClockSample {
            at: t0,
            running_time: 0,
            reference_time: 0,
            clock: protocol::reference_clock::NONE,
        });
        Sim {
            now: t0,
            t0,
            sender_addr: SocketAddr::from(([192, 0, 2, 1], 5004)),
            sender,
            receivers,
            forward: Link::new(forward, 1),
            back: Link::new(back, 2),
            source,
            next_frame: 0,
            overshoot: Duration::ZERO,
            rng: Rng::new(3),
            handed: Vec::new(),
            tracks: Vec::new(),
        }
    }

    /// Adds a track to the sender's session, with caps `caps` and live frames from `source`.
    pub fn add_track(
        &mut self,
        entry: crate::protocol::tracks::TrackEntry,
        caps: &str,
        source: Source,
    ) {
        let id = entry.id;
        self.sender.add_track(entry).expect("a valid track");
        self.sender
            .handle_caps_on(id, caps.into())
            .expect("a declared track");
        self.tracks.push(Track {
            id,
            source,
            next: 0,
        });
    }

    fn frame_due(&self) -> Option<Instant> {
        (self.next_frame < self.source.count)
            .then(|| self.t0 + self.source.interval.mul_f64(self.next_frame as f64))
    }

    fn track_due(&self, t: &Track) -> Option<Instant> {
        (t.next < t.source.count).then(|| self.t0 + t.source.interval.mul_f64(t.next as f64))
    }

    /// Runs until `until`, or until nothing is left to do.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..50_000_000u64 {
            self.step();
            let next = self.next_event();
            match next {
                Some(t) if t <= until => self.now = self.now.max(t),
                _ => {
                    self.now = until;
                    self.step();
                    return;
                }
            }
        }
    }

    /// Runs until every frame was handed over and `tail` has passed since.
    pub fn run(&mut self, tail: Duration) {
        let last = |s: &Source| s.interval.mul_f64(s.count as f64);
        let longest = self
            .tracks
            .iter()
            .map(|t| last(&t.source))
            .fold(last(&self.source), Duration::max);
        let end = self.t0 + longest + tail;
        self.run_until(end);
    }

    fn late(&mut self) -> Duration {
        if self.overshoot.is_zero() {
            Duration::ZERO
        } else {
            self.rng.below(self.overshoot)
        }
    }

    /// The earliest instant anything happens.
    fn next_event(&mut self) -> Option<Instant> {
        let late = self.late();
        let tracks = self.tracks.iter().filter_map(|t| self.track_due(t)).min();
        let mut t = [
            self.frame_due(),
            tracks,
            self.forward.next_arrival(),
            self.back.next_arrival(),
            self.sender.poll_timeout().map(|t| t + late),
        ]
        .into_iter()
        .flatten()
        .min();
        for r in self.receivers.iter().filter(|r| r.alive) {
            if let Some(d) = r.session.poll_timeout() {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        }
        t
    }

    /// Does everything due at `self.now`.
    fn step(&mut self) {
        let now = self.now;
        while let Some(due) = self.frame_due() {
            if due > now || (!self.source.live && !self.sender.wants_input()) {
                break;
            }
            let k = self.next_frame;
            self.sender.handle_frame(Frame {
                data: frame_bytes(self.source.len, k),
                meta: FrameMeta {
                    pts: k * self.source.interval.as_nanos() as u64,
                    duration: self.source.interval.as_nanos() as u64,
                    ..FrameMeta::default()
                },
                duration: Some(self.source.interval),
                key: true,
                live: self.source.live,
                arrived: now,
            });
            self.handed.push(now);
            self.next_frame += 1;
            if !self.source.live {
                break;
            }
        }
        for i in 0..self.tracks.len() {
            while let Some(due) = self.track_due(&self.tracks[i]) {
                if due > now {
                    break;
                }
                let Track { id, source, next } = self.tracks[i];
                let interval = source.interval.as_nanos() as u64;
                let sent = self.sender.handle_frame_on(
                    id,
                    Frame {
                        data: track_frame_bytes(id, source.len, next),
                        meta: FrameMeta {
                            pts: next * interval,
                            duration: interval,
                            ..FrameMeta::default()
                        },
                        duration: Some(source.interval),
                        key: true,
                        live: true,
                        arrived: now,
                    },
                );
                assert!(sent.is_ok(), "track {id} was declared");
                self.tracks[i].next += 1;
            }
        }
        // The back channel reaches the sender.
        while let Some((_, from, _, bytes)) = self.back.pop(now) {
            self.sender.handle_datagram(now, from, &bytes);
        }
        while let Some(t) = self.sender.poll_transmit(now) {
            for &to in t.dests {
                for k in 0..t.len() {
                    self.forward
                        .send(now, self.sender_addr, to, t.parts(k).concat());
                }
            }
        }
        while self.sender.poll_event().is_some() {}
        // The forward link reaches the receivers.
        while let Some((at, from, to, mut bytes)) = self.forward.pop(now) {
            let Some(r) = self
                .receivers
                .iter_mut()
                .find(|r| r.addr == to || to.ip().is_multicast())
            else {
                continue;
            };
            if !r.alive {
                continue;
            }
            r.session
                .handle_datagram(at, from, receive::Meta::default(), &mut bytes, |len| {
                    Some(vec![0u8; len])
                });
            Self::drain_receiver(r, self.t0, self.source, &self.tracks);
        }
        for r in self.receivers.iter_mut().filter(|r| r.alive) {
            r.session.handle_timeout(now);
            Self::drain_receiver(r, self.t0, self.source, &self.tracks);
            while let Some(t) = r.session.poll_transmit(now) {
                for _ in 0..t.copies {
                    self.back
                        .send(now, r.addr, t.destination, t.contents.clone());
                }
            }
        }
    }

    fn drain_receiver(r: &mut Receiver, t0: Instant, source: Source, tracks: &[Track]) {
        while let Some(ev) = r.session.poll_event() {
            match ev {
                RxEvent::Frame {
                    track,
                    frame,
                    origin,
                    ..
                } => {
                    let source = match tracks.iter().find(|t| t.id == track) {
                        Some(t) => t.source,
                        None => source,
                    };
                    let interval = source.interval.as_nanos() as u64;
                    let k = frame.info.pts / interval.max(1);
                    let arrival = frame.arrival.saturating_duration_since(t0).as_nanos() as u64;
                    // One pipeline (base time 0): the tracks of a session share a mapping.
                    let clock = if track == 0 {
                        &mut r.clock
                    } else {
                        r.track_clocks.entry(track).or_insert_with(|| {
                            clock::StreamClock::new(clock::Mode::SenderClock, 1_000_000_000)
                        })
                    };
                    let stamped =
                        clock.map(&r.clocks, &origin, Some(0), Some(arrival), &frame.info);
                    if track == 0 {
                        let exact = frame.buf == frame_bytes(source.len, k);
                        r.frames.push((k, exact, stamped.pts));
                    } else {
                        let exact = frame.buf == track_frame_bytes(track, source.len, k);
                        r.track_frames.push((track, k, exact, stamped.pts));
                    }
                }
                RxEvent::End => r.eos = true,
                RxEvent::Warning(w) => r.warnings.push(w),
                _ => {}
            }
        }
    }
}

impl Receiver {
    /// Distinct frames output exact.
    pub fn exact_frames(&self) -> usize {
        let mut k: Vec<u64> = self.frames.iter().filter(|f| f.1).map(|f| f.0).collect();
        k.sort_unstable();
        k.dedup();
        k.len()
    }

    /// Frames output with wrong bytes.
    pub fn corrupt_frames(&self) -> usize {
        self.frames.iter().filter(|f| !f.1).count()
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
