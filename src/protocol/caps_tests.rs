// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `protocol/caps.rs`: caps strings are read as GStreamer's parser reads them.
//! (`tests/robustness.rs` checks the limits against GStreamer itself, on a small stack.)

use super::*;

/// The receiver crash of issue 12: `video/x-raw, a=` and 1,872 times `{`×16 `"` `}`×16 `",`
/// (65,535 bytes). The closing braces are inside quotes, where GStreamer does not see them.
pub fn issue_12_attack() -> String {
    let unit = format!("{}\"{}\",", "{".repeat(16), "}".repeat(16));
    format!("video/x-raw, a={}", unit.repeat(1872))
}

#[test]
fn caps_as_gstreamer_writes_them_pass() {
    for ok in [
        "video/x-raw, format=(string)I420, width=(int)640",
        "video/x-raw(memory:SystemMemory), format={ I420, NV12 }",
        "video/x-raw, format=(string)UYVY, width=(int)1920, height=(int)1080, framerate=(fraction)60/1, pixel-aspect-ratio=(fraction)1/1, interlace-mode=(string)progressive, colorimetry=(string)bt709",
        "audio/x-raw, format=(string)S16LE, layout=(string)interleaved, rate=(int)48000, channels=(int)2, channel-mask=(bitmask)0x0000000000000003",
        "video/x-h264, stream-format=(string)avc, codec_data=(buffer)0164001fffe1, width=(int)[ 1, 2147483647 ]",
        "audio/x-vorbis, streamheader=(buffer)< 01766f72, 03766f72, 05766f72 >",
        // Nested caps and strings as gst_caps_to_string writes them: quoted and escaped.
        r#"application/x-test, inner=(GstCaps)"video/x-raw\,\ format\=\(string\)\{\ I420\,\ NV12\ \}", title=(string)"a\ \"quoted\"\ \{title\}\ :-\)""#,
        r#"application/x-test, s=(structure)"s\,\ a\=\(string\)\"x\\\ y\"\;""#,
        "ANY",
        "EMPTY",
    ] {
        assert_eq!(check_caps_text(ok), Ok(()), "{ok}");
    }
}

#[test]
fn basic_limits_hold() {
    assert!(check_caps_text("").is_err());
    assert!(check_caps_text("video/x-raw\n").is_err());
    assert!(check_caps_text(&"x".repeat(MAX_CAPS_LEN)).is_ok());
    assert!(check_caps_text(&"x".repeat(MAX_CAPS_LEN + 1)).is_err());
    assert!(check_caps_bytes(&[0xFF, 0xFE]).is_err());
    assert_eq!(check_caps_bytes(b"audio/x-raw"), Ok("audio/x-raw"));
}

#[test]
fn brackets_nest_at_most_the_depth_limit() {
    let hostile = format!("video/x-raw, a={}", "{".repeat(30_000));
    assert_eq!(check_caps_text(&hostile), Err("caps nested too deeply"));
    let deep = |n| format!("a, b={}1{}", "{".repeat(n), "}".repeat(n));
    assert!(check_caps_text(&deep(MAX_CAPS_DEPTH)).is_ok());
    assert!(check_caps_text(&deep(MAX_CAPS_DEPTH + 1)).is_err());
    let arrays = |n| format!("a, b={}1{}", "<".repeat(n), ">".repeat(n));
    assert!(check_caps_text(&arrays(MAX_CAPS_DEPTH)).is_ok());
    assert!(check_caps_text(&arrays(MAX_CAPS_DEPTH + 1)).is_err());
    // Closing brackets do not buy depth, and do not close what they do not match.
    assert!(check_caps_text(&format!("{}{}", "]".repeat(50), deep(MAX_CAPS_DEPTH + 1))).is_err());
    assert_eq!(
        check_caps_text("a, b={ 1 ], c={ 2 }"),
        Err("unbalanced brackets in caps")
    );
    assert_eq!(
        check_caps_text("a, b={ 1"),
        Err("unbalanced brackets in caps")
    );
}

