// SPDX-License-Identifier: MPL-2.0
//! The bounded table of sources a [`Browser`](super::Browser) keeps: pure, so that what
//! is found, updated and lost, and what a flood of announcements can cost, is unit-tested
//! without a network.

use super::txt::{Mode, SourceTxt};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Most sources kept; announcements of more are ignored until some go.
pub const MAX_SOURCES: usize = 1024;
/// Longest instance or host name kept, in bytes (DNS names are at most 255).
pub const MAX_DNS_NAME_LEN: usize = 255;
/// Most addresses kept per source.
pub const MAX_ADDRESSES: usize = 16;

/// A source on the network, as announced and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The DNS-SD instance's full name (`CAM 1 [89abcdef]._videoip._udp.local.`): unique.
    pub instance: String,
    /// The source name: the TXT's `name`, else the instance label.
    pub name: String,
    /// The sender's host name (`studio-pc.local.`).
    pub host: String,
    /// The sender's addresses, best first (IPv4 before IPv6, loopback last).
    pub addresses: Vec<IpAddr>,
    /// The sender's own port (the SRV record's): where it takes subscriptions and reports.
    pub port: u16,
    /// What the TXT record says.
    pub txt: SourceTxt,
    /// When the source was last resolved or updated.
    pub last_seen: Instant,
}

impl Source {
    /// Where a receiver gets the stream: the group and its port (multicast), or the
    /// sender's address and port to subscribe at. None when the TXT does not say how.
    pub fn receive_at(&self) -> Option<(IpAddr, u16)> {
        match self.txt.mode? {
            Mode::Multicast(group) => Some((group, self.txt.port?)),
            Mode::Subscribe => Some((*self.addresses.first()?, self.txt.port.unwrap_or(self.port))),
        }
    }

    /// A name for people that tells two senders of one name apart: the source name, then
    /// the sender's host and port (`CAM 1 (studio-pc:40123)`).
    pub fn display_name(&self) -> String {
        let host = self.host.trim_end_matches('.');
        let host = host.strip_suffix(".local").unwrap_or(host);
        format!("{} ({}:{})", self.name, host, self.port)
    }
}

/// The label of a DNS-SD instance's full name, unescaped (`CAM 1 [89abcdef]`).
pub fn instance_label(fullname: &str) -> String {
    let label = fullname
        .strip_suffix(super::SERVICE_TYPE)
        .unwrap_or(fullname)
        .trim_end_matches('.');
    let mut out = String::with_capacity(label.len());
    let mut escaped = false;
    for c in label.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// Orders addresses best first: IPv4 before IPv6, loopback and link-local last; at most
/// [`MAX_ADDRESSES`].
pub fn sort_addresses(addresses: impl IntoIterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = addresses.into_iter().take(4 * MAX_ADDRESSES).collect();
    let rank = |a: &IpAddr| {
        let far = match a {
            IpAddr::V4(a) => a.is_loopback() || a.is_link_local(),
            IpAddr::V6(a) => a.is_loopback() || a.segments()[0] & 0xffc0 == 0xfe80,
        };
        (far, a.is_ipv6(), *a)
    };
    v.sort_by_key(rank);
    v.dedup();
    v.truncate(MAX_ADDRESSES);
    v
}

/// What changed in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A source appeared.
    Found(Source),
    /// A known source changed (its TXT, addresses or port).
    Updated(Source),
    /// A source went (goodbye, or no answer when asked).
    Lost(Source),
}

/// Sources by instance name, at most [`MAX_SOURCES`].
#[derive(Debug, Default)]
pub struct Table {
    sources: HashMap<String, Source>,
    /// Announcements ignored because the table was full or their names too long.
    pub ignored: u64,
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::default()
    }

    /// Takes a resolved source: Found if new, Updated if it changed, None if nothing
    /// changed or it was ignored.
    pub fn resolved(&mut self, source: Source) -> Option<Event> {
        if source.instance.len() > MAX_DNS_NAME_LEN || source.host.len() > MAX_DNS_NAME_LEN {
            self.ignored += 1;
            return None;
        }
        let full = self.sources.len() >= MAX_SOURCES;
        match self.sources.get_mut(&source.instance) {
            Some(old) => {
                let changed = old.name != source.name
                    || old.host != source.host
                    || old.addresses != source.addresses
                    || old.port != source.port
                    || old.txt != source.txt;
                *old = source;
                changed.then(|| Event::Updated(old.clone()))
            }
            None if full => {
                self.ignored += 1;
                None
            }
            None => {
                self.sources.insert(source.instance.clone(), source.clone());
                Some(Event::Found(source))
            }
        }
    }

    /// Takes the end of a source: Lost if it was known.
    pub fn removed(&mut self, instance: &str) -> Option<Event> {
        self.sources.remove(instance).map(Event::Lost)
    }

    /// The source of this instance.
    pub fn get(&self, instance: &str) -> Option<&Source> {
        self.sources.get(instance)
    }

    /// All sources, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Source> {
        self.sources.values()
    }

    /// How many sources there are.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
