// SPDX-License-Identifier: MPL-2.0
//! The size a raw frame must have for its caps. A raw frame shorter or longer than its caps
//! say is garbage to every element downstream (`videoconvert` posts a warning per frame),
//! so `videoipsrc` drops it instead of pushing it.

/// The size raw caps ask a frame to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSize {
    /// Raw video: exactly this many bytes (`GstVideoInfo`'s size).
    Exactly(usize),
    /// Raw audio: a whole number of sample frames of this many bytes each.
    MultipleOf(usize),
}

impl FrameSize {
    /// The size frames with `caps` must have; None when the caps are not raw video or audio
    /// (or say too little to tell): then any size goes.
    pub fn of(caps: &gst::CapsRef) -> Option<FrameSize> {
        let s = caps.structure(0)?;
        match s.name().as_str() {
            "video/x-raw" => {
                let info = gst_video::VideoInfo::from_caps(caps).ok()?;
                Some(FrameSize::Exactly(info.size()))
            }
            "audio/x-raw" => {
                let width = audio_sample_width(s.get::<&str>("format").ok()?)?;
                let channels = usize::try_from(s.get::<i32>("channels").ok()?).ok()?;
                (channels > 0).then(|| FrameSize::MultipleOf(width * channels))
            }
            _ => None,
        }
    }

    /// Whether a frame of `len` bytes fits; otherwise what was expected, in words.
    pub fn check(self, len: usize) -> Result<(), String> {
        match self {
            FrameSize::Exactly(n) if len != n => Err(format!("{n} bytes")),
            FrameSize::MultipleOf(n) if !len.is_multiple_of(n) => {
                Err(format!("a multiple of {n} bytes (whole sample frames)"))
            }
            _ => Ok(()),
        }
    }
}

/// Bytes per sample of a raw audio format name (`S16LE`, `S24_32BE`, `F64LE`, `U8`...),
/// as `GstAudioFormatInfo` has them; None for names it does not know.
fn audio_sample_width(format: &str) -> Option<usize> {
    let rest = format.strip_prefix(['S', 'U', 'F'])?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (bits, tail) = rest.split_at(digits);
    let bits: u32 = bits.parse().ok()?;
    let width = match tail {
        "_32LE" | "_32BE" if bits <= 32 => 4,
        "" | "LE" | "BE" => match bits {
            8 => 1,
            16 => 2,
            18 | 20 | 24 => 3,
            32 => 4,
            64 => 8,
            _ => return None,
        },
        _ => return None,
    };
    // Only 8-bit formats have no endianness; floats are 32 or 64 bits, integers not 64.
    let valid = (bits == 8) == tail.is_empty()
        && if format.starts_with('F') {
            matches!((bits, tail), (32 | 64, "LE" | "BE"))
        } else {
            bits != 64
        };
    valid.then_some(width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn size(caps: &str) -> Option<FrameSize> {
        gst::init().expect("GStreamer initializes");
        FrameSize::of(&gst::Caps::from_str(caps).expect("caps parse"))
    }

    #[test]
    fn raw_video_frames_have_the_size_of_their_video_info() {
        let uyvy = "video/x-raw, format=UYVY, width=320, height=240, framerate=25/1";
        assert_eq!(size(uyvy), Some(FrameSize::Exactly(320 * 240 * 2)));
        // Odd sizes round up chroma and pad rows as GStreamer does.
        let i420 = "video/x-raw, format=I420, width=33, height=17, framerate=25/1";
        let expected = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 33, 17)
            .build()
            .unwrap()
            .size();
        assert_eq!(size(i420), Some(FrameSize::Exactly(expected)));
        let s = FrameSize::Exactly(153_600);
        assert_eq!(s.check(153_600), Ok(()));
        assert_eq!(s.check(153_599), Err("153600 bytes".into()));
        assert_eq!(s.check(153_601), Err("153600 bytes".into()));
    }

    #[test]
    fn raw_audio_frames_are_whole_sample_frames() {
        let caps = |f: &str, ch: i32| {
            format!("audio/x-raw, format={f}, layout=interleaved, rate=48000, channels={ch}")
        };
        // Every format of GStreamer 1.22's audio format table, with its width in bytes
        // (from gst_audio_format_get_info).
        for (f, width) in [
            ("S8", 1),
            ("U8", 1),
            ("S16LE", 2),
            ("S16BE", 2),
            ("U16LE", 2),
            ("U16BE", 2),
            ("S24_32LE", 4),
            ("S24_32BE", 4),
            ("U24_32LE", 4),
            ("U24_32BE", 4),
            ("S32LE", 4),
            ("S32BE", 4),
            ("U32LE", 4),
            ("U32BE", 4),
            ("S24LE", 3),
            ("S24BE", 3),
            ("U24LE", 3),
            ("U24BE", 3),
            ("S20LE", 3),
            ("S20BE", 3),
            ("U20LE", 3),
            ("U20BE", 3),
            ("S18LE", 3),
            ("S18BE", 3),
            ("U18LE", 3),
            ("U18BE", 3),
            ("F32LE", 4),
            ("F32BE", 4),
            ("F64LE", 8),
            ("F64BE", 8),
        ] {
            assert_eq!(
                size(&caps(f, 2)),
                Some(FrameSize::MultipleOf(2 * width)),
                "{f}"
            );
        }
        assert_eq!(size(&caps("S16LE", 6)), Some(FrameSize::MultipleOf(12)));
        let s = FrameSize::MultipleOf(4);
        assert_eq!(s.check(4800), Ok(()));
        assert_eq!(s.check(0), Ok(()));
        assert!(s.check(4802).is_err());
    }

    #[test]
    fn other_caps_take_any_size() {
        assert_eq!(size("video/x-h264, stream-format=byte-stream"), None);
        assert_eq!(size("audio/x-raw, format=S16LE, rate=48000"), None);
        assert_eq!(size("audio/x-raw, format=Q16LE, channels=2"), None);
        assert_eq!(size("video/x-raw, format=UYVY"), None);
        assert_eq!(size("application/x-whatever"), None);
        assert_eq!(audio_sample_width("S16"), None);
        assert_eq!(audio_sample_width("U8LE"), None);
        assert_eq!(audio_sample_width("F16LE"), None);
    }
}
