// SPDX-License-Identifier: MPL-2.0
//! Finding sources by name: DNS-SD over multicast DNS (RFC 6763 over RFC 6762), service
//! type [`SERVICE_TYPE`]. No GStreamer here, and no system daemon.
//!
//! - [`txt`]: what a source's TXT record carries (media, size, rate, how to receive), as a
//!   pure encode/decode pair that never panics on what the network sends.
//! - [`Announcer`]: a sender's announcement, with the `mdns-sd` crate (pure Rust, its own
//!   thread), updated when its caps change, withdrawn (with goodbye packets) on drop.
//! - [`Browser`]: the sources on the network, in a bounded [`table::Table`], with found,
//!   updated and lost events, by our own querier: [`dns`] (the messages, pure) and
//!   [`browse`] (the state machine, I/O-free), driven by one thread and one socket. Its
//!   memory is bounded whatever the network sends ([`browse`] says how); mdns-sd's browser
//!   caches every record it hears, without a limit.
//!
//! **Two senders of one name.** The DNS-SD instance name is the source name followed by the
//! low 32 bits of the sender's session id, `CAM 1 [89abcdef]`, so two senders of one name
//! never take the same instance (mDNS probing would otherwise rename one of them, and only
//! after a conflict). The TXT record carries the name as the user wrote it (up to 240
//! bytes; the instance label is cut to fit DNS's 63 bytes), and people are shown it with the
//! sender's host and port: `CAM 1 (studio-pc:40123)` ([`table::Source::display_name`]).
//!
//! **Lost sources.** A sender that stops says goodbye (records with TTL 0), and browsers drop
//! it a second later (RFC 6762 §10.1). One that vanishes without a word is found out by
//! asking: the browser asks every source it knows to confirm its records every
//! [`VERIFY_PERIOD`], and drops it when no answer comes within [`VERIFY_TIMEOUT`]
//! (RFC 6762 §10.4), so within about 4 s.
//!
//! **Interfaces.** The announcer uses every interface with an IPv4 or IPv6 address, the
//! browser every interface with an IPv4 address (224.0.0.251) and every multicast interface
//! with an IPv6 address (ff02::fb), IPv4 loopback included, so that a sender and a receiver on one machine find each other even without a
//! network (and in a network namespace whose only link is its loopback).

pub mod browse;
pub mod dns;
mod mdns;
pub mod table;
pub mod txt;

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use table::{Event, Source, Table};
pub use txt::{Mode, SourceTxt};

/// The DNS-SD service type of videoip sources.
pub const SERVICE_TYPE: &str = "_videoip._udp.local.";
/// How often a browser asks each known source to confirm it is still there.
pub const VERIFY_PERIOD: Duration = Duration::from_millis(1500);
/// How long a source has to answer before it is dropped.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(2);
/// Most confirmations asked for per period, so that many sources cannot make a browser
/// flood the network (beyond this many sources, losses without goodbye take longer).
pub const MAX_VERIFY_PER_PERIOD: usize = 64;
/// Longest part of the source name in the instance label, in bytes (a DNS label holds 63,
/// the session suffix takes 11, and mdns-sd may escape a few characters).
const MAX_LABEL_NAME_LEN: usize = 44;

/// A discovery failure: the mDNS daemon could not start or refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError(pub String);

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DiscoveryError {}

fn derr(what: &str, e: impl fmt::Display) -> DiscoveryError {
    DiscoveryError(format!("{what}: {e}"))
}

/// Starts an mDNS daemon on every interface, loopback included. Each [`Announcer`] and
/// [`Browser`] has its own: its sockets live in the network namespace of the thread that
/// makes it.
fn daemon() -> Result<ServiceDaemon, DiscoveryError> {
    let d = ServiceDaemon::new().map_err(|e| derr("cannot start multicast DNS", e))?;
    let _ = d.enable_interface(IfKind::LoopbackV4);
    Ok(d)
}

/// Stops a daemon, waiting a little for it (it sends goodbyes for what it announced).
fn shutdown(d: &ServiceDaemon) {
    if let Ok(status) = d.shutdown() {
        let _ = status.recv_timeout(Duration::from_secs(1));
    }
}

/// The DNS-SD instance label of a source: its name (cut to fit) and the session id's low
/// 32 bits, `CAM 1 [89abcdef]`.
pub fn instance_label(name: &str, session: u64) -> String {
    format!(
        "{} [{:08x}]",
        txt::truncate(name.trim(), MAX_LABEL_NAME_LEN),
        session as u32
    )
}

/// This machine's host name for DNS-SD (`name.local.`), letters, digits and `-` only.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let raw = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let clean: String = raw
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect();
    let clean = if clean.is_empty() {
        "videoip".into()
    } else {
        clean
    };
    format!("{clean}.local.")
}

/// A sender's announcement on the network. Withdrawn, with goodbye packets, on drop.
pub struct Announcer {
    daemon: ServiceDaemon,
    fullname: String,
    label: String,
    host: String,
    port: u16,
}

