// SPDX-License-Identifier: MPL-2.0
//! `videoip://` URIs, for the elements' URI handlers (so that `playbin`, `uridecodebin` and
//! applications that take a URL can use videoip). No GStreamer here.
//!
//! ```text
//! videoip://HOST[:PORT][?PROPERTY=VALUE[&...]]   an address: see below
//! videoip://:PORT[?...]                          no host: any local address
//! videoip:///NAME[?...]                          a source found by name (no host: three slashes)
//! ```
//!
//! HOST is an IPv4 address, a host name, or an IPv6 address in brackets; PORT defaults to
//! [`DEFAULT_PORT`]. NAME and the query are percent-decoded. The query sets element
//! properties by name (`videoip://239.1.2.3:5004?latency=100&multicast-iface=eth0`), as
//! udpsrc's `udp://` URIs do for theirs.
//!
//! What an address means follows SRT's caller/listener URIs ([`Role`]): for a receiver, no
//! host (or `0.0.0.0`, `[::]`) listens on PORT, a multicast group is joined, and any other
//! host is a sender to subscribe to; for a sender, HOST is where to send.

use std::fmt;

/// The URI scheme.
pub const SCHEME: &str = "videoip";
/// The port when a URI names none.
pub const DEFAULT_PORT: u16 = 5004;

/// A parsed `videoip://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoIpUri {
    /// Where: an address (with port), or a source's name.
    pub target: Target,
    /// `name=value` pairs of the query, decoded, in order.
    pub params: Vec<(String, String)>,
}

/// What a URI points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host (address or name, IPv6 without brackets; empty: none given) and a port.
    Address { host: String, port: u16 },
    /// A source announced under this name.
    Name(String),
}

/// Why a string is not a `videoip://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError(pub String);

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UriError {}

fn err(uri: &str, why: &str) -> UriError {
    UriError(format!(
        "'{uri}' is not a videoip URI: {why} (expected videoip://HOST:PORT or videoip:///NAME)"
    ))
}

/// Parses `uri`.
pub fn parse(uri: &str) -> Result<VideoIpUri, UriError> {
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| err(uri, "no '://'"))?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(err(uri, "the scheme is not videoip"));
    }
    let (rest, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let params = parse_query(uri, query)?;
    if authority.is_empty() || authority.starts_with(':') && !authority.contains(']') {
        if let Some(port) = authority.strip_prefix(':') {
            if !path.trim_start_matches('/').is_empty() {
                return Err(err(uri, "a path after the port"));
            }
            let port = port
                .parse::<u16>()
                .map_err(|_| err(uri, "the port is not a number from 0 to 65535"))?;
            return Ok(VideoIpUri {
                target: Target::Address {
                    host: String::new(),
                    port,
                },
                params,
            });
        }
        let name = decode(path.trim_start_matches('/')).ok_or_else(|| err(uri, "bad escape"))?;
        if name.trim().is_empty() {
            return Err(err(uri, "neither a host nor a source name"));
        }
        return Ok(VideoIpUri {
            target: Target::Name(name),
            params,
        });
    }
    if !path.trim_start_matches('/').is_empty() {
        return Err(err(uri, "a path after the host"));
    }
    if authority.contains('@') {
        return Err(err(uri, "user information is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| err(uri, "an unclosed '['"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| err(uri, "junk after ']'"))?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(':') && !authority.starts_with('[') {
        return Err(err(uri, "a bad host (IPv6 addresses go in brackets)"));
    }
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| err(uri, "the port is not a number from 0 to 65535"))?,
    };
    let host = decode(host).ok_or_else(|| err(uri, "bad escape"))?;
    Ok(VideoIpUri {
        target: Target::Address { host, port },
        params,
    })
}

fn parse_query(uri: &str, query: &str) -> Result<Vec<(String, String)>, UriError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match (decode(k), decode(v)) {
                (Some(k), Some(v)) if !k.is_empty() => Ok((k, v)),
                _ => Err(err(uri, "a bad query parameter")),
            }
        })
        .collect()
}

/// Percent-decodes `s` (and `+` as a space in none: it stays a plus). None when an escape is
/// malformed or the result is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes what a name or host may hold that a URI may not.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// What a receiver does with an address URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Listen on the port (any local address).
    Listen,
    /// Join this multicast group.
    Join(std::net::IpAddr),
    /// Subscribe to the sender at this host.
    Subscribe(String),
}

/// The role of `host` in a receiver's URI (see the module's documentation).
pub fn receiver_role(host: &str) -> Role {
    match host.parse::<std::net::IpAddr>() {
        _ if host.is_empty() => Role::Listen,
        Ok(ip) if ip.is_unspecified() => Role::Listen,
        Ok(ip) if ip.is_multicast() => Role::Join(ip),
        _ => Role::Subscribe(host.to_string()),
    }
}

/// The URI of an address: `videoip://HOST:PORT` (IPv6 in brackets, no host when empty).
pub fn address_uri(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("{SCHEME}://[{host}]:{port}")
    } else {
        format!("{SCHEME}://{}:{port}", encode(host))
    }
}

/// The URI of a source found by name: `videoip:///NAME`.
pub fn name_uri(name: &str) -> String {
    format!("{SCHEME}:///{}", encode(name))
}

#[cfg(test)]
#[path = "uri_tests.rs"]
mod tests;
