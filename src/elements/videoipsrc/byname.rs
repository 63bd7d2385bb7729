// SPDX-License-Identifier: MPL-2.0
//! Receiving a source by name (`videoipsrc source-name=…`): a DNS-SD browser picks the
//! announced sender of that name and keeps the receive thread's subscription target on it,
//! following it when it comes back at another address or port.

use crate::discovery::{Browser, DiscoveryError, Event, Source};
use crate::elements::lock;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// What changed for the source looked for.
pub(crate) enum Change {
    /// A sender of the name was picked (first found, or the next after one went).
    Found(Source),
    /// The picked sender went.
    Lost(Source),
}

/// The running browser; dropping it stops looking.
pub(crate) struct Finder {
    _browser: Browser,
}

/// Where to subscribe to `s`, best first: each of its addresses at its own port, routable
/// IPv4 first and link-local last (an `fe80::` address is often announced first and
/// reaches nobody without its interface).
fn targets_of(s: &Source) -> Vec<SocketAddr> {
    let rank = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) if v4.is_link_local() => 1,
        IpAddr::V4(_) => 0,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => 3,
        IpAddr::V6(_) => 2,
    };
    let mut a: Vec<IpAddr> = s.addresses.clone();
    a.sort_by_key(rank);
    a.into_iter()
        .map(|ip| SocketAddr::new(ip, s.port))
        .collect()
}

/// Where to subscribe: the picked sender's addresses, then those of the others of its name
/// (tried in turn while one gives no stream the receiver takes: with a passphrase, a forged
/// announcement that points elsewhere costs a try, then the real source plays).
fn candidates(picked: Option<&Source>, known: &BTreeMap<String, Source>) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = picked.map(targets_of).unwrap_or_default();
    for s in known.values() {
        if picked.is_none_or(|p| p.instance != s.instance) {
            for a in targets_of(s) {
                if !v.contains(&a) {
                    v.push(a);
                }
            }
        }
    }
    v
}

impl Finder {
    /// Starts looking for a sender named `name`; sets `target` to where to subscribe and
    /// calls `on_change` (with no lock held) whenever the pick changes.
    pub fn start(
        name: String,
        target: Arc<Mutex<Vec<SocketAddr>>>,
        on_change: impl Fn(Change) + Send + 'static,
    ) -> Result<Finder, DiscoveryError> {
        // Senders of this name by instance, and the one picked.
        let mut known: BTreeMap<String, Source> = BTreeMap::new();
        let mut picked: Option<String> = None;
        let browser = Browser::for_name(name.clone(), move |event| {
            let mut changes = Vec::new();
            match event {
                Event::Found(s) | Event::Updated(s) if s.name == name => {
                    let instance = s.instance.clone();
                    known.insert(instance.clone(), s.clone());
                    let ours = picked.is_none() || picked.as_deref() == Some(instance.as_str());
                    if ours {
                        picked = Some(instance);
                    }
                    let first = picked.as_ref().and_then(|p| known.get(p));
                    let to = candidates(first, &known);
                    let moved = lock(&target).first() != to.first();
                    *lock(&target) = to;
                    if ours && moved {
                        changes.push(Change::Found(s));
                    }
                }
                Event::Lost(s) if s.name == name => {
                    known.remove(&s.instance);
                    if picked.as_deref() == Some(s.instance.as_str()) {
                        changes.push(Change::Lost(s));
                        // Another sender of the name, if one is known, else keep looking.
                        let next = known.values().next().cloned();
                        *lock(&target) = candidates(next.as_ref(), &known);
                        picked = next.as_ref().map(|n| n.instance.clone());
                        changes.extend(next.map(Change::Found));
                    }
                }
                _ => {}
            }
            for c in changes {
                on_change(c);
            }
        })?;
        Ok(Finder { _browser: browser })
    }
}
