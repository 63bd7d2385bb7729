// SPDX-License-Identifier: MPL-2.0
//! The check a caps string from the network passes before GStreamer parses it.
//!
//! `gst_caps_from_string` recurses on nesting without a limit, so a caps string is read here
//! the way that parser reads it (GStreamer 1.22, as measured by `caps_tests.rs`):
//!
//! - `{` lists, `<` arrays and `[` ranges or nested structures recurse once per level:
//!   about 30,000 levels overflow an 8 MiB stack, a few hundred a 256 KiB one.
//! - A quoted string is skipped by the lexer (a backslash takes the next byte with it), but a
//!   value typed as caps, a structure or a tag list (`(GstCaps)"…"`) is unescaped (`\{` and
//!   the octal `\173` both become `{`) and parsed again, and a segment (`(GstSegment)"…"`) is
//!   parsed again as it stands between its quotes. So brackets inside quotes nest too, and
//!   closing brackets inside quotes close nothing outside them.
//! - `[` is tried as a range, a structure and caps in turn: each level of `[` nesting
//!   doubles the work (15 levels before a 60 KB tail that fails: 16 s of CPU).
//! - `(` opens a type name (`(int)`) or caps features (`(memory:NVMM)`), read up to the first
//!   `)`: it never nests, and a quote inside it is no quote.
//! - A value typed `(sample)` carries caps, a segment and a structure in base64, which are
//!   decoded and parsed: brackets no scan of the text can see.
//!
//! So every quoted string is followed into both of what it may be parsed as, one level
//! deeper, and the limits count every opening bracket at every level.

use super::MAX_CAPS_LEN;

/// Deepest nesting a caps string may have: brackets `{` `[` `<` `(` and quoted strings,
/// each one level, counted through quoted strings into what they unescape to.
pub const MAX_CAPS_DEPTH: usize = 16;
/// Deepest nesting of `[` (GStreamer parses each level up to twice: see the module docs).
pub const MAX_CAPS_SQUARE_DEPTH: usize = 4;
/// Most opening brackets (`{` `[` `<` `(`) a caps string may have in all, at every level.
pub const MAX_CAPS_BRACKETS: usize = 1024;
/// Most bytes the check reads in all levels of quoting before it gives up on the caps.
const MAX_SCANNED: usize = 16 * MAX_CAPS_LEN;

/// Checks a caps string before anyone hands it to GStreamer: non-empty, at most
/// [`MAX_CAPS_LEN`] bytes, no control characters, balanced brackets, nesting at most
/// [`MAX_CAPS_DEPTH`] deep ([`MAX_CAPS_SQUARE_DEPTH`] for `[`), at most
/// [`MAX_CAPS_BRACKETS`] opening brackets, and no `(sample)` values. Quoted strings are
/// skipped as GStreamer skips them and checked again as the caps they may be parsed as.
pub fn check_caps_text(caps: &str) -> Result<(), &'static str> {
    if caps.is_empty() {
        return Err("empty caps");
    }
    if caps.len() > MAX_CAPS_LEN {
        return Err("caps longer than 64 KiB");
    }
    if caps.chars().any(char::is_control) {
        return Err("control character in caps");
    }
    Scan::default().text(caps.as_bytes(), Depth::default(), true)
}

/// [`check_caps_text`] on bytes that must also be valid UTF-8.
pub fn check_caps_bytes(caps: &[u8]) -> Result<&str, &'static str> {
    let s = std::str::from_utf8(caps).map_err(|_| "caps are not UTF-8")?;
    check_caps_text(s)?;
    Ok(s)
}

/// How deep the scan is: all levels, and levels of `[`.
#[derive(Clone, Copy, Default)]
struct Depth {
    all: usize,
    square: usize,
}

/// What the scan has counted, over all levels.
#[derive(Default)]
struct Scan {
    brackets: usize,
    scanned: usize,
}

