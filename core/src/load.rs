//! The load at an operating point: how much traffic is offered, and in which of three ways.
//!
//! One definition for every stage: a measurement row's load ([`crate::schema::Measurement`],
//! stored in the `mode` column and the one load column that mode names), the per-request
//! table's operating-point key ([`crate::requests::PointKey`]), the predictor's scenarios,
//! the recommender's demand and the levels characterize sweeps. Being one enum, a load cannot
//! be written in an impossible shape (closed mode without users, or users and a rate at once).
//!
//! - [`Load::Users`]: a closed loop (LLM-Pilot's setting): N users, each sending its next
//!   request when its last one ends;
//! - [`Load::Rate`]: an open loop: requests arrive at a rate, whatever the server's progress;
//! - [`Load::Batch`]: offline: one static batch submitted together (LLM-Inference-Bench's
//!   setting).
//!
//! How an open loop's arrivals are spaced (Poisson, bursty, a replayed trace) is not part of
//! the load: it is how characterize offers it, next to the load in its levels.

use crate::units::RequestsPerSec;
use crate::validate::{self, InvalidValue};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// How load is offered, without its amount: the `mode` column of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Closed loop: `users` clients, each sending its next request when the last ends.
    Closed,
    /// Open loop: requests arrive at `rate_rps` (Poisson unless said otherwise).
    Open,
    /// One static batch of `batch_size` requests, submitted together.
    Offline,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Closed => "closed",
            Mode::Open => "open",
            Mode::Offline => "offline",
        }
    }

    /// The schema column that holds the amount of load of this mode.
    pub fn column(self) -> &'static str {
        match self {
            Mode::Closed => "users",
            Mode::Open => "rate_rps",
            Mode::Offline => "batch_size",
        }
    }

    /// What a reader says of a row of this mode whose load column ([`Mode::column`]) is
    /// empty, with the fix; the reader adds the file, the row and the column.
    pub fn missing_load(self) -> String {
        format!(
            "empty, but a {self}-mode row needs its load there (closed: users, open: rate_rps, \
             offline: batch_size); fill in {} or correct the row's mode",
            self.column()
        )
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "closed" => Ok(Mode::Closed),
            "open" => Ok(Mode::Open),
            "offline" => Ok(Mode::Offline),
            other => Err(format!(
                "unknown mode '{}': use closed, open or offline",
                validate::shorten(other)
            )),
        }
    }
}

/// The load offered at an operating point.
///
/// Loads users give pilot are checked by [`Load::validate`] (counts of at least 1, a finite
/// positive rate); loads read from measurement files are kept as written, so that a row with
/// a non-finite rate can be flagged rather than refused (see [`crate::schema`]).
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Closed loop: this many users, each sending its next request when the last ends.
    Users(u32),
    /// Open loop: requests arrive at this rate.
    Rate(RequestsPerSec),
    /// One static batch of this many requests.
    Batch(u32),
}

impl Load {
    /// The load from a row's `mode` and load columns: the column the mode names
    /// ([`Mode::column`]) must hold a value; the other two are not read. `None` when it is
    /// empty, for the reader to say which row and column.
    pub fn from_columns(
        mode: Mode,
        users: Option<u32>,
        rate: Option<RequestsPerSec>,
        batch_size: Option<u32>,
    ) -> Option<Load> {
        match mode {
            Mode::Closed => users.map(Load::Users),
            Mode::Open => rate.map(Load::Rate),
            Mode::Offline => batch_size.map(Load::Batch),
        }
    }

    pub fn mode(self) -> Mode {
        match self {
            Load::Users(_) => Mode::Closed,
            Load::Rate(_) => Mode::Open,
            Load::Batch(_) => Mode::Offline,
        }
    }

    /// The load as one number (users, requests per second, or batch size).
    pub fn level(self) -> f64 {
        match self {
            Load::Users(u) | Load::Batch(u) => f64::from(u),
            Load::Rate(r) => r.0,
        }
    }

    /// The same kind of load at another level, as a search over levels probes it: users and
    /// batch sizes are rounded to whole numbers of at least 1, a rate is taken as it is.
    pub fn with_level(self, level: f64) -> Load {
        let whole = || level.round().max(1.0) as u32;
        match self {
            Load::Users(_) => Load::Users(whole()),
            Load::Rate(_) => Load::Rate(RequestsPerSec(level)),
            Load::Batch(_) => Load::Batch(whole()),
        }
    }

