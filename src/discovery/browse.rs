// SPDX-License-Identifier: MPL-2.0
//! The browsing side of DNS-SD as a state machine with no I/O: datagrams and the time in,
//! queries and [`Event`]s out (the [`Browser`](super::Browser)'s thread does the sockets).
//!
//! **Bounded memory, whatever the network sends.** Nothing is cached beyond what the
//! [`Table`] keeps: per instance, one SRV (host, port), one decoded TXT and at most
//! [`MAX_ADDRESSES`] addresses. At most
//! [`MAX_SOURCES`] instances are listed and at most
//! [`MAX_PENDING`] wait for records still missing (each for at most [`PENDING_TIMEOUT`]);
//! an announcement beyond those bounds is counted in `ignored` and dropped without being
//! stored. Records of other services, and addresses of hosts no kept instance names, are
//! never stored. A browser for one name drops every instance whose TXT names another.
//!
//! **Pending slots are shared fairly between responders.** When all [`MAX_PENDING`] are
//! taken, a new instance from a responder address holding fewer of them than another (by
//! at least two) takes the place of that other's oldest pending one (counted in
//! `ignored`). So a flood of PTR answers naming instances whose SRV and TXT never come
//! holds the slots only until a real responder announces: the flooder keeps at most
//! `MAX_PENDING - 1` and the real instance waits for its records as usual (found within a
//! [`VERIFY_PERIOD`], when the records it misses are asked for). A flooder forging many
//! source addresses is not held back by this.
//!
//! **Cache flush and goodbye.** A goodbye (TTL 0) of an instance or of an address removes
//! it [`FLUSH_DELAY`] later (RFC 6762 §10.1), so that a goodbye followed by a new
//! announcement loses nothing. An address with the cache-flush bit (§10.2) replaces the
//! others of its host and family that were heard more than [`FLUSH_DELAY`] before: they go
//! [`FLUSH_DELAY`] later, so a host whose address changed keeps only its new one, and
//! several addresses of one announcement are all kept. (One SRV and one TXT are kept per
//! instance anyway: a new one replaces the old at once.)
//!
//! **Only answers from port 5353.** A response whose UDP source port is not 5353 is
//! counted in `wrong_port` and dropped (RFC 6762 §6 and §11: multicast answers come from
//! port 5353; anything else is a legacy resolver's or a forger's). The socket drops, and
//! [`Browse::drop_off_link`] counts in `off_link`, answers sent to this host alone from an
//! address on none of its subnets (§11).
//!
//! **Queries.** A PTR query for [`SERVICE_TYPE`] after a random 20–120 ms
//! ([`FIRST_QUERY_DELAY`], RFC 6762 §5.2: browsers started together do not query together)
//! and then at intervals that double from 1 s up to an hour, each listing as known answers
//! (§7.1) the PTR records of the listed instances with more than half their TTL left, so
//! that responders do not repeat them (over several datagrams with the TC bit when they do
//! not fit in one, §7.2; pending instances are left out, so that their answers bring the
//! records they miss); every [`VERIFY_PERIOD`] an SRV query for
//! up to [`MAX_VERIFY_PER_PERIOD`] listed instances in turn, each dropped when nothing of it
//! arrives within [`VERIFY_TIMEOUT`] (RFC 6762 §10.4); SRV, TXT and A/AAAA queries for
//! pending instances, at most [`MAX_VERIFY_PER_PERIOD`] a period.

use super::dns::{self, RData};
use super::table::{self, Event, Source, Table, MAX_ADDRESSES, MAX_SOURCES};
use super::{txt, MAX_VERIFY_PER_PERIOD, SERVICE_TYPE, VERIFY_PERIOD, VERIFY_TIMEOUT};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The multicast-DNS port: ours, and the one every answer must come from.
pub const MDNS_PORT: u16 = 5353;
/// Most instances kept while records they need (SRV, TXT, an address) are still missing.
pub const MAX_PENDING: usize = 64;
/// How long a pending instance waits for what it misses.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest time to live taken, in seconds: a longer one is cut to this.
pub const MAX_TTL: u32 = 4500;
/// Longest interval between two PTR queries (RFC 6762 §5.2 allows capping at an hour).
const MAX_QUERY_INTERVAL: Duration = Duration::from_secs(3600);
/// The range of the random delay before the first PTR query (RFC 6762 §5.2).
pub const FIRST_QUERY_DELAY: (Duration, Duration) =
    (Duration::from_millis(20), Duration::from_millis(120));
