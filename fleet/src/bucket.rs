//! Results in object storage (`--results s3://bucket/prefix`), through the `object_store`
//! crate (Apache Arrow's; S3 and every S3-compatible store: MinIO, Ceph, R2, GCS's XML API).
//!
//! A fleet's results keep one layout wherever they are (`fleet-state.json`,
//! `runs/<run>/<run dir>/...`). With a bucket, the files are written on local disk first (a
//! staging directory on this machine; an `emptyDir` in a Job's pod) and mirrored:
//!
//! - [`Bucket::push`] uploads every file the bucket lacks, or holds with other content and
//!   older;
//! - [`Bucket::pull`] downloads every object this side lacks, or holds with other content and
//!   older.
//!
//! Content is compared by MD5 against the object's ETag (what S3 and the stores compatible
//! with it give a single-part upload), so a mirror moves only what changed; the newer side
//! wins where both changed. Neither deletes anything on either side, so a mirror never
//! loses a measurement. Credentials come from the standard AWS variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for a store
//! other than AWS, `AWS_ALLOW_HTTP=true` for one without TLS); they are never written to a
//! file, a log or a manifest (a Job reads them from a Secret).

use crate::error::FleetError;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// The URL schemes `--results` takes as object storage.
const SCHEMES: [&str; 2] = ["s3://", "s3a://"];

/// An object-storage location: a bucket and a key prefix. Such URLs carry no credentials, so
/// the text is safe to print and to put in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    /// `s3://bucket/prefix` as given, without a trailing slash.
    pub url: String,
    pub bucket: String,
    /// The key prefix inside the bucket ("" for the bucket's root).
    pub prefix: String,
}

impl BucketUrl {
    /// `Some` for an object-storage URL, `None` for anything else (a directory); an error for
    /// a URL of a scheme pilot cannot write to, or without a bucket.
    pub fn parse(text: &str) -> Result<Option<BucketUrl>, FleetError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(None);
        };
        if !SCHEMES.contains(&format!("{scheme}://").as_str()) {
            return Err(FleetError::Backend(format!(
                "--results {text}: pilot writes results to a directory or to S3-compatible object storage (s3://bucket/prefix), not to {scheme}://"
            )));
        }
        let rest = rest.trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(FleetError::Backend(format!(
                "--results {text}: the URL names no bucket; write s3://bucket/prefix"
            )));
        }
        Ok(Some(BucketUrl {
            url: format!("{scheme}://{rest}"),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }))
    }

    /// The location `rel` (slash-separated) below this one.
    pub fn join(&self, rel: &str) -> BucketUrl {
        BucketUrl {
            url: join_rel(&self.url, rel),
            bucket: self.bucket.clone(),
            prefix: join_rel(&self.prefix, rel),
        }
    }
}

impl std::fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// What a push or a pull moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub files: usize,
    pub bytes: u64,
}

/// An open bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    url: BucketUrl,
}

impl Bucket {
    /// Connects to the bucket of `url` with the credentials and endpoint of the AWS
    /// variables. Nothing is sent until the first push or pull.
    pub fn open(url: &BucketUrl) -> Result<Bucket, FleetError> {
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .build()
            .map_err(|e| {
                FleetError::Backend(format!(
                    "--results {url}: cannot set up the S3 client ({e}); set AWS_REGION, and AWS_ENDPOINT for a store other than AWS"
                ))
            })?;
        Ok(Bucket {
            store: Arc::new(store),
            url: url.clone(),
        })
    }

    pub fn url(&self) -> &BucketUrl {
        &self.url
    }

    fn key(&self, rel: &str) -> ObjectPath {
        ObjectPath::from(self.url.join(rel).prefix)
    }

    fn error(&self, what: &str, e: object_store::Error) -> FleetError {
        FleetError::Backend(format!(
            "{what} {}: {e} (check the bucket exists and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT)",
            self.url
        ))
    }

