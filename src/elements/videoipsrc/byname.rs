// SPDX-License-Identifier: MPL-2.0
//! Receiving a source by name (`videoipsrc source-name=…`): a DNS-SD browser picks the
//! announced sender of that name and keeps the receive thread's subscription target on it,
//! following it when it comes back at another address or port.

use crate::discovery::{Browser, DiscoveryError, Event, Source};
use crate::elements::lock;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What changed for the source looked for.
pub(super) enum Change {
    /// A sender of the name was picked (first found, or the next after one went).
    Found(Source),
    /// The picked sender went.
    Lost(Source),
}

/// The running browser; dropping it stops looking.
pub(super) struct Finder {
    _browser: Browser,
}

/// Where to subscribe to `s`: its first (best) address at its own port.
fn target_of(s: &Source) -> Option<SocketAddr> {
    Some(SocketAddr::new(*s.addresses.first()?, s.port))
}

impl Finder {
    /// Starts looking for a sender named `name`; sets `target` to where to subscribe and
    /// calls `on_change` (with no lock held) whenever the pick changes.
    pub fn start(
        name: String,
        target: Arc<Mutex<Option<SocketAddr>>>,
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
                    if picked.is_none() || picked.as_deref() == Some(instance.as_str()) {
                        let to = target_of(&s);
                        let moved = *lock(&target) != to;
                        *lock(&target) = to;
                        if picked.is_none() || moved {
                            changes.push(Change::Found(s));
                        }
                        picked = Some(instance);
                    }
                }
                Event::Lost(s) if s.name == name => {
                    known.remove(&s.instance);
                    if picked.as_deref() == Some(s.instance.as_str()) {
                        changes.push(Change::Lost(s));
                        // Another sender of the name, if one is known, else keep looking.
                        let next = known.values().next().cloned();
                        *lock(&target) = next.as_ref().and_then(target_of);
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
