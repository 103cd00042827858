//! Files replaced whole, never seen half written.
//!
//! Every file pilot rewrites while others may read it (a run's `run.json` and request tables,
//! a fleet's state, a mirrored or downloaded file) is written to a temporary file beside it
//! and renamed over it: a rename within a directory is atomic, so a reader, a crash or a kill
//! finds the old file or the new one, never a torn one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The prefix of every temporary file [`replace_file`] makes (a mirror leaves them out).
pub const TEMP_PREFIX: &str = ".tmp-";

/// Writes `path` through `write`, which fills a temporary file beside it (same directory; its
/// name ends with `path`'s, so the extension that picks a format is kept), then renames it over
/// `path`. A failed write removes the temporary file and leaves `path` as it was.
pub fn replace_file<E>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
    rename_error: impl FnOnce(std::io::Error) -> E,
) -> Result<(), E> {
    let tmp = temp_beside(path);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        rename_error(e)
    })
}

/// A name beside `path` no other writer uses now: the process id and a counter, since threads
/// and processes may replace the same file at once.
fn temp_beside(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_a_failed_write_leaves_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.json");
        std::fs::write(&p, "old").unwrap();
        replace_file(&p, |t| std::fs::write(t, "new"), |e| e).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let e = replace_file(
            &p,
            |t| {
                std::fs::write(t, "half")?;
                Err(std::io::Error::other("disk full"))
            },
            |e| e,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        assert!(temp_beside(&p).to_string_lossy().ends_with("-run.json"));
    }
}
