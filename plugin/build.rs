// SPDX-License-Identifier: MPL-2.0

//! Build script: plugin release metadata plus the compile-time default
//! location of the ONNX Runtime library installed by `scripts/setup.sh`.

use std::env;
use std::path::{Path, PathBuf};

/// Build-time override for the ONNX Runtime set-up folder.
const ORT_DIR_ENV: &str = "SAM2TRACK_ORT_DIR";

fn main() {
    // COMMIT_ID / BUILD_REL_DATE for gst::plugin_define!.
    gst_plugin_version_helper::info();

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace_root = manifest_dir
        .parent()
        .expect("the plugin crate lives one level below the workspace root")
        .to_path_buf();

    let ort_dir = match env::var_os(ORT_DIR_ENV) {
        Some(dir) if !dir.is_empty() => absolutize(&workspace_root, Path::new(&dir)),
        _ => workspace_root.join(".ort").join("lib"),
    };
    let ort_dir = ort_dir
        .to_str()
        .unwrap_or_else(|| panic!("{ORT_DIR_ENV} / workspace path must be valid UTF-8"))
        .to_owned();
    println!("cargo:rustc-env=SAM2TRACK_DEFAULT_ORT_DIR={ort_dir}");

    // Re-run when the override changes, when this script changes and when the
    // git HEAD moves (so COMMIT_ID stays current). Only existing paths are
    // listed: cargo re-runs the script on every build for missing ones.
    println!("cargo:rerun-if-env-changed={ORT_DIR_ENV}");
    println!("cargo:rerun-if-changed=build.rs");
    let git_dir = workspace_root.join(".git");
    for path in [git_dir.join("HEAD"), git_dir.join("refs").join("heads")] {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn absolutize(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