    /// Every object below `rel`, by its path relative to the bucket URL.
    async fn objects(
        &self,
        rel: &str,
    ) -> Result<Vec<(String, object_store::ObjectMeta)>, FleetError> {
        let base = self.key("");
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.key(rel)))
            .try_collect()
            .await
            .map_err(|e| self.error("list", e))?;
        Ok(listed
            .into_iter()
            .filter_map(|m| {
                let rel: Vec<String> = m
                    .location
                    .prefix_match(&base)?
                    .map(|p| p.as_ref().to_string())
                    .collect();
                Some((rel.join("/"), m))
            })
            .collect())
    }

    /// Uploads `local` (a file, or every file under a directory) to `rel` below the bucket
    /// URL: what the bucket lacks, or holds with other content and older.
    pub async fn push(&self, local: &Path, rel: &str) -> Result<Moved, FleetError> {
        // A listing names what is below a prefix, as a directory: a file is listed from its
        // parent.
        let listed = if local.is_file() {
            rel.rsplit_once('/').map_or("", |(parent, _)| parent)
        } else {
            rel
        };
        let remote: std::collections::HashMap<String, object_store::ObjectMeta> =
            self.objects(listed).await?.into_iter().collect();
        let files = if local.is_file() {
            vec![(String::new(), local.to_path_buf())]
        } else {
            files_under(local)?
        };
        let mut moved = Moved::default();
        for (file_rel, path) in files {
            let key_rel = join_rel(rel, &file_rel);
            let remote_copy = remote.get(&key_rel);
            // A file no newer than its object is skipped unread (the minute-by-minute mirror
            // of a long run must not reread every file); a newer one is uploaded unless its
            // content is the object's.
            let newer = |r: &object_store::ObjectMeta| {
                std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m > SystemTime::from(r.last_modified))
            };
            if remote_copy.is_some_and(|r| !newer(r)) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| io("read", &path, source))?;
            if remote_copy.is_some_and(|r| same_content(r, &bytes)) {
                continue;
            }
            moved.bytes += bytes.len() as u64;
            self.store
                .put(&self.key(&key_rel), PutPayload::from(bytes))
                .await
                .map_err(|e| self.error(&format!("upload {} to", path.display()), e))?;
            moved.files += 1;
        }
        Ok(moved)
    }

    /// Downloads the objects below `rel` into `dir` (keeping their layout): those this side
    /// lacks or holds older. A downloaded file takes the object's time, so the next push
    /// does not upload it back.
    pub async fn pull(&self, rel: &str, dir: &Path) -> Result<Moved, FleetError> {
        let mut moved = Moved::default();
        let strip = rel.trim_matches('/');
        for (key_rel, meta) in self.objects(rel).await? {
            let below = key_rel
                .strip_prefix(strip)
                .unwrap_or(&key_rel)
                .trim_start_matches('/');
            if below.is_empty() || below.split('/').any(|c| c == ".." || c == ".") {
                continue;
            }
            let path = below.split('/').fold(dir.to_path_buf(), |p, c| p.join(c));
            let remote_time = SystemTime::from(meta.last_modified);
            if let Ok(local) = std::fs::read(&path) {
                let local_newer = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= remote_time);
                if same_content(&meta, &local) || local_newer {
                    continue;
                }
            }
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .map_err(|e| self.error(&format!("download {key_rel} from"), e))?
                .bytes()
                .await
                .map_err(|e| self.error(&format!("download {key_rel} from"), e))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| io("create", parent, source))?;
            }
            write_with_time(&path, &bytes, remote_time)?;
            moved.files += 1;
            moved.bytes += bytes.len() as u64;
        }
        Ok(moved)
    }
}

/// Whether an object holds `bytes`: its ETag is their MD5 (a single-part upload's, on S3 and
/// the stores compatible with it); an ETag of another form (a multipart upload's) compares by
/// size alone.
fn same_content(object: &object_store::ObjectMeta, bytes: &[u8]) -> bool {
    use md5::Digest;
    if object.size != bytes.len() as u64 {
        return false;
    }
    let Some(tag) = object.e_tag.as_deref().map(|t| t.trim_matches('"')) else {
        return true;
    };
    if tag.len() != 32 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    let digest = md5::Md5::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.eq_ignore_ascii_case(tag)
}