/// How long a record said goodbye to, or flushed, lingers (RFC 6762 §10.1, §10.2).
pub const FLUSH_DELAY: Duration = Duration::from_secs(1);
/// How often expiries and unanswered confirmations are looked for.
const SWEEP_PERIOD: Duration = Duration::from_millis(250);
/// Largest query datagram written.
const MAX_QUERY_LEN: usize = 1400;

#[derive(Debug)]
struct Inst {
    /// The full name as first received (the table's key).
    instance: String,
    srv: Option<(String, u16)>,
    txt: Option<txt::SourceTxt>,
    /// Addresses: each with when it runs out and when it was last heard.
    addresses: Vec<(IpAddr, Instant, Instant)>,
    /// Its PTR record: when it runs out, and the TTL it came with (for known answers).
    ptr: Option<(Instant, u32)>,
    /// When its PTR/SRV records run out.
    expires: Instant,
    /// When it is dropped if still pending.
    pending_until: Instant,
    /// Listed in the table (else pending).
    listed: bool,
    /// The address of the responder whose message made it (its share of the pending
    /// slots), and when.
    from: IpAddr,
    since: Instant,
    /// A confirmation (or the missing records) was asked for and must arrive by then.
    answer_by: Option<Instant>,
}

/// What one message said about one instance.
#[derive(Default)]
struct Said {
    instance: String,
    bye: bool,
    ttl: u32,
    /// The PTR's TTL, if the message had one (not a goodbye).
    ptr_ttl: Option<u32>,
    srv: Option<(String, u16)>,
    txt: Option<Vec<Vec<u8>>>,
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn is_instance(name: &str) -> bool {
    name.len() > SERVICE_TYPE.len()
        && name.len() <= table::MAX_DNS_NAME_LEN
        && name.is_char_boundary(name.len() - SERVICE_TYPE.len() - 1)
        && key(name).ends_with(&format!(".{SERVICE_TYPE}"))
}

fn expiry(now: Instant, ttl: u32) -> Instant {
    now + Duration::from_secs(u64::from(ttl.min(MAX_TTL)))
}

/// The browse state machine.
pub struct Browse {
    name: Option<String>,
    table: Table,
    insts: HashMap<String, Inst>,
    /// Host (lowercase) → the keys of the instances whose SRV names it.
    hosts: HashMap<String, Vec<String>>,
    pending: usize,
    /// Pending instances by the responder address that announced them (no zero counts).
    pending_from: HashMap<IpAddr, usize>,
    ignored: u64,
    wrong_port: u64,
    off_link: u64,
    events: VecDeque<Event>,
    transmits: VecDeque<Vec<u8>>,
    next_query: Instant,
    query_interval: Duration,
    next_verify: Instant,
    verify_from: usize,
    next_sweep: Instant,
}

impl Browse {
    /// Starts browsing at `now`, for the sources named `name` only if given. The first PTR
    /// query is due after a random delay in [`FIRST_QUERY_DELAY`].
    pub fn new(now: Instant, name: Option<String>) -> Browse {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let (lo, hi) = FIRST_QUERY_DELAY;
        let spread = (hi - lo).as_millis() as u64 + 1;
        let delay = lo + Duration::from_millis(random % spread);
        Browse {
            name,
            table: Table::new(),
            insts: HashMap::new(),
            hosts: HashMap::new(),
            pending: 0,
            pending_from: HashMap::new(),
            ignored: 0,
            wrong_port: 0,
            off_link: 0,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            next_query: now + delay,
            query_interval: Duration::from_secs(1),
            next_verify: now + VERIFY_PERIOD,
            verify_from: 0,
            next_sweep: now + SWEEP_PERIOD,
        }
    }

