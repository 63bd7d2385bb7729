// SPDX-License-Identifier: MPL-2.0
use super::*;

fn full() -> SourceTxt {
    SourceTxt {
        version: VERSION,
        name: Some("CAM 1 — Bühne".into()),
        session: Some(0x0123_4567_89ab_cdef),
        media: Some("video/x-raw".into()),
        width: Some(1920),
        height: Some(1080),
        framerate: Some((30000, 1001)),
        format: Some("UYVY".into()),
        rate: None,
        channels: None,
        mode: Some(Mode::Multicast("239.1.2.3".parse().unwrap())),
        port: Some(5004),
        auth: Some(32),
    }
}

fn roundtrip(txt: &SourceTxt) -> Result<SourceTxt, TxtError> {
    let pairs = encode(txt);
    decode(pairs.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes()))))
}

#[test]
fn test_txt_roundtrips() {
    assert_eq!(roundtrip(&full()), Ok(full()));
    let sub = SourceTxt {
        mode: Some(Mode::Subscribe),
        media: Some("audio/x-raw".into()),
        rate: Some(48000),
        channels: Some(2),
        width: None,
        height: None,
        framerate: None,
        ..full()
    };
    assert_eq!(roundtrip(&sub), Ok(sub));
    let v6 = SourceTxt {
        mode: Some(Mode::Multicast("ff15::1234".parse().unwrap())),
        ..full()
    };
    assert_eq!(roundtrip(&v6), Ok(v6));
}

#[test]
fn test_txt_encoding_is_small_and_readable() {
    let pairs = encode(&full());
    assert_eq!(pairs[0], ("v".into(), "2".into()));
    assert!(pairs.contains(&("session".into(), "0123456789abcdef".into())));
    assert!(pairs.contains(&("framerate".into(), "30000/1001".into())));
    assert!(pairs.contains(&("group".into(), "239.1.2.3".into())));
    for (k, v) in &pairs {
        assert!(k.len() + 1 + v.len() <= 255, "{k}={v} fits one TXT string");
    }
}

#[test]
fn test_txt_long_name_is_cut_at_a_character_boundary() {
    let txt = SourceTxt {
        name: Some("é".repeat(200)),
        ..full()
    };
    let back = roundtrip(&txt).unwrap();
    let name = back.name.unwrap();
    assert!(name.len() <= MAX_NAME_LEN && name.len() >= MAX_NAME_LEN - 1);
    assert!(name.chars().all(|c| c == 'é'));
    // A token over its bound is left out, not cut.
    let txt = SourceTxt {
        format: Some("X".repeat(MAX_TOKEN_LEN + 1)),
        ..full()
    };
    assert_eq!(roundtrip(&txt).unwrap().format, None);
}

#[test]
fn test_txt_without_version_is_an_error() {
    let pairs: [(&str, Option<&[u8]>); 1] = [("name", Some(b"x"))];
    assert_eq!(decode(pairs), Err(TxtError::NoVersion));
    let pairs: [(&str, Option<&[u8]>); 1] = [("v", Some(b"two"))];
    assert_eq!(decode(pairs), Err(TxtError::NoVersion));
    let pairs: [(&str, Option<&[u8]>); 1] = [("v", None)];
    assert_eq!(decode(pairs), Err(TxtError::NoVersion));
    let pairs: [(&str, Option<&[u8]>); 1] = [("v", Some(b"3"))];
    assert_eq!(decode(pairs), Err(TxtError::Version(3)));
}

#[test]
fn test_txt_bad_fields_are_left_out() {
    let huge = "9".repeat(100_000);
    let pairs: Vec<(&str, Option<&[u8]>)> = vec![
        ("V", Some(b"2")),
        ("name", Some(b"\xff\xfe not utf-8")),
        ("session", Some(b"zz")),
        ("width", Some(huge.as_bytes())),
        ("height", Some(b"-5")),
        ("framerate", Some(b"30/0")),
        ("format", Some(huge.as_bytes())),
        ("mode", Some(b"multicast")),
        ("group", Some(b"10.0.0.1")), // not a multicast group
        ("port", Some(b"70000")),
        ("media", None),
        ("width", Some(b"640")), // a second key does not count
    ];
    let txt = decode(pairs).unwrap();
    assert_eq!(
        txt,
        SourceTxt {
            version: VERSION,
            ..Default::default()
        }
    );
    let pairs: [(&str, Option<&[u8]>); 3] = [
        ("v", Some(b"2")),
        ("mode", Some(b"multicast")),
        ("port", Some(b"0")),
    ];
    let txt = decode(pairs).unwrap();
    assert_eq!((txt.mode, txt.port), (None, None), "no group, no mode");
}

/// Random and hostile pairs, from a fixed seed: decoding returns, never panics, and what it
/// keeps is within the bounds.
#[test]
fn test_txt_random_and_hostile_input_never_panics() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let keys = [
        "v",
        "name",
        "session",
        "media",
        "width",
        "height",
        "framerate",
        "format",
        "rate",
        "channels",
        "mode",
        "group",
        "port",
        "",
        "=",
        "\u{0}",
    ];
    let mut ok = 0;
    for _ in 0..20_000 {
        let n = (next() % 80) as usize;
        let mut owned: Vec<(String, Option<Vec<u8>>)> = Vec::with_capacity(n);
        for _ in 0..n {
            let key = keys[(next() % keys.len() as u64) as usize].to_string();
            let value = match next() % 6 {
                0 => None,
                1 => Some(b"2".to_vec()),
                2 => Some(
                    (0..(next() % 300))
                        .map(|_| next() as u8)
                        .collect::<Vec<u8>>(),
                ),
                3 => Some(format!("{}", next() as i64).into_bytes()),
                4 => Some(format!("{}/{}", next() % 5, next() % 3).into_bytes()),
                _ => Some(
                    ["subscribe", "multicast", "239.0.0.1", "ff02::fb", "::"]
                        [(next() % 5) as usize]
                        .as_bytes()
                        .to_vec(),
                ),
            };
            owned.push((key, value));
        }
        if let Ok(txt) = decode(owned.iter().map(|(k, v)| (k.as_str(), v.as_deref()))) {
            ok += 1;
            assert!(txt.name.as_ref().is_none_or(|n| n.len() <= MAX_NAME_LEN));
            assert!(txt.media.as_ref().is_none_or(|m| m.len() <= MAX_TOKEN_LEN));
            assert!(txt.format.as_ref().is_none_or(|m| m.len() <= MAX_TOKEN_LEN));
            assert!(txt.framerate.is_none_or(|(_, d)| d != 0));
            if let Some(Mode::Multicast(g)) = txt.mode {
                assert!(g.is_multicast());
            }
        }
    }
    assert!(ok > 0, "some random records decode");
}

#[test]
fn a_protected_source_says_so_and_its_key_length() {
    for len in [16, 32] {
        let t = SourceTxt {
            version: VERSION,
            auth: Some(len),
            ..Default::default()
        };
        let pairs = encode(&t);
        assert!(pairs.contains(&("auth".into(), format!("aes{}", len * 8))));
        let back =
            decode(pairs.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes())))).expect("decodes");
        assert_eq!(back.auth, Some(len));
    }
    let odd = [("v", Some(&b"2"[..])), ("auth", Some(&b"rot13"[..]))];
    assert_eq!(decode(odd).expect("decodes").auth, None);
}
