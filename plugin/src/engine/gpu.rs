// SPDX-License-Identifier: MPL-2.0

//! The GPU providers' libraries. Before ONNX Runtime is asked for its CUDA or
//! TensorRT provider, check that the loaded build has the provider library
//! and that every library it needs can be loaded, and name all that are
//! missing. ONNX Runtime itself says only "not enabled in this build" for a
//! CPU build, and names just the first missing library of a GPU build.

use std::path::Path;

/// Libraries a provider opens at run time on top of its `DT_NEEDED` list
/// (ONNX Runtime's CUDA provider loads cuDNN when it first runs a graph).
fn runtime_libraries(provider: &str) -> &'static [&'static str] {
    match provider {
        "cuda" => &["libcudnn.so.9"],
        _ => &[],
    }
}

/// File name of the library of `provider` (`cuda`, `tensorrt`).
pub fn provider_library(provider: &str) -> String {
    format!("libonnxruntime_providers_{provider}.so")
}

/// Checks that the ONNX Runtime loaded from `ort_library` can run
/// `provider`; `Err`: why not, naming every missing file. A library found
/// by bare name through the loader's search path cannot be located: then
/// nothing is checked here and ONNX Runtime reports what it finds.
pub fn check_provider(ort_library: &Path, provider: &str) -> Result<(), String> {
    let Some(dir) = ort_library.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let file = dir.join(provider_library(provider));
    if !file.is_file() {
        return Err(format!(
            "the ONNX Runtime in {} is a CPU build: it has no {} (install the onnxruntime-gpu \
             build, see the README, \"GPU\")",
            dir.display(),
            provider_library(provider)
        ));
    }
    let needed =
        super::elf::needed_libraries(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let missing: Vec<String> = needed
        .iter()
        .map(String::as_str)
        .chain(runtime_libraries(provider).iter().copied())
        .filter(|name| !loadable(dir, name))
        .map(str::to_owned)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let driver = if missing.iter().any(|m| m == "libcuda.so.1") {
        " (libcuda.so.1 comes with the NVIDIA driver: is there a GPU and its driver?)"
    } else {
        ""
    };
    Err(format!(
        "the {provider} provider ({}) needs {}, which the dynamic loader cannot find: install \
         the CUDA/cuDNN{} libraries of these versions (e.g. NVIDIA's nvidia-*-cu13 pip \
         packages for CUDA 13) and add their folders to LD_LIBRARY_PATH{driver}",
        file.display(),
        missing.join(", "),
        if provider == "tensorrt" {
            "/TensorRT"
        } else {
            ""
        },
    ))
}

/// Whether the dynamic loader finds `name` (next to the provider, as its
/// `$ORIGIN` run path allows, or on its search path): opened, then closed.
fn loadable(dir: &Path, name: &str) -> bool {
    let local = dir.join(name);
    // SAFETY: opening a shared library runs its initialisers; these are the
    // libraries ONNX Runtime's provider opens next in any case.
    unsafe {
        (local.is_file() && libloading::Library::new(&local).is_ok())
            || libloading::Library::new(name).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_build_has_no_provider() {
        let dir = tempfile::tempdir().unwrap();
        let ort = dir.path().join("libonnxruntime.so.1.31.1");
        std::fs::write(&ort, "").unwrap();
        let err = check_provider(&ort, "cuda").unwrap_err();
        assert!(err.contains("is a CPU build"), "{err}");
        assert!(err.contains("libonnxruntime_providers_cuda.so"), "{err}");
        // a bare name: the loader's business
        assert!(check_provider(Path::new("libonnxruntime.so"), "cuda").is_ok());
    }

    #[test]
    fn every_missing_library_is_named() {
        // a provider library needing a library that does not exist: the CPU
        // wheel's small providers_shared library with one name changed
        let shared =
            crate::engine::runtime::default_setup_dir().join("libonnxruntime_providers_shared.so");
        let mut bytes = std::fs::read(&shared)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", shared.display()));
        let name = b"libstdc++.so.6\0";
        let at = bytes
            .windows(name.len())
            .position(|w| w == name)
            .expect("libstdc++ among its needed libraries");
        bytes[at + 6] = b'q'; // libstdq++.so.6
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(provider_library("cuda")), &bytes).unwrap();
        let ort = dir.path().join("libonnxruntime.so.1.31.1");
        let err = check_provider(&ort, "cuda").unwrap_err();
        assert!(err.contains("needs libstdq++.so.6"), "{err}");
        assert!(!err.contains("libc.so.6"), "{err}");
        // cuDNN, opened at run time, is named too where it is missing
        let cudnn = loadable(dir.path(), "libcudnn.so.9");
        assert_eq!(err.contains("libcudnn.so.9"), !cudnn, "{err}");
    }
}
