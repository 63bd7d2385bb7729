// SPDX-License-Identifier: MPL-2.0
//! The sender: everything `videoipsink` decides about what goes out and when, free of
//! GStreamer, sockets and clocks.
//!
//! - [`packetizer`]: frame → datagrams (headers; payloads stay in the caller's buffer)
//! - [`schedule`]: when each batch of a frame may leave (pacing)
//! - [`rate`]: how fast, and which frames go (rate control, admission)
//! - [`history`]: sent frames kept for resending, and the resend budget
//! - [`receivers`]: what receivers report (round trip, loss), feeding the rate control
//! - [`subscribers`]: receivers that subscribed, and their leases

pub mod history;
pub mod packetizer;
pub mod rate;
pub mod receivers;
pub mod schedule;
pub mod subscribers;
