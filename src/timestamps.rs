// SPDX-License-Identifier: MPL-2.0
//! Receiver timestamps: maps the sender's timeline onto the receiver's running time.
//!
//! A received frame is given `pts = sender_pts + offset`, where `offset` follows the earliest
//! observed `arrival - sender_dts` (the PTS when there is no DTS). The first frame's decoding
//! time is its arrival time; later
//! frames keep the sender's spacing (no network jitter in the timestamps, B-frame order and
//! audio continuity preserved). Arrivals earlier than predicted move the offset down at once;
//! later ones pull it up slowly, which follows clock drift between the machines. A jump of
//! more than `resync` (the sender restarted or seeked) starts over and is reported.
//! No GStreamer, no I/O: times are nanoseconds.

/// How far the offset moves toward a later arrival per frame, as a fraction (1/N).
const CREEP: i128 = 256;

/// Maps sender timestamps to local running time.
#[derive(Debug, Clone)]
pub struct TimeMapper {
    offset: Option<i128>,
    resync: u64,
}

/// A mapped frame's timestamps (ns, local running time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Presentation timestamp (None when the sender gave none but a DTS).
    pub pts: Option<u64>,
    /// Decoding timestamp, if the sender gave one.
    pub dts: Option<u64>,
    /// True when the mapping started over at this frame.
    pub resynced: bool,
}

impl TimeMapper {
    /// A mapper that starts over when an arrival is more than `resync_ns` off its prediction.
    pub fn new(resync_ns: u64) -> Self {
        TimeMapper {
            offset: None,
            resync: resync_ns,
        }
    }

    /// Forgets the mapping.
    pub fn reset(&mut self) {
        self.offset = None;
    }

    /// Maps a frame that arrived at local running time `arrival` carrying sender timestamps
    /// `pts` and `dts` (None when the sender had none).
    pub fn map(&mut self, arrival: u64, pts: Option<u64>, dts: Option<u64>) -> Mapped {
        // Frames leave the sender in decoding order, so the DTS (when there is one) is what
        // arrival times follow; without either timestamp a frame is placed at its arrival.
        let Some(reference) = dts.or(pts) else {
            return Mapped {
                pts: Some(arrival),
                dts: None,
                resynced: false,
            };
        };
        let d = i128::from(arrival) - i128::from(reference);
        let mut resynced = false;
        let offset = match self.offset {
            Some(o) if (d - o).unsigned_abs() <= u128::from(self.resync) => {
                if d < o {
                    d
                } else {
                    o + (d - o) / CREEP
                }
            }
            _ => {
                resynced = self.offset.is_some();
                d
            }
        };
        self.offset = Some(offset);
        let apply = |t: u64| (i128::from(t) + offset).clamp(0, i128::from(u64::MAX - 1)) as u64;
        Mapped {
            pts: pts.map(apply),
            dts: dts.map(apply),
            resynced,
        }
    }
}

#[cfg(test)]
#[path = "timestamps_tests.rs"]
mod tests;