impl Announcer {
    /// Announces `txt` (whose `name` and `session` name the instance) at `port`, the
    /// sender's own port, from every address of this machine.
    pub fn new(port: u16, txt: &SourceTxt) -> Result<Announcer, DiscoveryError> {
        let name = txt.name.as_deref().unwrap_or("videoip");
        let label = instance_label(name, txt.session.unwrap_or(0));
        let a = Announcer {
            daemon: daemon()?,
            fullname: String::new(),
            label,
            host: host_name(),
            port,
        };
        let mut a = a;
        a.fullname = a.register(txt)?;
        Ok(a)
    }

    fn register(&self, txt: &SourceTxt) -> Result<String, DiscoveryError> {
        let pairs = txt::encode(txt);
        let props: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &self.label,
            &self.host,
            "",
            self.port,
            &props[..],
        )
        .map_err(|e| derr("cannot describe the service", e))?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_string();
        self.daemon
            .register(info)
            .map_err(|e| derr("cannot announce the service", e))?;
        Ok(fullname)
    }

    /// Announces a new TXT record (the caps changed) under the same instance.
    pub fn update(&self, txt: &SourceTxt) -> Result<(), DiscoveryError> {
        self.register(txt).map(|_| ())
    }

    /// The DNS-SD instance's full name.
    pub fn instance(&self) -> &str {
        &self.fullname
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Ok(status) = self.daemon.unregister(&self.fullname) {
            let _ = status.recv_timeout(Duration::from_secs(1));
        }
        shutdown(&self.daemon);
    }
}

/// The videoip sources on the network, browsed on a thread of its own by our own small
/// multicast-DNS querier ([`browse::Browse`]), whose memory is bounded whatever the network
/// sends (mdns-sd's cache is not).
pub struct Browser {
    state: Arc<Mutex<browse::Browse>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Browser {
    /// Starts browsing. `on_event` is called on the browser's thread for each change, with
    /// no lock held.
    pub fn new(on_event: impl FnMut(Event) + Send + 'static) -> Result<Browser, DiscoveryError> {
        Self::start(None, on_event)
    }

    /// Starts browsing for the sources named `name` only: announcements of other names are
    /// never stored, so a flood of them cannot keep the source asked for out.
    pub fn for_name(
        name: String,
        on_event: impl FnMut(Event) + Send + 'static,
    ) -> Result<Browser, DiscoveryError> {
        Self::start(Some(name), on_event)
    }

    fn start(
        name: Option<String>,
        on_event: impl FnMut(Event) + Send + 'static,
    ) -> Result<Browser, DiscoveryError> {
        let socket = mdns::Socket::open().map_err(|e| derr("cannot start multicast DNS", e))?;
        let state = Arc::new(Mutex::new(browse::Browse::new(Instant::now(), name)));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, s) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("videoip-browse".into())
            .spawn(move || browse_thread(socket, st, s, on_event))
            .map_err(|e| derr("cannot start the browse thread", e))?;
        Ok(Browser {
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The sources known now.
    pub fn sources(&self) -> Vec<Source> {
        lock(&self.state).table().iter().cloned().collect()
    }

    /// Announcements ignored because the table was full or their names too long.
    pub fn ignored(&self) -> u64 {
        lock(&self.state).ignored()
    }

    /// Responses dropped because they did not come from UDP port 5353 (RFC 6762 §6, §11).
    pub fn wrong_port(&self) -> u64 {
        lock(&self.state).wrong_port()
    }

    /// Datagrams dropped because they were sent to this host alone from an address on none
    /// of its subnets (RFC 6762 §11).
    pub fn off_link(&self) -> u64 {
        lock(&self.state).off_link()
    }
}

/// How often the interfaces are looked at again (to join the group on new ones).
const INTERFACE_PERIOD: Duration = Duration::from_secs(5);
/// Longest wait for a datagram before the stop flag is looked at.
const STOP_POLL: Duration = Duration::from_millis(100);

fn browse_thread(
    mut socket: mdns::Socket,
    state: Arc<Mutex<browse::Browse>>,
    stop: Arc<AtomicBool>,
    mut on_event: impl FnMut(Event),
) {
    let mut buf = vec![0u8; 9000];
    let mut next_interfaces = Instant::now() + INTERFACE_PERIOD;
    let mut events = Vec::new();
    let mut transmits = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_interfaces {
            next_interfaces = now + INTERFACE_PERIOD;
            socket.join_all();
        }
        let due = lock(&state).poll_timeout();
        let wait = due.saturating_duration_since(now).min(STOP_POLL);
        let got = socket.recv(&mut buf, wait.max(Duration::from_millis(1)));
        {
            let mut st = lock(&state);
            let now = Instant::now();
            match got {
                Some((n, from, true)) => st.handle_datagram(now, from, &buf[..n]),
                Some((_, _, false)) => st.drop_off_link(),
                None => {}
            }
            if now >= st.poll_timeout() {
                st.handle_timeout(now);
            }
            events.extend(std::iter::from_fn(|| st.poll_event()));
            transmits.extend(std::iter::from_fn(|| st.poll_transmit()));
        }
        for t in transmits.drain(..) {
            socket.send(&t);
        }
        for e in events.drain(..) {
            on_event(e);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
