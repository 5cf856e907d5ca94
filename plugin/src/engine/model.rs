// SPDX-License-Identifier: MPL-2.0

//! Exported model directories.
//!
//! A model directory is produced by the export tools under `models/` and
//! holds a `model.json` manifest next to the ONNX graphs it references.
//!
//! This is a placeholder: for now it only checks that the directory and its
//! manifest exist. Parsing and validating the manifest replaces the body of
//! [`check_model_dir`].

use std::io;
use std::path::{Path, PathBuf};

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "model.json";

/// Why a model directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {} does not exist", .0.display())]
    DirMissing(PathBuf),
    #[error("model directory {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot access model directory {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "model directory {} has no {MANIFEST_FILE} (export a model with the tools under models/)",
        .0.display()
    )]
    ManifestMissing(PathBuf),
}

/// Checks that `dir` looks like an exported model directory: it exists, is a
/// directory and contains [`MANIFEST_FILE`].
pub fn check_model_dir(dir: &Path) -> Result<(), ModelError> {
    let metadata = match std::fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(ModelError::DirMissing(dir.to_path_buf()));
        }
        Err(source) => {
            return Err(ModelError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    if !metadata.is_dir() {
        return Err(ModelError::NotADirectory(dir.to_path_buf()));
    }
    if !dir.join(MANIFEST_FILE).is_file() {
        return Err(ModelError::ManifestMissing(dir.to_path_buf()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dir_is_reported_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nope");
        let err = check_model_dir(&dir).unwrap_err();
        assert!(matches!(err, ModelError::DirMissing(ref p) if p == &dir));
        assert!(err.to_string().contains(&dir.display().to_string()));
    }

    #[test]
    fn file_instead_of_dir_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("model.json");
        std::fs::write(&file, "{}").unwrap();
        assert!(matches!(
            check_model_dir(&file),
            Err(ModelError::NotADirectory(_))
        ));
    }

    #[test]
    fn dir_without_manifest_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(matches!(err, ModelError::ManifestMissing(_)));
        assert!(err.to_string().contains(MANIFEST_FILE));
    }

    #[test]
    fn dir_with_manifest_is_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(MANIFEST_FILE), "{}").unwrap();
        check_model_dir(tmp.path()).unwrap();
    }
}