#[test]
fn the_issue_12_attack_string_is_refused() {
    let attack = issue_12_attack();
    assert_eq!(attack.len(), 65_535);
    assert_eq!(check_caps_text(&attack), Err("caps nested too deeply"));
}

#[test]
fn closing_brackets_inside_quotes_close_nothing_outside() {
    // Depth 10 outside, then quoted strings full of closing brackets: still depth 10, and
    // 10 more opening ones make 20.
    let s = format!(
        "a, b={}\"{}\", {}1{}",
        "{".repeat(10),
        "}".repeat(10),
        "{".repeat(10),
        "}".repeat(30)
    );
    assert_eq!(check_caps_text(&s), Err("caps nested too deeply"));
}

#[test]
fn quoted_caps_count_their_brackets_escaped_or_octal() {
    // GStreamer unescapes a quoted (GstCaps) value and parses it again: `\{` and `\173`
    // are `{` there. Both deeper than the limit are refused; at the limit they pass.
    for open in ["{", r"\{", r"\173"] {
        let close = match open {
            "{" => "}",
            r"\{" => r"\}",
            _ => r"\175",
        };
        let quoted = |n| {
            format!(
                "a, b=(GstCaps)\"c, d={}1{}\"",
                open.repeat(n),
                close.repeat(n)
            )
        };
        // The quoted string is one level itself.
        assert!(
            check_caps_text(&quoted(MAX_CAPS_DEPTH - 1)).is_ok(),
            "{open}"
        );
        assert_eq!(
            check_caps_text(&quoted(MAX_CAPS_DEPTH)),
            Err("caps nested too deeply"),
            "{open}"
        );
        assert_eq!(
            check_caps_text(&quoted(8_000)),
            Err("caps nested too deeply"),
            "{open}"
        );
    }
}

#[test]
fn closing_brackets_hidden_one_quote_deeper_close_nothing() {
    // In quoted caps, `{`×16 and then `\"}}…\"` (closing braces in a quoted string inside
    // the quoted string) again and again: GStreamer nests deeper at every repeat.
    let unit = format!("{}\\\"{}\\\",", "{".repeat(4), "}".repeat(4));
    let s = format!("a, b=(GstCaps)\"c, d={}\"", unit.repeat(100));
    assert_eq!(check_caps_text(&s), Err("caps nested too deeply"));
}

#[test]
fn quotes_inside_quotes_are_levels() {
    // Caps in a list in caps in a list in caps..., escaped as gst_caps_to_string escapes
    // them: each level is a `{` and a quoted string deeper.
    let escape = |s: &str| -> String {
        s.chars()
            .flat_map(|c| {
                let esc = !c.is_ascii_alphanumeric() && !"_-+/:.".contains(c);
                esc.then_some('\\').into_iter().chain([c])
            })
            .collect()
    };
    let mut s = "x, y=(int)1".to_string();
    let mut accepted = 0;
    while check_caps_text(&s).is_ok() {
        s = format!("a, b={{ (GstCaps)\"{}\" }}", escape(&s));
        accepted += 1;
    }
    assert_eq!(check_caps_text(&s), Err("caps nested too deeply"));
    // Level k puts `(int)` at depth 2k + 1.
    assert_eq!(accepted, MAX_CAPS_DEPTH / 2, "{s:.200}");
}

