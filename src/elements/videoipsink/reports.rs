// SPDX-License-Identifier: MPL-2.0
//! The thread of `videoipsink` that reads what receivers send back on its socket: receiver
//! reports, which fill the [`SenderSession`] table behind the `receivers` and
//! `receiver-stats` fields of `stats`, and NACKs, which it answers by resending from the
//! [`History`] of sent frames. It shares only those two (each behind its own lock) with the
//! streaming thread.

use crate::elements::lock;
use crate::net::{self, RecvBatch, SendBatch, UdpSocket, Waker};
use crate::protocol::{self, Body, MEDIA_HEADER_LEN};
use crate::send::history::History;
use crate::send::receivers::SenderSession;
use crate::send::subscribers::Subscribers;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Reports are small: slots of 2 KiB, a few per receive.
const SLOT: usize = 2048;
const BATCH: usize = 16;

/// Most datagrams one NACK gets resent.
const MAX_RESEND_PER_NACK: u32 = 4096;

/// A frame's bytes, kept for resending.
pub(super) type Kept = gst::MappedBuffer<gst::buffer::Readable>;

/// What the thread needs to answer NACKs, and counts.
pub(super) struct Resender {
    pub history: Arc<Mutex<History<Kept>>>,
    /// In subscription mode, the table SUBSCRIBE messages fill.
    pub subscribers: Option<Arc<Mutex<Subscribers>>>,
    /// The stream's destination: resends to a multicast group go there (one resend serves
    /// every receiver that missed it), unicast ones to whoever asked.
    pub dest: SocketAddr,
    pub session: u64,
    pub nacks_received: Arc<AtomicU64>,
    pub retransmitted: Arc<AtomicU64>,
}

/// The running thread; dropping it stops and joins it.
pub(super) struct ReportThread {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    handle: Option<JoinHandle<()>>,
}

impl ReportThread {
    /// Starts reading `socket` into `table`.
    pub fn spawn(
        socket: Arc<UdpSocket>,
        table: Arc<Mutex<SenderSession>>,
        resender: Resender,
    ) -> std::io::Result<ReportThread> {
        let waker = Arc::new(Waker::new()?);
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (waker.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("videoipsink-rx".into())
            .spawn(move || run(&socket, &table, &resender, &w, &s))?;
        Ok(ReportThread {
            stop,
            waker,
            handle: Some(handle),
        })
    }
}

impl Drop for ReportThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(
    socket: &UdpSocket,
    table: &Mutex<SenderSession>,
    resender: &Resender,
    waker: &Waker,
    stop: &AtomicBool,
) {
    let mut batch = RecvBatch::new(BATCH, SLOT);
    let mut out = SendBatch::new();
    let mut resends: Vec<([u8; MEDIA_HEADER_LEN], u32)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        // A socket error (an ICMP error queued on it, say) is no reason to stop listening.
        let n = batch.recv(socket).unwrap_or(0);
        if n > 0 {
            let now = Instant::now();
            for i in 0..n {
                let (Some(d), Some(meta)) = (batch.get(i), batch.meta(i)) else {
                    continue;
                };
                // Anything else, or anything malformed, is ignored.
                let Ok(p) = protocol::decode(d) else {
                    continue;
                };
                match p.body {
                    Body::Subscribe(sub) => {
                        if let Some(table) = &resender.subscribers {
                            // Session 0 asks for whatever this sender sends.
                            if sub.session == 0 || sub.session == resender.session {
                                let lease = std::time::Duration::from_millis(sub.lease_ms.into());
                                lock(table).subscribe(meta.source, lease, now);
                            }
                        }
                    }
                    Body::ReceiverReport(r) => {
                        lock(table).on_receiver_report(meta.source, p.header.session, &r, now);
                    }
                    Body::Nack(nack) if nack.session == resender.session => {
                        resender.nacks_received.fetch_add(1, Ordering::Relaxed);
                        let to = if resender.dest.ip().is_multicast() {
                            resender.dest
                        } else {
                            meta.source
                        };
                        resend(
                            socket,
                            resender,
                            protocol::nack_entries(p.payload),
                            to,
                            now,
                            &mut out,
                            &mut resends,
                            waker,
                        );
                    }
                    _ => {}
                }
            }
            continue;
        }
        match waker.wait(Some(socket.fd()), libc::POLLIN, None) {
            Ok(net::Wait::Ready) | Ok(net::Wait::TimedOut) => {}
            // Woken: stop is set (checked above).
            Ok(net::Wait::Woken) => waker.reset(),
            Err(_) => return,
        }
    }
}

/// Resends the datagrams a NACK asks for that are still kept, within the budget.
#[allow(clippy::too_many_arguments)]
fn resend(
    socket: &UdpSocket,
    resender: &Resender,
    ranges: impl Iterator<Item = (u32, u32)>,
    to: SocketAddr,
    now: Instant,
    out: &mut SendBatch,
    resends: &mut Vec<([u8; MEDIA_HEADER_LEN], u32)>,
    waker: &Waker,
) {
    let mut history = lock(&resender.history);
    resends.clear();
    let mut left = MAX_RESEND_PER_NACK;
    for (first, count) in ranges {
        for k in 0..count.min(left) {
            let seq = first.wrapping_add(k);
            if let Some(header) = history.resend(seq, now) {
                resends.push((header, seq));
            }
        }
        left = left.saturating_sub(count);
        if left == 0 {
            break;
        }
    }
    if resends.is_empty() {
        return;
    }
    // The payloads are borrowed from the kept frames, under the same lock.
    let payloads: Vec<&[u8]> = resends
        .iter()
        .map(|(_, seq)| history.payload(*seq).unwrap_or(&[]))
        .collect();
    let report = out.send(
        socket,
        to,
        resends.len(),
        |i| match (resends.get(i), payloads.get(i)) {
            (Some((h, _)), Some(p)) => [&h[..], p],
            _ => [&[][..], &[][..]],
        },
        waker,
    );
    if let Ok(r) = report {
        resender
            .retransmitted
            .fetch_add(r.sent as u64, Ordering::Relaxed);
    }
}
