//! Local source files, opened without ever following a path out of their root.
//!
//! A file is opened with `openat2(2)` relative to a descriptor of the root directory its source
//! lies under (`AUTOLOADER_FILE_ROOTS`), with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the
//! kernel itself refuses, while resolving the path, every step that would leave the root (a
//! symlink to an absolute path or out through `..`, anywhere along the path) and every `/proc`
//! magic link. The run then reads only through the descriptor it got, so the file checked is the
//! file read: a symlink planted, or a directory swapped for one, after the listing or between
//! two reads changes nothing. Symlinks that stay inside the root are followed.
//!
//! This module holds the crate's only `unsafe` code: the `openat2` system call, which neither
//! `std` nor a dependency already in the build offers safely.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// A root directory, held open: files are opened beneath it.
#[derive(Debug)]
pub struct Root {
    dir: File,
    path: PathBuf,
}

/// Why a file beneath a root could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Resolving the path would leave the root (a symlink or `..` out of it, a magic link).
    Escapes,
    /// Not a regular file (a directory, a FIFO, a device...).
    NotAFile,
    /// The kernel has no `openat2` (Linux before 5.6, or a sandbox that forbids it).
    Unsupported,
    Io(io::Error),
}

impl OpenError {
    /// The error as a run shows it, after the file's name.
    pub fn describe(&self, root: &Path) -> String {
        match self {
            OpenError::Escapes => format!(
                "leads outside {} (a symlink or '..' out of the allowed directory, \
                 AUTOLOADER_FILE_ROOTS); it was not read",
                root.display()
            ),
            OpenError::NotAFile => "is not a regular file; it was not read".into(),
            OpenError::Unsupported => "this kernel cannot open a file confined to a directory \
                 (openat2 with RESOLVE_BENEATH, Linux 5.6 or later): local files are not read"
                .into(),
            OpenError::Io(e) => format!("cannot open: {e}"),
        }
    }
}

impl Root {
    /// Opens the directory `path` (a root of `AUTOLOADER_FILE_ROOTS`, already resolved).
    pub fn open(path: &Path) -> io::Result<Root> {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Root {
            dir,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the regular file at `relative` below the root for reading, never leaving the root
    /// while resolving it. A FIFO is opened without waiting for a writer, then refused.
    pub fn open_file(&self, relative: &Path) -> Result<File, OpenError> {
        let file = openat2_beneath(&self.dir, relative)?;
        match file.metadata() {
            Ok(m) if m.is_file() => Ok(file),
            Ok(_) => Err(OpenError::NotAFile),
            Err(e) => Err(OpenError::Io(e)),
        }
    }
}

/// `openat2(dir, relative, O_RDONLY | O_NONBLOCK, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn openat2_beneath(dir: &File, relative: &Path) -> Result<File, OpenError> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    /// `struct open_how` of `<linux/openat2.h>` (libc's is `non_exhaustive`).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }

    let path = std::ffi::CString::new(relative.as_os_str().as_bytes())
        .map_err(|e| OpenError::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // The kernel answers EAGAIN when a concurrent rename may have let `..` escape: try again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        // SAFETY: `path` is a NUL-terminated string and `how` an `open_how` of the size given;
        // both outlive the call, which reads them and writes nothing of ours. `dir` is an open
        // descriptor for the duration of the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            let fd = i32::try_from(fd).map_err(|_| {
                OpenError::Io(io::Error::other(
                    "openat2 returned an impossible descriptor",
                ))
            })?;
            // SAFETY: openat2 succeeded: `fd` is a new descriptor that nothing else owns.
            return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EXDEV | libc::ELOOP) => return Err(OpenError::Escapes),
            Some(libc::ENOSYS) => return Err(OpenError::Unsupported),
            Some(libc::EAGAIN | libc::EINTR) if attempts < 4 => continue,
            _ => return Err(OpenError::Io(e)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn openat2_beneath(_dir: &File, _relative: &Path) -> Result<File, OpenError> {
    Err(OpenError::Unsupported)
}

/// Reads `range` of `file` through its descriptor (on the blocking pool). A file shorter than
/// the range is an error: it changed since it was listed.
pub async fn read_range(file: Arc<File>, range: Range<u64>) -> io::Result<Bytes> {
    let len = usize::try_from(range.end - range.start)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, range.start)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("autoloader-beneath-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir.canonicalize().expect("canonical")
    }

    #[test]
    fn files_open_beneath_their_root_and_nowhere_else() {
        let base = temp("open");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("in/sub")).expect("mkdir");
        std::fs::write(root.join("in/a.json"), b"inside").expect("write");
        std::fs::write(root.join("other.json"), b"elsewhere in the root").expect("write");
        std::fs::write(base.join("secret.json"), b"outside").expect("write");
        let link = |target: &Path, at: &str| {
            std::os::unix::fs::symlink(target, root.join(at)).expect("symlink")
        };
        link(&base.join("secret.json"), "in/abs-out.json");
        link(Path::new("../../secret.json"), "in/rel-out.json");
        link(Path::new("../other.json"), "in/rel-in.json");
        link(&base, "in/dir-out");
        link(Path::new("/proc/self/root/etc/hostname"), "in/magic.json");
        let r = Root::open(&root).expect("root");

        let read = |rel: &str| -> Result<String, OpenError> {
            let f = r.open_file(Path::new(rel))?;
            let mut buf = vec![0; 64];
            let n = f.read_at(&mut buf, 0).map_err(OpenError::Io)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        assert_eq!(read("in/a.json").expect("inside"), "inside");
        assert_eq!(
            read("in/rel-in.json").expect("a link that stays inside"),
            "elsewhere in the root"
        );
        for escape in [
            "in/abs-out.json",
            "in/rel-out.json",
            "in/dir-out/secret.json",
            "in/../../secret.json",
            "in/magic.json",
        ] {
            assert!(
                matches!(read(escape), Err(OpenError::Escapes)),
                "{escape}: {:?}",
                read(escape)
            );
        }
        assert!(matches!(read("in/sub"), Err(OpenError::NotAFile)));
        assert!(matches!(read("in/missing.json"), Err(OpenError::Io(_))));
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A directory swapped for a symlink out of the root: a file opened before reads on from
    /// what was opened; one opened after is refused.
    #[test]
    fn a_directory_swapped_for_a_symlink_changes_nothing() {
        let base = temp("swap");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("in")).expect("mkdir");
        std::fs::create_dir_all(base.join("evil")).expect("mkdir");
        std::fs::write(root.join("in/a.json"), b"good").expect("write");
        std::fs::write(base.join("evil/a.json"), b"evil").expect("write");
        let r = Root::open(&root).expect("root");
        let opened = r.open_file(Path::new("in/a.json")).expect("open");

        std::fs::rename(root.join("in"), root.join("was-in")).expect("move away");
        std::os::unix::fs::symlink(base.join("evil"), root.join("in")).expect("swap");
        let mut buf = [0u8; 4];
        opened.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"good", "reads the file that was opened");
        assert!(matches!(
            r.open_file(Path::new("in/a.json")),
            Err(OpenError::Escapes)
        ));
        let _ = std::fs::remove_dir_all(&base);
    }
}
