//! Listing a local source tree after a key: what an incremental run lists of a local directory.
//!
//! A file's key is its path below the source directory (`dt=2025-01-01/part-1.json`), compared
//! byte by byte as S3 compares keys. A run wants only the keys after the greatest one loaded, so
//! the walk decides from names alone, before any `stat`, what it may skip: a file whose key sorts
//! at or before it, and a whole directory `d` when every key below it does (`d/` sorts before the
//! key and is not its beginning). A date-partitioned tree then costs the names of its top
//! directory and the files of its newest directories, whatever its age. Hidden names (`.`, `_`)
//! are skipped, directories and all, since no file below one is ever loaded.
//!
//! Everything else is as the whole listing (`object_store`'s local store) does it, so both find
//! the same files under the same names: symlinks are followed (a file they lead out of the
//! tenant's root is refused when it is opened, beneath the root: [`super::local`]), a broken one
//! or a file gone meanwhile is passed over, a name object_store keeps for its own (`name#123`) is
//! not a file, and a name that is not UTF-8 or a symlink loop fails the listing. The walk streams:
//! entries go out in chunks through a small channel as they are found, and the walker holds its
//! open directories, not the tree.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectMeta;

/// Entries sent to the run at once.
const CHUNK: usize = 1_024;

/// The files below `dir` whose key sorts after `start_after`, in the walk's order.
pub fn list_after(
    dir: PathBuf,
    start_after: String,
) -> BoxStream<'static, Result<ObjectMeta, object_store::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Result<ObjectMeta, object_store::Error>>>(2);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK);
        for item in walk(&dir, &start_after) {
            let failed = item.is_err();
            chunk.push(item);
            if chunk.len() >= CHUNK || failed {
                // The run stopped reading (an error, a lost lease): stop walking.
                if tx.blocking_send(std::mem::take(&mut chunk)).is_err() || failed {
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (futures::stream::iter(chunk), rx))
    })
    .flatten()
    .boxed()
}

/// Whether everything at `key` (a directory's when `dir`) sorts at or before `start_after`.
fn passed(key: &str, dir: bool, start_after: &str) -> bool {
    if dir {
        // Every key below `d` begins with `d/`: all are before `start_after` exactly when `d/`
        // is and does not begin it.
        let prefix = format!("{key}/");
        prefix.as_str() < start_after && !start_after.starts_with(&prefix)
    } else {
        key <= start_after
    }
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.first().is_some_and(|c| *c == b'.' || *c == b'_')
}

/// `path`'s key: its path below `dir`, if UTF-8.
fn key_of<'p>(dir: &std::path::Path, path: &'p std::path::Path) -> Option<&'p str> {
    path.strip_prefix(dir).ok().and_then(|r| r.to_str())
}

/// The walk itself, on the blocking pool.
fn walk<'a>(
    dir: &'a std::path::Path,
    start_after: &'a str,
) -> impl Iterator<Item = Result<ObjectMeta, object_store::Error>> + 'a {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(true)
        .into_iter()
        // Names only: the file type comes with the directory entry (a symlink's is its
        // target's, which walkdir looks up).
        .filter_entry(move |e| {
            if e.depth() == 0 {
                return true;
            }
            if hidden(e.file_name()) {
                return false;
            }
            match key_of(dir, e.path()) {
                Some(key) => !passed(key, e.file_type().is_dir(), start_after),
                // Not UTF-8: kept, to fail below as the whole listing does.
                None => true,
            }
        })
        .filter_map(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(e)
                    if e.io_error().map(std::io::Error::kind)
                        == Some(std::io::ErrorKind::NotFound) =>
                {
                    return None
                }
                Err(e) => return Some(Err(generic(e))),
            };
            if !entry.file_type().is_file() {
                return None;
            }
            let Some(key) = key_of(dir, entry.path()) else {
                return Some(Err(generic(format!(
                    "{} is not a UTF-8 name",
                    entry.path().display()
                ))));
            };
            // object_store keeps `name#123` for its own temporary files, and never lists them.
            if key
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                return None;
            }
            let location = match Path::parse(key) {
                Ok(l) => l,
                Err(e) => return Some(Err(e.into())),
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e)
                    if e.io_error().map(std::io::Error::kind)
                        == Some(std::io::ErrorKind::NotFound) =>
                {
                    return None
                }
                Err(e) => return Some(Err(generic(e))),
            };
            Some(Ok(object_meta(location, &meta)))
        })
}

