//! The directories local sources may read from: the operator's (`AUTOLOADER_FILE_ROOTS`) and each
//! tenant's own inside them, resolved to real paths, and the one check that a path lies under
//! them.

use std::path::{Component, Path, PathBuf};

use super::definition::SourcePath;

/// The directories local sources may read from, resolved to their real paths: the operator's
/// (`AUTOLOADER_FILE_ROOTS`), or a tenant's own inside them ([`FileRoots::within`]). Empty means
/// local sources are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRoots {
    roots: Vec<PathBuf>,
    /// A tenant's roots (the refusal then names the tenant's setting, not the operator's).
    tenant: bool,
}

impl FileRoots {
    /// Resolves each root; a root that does not exist is an error, so a typo is seen at start-up
    /// instead of as a refused ingestion later.
    pub fn new(roots: &[PathBuf]) -> Result<FileRoots, String> {
        let mut out = Vec::new();
        for r in roots.iter().filter(|r| !r.as_os_str().is_empty()) {
            if !r.is_absolute() {
                return Err(format!(
                    "AUTOLOADER_FILE_ROOTS: '{}' is not an absolute path",
                    r.display()
                ));
            }
            let real = r.canonicalize().map_err(|e| {
                format!(
                    "AUTOLOADER_FILE_ROOTS: cannot resolve '{}': {e}",
                    r.display()
                )
            })?;
            out.push(real);
        }
        Ok(FileRoots {
            roots: out,
            tenant: false,
        })
    }

    /// Whether the real path `real` lies under one of the roots.
    pub fn contains(&self, real: &Path) -> bool {
        self.roots.iter().any(|root| real.starts_with(root))
    }

    /// A tenant's roots as an admin gives them, checked and resolved for storing: each an
    /// absolute path without `..` or control characters, lying (after following symlinks) inside
    /// these, the operator's, roots. Returned resolved, without duplicates.
    pub fn admit(&self, roots: &[String]) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for raw in roots {
            if raw.len() > 1024 || raw.chars().any(char::is_control) {
                return Err(
                    "file_roots: each directory is at most 1024 characters, without control characters"
                        .into(),
                );
            }
            let path = Path::new(raw);
            if !path.is_absolute() {
                return Err(format!("file_roots: '{raw}' is not an absolute path"));
            }
            let real = self
                .inside(path, |real, roots| {
                    format!(
                        "{} is outside the directories this server allows ({roots})",
                        real.display()
                    )
                })
                .map_err(|m| format!("file_roots: {m}"))?;
            let real = real.display().to_string();
            if !out.contains(&real) {
                out.push(real);
            }
        }
        Ok(out)
    }

    /// The tenant's stored roots, as a run uses them: each resolved again and still inside these,
    /// the operator's, roots (the operator may have narrowed them since).
    pub fn within(&self, tenant_roots: &[String]) -> Result<FileRoots, String> {
        if self.roots.is_empty() {
            // Local sources are off on this server, whatever the tenant was given.
            return Ok(self.clone());
        }
        let mut roots = Vec::new();
        for raw in tenant_roots {
            roots.push(self.inside(Path::new(raw), |real, roots| {
                format!(
                    "the tenant's file root {} is outside this worker's AUTOLOADER_FILE_ROOTS ({roots})",
                    real.display()
                )
            })?);
        }
        Ok(FileRoots {
            roots,
            tenant: true,
        })
    }

    fn describe(&self) -> String {
        if self.roots.is_empty() {
            return "none".into();
        }
        let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        roots.join(":")
    }

    /// The root the real path `real` lies under (the outermost, when roots nest): the directory
    /// a local source's files are opened beneath, never leaving it.
    pub fn root_of(&self, real: &Path) -> Option<&Path> {
        self.roots
            .iter()
            .filter(|root| real.starts_with(root))
            .min_by_key(|root| root.components().count())
            .map(PathBuf::as_path)
    }

    /// The real directory a `file://` source reads, if it lies under one of the roots after
    /// following every symlink of the part that exists.
    pub fn resolve(&self, source: &SourcePath) -> Result<PathBuf, String> {
        if self.roots.is_empty() {
            return Err(if self.tenant {
                "this tenant may read no local directories: an admin gives it some with \
                 PATCH /api/v1/admin/tenants/{id} {\"file_roots\": [...]}"
                    .into()
            } else {
                "local sources are disabled on this server: AUTOLOADER_FILE_ROOTS lists no directories"
                    .into()
            });
        }
        let raw = source
            .as_str()
            .strip_prefix("file://")
            .ok_or("source_path must start with file://")?;
        let whose = if self.tenant {
            "tenant's file roots"
        } else {
            "allowed directories"
        };
        self.inside(Path::new(raw), |real, roots| {
            format!(
                "source_path {} is outside the {whose} ({roots})",
                real.display()
            )
        })
    }

    /// `path` resolved ([`real_path`]) when it lies under these roots; otherwise the message
    /// `outside` makes of the resolved path and the roots.
    fn inside(
        &self,
        path: &Path,
        outside: impl FnOnce(&Path, String) -> String,
    ) -> Result<PathBuf, String> {
        let real = real_path(path)?;
        if self.contains(&real) {
            Ok(real)
        } else {
            Err(outside(&real, self.describe()))
        }
    }
}

/// `path` with every symlink of its longest existing ancestor followed; the part that does not
/// exist yet is appended as written (it cannot hold a symlink). `..` is refused outright.
fn real_path(path: &Path) -> Result<PathBuf, String> {
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("source_path must not contain '..'".into());
    }
    let mut existing = path.to_path_buf();
    let mut missing = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => {
                let mut out = real;
                for part in missing.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(_) => match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    missing.push(name.to_owned());
                    existing = parent.to_path_buf();
                }
                _ => return Err(format!("cannot resolve {}", path.display())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingestions::definition::SourceType;

    #[test]
    fn local_sources_stay_under_their_roots() {
        let base = std::env::temp_dir().join(format!("autoloader-roots-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("in")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        let link = root.join("escape");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let roots = FileRoots::new(std::slice::from_ref(&root)).expect("roots");
        let src = |p: &Path| {
            SourcePath::parse(SourceType::Local, &format!("file://{}/", p.display()))
                .expect("source path")
        };

        assert!(roots.resolve(&src(&root.join("in"))).is_ok());
        assert_eq!(roots.root_of(&root.join("in/x")), Some(root.as_path()));
        assert_eq!(roots.root_of(&outside), None);
        assert!(
            roots.resolve(&src(&root.join("not-yet/created"))).is_ok(),
            "a directory that does not exist yet is fine when under a root"
        );
        let err = roots.resolve(&src(&outside)).expect_err("outside");
        assert!(err.contains("outside the allowed directories"), "{err}");
        let err = roots
            .resolve(&src(&link.join("x")))
            .expect_err("symlink out");
        assert!(err.contains("outside the allowed directories"), "{err}");
        let err = FileRoots::default()
            .resolve(&src(&root))
            .expect_err("no roots");
        assert!(err.contains("AUTOLOADER_FILE_ROOTS"), "{err}");
        std::fs::remove_dir_all(&base).expect("cleanup");
    }
}