    /// The sources listed.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Announcements dropped: table full, no room to wait for missing records, names too
    /// long.
    pub fn ignored(&self) -> u64 {
        self.ignored + self.table.ignored
    }

    /// Responses dropped because their UDP source port was not [`MDNS_PORT`].
    pub fn wrong_port(&self) -> u64 {
        self.wrong_port
    }

    /// Counts a datagram the socket dropped: sent to this host alone from an address on
    /// none of its subnets (RFC 6762 §11).
    pub fn drop_off_link(&mut self) {
        self.off_link += 1;
    }

    /// Datagrams dropped as not on-link.
    pub fn off_link(&self) -> u64 {
        self.off_link
    }

    /// Instances kept in all (listed and pending): at most `MAX_SOURCES + MAX_PENDING`.
    pub fn kept(&self) -> usize {
        self.insts.len()
    }

    /// The next change, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next query to multicast to `224.0.0.251:5353` and `[ff02::fb]:5353` on every
    /// interface, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// When [`Browse::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_query.min(self.next_verify).min(self.next_sweep)
    }

    fn unlink_host(&mut self, k: &str, host: &str) {
        let hk = key(host);
        if let Some(v) = self.hosts.get_mut(&hk) {
            v.retain(|i| i != k);
            if v.is_empty() {
                self.hosts.remove(&hk);
            }
        }
    }

    fn drop_inst(&mut self, k: &str) {
        let Some(inst) = self.insts.remove(k) else {
            return;
        };
        if let Some((host, _)) = &inst.srv {
            self.unlink_host(k, host);
        }
        if inst.listed {
            self.events.extend(self.table.removed(&inst.instance));
        } else {
            self.unpend(inst.from);
        }
    }

