//! `<results>/fleet-state.json`: the fate of every run of a campaign, the one record both
//! backends keep, so that a second `pilot fleet run` skips what is done and resumes the rest.
//!
//! Why a file of its own, written atomically (a temporary file renamed over it): a campaign is
//! stopped by a lost terminal, a node drain or Ctrl-C at any moment; the record must always be
//! a whole one, either before or after the change. It holds no measurement: the runs' own
//! directories do, and nothing here ever deletes them.

use crate::error::FleetError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The state file's name in the results directory.
pub const STATE_FILE: &str = "fleet-state.json";

/// What became of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Not started yet, or interrupted: the next `fleet run` starts or resumes it.
    Pending,
    /// Started and not finished (or the process running it was killed): resumed next time.
    Running,
    /// Every level measured.
    Done,
    /// Ended without finishing, with the reason; retried by the next `fleet run` while it
    /// has attempts left.
    Failed,
    /// The engine ran out of GPU memory (an OOMKilled container, or the engine's own error).
    OutOfMemory,
    /// No node could take the pod within the schedule timeout.
    Unschedulable,
}

impl Fate {
    pub fn name(self) -> &'static str {
        match self {
            Fate::Pending => "pending",
            Fate::Running => "running",
            Fate::Done => "done",
            Fate::Failed => "failed",
            Fate::OutOfMemory => "oom",
            Fate::Unschedulable => "unschedulable",
        }
    }

    /// The fate of a run that ended with this error text: out of memory where core's failure
    /// classifier (the one characterize files failed requests under) says so, else failed.
    pub fn of_failure(error_text: &str) -> Fate {
        match pilot_core::metrics::FailureKind::classify(error_text) {
            pilot_core::metrics::FailureKind::OutOfMemory => Fate::OutOfMemory,
            _ => Fate::Failed,
        }
    }

    /// Whether the run ended without its levels and may be tried again.
    pub fn is_failure(self) -> bool {
        matches!(self, Fate::Failed | Fate::OutOfMemory | Fate::Unschedulable)
    }
}

/// One run's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub fate: Fate,
    /// Times the run was started (each `fleet run`, each pod the backend retried).
    pub attempts: u32,
    /// Why it failed, from the run's error, the pod's status or its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds since the Unix epoch of the last change.
    pub updated: u64,
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetState {
    /// The campaign's name, so a results directory is not shared by two plans unknowingly.
    pub fleet: String,
    pub runs: BTreeMap<String, RunState>,
    #[serde(skip)]
    path: PathBuf,
}

impl FleetState {
    /// Each of `ids`' runs with its fate and the reason recorded for it, in that order: what
    /// a backend reports when it stops.
    pub fn fates<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, Fate, Option<String>)> {
        ids.into_iter()
            .map(|id| {
                let s = &self.runs[id];
                (id.to_string(), s.fate, s.reason.clone())
            })
            .collect()
    }

    /// The state in `dir` (created if missing), with every run of the plan in it: those it
    /// does not have yet are pending. A state written by another campaign is refused.
    pub fn open(dir: &Path, fleet: &str, run_ids: &[String]) -> Result<FleetState, FleetError> {
        std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
            what: "create the results directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(STATE_FILE);
        let mut state = match FleetState::read(&path)? {
            Some(s) if s.fleet != fleet => {
                return Err(FleetError::State {
                    path,
                    reason: format!(
                        "it belongs to the campaign '{}', not '{fleet}'; give this plan its own --results DIR",
                        s.fleet
                    ),
                });
            }
            Some(s) => s,
            None => FleetState {
                fleet: fleet.to_string(),
                runs: BTreeMap::new(),
                path: path.clone(),
            },
        };
        for id in run_ids {
            state.runs.entry(id.clone()).or_insert(RunState {
                fate: Fate::Pending,
                attempts: 0,
                reason: None,
                updated: now(),
            });
        }
        state.save()?;
        Ok(state)
    }

    /// The state at `path`; `None` where there is none.
    pub fn read(path: &Path) -> Result<Option<FleetState>, FleetError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FleetError::State {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        let mut s: FleetState = serde_json::from_str(&text).map_err(|e| FleetError::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        s.path = path.to_path_buf();
        Ok(Some(s))
    }

    /// Records a run's fate (and a new attempt when it starts running) and saves.
    pub fn set(&mut self, id: &str, fate: Fate, reason: Option<String>) -> Result<(), FleetError> {
        let r = self.runs.entry(id.to_string()).or_insert(RunState {
            fate,
            attempts: 0,
            reason: None,
            updated: 0,
        });
        if fate == Fate::Running {
            r.attempts += 1;
        }
        r.fate = fate;
        r.reason = reason;
        r.updated = now();
        self.save()
    }

    pub fn fate(&self, id: &str) -> Fate {
        self.runs.get(id).map_or(Fate::Pending, |r| r.fate)
    }

    /// Writes the state to a temporary file beside it, then renames it over the old one.
    pub fn save(&self) -> Result<(), FleetError> {
        let io = |what, source| FleetError::Io {
            what,
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(self).expect("the state serializes");
        pilot_core::replace::replace_file(
            &self.path,
            |tmp| std::fs::write(tmp, text).map_err(|e| io("write", e)),
            |e| io("replace", e),
        )
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engines_out_of_memory_error_is_an_oom_fate() {
        assert_eq!(
            Fate::of_failure("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate"),
            Fate::OutOfMemory
        );
        assert_eq!(
            Fate::of_failure("container engine: OOMKilled"),
            Fate::OutOfMemory
        );
        assert_eq!(Fate::of_failure("connection refused"), Fate::Failed);
    }

    #[test]
    fn the_state_survives_a_reopen_and_keeps_fates() {
        let dir = tempfile::tempdir().unwrap();
        let ids = vec!["a".to_string(), "b".to_string()];
        let mut s = FleetState::open(dir.path(), "f", &ids).unwrap();
        s.set("a", Fate::Running, None).unwrap();
        s.set("a", Fate::Done, None).unwrap();
        s.set("b", Fate::Running, None).unwrap();
        s.set("b", Fate::Failed, Some("boom".into())).unwrap();
        let again = FleetState::open(dir.path(), "f", &ids).unwrap();
        assert_eq!(again.fate("a"), Fate::Done);
        assert_eq!(again.runs["b"].reason.as_deref(), Some("boom"));
        assert_eq!(again.runs["b"].attempts, 1);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn another_campaigns_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        FleetState::open(dir.path(), "one", &[]).unwrap();
        let e = FleetState::open(dir.path(), "two", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'one'") && e.contains("--results"), "{e}");
    }
}
