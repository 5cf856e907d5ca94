// SPDX-License-Identifier: MPL-2.0

//! Reading files the user names (manifests, prompt files, graphs) without
//! hanging or eating memory: only regular files are opened, and reads are
//! capped. A FIFO would block `open()` until a writer comes, `/dev/zero`
//! never ends; both are refused before anything is opened, with what they
//! are in the message.

use std::fmt;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Why a file the user named cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("{} is {kind}, not a regular file", .path.display())]
    NotRegular { path: PathBuf, kind: FileKind },
    #[error(
        "{} is {} bytes, more than the {} allowed for {what}",
        .path.display(), .size, .cap
    )]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        cap: u64,
    },
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// Whether the path names nothing at all (as opposed to something unusable).
    pub fn is_missing(&self) -> bool {
        matches!(self, FileError::Missing(_))
    }
}

/// What a path that is not a regular file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Other,
}

impl FileKind {
    fn of(metadata: &Metadata) -> Option<FileKind> {
        let t = metadata.file_type();
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else if t.is_socket() {
            FileKind::Socket
        } else {
            FileKind::Other
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Socket => "a socket",
            FileKind::Other => "a special file",
        })
    }
}

/// Checks that `path` (links followed) is a regular file of at most `cap`
/// bytes; `what` names the file in the size error. A symbolic-link loop or
/// a permission problem comes back as [`FileError::Io`] with the system's
/// reason.
pub fn check_regular(path: &Path, what: &'static str, cap: u64) -> Result<Metadata, FileError> {
    let metadata = std::fs::metadata(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            FileError::Missing(path.to_path_buf())
        } else {
            FileError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    if let Some(kind) = FileKind::of(&metadata) {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    if metadata.len() > cap {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            what,
            size: metadata.len(),
            cap,
        });
    }
    Ok(metadata)
}

/// Reads a regular UTF-8 text file of at most `cap` bytes (see
/// [`check_regular`]). The read itself is capped too, in case the file
/// grows (or is swapped) between the check and the read.
pub fn read_text(path: &Path, what: &'static str, cap: u64) -> Result<String, FileError> {
    check_regular(path, what, cap)?;
    let io_err = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() as u64 > cap {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            what,
            size: bytes.len() as u64,
            cap,
        });
    }
    String::from_utf8(bytes)
        .map_err(|_| io_err(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_with_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_text(dir.path(), "test", 10).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let err = read_text(Path::new("/dev/zero"), "test", 10).unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        let err = read_text(&fifo, "test", 10).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        let missing = dir.path().join("nothing");
        assert!(read_text(&missing, "test", 10).unwrap_err().is_missing());
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&a, &b).unwrap();
        std::os::unix::fs::symlink(&b, &a).unwrap();
        let err = read_text(&a, "test", 10).unwrap_err();
        assert!(matches!(err, FileError::Io { .. }), "{err}");
        assert!(err.to_string().contains("symbolic links"), "{err}");
    }

    #[test]
    fn size_cap_is_stated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "0123456789x").unwrap();
        let err = read_text(&f, "a test file", 10).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("11 bytes") && text.contains("10 allowed for a test file"),
            "{text}"
        );
        std::fs::write(&f, "0123456789").unwrap();
        assert_eq!(read_text(&f, "a test file", 10).unwrap(), "0123456789");
    }
}