#[test]
fn square_brackets_nest_at_most_their_own_limit() {
    // GStreamer tries each `[` as a range, a structure and caps: work doubles per level.
    let nested = |n: usize| {
        let mut s = "[b, c=1]".to_string();
        for _ in 1..n {
            s = format!("[b, c={s}]");
        }
        format!("video/x-raw, a={s}")
    };
    assert!(check_caps_text(&nested(MAX_CAPS_SQUARE_DEPTH)).is_ok());
    assert_eq!(
        check_caps_text(&nested(MAX_CAPS_SQUARE_DEPTH + 1)),
        Err("caps nest '[' too deeply")
    );
    // Also when the levels are split between the caps and a quoted string inside them.
    let split = format!(
        "a, b=[c, d=(GstCaps)\"e, f={}1{}\"]",
        "[".repeat(MAX_CAPS_SQUARE_DEPTH),
        "]".repeat(MAX_CAPS_SQUARE_DEPTH)
    );
    assert_eq!(check_caps_text(&split), Err("caps nest '[' too deeply"));
}

#[test]
fn opening_brackets_are_limited_in_all() {
    let list = |n: usize| format!("a, b={{ {} }}", vec!["{ 1 }"; n].join(", "));
    assert!(check_caps_text(&list(MAX_CAPS_BRACKETS - 1)).is_ok());
    assert_eq!(
        check_caps_text(&list(MAX_CAPS_BRACKETS)),
        Err("too many brackets in caps")
    );
    // Type names count too, and brackets inside quoted strings.
    let typed = format!("a, {}", vec!["b=(int)1"; MAX_CAPS_BRACKETS + 1].join(", "));
    assert_eq!(check_caps_text(&typed), Err("too many brackets in caps"));
    let quoted = format!("a, b=\"{}\"", "\\{ 1 \\}".repeat(MAX_CAPS_BRACKETS + 1));
    assert_eq!(check_caps_text(&quoted), Err("too many brackets in caps"));
}

#[test]
fn parentheses_are_names_and_quotes_in_them_are_no_quotes() {
    // GStreamer reads caps features and type names up to the first `)`.
    assert_eq!(check_caps_text("video/x-raw(\"), a=(int)1"), Ok(()));
    assert_eq!(
        check_caps_text("video/x-raw(memory:NVMM), a=(int)1"),
        Ok(())
    );
    assert_eq!(
        check_caps_text("video/x-raw(memory:NVMM"),
        Err("unbalanced brackets in caps")
    );
}

#[test]
fn quoted_strings_are_skipped_as_gstreamer_skips_them() {
    // A backslash takes the next byte with it, so `\"` does not end the string.
    assert_eq!(check_caps_text(r#"a, b="x\"}}}}", c=1"#), Ok(()));
    assert_eq!(
        check_caps_text(r#"a, b="x\""#),
        Err("unterminated quoted string in caps")
    );
    // Segments are parsed from between their quotes without unescaping.
    let segment = format!("a, b=(GstSegment)\"segment, c={}1\"", "{".repeat(20));
    assert_eq!(check_caps_text(&segment), Err("caps nested too deeply"));
}

#[test]
fn sample_values_are_refused() {
    // A (sample) value carries base64 caps that GStreamer decodes and parses.
    for s in [
        "a, b=(sample)00:None:None:None",
        "a, b=( GstSample )00:None:None:None",
        "a, b=(GstCaps)\"c, d=\\(sample\\)00:None:None:None\"",
    ] {
        assert!(check_caps_text(s).is_err(), "{s}");
    }
}

#[test]
fn unescape_follows_gst_string_unwrap() {
    assert_eq!(
        unescape(br#""a\{b\173\"""#).as_deref(),
        Some(&b"a{b{\""[..])
    );
    assert_eq!(unescape(br#""\377\000""#).as_deref(), Some(&[255u8, 0][..]));
    // `\4`..`\7` are no octal escapes; `\1` needs two more octal digits.
    assert_eq!(unescape(br#""\477""#).as_deref(), Some(&b"477"[..]));
    assert_eq!(unescape(br#""\18""#), None);
    assert_eq!(unescape(br#""a"b""#), None);
    assert_eq!(quoted_len(br#""a\"b"c"#), Some(6));
    assert_eq!(quoted_len(br#""a\"#), None);
}