/// The metadata as object_store's local store gives it (its e-tag included), so that the ledger
/// rows of both listings look alike.
fn object_meta(location: Path, m: &std::fs::Metadata) -> ObjectMeta {
    use std::os::unix::fs::MetadataExt;
    let modified = m.modified().ok();
    let mtime = modified
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location,
        last_modified: modified.map(DateTime::<Utc>::from).unwrap_or_default(),
        size: m.len(),
        e_tag: Some(format!("{:x}-{mtime:x}-{:x}", m.ino(), m.len())),
        version: None,
    }
}

fn generic(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[test]
    fn a_directory_is_passed_when_every_key_below_it_is() {
        let after = "dt=2025-01-02/f0500.json";
        assert!(passed("dt=2025-01-01", true, after));
        assert!(!passed("dt=2025-01-02", true, after), "holds later keys");
        assert!(!passed("dt=2025-01-03", true, after));
        assert!(passed("dt=2025-01-02/f0500.json", false, after));
        assert!(passed("dt=2025-01-02/f0499.json", false, after));
        assert!(!passed("dt=2025-01-02/f0501.json", false, after));
        // Keys compare byte by byte: `dt/` sorts before `dt=` ('/' is 0x2f, '=' 0x3d), `e/` after.
        assert!(passed("dt", true, after));
        assert!(!passed("e", true, after));
        assert!(!passed("a", true, "a/b"), "the key lies below it");
        assert!(!passed("a", true, "a/"));
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("autoloader-walk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir.canonicalize().expect("canonical")
    }

    async fn keys(dir: &std::path::Path, after: &str) -> Vec<String> {
        let mut keys: Vec<String> = list_after(dir.to_owned(), after.to_owned())
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("listing");
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn lists_the_keys_after_the_start_and_opens_no_passed_directory() {
        let dir = temp("after");
        for day in ["dt=2025-01-01", "dt=2025-01-02", "dt=2025-01-03"] {
            std::fs::create_dir_all(dir.join(day)).expect("mkdir");
            for f in ["a.json", "b.json"] {
                std::fs::write(dir.join(day).join(f), b"{}").expect("write");
            }
        }
        std::fs::create_dir_all(dir.join("_tmp")).expect("mkdir");
        std::fs::write(dir.join("_tmp/z.json"), b"{}").expect("write");
        std::fs::write(dir.join("dt=2025-01-03/.c.json"), b"{}").expect("write");
        std::fs::write(dir.join("dt=2025-01-03/c.json#12"), b"{}").expect("write");
        std::fs::write(dir.join("zz.json"), b"{}").expect("write");
        // A directory the walk must not enter: a symlink loop below it fails a listing that does.
        std::os::unix::fs::symlink("..", dir.join("dt=2025-01-01/loop")).expect("symlink");
        assert_eq!(
            keys(&dir, "dt=2025-01-02/a.json").await,
            [
                "dt=2025-01-02/b.json",
                "dt=2025-01-03/a.json",
                "dt=2025-01-03/b.json",
                "zz.json"
            ]
        );
        assert_eq!(keys(&dir, "zz.json").await, Vec::<String>::new());
        let whole = list_after(dir.clone(), String::new())
            .try_collect::<Vec<_>>()
            .await;
        assert!(whole.is_err(), "the loop is there to be found");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
