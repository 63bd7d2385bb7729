// SPDX-License-Identifier: MPL-2.0
//! The few DNS messages a multicast-DNS browser reads and writes (RFC 1035 §4, RFC 6762):
//! a parser of responses (PTR, SRV, TXT, A, AAAA; other types skipped) and a writer of
//! queries. Pure functions on bytes. Parsing takes whatever the network sends and never
//! panics: every read is bounds-checked, name compression may only point backwards (so it
//! cannot loop), names are at most 255 bytes, and at most [`MAX_RECORDS`] records are read.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record type A (an IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type PTR (a service type's instances).
pub const TYPE_PTR: u16 = 12;
/// Record type TXT.
pub const TYPE_TXT: u16 = 16;
/// Record type AAAA (an IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Record type SRV (an instance's host and port).
pub const TYPE_SRV: u16 = 33;
/// Most records read from one message (answers, authority and additional together).
pub const MAX_RECORDS: usize = 256;
/// Longest name, in wire bytes (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Most compression pointers followed in one name.
const MAX_POINTERS: usize = 64;
/// Most TXT strings kept from one record.
const MAX_TXT_STRINGS: usize = 64;

/// What a record says, for the types a browser uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// PTR: the name pointed to.
    Ptr(String),
    /// SRV: the port and the target host.
    Srv {
        /// The port.
        port: u16,
        /// The host's name.
        target: String,
    },
    /// TXT: its strings.
    Txt(Vec<Vec<u8>>),
    /// A.
    A(Ipv4Addr),
    /// AAAA.
    Aaaa(Ipv6Addr),
    /// Any other type.
    Other,
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its owner name in presentation form, ending in `.` (`.` and `\` in labels escaped).
    pub name: String,
    /// Its type.
    pub rtype: u16,
    /// Its time to live, in seconds (0: a goodbye).
    pub ttl: u32,
    /// The cache-flush bit, the top bit of the class (RFC 6762 §10.2): this record replaces
    /// the others of its name and type.
    pub cache_flush: bool,
    /// What it says.
    pub data: RData,
}

/// A parsed message: whether it is a response, and its records (questions skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The QR bit.
    pub response: bool,
    /// Answers, authority and additional records, in order, at most [`MAX_RECORDS`].
    pub records: Vec<Record>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the name at `at`; returns it and where the bytes after it start.
fn name_at(b: &[u8], at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut pos = at;
    let mut end = None;
    let mut wire_len = 1usize;
    let mut pointers = 0;
    loop {
        let len = *b.get(pos)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if out.is_empty() {
                    out.push('.');
                }
                return Some((out, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                wire_len += len + 1;
                if wire_len > MAX_NAME_LEN {
                    return None;
                }
                let label = b.get(pos + 1..pos + 1 + len)?;
                for c in String::from_utf8_lossy(label).chars() {
                    if c == '.' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('.');
                pos += 1 + len;
            }
            0xc0 => {
                let target = (u16_at(b, pos)? & 0x3fff) as usize;
                // Only backwards, and not too often: no loops.
                pointers += 1;
                if target >= pos || pointers > MAX_POINTERS {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
}

fn rdata(b: &[u8], rtype: u16, start: usize, len: usize) -> Option<RData> {
    let data = b.get(start..start + len)?;
    Some(match rtype {
        TYPE_A => RData::A(Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?)),
        TYPE_AAAA => RData::Aaaa(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?)),
        TYPE_PTR => RData::Ptr(name_at(&b[..start + len], start)?.0),
        TYPE_SRV => {
            let port = u16_at(data, 4)?;
            let (target, _) = name_at(&b[..start + len], start + 6)?;
            RData::Srv { port, target }
        }
        TYPE_TXT => {
            let mut strings = Vec::new();
            let mut at = 0;
            while at < data.len() && strings.len() < MAX_TXT_STRINGS {
                let n = data[at] as usize;
                let Some(s) = data.get(at + 1..at + 1 + n) else {
                    break; // a string running past the record: keep what came before
                };
                strings.push(s.to_vec());
                at += 1 + n;
            }
            RData::Txt(strings)
        }
        _ => RData::Other,
    })
}

/// Parses a message. None when the header or a question does not parse; records after the
/// first one that does not parse are left out.
pub fn parse(b: &[u8]) -> Option<Message> {
    let flags = u16_at(b, 2)?;
    let counts: Vec<usize> = (0..4)
        .map(|i| u16_at(b, 4 + 2 * i).map(usize::from))
        .collect::<Option<_>>()?;
    let mut pos = 12;
    for _ in 0..counts[0] {
        let (_, next) = name_at(b, pos)?;
        pos = next + 4;
        if pos > b.len() {
            return None;
        }
    }
    let total = (counts[1] + counts[2] + counts[3]).min(MAX_RECORDS);
    let mut records = Vec::with_capacity(total.min(32));
    for _ in 0..total {
        let Some((name, next)) = name_at(b, pos) else {
            break;
        };
        let (Some(rtype), Some(class), Some(ttl), Some(len)) = (
            u16_at(b, next),
            u16_at(b, next + 2),
            u32_at(b, next + 4),
            u16_at(b, next + 8),
        ) else {
            break;
        };
        let start = next + 10;
        let len = usize::from(len);
        let Some(data) = rdata(b, rtype, start, len) else {
            break;
        };
        records.push(Record {
            name,
            rtype,
            ttl,
            cache_flush: class & 0x8000 != 0,
            data,
        });
        pos = start + len;
    }
    Some(Message {
        response: flags & 0x8000 != 0,
        records,
    })
}

/// Writes a name given in presentation form (`\.` and `\\` escapes) in wire form; None
/// when a label is empty or longer than 63 bytes, or the name longer than 255.
pub fn encode_name(out: &mut Vec<u8>, name: &str) -> Option<()> {
    let start = out.len();
    let mut label: Vec<u8> = Vec::new();
    let mut escaped = false;
    let put = |out: &mut Vec<u8>, label: &mut Vec<u8>| {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.append(label);
        Some(())
    };
    let mut buf = [0u8; 4];
    for c in name.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
            continue;
        } else if c == '.' {
            put(out, &mut label)?;
            continue;
        }
        label.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    if !label.is_empty() {
        put(out, &mut label)?;
    }
    out.push(0);
    (out.len() - start <= MAX_NAME_LEN).then_some(())
}

/// A query (id 0, no flags: multicast answers asked for) with these questions (name, type),
/// class IN. Questions whose names do not encode are left out.
pub fn query(questions: &[(&str, u16)]) -> Vec<u8> {
    let mut m = vec![0u8; 12];
    let mut n = 0u16;
    for (name, rtype) in questions {
        let keep = m.len();
        if encode_name(&mut m, name).is_none() {
            m.truncate(keep);
            continue;
        }
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        n += 1;
    }
    m[4..6].copy_from_slice(&n.to_be_bytes());
    m
}

/// A query with known answers (RFC 6762 §7.1): these questions (class IN) and the PTR
/// records `(owner, target, ttl)` the querier already holds, so that responders leave them
/// out of their answers. Known answers that do not fit in one datagram of `max_len` bytes
/// go on in more (§7.2): every datagram but the last has the TC bit, and only the first has
/// the questions. Records whose names do not encode are left out.
pub fn query_known(
    questions: &[(&str, u16)],
    known: &[(&str, &str, u32)],
    max_len: usize,
) -> Vec<Vec<u8>> {
    let mut out = vec![query(questions)];
    let mut answers = 0u16;
    for (owner, target, ttl) in known {
        let mut rr = Vec::new();
        if encode_name(&mut rr, owner).is_none() {
            continue;
        }
        rr.extend_from_slice(&TYPE_PTR.to_be_bytes());
        rr.extend_from_slice(&1u16.to_be_bytes());
        rr.extend_from_slice(&ttl.to_be_bytes());
        let at = rr.len();
        rr.extend_from_slice(&[0, 0]);
        if encode_name(&mut rr, target).is_none() {
            continue;
        }
        let len = (rr.len() - at - 2) as u16;
        rr[at..at + 2].copy_from_slice(&len.to_be_bytes());
        let Some(m) = out.last_mut() else {
            break;
        };
        if m.len() + rr.len() > max_len && m.len() > 12 {
            m[2] |= 0x02; // TC: more known answers follow
            m[6..8].copy_from_slice(&answers.to_be_bytes());
            out.push(vec![0u8; 12]);
            answers = 0;
        }
        if let Some(m) = out.last_mut() {
            m.extend_from_slice(&rr);
            answers += 1;
        }
    }
    if let Some(m) = out.last_mut() {
        m[6..8].copy_from_slice(&answers.to_be_bytes());
    }
    out
}

/// Whether a message has the TC bit (more known answers follow, RFC 6762 §7.2).
pub fn truncated(b: &[u8]) -> bool {
    b.get(2).is_some_and(|f| f & 0x02 != 0)
}

#[cfg(test)]
#[path = "dns_tests.rs"]
pub(crate) mod tests;
