// SPDX-License-Identifier: MPL-2.0
//! The thread of `videoipsink` that reads what receivers send back on its socket: receiver
//! reports, which fill the [`SenderSession`] table behind the `receivers` and
//! `receiver-stats` fields of `stats`. It never touches the streaming thread's state.

use crate::element::lock;
use crate::net::{self, RecvBatch, UdpSocket, Waker};
use crate::protocol::{self, Body};
use crate::sender::SenderSession;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Reports are small: slots of 2 KiB, a few per receive.
const SLOT: usize = 2048;
const BATCH: usize = 16;

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
    ) -> std::io::Result<ReportThread> {
        let waker = Arc::new(Waker::new()?);
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (waker.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("videoipsink-rx".into())
            .spawn(move || run(&socket, &table, &w, &s))?;
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

fn run(socket: &UdpSocket, table: &Mutex<SenderSession>, waker: &Waker, stop: &AtomicBool) {
    let mut batch = RecvBatch::new(BATCH, SLOT);
    while !stop.load(Ordering::SeqCst) {
        // A socket error (an ICMP error queued on it, say) is no reason to stop listening.
        let n = batch.recv(socket).unwrap_or(0);
        if n > 0 {
            let now = Instant::now();
            let mut t = lock(table);
            for i in 0..n {
                let (Some(d), Some(meta)) = (batch.get(i), batch.meta(i)) else {
                    continue;
                };
                // Anything else, or anything malformed, is ignored: a sender's socket takes
                // no orders from the network yet.
                if let Ok(p) = protocol::decode(d) {
                    if let Body::ReceiverReport(r) = p.body {
                        t.on_receiver_report(meta.source, p.header.session, &r, now);
                    }
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
