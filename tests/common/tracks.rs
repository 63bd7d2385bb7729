// SPDX-License-Identifier: MPL-2.0
//! A real multi-track sender for the integration tests: a [`gstvideoip::send::Session`]
//! driven on a thread of its own over a real loopback `UdpSocket` (what the sender bin will
//! do, without it). The test hands it frames of any track; the thread sends what the
//! session says when it says so, and hands the receivers' reports back to it.

use gstvideoip::protocol::tracks::{TrackEntry, TrackKind};
use gstvideoip::protocol::{self, reference_clock};
use gstvideoip::send::packetizer::FrameMeta;
use gstvideoip::send::{self, schedule::Pacing, ClockSample, Frame, Session};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

enum Cmd {
    Frame {
        track: u16,
        data: Vec<u8>,
        pts: u64,
        duration: u64,
    },
    Eos(u16),
    Caps(u16, String),
    Stats(mpsc::Sender<send::Stats>),
}

/// One track of a [`TrackSender`]: id, kind, pad name and caps.
pub struct TrackSpec {
    pub id: u16,
    pub kind: TrackKind,
    pub name: &'static str,
    pub caps: String,
}

/// A sender session of several tracks to `dest`, running on its own thread until dropped.
pub struct TrackSender {
    cmd: Option<mpsc::Sender<Cmd>>,
    thread: Option<JoinHandle<()>>,
    /// When its running time was 0: a frame's PTS is its sending time since then.
    pub t0: Instant,
    pub addr: SocketAddr,
}

impl TrackSender {
    /// A sender on loopback sending `tracks` (each declared, with its caps) to `dest`.
    pub fn start(dest: SocketAddr, tracks: &[TrackSpec]) -> TrackSender {
        Self::with(Some(dest), None, tracks)
    }

    /// A sender that receivers subscribe to (up to `max` at once), with no fixed
    /// destination: each subscriber gets the tracks it asks for.
    pub fn subscribable(max: usize, tracks: &[TrackSpec]) -> TrackSender {
        Self::with(None, Some(max), tracks)
    }

    fn with(
        dest: Option<SocketAddr>,
        max_subscribers: Option<usize>,
        tracks: &[TrackSpec],
    ) -> TrackSender {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a sender socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(1)))
            .expect("a read timeout");
        let addr = socket.local_addr().expect("its address");
        let first = tracks.first().map_or(0, |t| t.id);
        let mut session: Session<Vec<u8>> = Session::new(send::Config {
            session: 0x7e57_0000_0000_0000 | u64::from(addr.port()),
            track: first,
            first_seq: 1000,
            frag: 1400,
            dest,
            max_subscribers,
            pacing: Pacing::Frame,
            batch_size: 16,
            gso_align: 1,
            max_bitrate: None,
            fec_percentage: 0,
            max_retransmission_percentage: 50,
        });
        for t in tracks {
            session
                .add_track(TrackEntry {
                    id: t.id,
                    kind: t.kind,
                    variant_of: None,
                    name: t.name.into(),
                })
                .expect("a valid track");
            session
                .handle_caps_on(t.id, t.caps.clone())
                .expect("a declared track");
        }
        let t0 = Instant::now();
        session.handle_clock(ClockSample {
            at: t0,
            running_time: 0,
            reference_time: 0,
            clock: reference_clock::NONE,
        });
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("test-tracksender".into())
            .spawn(move || drive(session, socket, rx))
            .expect("a sender thread");
        TrackSender {
            cmd: Some(tx),
            thread: Some(thread),
            t0,
            addr,
        }
    }

    /// Hands the session a frame of `track` (key, live) with sender PTS `pts` ns.
    pub fn frame(&self, track: u16, data: Vec<u8>, pts: u64, duration: u64) {
        if let Some(c) = &self.cmd {
            let _ = c.send(Cmd::Frame {
                track,
                data,
                pts,
                duration,
            });
        }
    }

    /// Announces new caps on `track` (its next frames carry them).
    pub fn caps(&self, track: u16, caps: &str) {
        if let Some(c) = &self.cmd {
            let _ = c.send(Cmd::Caps(track, caps.into()));
        }
    }

    /// Ends `track`.
    pub fn eos(&self, track: u16) {
        if let Some(c) = &self.cmd {
            let _ = c.send(Cmd::Eos(track));
        }
    }

    /// The session's counters now.
    pub fn stats(&self) -> Option<send::Stats> {
        let (tx, rx) = mpsc::channel();
        self.cmd.as_ref()?.send(Cmd::Stats(tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(2)).ok()
    }

    /// The sender's running time now, ns.
    pub fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

impl Drop for TrackSender {
    fn drop(&mut self) {
        self.cmd = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn drive(mut session: Session<Vec<u8>>, socket: UdpSocket, rx: mpsc::Receiver<Cmd>) {
    let mut buf = vec![0u8; 65536];
    loop {
        // One command at a time, each followed by what it makes due: two frames of a track
        // handed over together would have the older dropped as behind (a live sender's
        // rule), which the test thread's oversleeping must not cause.
        loop {
            transmit(&mut session, &socket);
            match rx.try_recv() {
                Ok(Cmd::Frame {
                    track,
                    data,
                    pts,
                    duration,
                }) => {
                    let _ = session.handle_frame_on(
                        track,
                        Frame {
                            data,
                            meta: FrameMeta {
                                pts,
                                dts: protocol::TIME_NONE,
                                duration,
                                flags: 0,
                            },
                            duration: Some(Duration::from_nanos(duration)),
                            key: true,
                            live: true,
                            arrived: Instant::now(),
                        },
                    );
                }
                Ok(Cmd::Eos(track)) => {
                    let _ = session.handle_eos_on(track);
                }
                Ok(Cmd::Caps(track, caps)) => {
                    let _ = session.handle_caps_on(track, caps);
                }
                Ok(Cmd::Stats(reply)) => {
                    let _ = reply.send(session.stats(Instant::now()));
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        transmit(&mut session, &socket);
        // Reports and NACKs from the receiver (the read timeout paces the loop).
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            session.handle_datagram(Instant::now(), from, &buf[..n]);
            socket.set_nonblocking(true).expect("a nonblocking socket");
        }
        let _ = socket.set_nonblocking(false);
    }
}

/// Sends what the session has due now.
fn transmit(session: &mut Session<Vec<u8>>, socket: &UdpSocket) {
    let now = Instant::now();
    while let Some(t) = session.poll_transmit(now) {
        for &to in t.dests {
            for k in 0..t.len() {
                let _ = socket.send_to(&t.parts(k).concat(), to);
            }
        }
    }
    while session.poll_event().is_some() {}
}

/// A frame of `track` numbered `index`, `len` bytes: its index in its first 8 bytes, then a
/// pattern of the two (byte-exact checks find the frame from its bytes).
pub fn frame_bytes(track: u16, index: u64, len: usize) -> Vec<u8> {
    let mut v = super::pattern(len, (u64::from(track) << 48) ^ index);
    let n = len.min(8);
    v[..n].copy_from_slice(&index.to_le_bytes()[..n]);
    v
}

/// The index a [`frame_bytes`] frame carries.
pub fn frame_index(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}