    /// The load each of `replicas` replicas sees when this load is spread evenly over them:
    /// users and batches are rounded up (a replica serves whole users), a rate is divided.
    pub fn share(self, replicas: u32) -> Load {
        let n = replicas.max(1);
        match self {
            Load::Users(u) => Load::Users(u.div_ceil(n)),
            Load::Rate(r) => Load::Rate(RequestsPerSec(r.0 / f64::from(n))),
            Load::Batch(b) => Load::Batch(b.div_ceil(n)),
        }
    }

    /// The `users` column of this load: its users if closed, else empty.
    pub fn users(self) -> Option<u32> {
        match self {
            Load::Users(u) => Some(u),
            _ => None,
        }
    }

    /// The `rate_rps` column of this load: its rate if open, else empty.
    pub fn rate(self) -> Option<RequestsPerSec> {
        match self {
            Load::Rate(r) => Some(r),
            _ => None,
        }
    }

    /// The `batch_size` column of this load: its batch size if offline, else empty.
    pub fn batch_size(self) -> Option<u32> {
        match self {
            Load::Batch(b) => Some(b),
            _ => None,
        }
    }

    /// Checks a load a user gave (see [`crate::validate`]): users and batch sizes are counts
    /// of at least 1, a rate is finite and positive. `what` names where it came from
    /// (`--users`, or a file's column).
    pub fn validate(self, what: &str) -> Result<Load, InvalidValue> {
        Ok(match self {
            Load::Users(u) => Load::Users(validate::count(what, f64::from(u))?),
            Load::Batch(b) => Load::Batch(validate::count(what, f64::from(b))?),
            Load::Rate(r) => Load::Rate(validate::rate(what, r.0)?),
        })
    }

    /// The load as `pilot recommend` has always printed its demand (the heading, `--json`'s
    /// `demand`, rejection reasons): `200 users`, `20 req/s`. It differs from [`Display`]
    /// (`1 user`, `20 requests/s`) only so that those outputs stay as they were.
    ///
    /// [`Display`]: fmt::Display
    pub fn demand_text(self) -> String {
        match self {
            Load::Users(u) => format!("{u} users"),
            Load::Rate(r) => format!("{} req/s", r.0),
            Load::Batch(_) => self.to_string(),
        }
    }

    /// The load as `pilot dataset show`'s `load` column has always shown it: `8 users`,
    /// `2.5 rps`, `batch 32` (short, for a table cell). Kept apart from [`Display`] so that
    /// output stays as it was.
    ///
    /// [`Display`]: fmt::Display
    pub fn cell_text(self) -> String {
        match self {
            Load::Users(u) => format!("{u} users"),
            Load::Rate(r) => format!("{} rps", r.0),
            Load::Batch(b) => format!("batch {b}"),
        }
    }
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Load::Users(1) => write!(f, "1 user"),
            Load::Users(u) => write!(f, "{u} users"),
            Load::Rate(r) => write!(f, "{} requests/s", r.0),
            Load::Batch(b) => write!(f, "batch of {b}"),
        }
    }
}

// Equality, order and hash compare a rate by `f64::total_cmp` and its bits, so that a load
// can key maps (operating points group requests by it). Why that is sound: `total_cmp` is a
// total order in which two rates are equal exactly when their bits are, so `Eq`, `Ord` and
// `Hash` agree for every value, NaN included. And why it is the order one expects: loads that
// users give are validated finite and positive, where `total_cmp` is the numeric order (no
// NaN, no -0.0 to tell from 0.0). Loads of different modes order as their modes: closed, open,
// offline.

impl PartialEq for Load {
    fn eq(&self, other: &Load) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Load {}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Load) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Load {
    fn cmp(&self, other: &Load) -> Ordering {
        match (self, other) {
            (Load::Users(a), Load::Users(b)) | (Load::Batch(a), Load::Batch(b)) => a.cmp(b),
            (Load::Rate(a), Load::Rate(b)) => a.0.total_cmp(&b.0),
            _ => self.mode().cmp(&other.mode()),
        }
    }
}

