// SPDX-License-Identifier: MPL-2.0
//! The tracks of the session followed (PROTOCOL §8.11): which ones a receiver wants, and
//! the state each wanted track has of its own once its stream info locked it on (frames,
//! sequence, NACKs, stream info, sender report, end of stream). One track's losses never
//! hold up another's frames. I/O-free.

use super::info::StoredInfo;
use super::reassembler::Reassembler;
use super::recovery::{self, NackTracker};
use super::sequence::SequenceTracker;
use super::Config;
use crate::protocol::tracks::{CONTROL_TRACK, MAX_TRACKS};
use crate::protocol::SenderReport;
use std::time::Instant;

/// Which tracks of a session a receiver follows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrackSelection {
    /// Track 0 alone, the primary essence (a single-stream receiver, `videoipsrc`).
    #[default]
    Primary,
    /// Every track the session has (at most [`MAX_TRACKS`] followed at once).
    All,
    /// These tracks (at most [`MAX_TRACKS`] of them are followed at once).
    Only(Vec<u16>),
}

impl TrackSelection {
    /// True when datagrams of `track` are wanted (the control track is never a media track).
    pub fn wants(&self, track: u16) -> bool {
        match self {
            Self::Primary => track == 0,
            Self::All => track != CONTROL_TRACK,
            Self::Only(ids) => ids.contains(&track),
        }
    }

    /// The SUBSCRIBE payload that asks for these tracks (PROTOCOL §5.8): `[0]` for
    /// [`Primary`](Self::Primary), empty (every track) for [`All`](Self::All), the list (its
    /// first [`MAX_TRACKS`], without the control track) for [`Only`](Self::Only). A sender
    /// older than tracks ignores the payload and sends its one track.
    pub fn subscribe_payload(&self) -> Vec<u8> {
        let ids: Vec<u16> = match self {
            Self::Primary => vec![0],
            Self::All => Vec::new(),
            Self::Only(ids) => ids
                .iter()
                .copied()
                .filter(|&t| t != CONTROL_TRACK)
                .take(MAX_TRACKS)
                .collect(),
        };
        ids.iter().flat_map(|t| t.to_be_bytes()).collect()
    }
}

/// Counts of one track, as its receiver reports name them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// Datagrams of the track received since it locked on (duplicates included).
    pub datagrams_received: u64,
    /// Its sequence numbers never seen (net of late arrivals).
    pub datagrams_lost: u64,
    /// Its datagrams received twice.
    pub datagrams_duplicate: u64,
    /// Its datagrams that arrived after a later one.
    pub datagrams_reordered: u64,
    /// Its frames complete and handed out.
    pub frames_complete: u64,
    /// Its frames dropped incomplete.
    pub frames_dropped: u64,
    /// Its frames complete only thanks to recovered datagrams.
    pub frames_recovered: u64,
}

impl TrackStats {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &TrackStats) {
        self.datagrams_received += o.datagrams_received;
        self.datagrams_lost += o.datagrams_lost;
        self.datagrams_duplicate += o.datagrams_duplicate;
        self.datagrams_reordered += o.datagrams_reordered;
        self.frames_complete += o.frames_complete;
        self.frames_dropped += o.frames_dropped;
        self.frames_recovered += o.frames_recovered;
    }
}

/// One wanted track of the session followed, locked on by its own stream info.
pub(super) struct Track<B> {
    pub id: u16,
    pub reasm: Reassembler<B>,
    pub seq: SequenceTracker,
    /// Its stream info in use (None after [`super::Session::reject_info`]).
    pub info: Option<StoredInfo>,
    /// Its latest sender report: sequence number, arrival, body.
    pub sender_report: Option<(u32, Instant, SenderReport)>,
    /// When its next receiver report is due.
    pub report_at: Option<Instant>,
    /// Its missing datagrams, and when to ask for them.
    pub nacks: NackTracker,
    /// The newest frame number its media datagrams carried.
    pub newest_frame: Option<u32>,
    /// Its END_OF_STREAM came.
    pub ended: bool,
    /// Its end of stream was handed out.
    pub eos_sent: bool,
    /// Datagrams of it received since it locked on.
    pub datagrams: u64,
}

impl<B: AsMut<[u8]>> Track<B> {
    /// A track that just locked on.
    pub fn new(id: u16, cfg: &Config) -> Self {
        Track {
            id,
            reasm: Reassembler::new(cfg.clone()),
            seq: SequenceTracker::default(),
            info: None,
            sender_report: None,
            report_at: None,
            nacks: NackTracker::new(recovery::Config {
                give_up: cfg.window,
                // FEC first, but leave NACKs two fifths of the window.
                fec_wait: cfg.window * 3 / 5,
                ..Default::default()
            }),
            newest_frame: None,
            ended: false,
            eos_sent: false,
            datagrams: 0,
        }
    }

    /// Its counts.
    pub fn stats(&self) -> TrackStats {
        let (frames_complete, frames_dropped) = self.reasm.frame_counts();
        TrackStats {
            datagrams_received: self.datagrams,
            datagrams_lost: self.seq.lost(),
            datagrams_duplicate: self.seq.duplicate(),
            datagrams_reordered: self.seq.reordered(),
            frames_complete,
            frames_dropped,
            frames_recovered: self.reasm.frames_recovered(),
        }
    }
}