/// Writes a downloaded file whole ([`pilot_core::replace`]), with the object's time as its
/// modification time.
fn write_with_time(path: &Path, bytes: &[u8], time: SystemTime) -> Result<(), FleetError> {
    pilot_core::replace::replace_file(
        path,
        |tmp| {
            std::fs::write(tmp, bytes).map_err(|source| io("write", tmp, source))?;
            std::fs::File::options()
                .write(true)
                .open(tmp)
                .and_then(|f| f.set_modified(time))
                .map_err(|source| io("set the time of", tmp, source))
        },
        |source| io("rename into", path, source),
    )
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> FleetError {
    FleetError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// `a/b` for slash-separated relative paths, either of which may be empty.
fn join_rel(a: &str, b: &str) -> String {
    let (a, b) = (a.trim_matches('/'), b.trim_matches('/'));
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (false, true) => a.to_string(),
        (false, false) => format!("{a}/{b}"),
    }
}

/// Every regular file under `dir`, with its slash-separated path relative to `dir`; none for
/// a directory that does not exist. Files being written by pilot's atomic writers
/// ([`pilot_core::replace`]) are left out.
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>, FleetError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    while let Some((rel, d)) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.is_empty() => {
                return Ok(out);
            }
            Err(source) => return Err(io("read", &d, source)),
        };
        for entry in entries {
            let entry = entry.map_err(|source| io("read", &d, source))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|source| io("read", &path, source))?;
            let here = join_rel(&rel, &name);
            if kind.is_dir() {
                stack.push((here, path));
            } else if kind.is_file() && !name.starts_with(pilot_core::replace::TEMP_PREFIX) {
                out.push((here, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs a bucket transfer to its end from synchronous code.
pub fn block_on<T>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, FleetError>>,
) -> Result<T, FleetError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| FleetError::Io {
            what,
            path: PathBuf::from("(object storage)"),
            source,
        })?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_is_a_bucket_and_a_prefix_and_a_path_is_not_a_url() {
        let u = BucketUrl::parse("s3://bench/campaigns/week1/")
            .unwrap()
            .unwrap();
        assert_eq!(u.bucket, "bench");
        assert_eq!(u.prefix, "campaigns/week1");
        assert_eq!(u.url, "s3://bench/campaigns/week1");
        let run = u.join("runs/a-b");
        assert_eq!(run.prefix, "campaigns/week1/runs/a-b");
        assert_eq!(run.url, "s3://bench/campaigns/week1/runs/a-b");
        let root = BucketUrl::parse("s3://bench").unwrap().unwrap();
        assert_eq!(root.join("x").prefix, "x");
        assert_eq!(BucketUrl::parse("pilot-fleet/week1").unwrap(), None);
    }

    #[test]
    fn a_url_pilot_cannot_write_to_names_what_it_can() {
        for bad in ["gs://bucket/x", "http://host/x", "s3:///prefix"] {
            let e = BucketUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("s3://bucket"), "{e}");
        }
    }

    #[test]
    fn files_under_a_directory_are_listed_with_slash_paths_and_partial_files_left_out() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("runs/a/levels")).unwrap();
        std::fs::write(d.path().join("fleet-state.json"), "{}").unwrap();
        std::fs::write(d.path().join("runs/a/levels/users-1.parquet"), "x").unwrap();
        std::fs::write(d.path().join("runs/a/.tmp-1-0-summary.csv"), "x").unwrap();
        let rels: Vec<String> = files_under(d.path())
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(rels, ["fleet-state.json", "runs/a/levels/users-1.parquet"]);
        assert!(files_under(&d.path().join("absent")).unwrap().is_empty());
    }
}
