//! Telling people things on the operator's behalf: announcements, the
//! message of the day, and notices to a host's admins.
//!
//! This sits below both the account actors (`im`, which shows the message
//! of the day at login) and administration (`admin`, which changes it), so
//! neither needs the other for it.
//!
//! * [`announcement`]: what an announcement carries, and its message;
//! * [`motd`]: the message-of-the-day model, its spool forms, and the
//!   [`motd::MotdBoard`] holding each host's current one;
//! * [`admins`]: sending a host's admins a notice (new registrations,
//!   service failures).

pub mod admins;
pub mod announcement;
pub mod motd;

pub use announcement::{Announcement, EmptyAnnouncement};
pub use motd::{Motd, MotdBoard, MotdState};
