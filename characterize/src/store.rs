//! The run's request table on disk, saved as the run goes so that a crash or Ctrl-C loses at
//! most the last seconds: while a level runs, every few seconds its own requests go to
//! `<run dir>/levels/<level>.parquet` (one file per level, so a save costs the level's size,
//! not the whole run's: rewriting the whole table every 5 s grew with the square of the run's
//! length); at each level's end, and at the run's, the whole table goes to
//! `requests.parquet`, the file other commands read. Each write goes to a temporary file that
//! is then renamed over the old one, so a file on disk is always complete and readable.

use pilot_core::requests::{PointKey, RequestRecord, write_requests};
use pilot_core::schema::SchemaError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every request of the run so far.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    records: Vec<RequestRecord>,
    /// Bumped on every change; a flush only writes a newer version.
    version: u64,
    written: u64,
    io: Arc<Mutex<()>>,
    /// The level being measured: its file and the index of its first record. `None`
    /// between levels, when a flush writes the whole table.
    level: Option<(PathBuf, usize)>,
}

impl Store {
    pub fn new(path: &Path, records: Vec<RequestRecord>) -> Store {
        Store {
            path: path.to_path_buf(),
            records,
            version: 1,
            written: 0,
            io: Arc::new(Mutex::new(())),
            level: None,
        }
    }

    /// A level starts: until [`Store::end_level`], flushes write its records alone, to `file`.
    pub fn begin_level(&mut self, file: PathBuf) {
        self.level = Some((file, self.records.len()));
    }

    /// The level ended: the next flush writes the whole table again.
    pub fn end_level(&mut self) {
        self.level = None;
        self.version += 1;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn records(&self) -> &[RequestRecord] {
        &self.records
    }

    pub fn push(&mut self, r: RequestRecord) {
        self.records.push(r);
        self.version += 1;
    }

    /// Sets the measurement window of a level's measured requests.
    pub fn set_window(&mut self, key: &PointKey, window: Duration) {
        for r in self
            .records
            .iter_mut()
            .filter(|r| &r.point == key && !r.warmup)
        {
            r.window = Some(window);
        }
        self.version += 1;
    }

    /// Writes the table now, on this thread (atomically: temporary file, then rename).
    pub fn flush(store: &Arc<Mutex<Store>>) -> Result<(), SchemaError> {
        let (records, path, version, io) = {
            let s = store.lock().expect("store lock");
            if s.written >= s.version {
                return Ok(());
            }
            let (records, path) = match &s.level {
                Some((file, first)) => (s.records[*first..].to_vec(), file.clone()),
                None => (s.records.clone(), s.path.clone()),
            };
            (records, path, s.version, s.io.clone())
        };
        // One writer at a time, and never an older snapshot over a newer one.
        let _writing = io.lock().expect("io lock");
        if store.lock().expect("store lock").written >= version {
            return Ok(());
        }
        write_atomically(&records, &path)?;
        let mut s = store.lock().expect("store lock");
        s.written = s.written.max(version);
        Ok(())
    }

    /// [`Store::flush`] on a blocking thread, so the measuring tasks are not held up. A failed
    /// write is retried by the next flush; the level-end flush reports errors.
    pub fn flush_in_background(store: &Arc<Mutex<Store>>) {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let _ = Store::flush(&store);
        });
    }
}

/// A new file for a level's requests under `<run dir>/levels/`, named after its label
/// (`users=4` is `users-4.parquet`); a level measured again (`--resume`) gets `-2`, `-3`...
/// rather than replacing what an earlier attempt saved.
pub fn level_file(run_dir: &Path, label: &str) -> PathBuf {
    let dir = run_dir.join("levels");
    let _ = std::fs::create_dir_all(&dir);
    let name: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut file = dir.join(format!("{name}.parquet"));
    let mut n = 2;
    while file.exists() {
        file = dir.join(format!("{name}-{n}.parquet"));
        n += 1;
    }
    file
}

fn write_atomically(records: &[RequestRecord], path: &Path) -> Result<(), SchemaError> {
    pilot_core::replace::replace_file(
        path,
        |tmp| write_requests(records, tmp),
        |e| SchemaError::Write {
            path: path.into(),
            source: e.into(),
        },
    )
}