impl Hash for Load {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.mode().hash(state);
        match self {
            Load::Users(n) | Load::Batch(n) => n.hash(state),
            Load::Rate(r) => r.0.to_bits().hash(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    #[test]
    fn display_names_the_load_in_words() {
        assert_eq!(Load::Users(1).to_string(), "1 user");
        assert_eq!(Load::Users(40).to_string(), "40 users");
        assert_eq!(Load::Rate(RequestsPerSec(5.0)).to_string(), "5 requests/s");
        assert_eq!(
            Load::Rate(RequestsPerSec(2.5)).to_string(),
            "2.5 requests/s"
        );
        assert_eq!(Load::Batch(8).to_string(), "batch of 8");
        // The two older spellings some outputs keep.
        assert_eq!(Load::Users(1).demand_text(), "1 users");
        assert_eq!(Load::Rate(RequestsPerSec(20.0)).demand_text(), "20 req/s");
        assert_eq!(Load::Rate(RequestsPerSec(2.5)).cell_text(), "2.5 rps");
        assert_eq!(Load::Batch(32).cell_text(), "batch 32");
    }

    #[test]
    fn mode_level_and_columns_agree() {
        for (load, mode, level) in [
            (Load::Users(8), Mode::Closed, 8.0),
            (Load::Rate(RequestsPerSec(2.5)), Mode::Open, 2.5),
            (Load::Batch(32), Mode::Offline, 32.0),
        ] {
            assert_eq!((load.mode(), load.level()), (mode, level));
            let back = Load::from_columns(mode, load.users(), load.rate(), load.batch_size());
            assert_eq!(back, Some(load));
            // Exactly one of the three columns is filled.
            let filled = [
                load.users().is_some(),
                load.rate().is_some(),
                load.batch_size().is_some(),
            ];
            assert_eq!(filled.iter().filter(|f| **f).count(), 1, "{load}");
        }
        // The mode's own column must be there; another mode's column does not stand in.
        assert_eq!(
            Load::from_columns(Mode::Closed, None, Some(RequestsPerSec(3.0)), None),
            None
        );
        assert_eq!(Load::from_columns(Mode::Offline, Some(4), None, None), None);
        assert_eq!(Mode::Open.column(), "rate_rps");
    }

    #[test]
    fn shares_and_levels_keep_the_kind_of_load() {
        assert_eq!(Load::Users(200).share(3), Load::Users(67));
        assert_eq!(Load::Users(5).share(0), Load::Users(5));
        assert_eq!(
            Load::Rate(RequestsPerSec(20.0)).share(4),
            Load::Rate(RequestsPerSec(5.0))
        );
        assert_eq!(Load::Batch(9).share(2), Load::Batch(5));
        assert_eq!(Load::Users(200).with_level(0.2), Load::Users(1));
        assert_eq!(Load::Users(200).with_level(6.5), Load::Users(7));
        assert_eq!(
            Load::Rate(RequestsPerSec(20.0)).with_level(0.25),
            Load::Rate(RequestsPerSec(0.25))
        );
    }

    #[test]
    fn validation_refuses_what_is_no_load() {
        assert!(Load::Users(0).validate("--users").is_err());
        assert!(Load::Batch(0).validate("batch_size").is_err());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Load::Rate(RequestsPerSec(bad))
                .validate("--rate")
                .unwrap_err();
            assert_eq!(e.what, "--rate");
        }
        assert_eq!(Load::Users(3).validate("--users"), Ok(Load::Users(3)));
    }

    /// Loads key maps: equal loads hash alike, and they order by mode, then by amount.
    #[test]
    fn loads_are_ordered_and_hashable() {
        let rate = |x: f64| Load::Rate(RequestsPerSec(x));
        let loads = [
            Load::Batch(2),
            rate(10.0),
            Load::Users(8),
            rate(0.5),
            Load::Users(1),
            Load::Batch(1),
            rate(0.5),
        ];
        let sorted: Vec<Load> = loads
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            sorted,
            vec![
                Load::Users(1),
                Load::Users(8),
                rate(0.5),
                rate(10.0),
                Load::Batch(1),
                Load::Batch(2)
            ]
        );
        assert_eq!(loads.iter().copied().collect::<HashSet<_>>().len(), 6);
        // Same number, different kinds of load: never equal.
        assert_ne!(Load::Users(8), Load::Batch(8));
        assert_ne!(Load::Users(8), rate(8.0));
        // Eq stays reflexive even for a rate no validation would let through.
        assert_eq!(rate(f64::NAN), rate(f64::NAN));
    }
}