    fn unpend(&mut self, from: IpAddr) {
        self.pending -= 1;
        if let Some(n) = self.pending_from.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                self.pending_from.remove(&from);
            }
        }
    }

    /// With every pending slot taken, frees one for a new instance from `from` if another
    /// responder address holds at least two more than `from` does: that one's oldest.
    fn make_room(&mut self, from: IpAddr) -> bool {
        let mine = self.pending_from.get(&from).copied().unwrap_or(0);
        let Some((&top, &most)) = self.pending_from.iter().max_by_key(|(_, n)| **n) else {
            return false;
        };
        if most < mine + 2 {
            return false;
        }
        let victim = self
            .insts
            .iter()
            .filter(|(_, i)| !i.listed && i.from == top)
            .min_by_key(|(_, i)| i.since)
            .map(|(k, _)| k.clone());
        let Some(victim) = victim else {
            return false;
        };
        self.drop_inst(&victim);
        self.ignored += 1;
        true
    }

    fn source(&self, inst: &Inst, now: Instant) -> Option<Source> {
        let (host, port) = inst.srv.clone()?;
        let txt = inst.txt.clone()?;
        let addresses = table::sort_addresses(inst.addresses.iter().map(|a| a.0));
        if addresses.is_empty() {
            return None;
        }
        let name = txt
            .name
            .clone()
            .unwrap_or_else(|| txt::truncate(&table::instance_label(&inst.instance), 255).into());
        Some(Source {
            instance: inst.instance.clone(),
            name,
            host,
            addresses,
            port,
            txt,
            last_seen: now,
        })
    }

    /// Lists a complete instance, or updates it; drops a pending one the table has no room
    /// for.
    fn resolve(&mut self, k: &str, now: Instant) {
        let Some(inst) = self.insts.get(k) else {
            return;
        };
        let Some(source) = self.source(inst, now) else {
            return;
        };
        let listed = inst.listed;
        if !listed && self.table.len() >= MAX_SOURCES {
            self.table.ignored += 1;
            self.drop_inst(k);
            return;
        }
        let event = self.table.resolved(source);
        let in_table = self.table.get(&self.insts[k].instance).is_some();
        if !in_table {
            // Refused (a name too long): not kept.
            self.drop_inst(k);
            return;
        }
        if let Some(inst) = self.insts.get_mut(k) {
            if !inst.listed {
                inst.listed = true;
                inst.answer_by = None;
                let from = inst.from;
                self.unpend(from);
            }
        }
        self.events.extend(event);
    }

    /// Takes a datagram received at `now` from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(msg) = dns::parse(bytes) else {
            return;
        };
        if !msg.response {
            return;
        }
        if from.port() != MDNS_PORT {
            self.wrong_port += 1;
            return;
        }
        // What the message says, by instance, and the addresses it gives.
        let mut said: Vec<(String, Said)> = Vec::new();
        let mut addresses: Vec<(String, IpAddr, u32, bool)> = Vec::new();
        let at = |said: &mut Vec<(String, Said)>, name: &str| -> usize {
            let k = key(name);
            match said.iter().position(|(s, _)| *s == k) {
                Some(i) => i,
                None => {
                    said.push((
                        k,
                        Said {
                            instance: name.to_string(),
                            ..Default::default()
                        },
                    ));
                    said.len() - 1
                }
            }
        };
        for r in msg.records {
            match r.data {
                RData::Ptr(target)
                    if r.name.eq_ignore_ascii_case(SERVICE_TYPE) && is_instance(&target) =>
                {
                    let i = at(&mut said, &target);
                    let s = &mut said[i].1;
                    s.bye |= r.ttl == 0;
                    s.ttl = s.ttl.max(r.ttl);
                    if r.ttl > 0 {
                        s.ptr_ttl = Some(r.ttl.min(MAX_TTL));
                    }
                }
                RData::Srv { port, target } if is_instance(&r.name) => {
                    let i = at(&mut said, &r.name);
                    let s = &mut said[i].1;
                    s.bye |= r.ttl == 0;
                    s.ttl = s.ttl.max(r.ttl);
                    if target.len() <= table::MAX_DNS_NAME_LEN {
                        s.srv = Some((target, port));
                    }
                }
                RData::Txt(strings) if is_instance(&r.name) && r.ttl > 0 => {
                    let i = at(&mut said, &r.name);
                    said[i].1.txt = Some(strings);
                }
                RData::A(a) => addresses.push((key(&r.name), IpAddr::V4(a), r.ttl, r.cache_flush)),
                RData::Aaaa(a) => {
                    addresses.push((key(&r.name), IpAddr::V6(a), r.ttl, r.cache_flush))
                }
                _ => {}
            }
        }
        let mut touched: Vec<String> = Vec::new();
        for (k, s) in said {
            if s.bye {
                // Goodbye: gone in a second, unless announced again (RFC 6762 §10.1).
                if let Some(inst) = self.insts.get_mut(&k) {
                    inst.expires = inst.expires.min(now + FLUSH_DELAY);
                }
                continue;
            }
            let txt = match &s.txt {
                None => None,
                Some(strings) => {
                    let decoded = decode_txt(strings).filter(|t| {
                        self.name.as_ref().is_none_or(|n| {
                            t.name
                                .as_ref()
                                .unwrap_or(&table::instance_label(&s.instance))
                                == n
                        })
                    });
                    if decoded.is_none() {
                        // Not a videoip source, or not one of the name asked for.
                        self.drop_inst(&k);
                        continue;
                    }
                    decoded
                }
            };
            if !self.insts.contains_key(&k) {
                // New: complete in this message, or with room to wait for the rest.
                let complete = s.txt.is_some()
                    && s.srv.as_ref().is_some_and(|(h, _)| {
                        let h = key(h);
                        addresses.iter().any(|a| a.0 == h && a.2 > 0)
                    });
                if !complete && self.pending >= MAX_PENDING && !self.make_room(from.ip()) {
                    self.ignored += 1;
                    continue;
                }
                if complete && self.table.len() >= MAX_SOURCES {
                    self.table.ignored += 1;
                    continue;
                }
                self.insts.insert(
                    k.clone(),
                    Inst {
                        instance: s.instance.clone(),
                        srv: None,
                        txt: None,
                        addresses: Vec::new(),
                        ptr: None,
                        expires: now + PENDING_TIMEOUT,
                        pending_until: now + PENDING_TIMEOUT,
                        listed: false,
                        answer_by: None,
                        from: from.ip(),
                        since: now,
                    },
                );
                self.pending += 1;
                *self.pending_from.entry(from.ip()).or_default() += 1;
            }
            let old_host = {
                // Kept above; a miss would only skip this record.
                let Some(inst) = self.insts.get_mut(&k) else {
                    continue;
                };
                if s.ttl > 0 {
                    inst.expires = expiry(now, s.ttl).max(inst.expires);
                }
                inst.answer_by = None;
                if let Some(ttl) = s.ptr_ttl {
                    inst.ptr = Some((expiry(now, ttl), ttl));
                }
                if txt.is_some() {
                    inst.txt = txt;
                }
                match s.srv {
                    Some(srv) if inst.srv.as_ref() != Some(&srv) => {
                        let old = inst.srv.replace(srv.clone());
                        if old.as_ref().is_some_and(|o| key(&o.0) != key(&srv.0)) {
                            inst.addresses.clear();
                        }
                        Some((old.map(|o| o.0), srv.0))
                    }
                    _ => None,
                }
            };
            if let Some((old, new)) = old_host {
                if let Some(old) = old {
                    self.unlink_host(&k, &old);
                }
                let v = self.hosts.entry(key(&new)).or_default();
                if !v.contains(&k) {
                    v.push(k.clone());
                }
            }
            touched.push(k);
        }
        for (host, addr, ttl, flush) in addresses {
            let Some(keys) = self.hosts.get(&host) else {
                continue;
            };
            for k in keys {
                let Some(inst) = self.insts.get_mut(k) else {
                    continue;
                };
                if flush && ttl > 0 {
                    // The others of this host and family, heard over a second ago, go.
                    for a in inst.addresses.iter_mut() {
                        if a.0 != addr
                            && a.0.is_ipv4() == addr.is_ipv4()
                            && a.2 + FLUSH_DELAY <= now
                        {
                            a.1 = a.1.min(now + FLUSH_DELAY);
                        }
                    }
                }
                let at = inst.addresses.iter().position(|a| a.0 == addr);
                match (at, ttl) {
                    (Some(i), 0) => {
                        inst.addresses[i].1 = inst.addresses[i].1.min(now + FLUSH_DELAY)
                    }
                    (None, 0) => {}
                    (Some(i), _) => inst.addresses[i] = (addr, expiry(now, ttl), now),
                    (None, _) if inst.addresses.len() < MAX_ADDRESSES => {
                        inst.addresses.push((addr, expiry(now, ttl), now))
                    }
                    (None, _) => {
                        // Full: the address that expires first makes room.
                        if let Some(soonest) = inst.addresses.iter_mut().min_by_key(|a| a.1) {
                            *soonest = (addr, expiry(now, ttl), now);
                        }
                    }
                }
                if !touched.contains(k) {
                    touched.push(k.clone());
                }
            }
        }
        for k in touched {
            self.resolve(&k, now);
        }
    }

    /// Queues queries as small datagrams.
    fn ask(&mut self, questions: &[(String, u16)]) {
        let mut batch: Vec<(&str, u16)> = Vec::new();
        let mut len = 12;
        for (name, rtype) in questions {
            let q = name.len() + 6;
            if len + q > MAX_QUERY_LEN && !batch.is_empty() {
                self.transmits.push_back(dns::query(&batch));
                batch.clear();
                len = 12;
            }
            batch.push((name, *rtype));
            len += q;
        }
        if !batch.is_empty() {
            self.transmits.push_back(dns::query(&batch));
        }
    }

    /// Does what is due at `now`: queries, confirmations, expiries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_query {
            // Known answers: listed instances whose PTR has more than half its TTL left.
            let known: Vec<(&str, &str, u32)> = self
                .insts
                .values()
                .filter(|i| i.listed)
                .filter_map(|i| {
                    let (until, ttl) = i.ptr?;
                    let left = until.saturating_duration_since(now);
                    (left * 2 > Duration::from_secs(u64::from(ttl))).then_some((
                        SERVICE_TYPE,
                        i.instance.as_str(),
                        left.as_secs() as u32,
                    ))
                })
                .collect();
            let datagrams =
                dns::query_known(&[(SERVICE_TYPE, dns::TYPE_PTR)], &known, MAX_QUERY_LEN);
            self.transmits.extend(datagrams);
            self.next_query = now + self.query_interval;
            self.query_interval = (self.query_interval * 2).min(MAX_QUERY_INTERVAL);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_PERIOD;
            let gone: Vec<String> = self
                .insts
                .iter()
                .filter(|(_, i)| {
                    i.expires <= now
                        || i.answer_by.is_some_and(|t| t <= now)
                        || (!i.listed && i.pending_until <= now)
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                self.drop_inst(&k);
            }
            let mut emptied = Vec::new();
            for (k, inst) in &mut self.insts {
                let before = inst.addresses.len();
                inst.addresses.retain(|a| a.1 > now);
                if inst.addresses.len() != before {
                    emptied.push(k.clone());
                }
            }
            for k in emptied {
                self.resolve(&k, now);
            }
        }
        if now >= self.next_verify {
            self.next_verify = now + VERIFY_PERIOD;
            let mut questions = Vec::new();
            // Listed instances, in turn.
            let mut listed: Vec<&String> = self
                .insts
                .iter()
                .filter(|(_, i)| i.listed)
                .map(|(k, _)| k)
                .collect();
            listed.sort();
            let n = listed.len();
            if n > 0 {
                self.verify_from %= n;
            }
            let picked: Vec<String> = listed
                .iter()
                .cycle()
                .skip(self.verify_from)
                .take(n.min(MAX_VERIFY_PER_PERIOD))
                .map(|k| (*k).clone())
                .collect();
            self.verify_from += picked.len();
            for k in picked {
                if let Some(inst) = self.insts.get_mut(&k) {
                    inst.answer_by.get_or_insert(now + VERIFY_TIMEOUT);
                    questions.push((inst.instance.clone(), dns::TYPE_SRV));
                }
            }
            // Pending instances: what they miss.
            for inst in self
                .insts
                .values()
                .filter(|i| !i.listed)
                .take(MAX_VERIFY_PER_PERIOD)
            {
                if inst.srv.is_none() {
                    questions.push((inst.instance.clone(), dns::TYPE_SRV));
                }
                if inst.txt.is_none() {
                    questions.push((inst.instance.clone(), dns::TYPE_TXT));
                }
                if let (Some((host, _)), true) = (&inst.srv, inst.addresses.is_empty()) {
                    questions.push((host.clone(), dns::TYPE_A));
                    questions.push((host.clone(), dns::TYPE_AAAA));
                }
            }
            self.ask(&questions);
        }
    }
}

/// A TXT record's strings as a videoip record; None when it is not one.
fn decode_txt(strings: &[Vec<u8>]) -> Option<txt::SourceTxt> {
    let pairs = strings.iter().take(txt::MAX_PAIRS).filter_map(|s| {
        let (k, v) = match s.iter().position(|&c| c == b'=') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (&s[..], None),
        };
        let k = std::str::from_utf8(k).ok().filter(|k| !k.is_empty())?;
        Some((k, v))
    });
    txt::decode(pairs).ok()
}

#[cfg(test)]
#[path = "browse_tests.rs"]
mod tests;