impl Scan {
    /// Scans `s` as caps text at depth `base`. `top`: the caps string itself, where anything
    /// malformed is refused. Otherwise `s` is what a quoted string may be parsed as: maybe
    /// never (it is a plain string, and anything goes), maybe as caps, which GStreamer stops
    /// parsing where they are malformed: so the scan stops there too.
    fn text(&mut self, s: &[u8], base: Depth, top: bool) -> Result<(), &'static str> {
        self.scanned += s.len();
        if self.scanned > MAX_SCANNED {
            return Err("caps too complex to check");
        }
        // The closing bracket each open one expects, innermost last.
        let mut open: Vec<u8> = Vec::new();
        let mut square = 0;
        let mut i = 0;
        while let Some(&c) = s.get(i) {
            let here = Depth {
                all: base.all + open.len(),
                square: base.square + square,
            };
            match c {
                // An escaped NUL (`\000`) ends the C string GStreamer parses.
                0 => return Ok(()),
                b'"' => {
                    let Some(len) = quoted_len(&s[i..]) else {
                        return if top {
                            Err("unterminated quoted string in caps")
                        } else {
                            Ok(())
                        };
                    };
                    let token = &s[i..i + len];
                    let inner = Depth {
                        all: here.all + 1,
                        ..here
                    };
                    if inner.all > MAX_CAPS_DEPTH {
                        return Err("caps nested too deeply");
                    }
                    // As caps, structures and tag lists parse it: unescaped.
                    if let Some(unescaped) = unescape(token) {
                        self.text(&unescaped, inner, false)?;
                    }
                    // As segments parse it: as it stands.
                    self.text(&token[1..len - 1], inner, false)?;
                    i += len;
                    continue;
                }
                b'(' => {
                    self.open(Depth {
                        all: here.all + 1,
                        ..here
                    })?;
                    let Some(n) = s[i..].iter().position(|&b| b == b')' || b == 0) else {
                        return if top {
                            Err("unbalanced brackets in caps")
                        } else {
                            Ok(())
                        };
                    };
                    let name = s[i + 1..i + n].trim_ascii();
                    if name == b"sample" || name == b"GstSample" {
                        return Err(
                            "caps with a sample value (GStreamer decodes base64 caps in it)",
                        );
                    }
                    if s[i + n] == 0 {
                        return Ok(());
                    }
                    i += n + 1;
                    continue;
                }
                b'{' | b'[' | b'<' => {
                    open.push(match c {
                        b'{' => b'}',
                        b'[' => b']',
                        _ => b'>',
                    });
                    if c == b'[' {
                        square += 1;
                    }
                    self.open(Depth {
                        all: base.all + open.len(),
                        square: base.square + square,
                    })?;
                }
                b'}' | b']' | b'>' => {
                    if open.last() != Some(&c) {
                        // GStreamer's parser fails here: nothing after it is parsed.
                        return if top {
                            Err("unbalanced brackets in caps")
                        } else {
                            Ok(())
                        };
                    }
                    open.pop();
                    if c == b']' {
                        square -= 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if top && !open.is_empty() {
            return Err("unbalanced brackets in caps");
        }
        Ok(())
    }

    /// Counts an opening bracket that brings the scan to depth `d`.
    fn open(&mut self, d: Depth) -> Result<(), &'static str> {
        self.brackets += 1;
        if self.brackets > MAX_CAPS_BRACKETS {
            Err("too many brackets in caps")
        } else if d.all > MAX_CAPS_DEPTH {
            Err("caps nested too deeply")
        } else if d.square > MAX_CAPS_SQUARE_DEPTH {
            Err("caps nest '[' too deeply")
        } else {
            Ok(())
        }
    }
}

/// Length of the quoted string `s` starts with (quotes included), as GStreamer's lexer
/// finds its end (`_priv_gst_value_parse_string`): a backslash takes the next byte with it.
/// None: it does not end (GStreamer's parse fails).
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            0 => return None,
            b'\\' => match s.get(i + 1) {
                None | Some(0) => return None,
                Some(_) => i += 2,
            },
            _ => i += 1,
        }
    }
}

/// What a quoted string (quotes included) unescapes to, as `gst_string_unwrap` does it:
/// `\` and three octal digits (the first 0 to 3) is that byte, `\` and any other byte is
/// that byte. None where it fails (then GStreamer parses nothing of it).
fn unescape(q: &[u8]) -> Option<Vec<u8>> {
    let octal = |b: u8| (b'0'..=b'7').contains(&b).then(|| b - b'0');
    let mut out = Vec::with_capacity(q.len());
    let mut i = 1;
    loop {
        match *q.get(i)? {
            b'"' => return (i + 1 == q.len()).then_some(out),
            0 => return None,
            b'\\' => {
                let c = *q.get(i + 1)?;
                if (b'0'..=b'3').contains(&c) {
                    let d1 = octal(*q.get(i + 2)?)?;
                    let d2 = octal(*q.get(i + 3)?)?;
                    out.push(((c - b'0') << 6) | (d1 << 3) | d2);
                    i += 4;
                } else if c == 0 {
                    return None;
                } else {
                    out.push(c);
                    i += 2;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
#[path = "caps_tests.rs"]
mod tests;
