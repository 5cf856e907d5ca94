// SPDX-License-Identifier: MPL-2.0

//! ONNX Runtime library resolution and process-wide initialisation.
//!
//! `ort` is built with `load-dynamic`: nothing links against ONNX Runtime at
//! build time and the shared library is `dlopen()`ed at run time. Where it is
//! looked for, in order:
//!
//! 1. an explicit path given by the caller (the element's `ort-library`
//!    property);
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. the set-up folder filled by `scripts/setup.sh`
//!    ([`default_setup_dir`]`/`[`SETUP_LIBRARY_NAME`]), baked in at compile
//!    time;
//! 4. the system: [`SYSTEM_LIBRARY_NAMES`] through the dynamic loader's
//!    search path (`LD_LIBRARY_PATH`, ld.so cache, ...).
//!
//! An explicit path (1 or 2) is authoritative: when one is set nothing else is
//! tried, so a typo never silently falls back to some other ONNX Runtime.
//!
//! ONNX Runtime allows a single library and a single environment per
//! process, so the first successful [`acquire`] loads it and every later call
//! shares the same [`OrtRuntime`].

use std::ffi::OsStr;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::sync::{lock, panic_message};

use super::{elf, files};

/// ONNX Runtime version installed by `scripts/setup.sh`.
pub const ORT_VERSION: &str = "1.31.1";
/// Oldest ONNX Runtime release the plugin supports: `ort` is built for the
/// C API of 1.17 (its floor) and refuses older libraries. The oldest
/// release tested (CI runs the suite on it) is [`OLDEST_TESTED_ORT_VERSION`].
pub const MIN_ORT_VERSION: &str = "1.17";
/// Oldest ONNX Runtime whose PyPI wheel ships the C library (1.19; 1.17 and
/// 1.18 come as release tarballs and NVIDIA's JetPack builds): what
/// `scripts/setup.sh --ort-version` can install and CI tests.
pub const OLDEST_TESTED_ORT_VERSION: &str = "1.19.2";
/// File name of the library inside the set-up folder.
pub const SETUP_LIBRARY_NAME: &str = "libonnxruntime.so.1.31.1";
/// Names tried through the dynamic loader's search path, in order.
pub const SYSTEM_LIBRARY_NAMES: [&str; 2] = ["libonnxruntime.so", "libonnxruntime.so.1"];
/// Environment variable naming the library explicitly (same as `ort`'s).
pub const DYLIB_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// Name of the ONNX Runtime environment (shows up in ONNX Runtime's logs).
const ENVIRONMENT_NAME: &str = "sam2track";

/// Folder `scripts/setup.sh` installs ONNX Runtime into, as baked in at
/// compile time (`SAM2TRACK_ORT_DIR` at build time, else `<repo>/.ort/lib`).
pub fn default_setup_dir() -> &'static Path {
    Path::new(env!("SAM2TRACK_DEFAULT_ORT_DIR"))
}

/// Where a candidate library path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Given explicitly by the caller.
    Explicit,
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// The set-up folder baked in at compile time.
    SetupDir,
    /// A bare library name resolved by the dynamic loader.
    System,
}

impl Source {
    /// Whether the candidate is a file path whose existence can be checked
    /// before loading (system names are resolved by the dynamic loader).
    fn is_file_path(self) -> bool {
        !matches!(self, Source::System)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Explicit => "explicitly configured",
            Source::EnvVar => DYLIB_PATH_ENV,
            Source::SetupDir => "set-up folder",
            Source::System => "dynamic loader search path",
        })
    }
}

/// One place ONNX Runtime may be loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub source: Source,
    pub path: PathBuf,
}

impl Candidate {
    fn new(source: Source, path: impl Into<PathBuf>) -> Self {
        Self {
            source,
            path: path.into(),
        }
    }
}

/// A candidate that was tried and why it could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub candidate: Candidate,
    pub failure: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.candidate.path.display(),
            self.candidate.source,
            self.failure
        )
    }
}

/// Failure reason recorded for a file candidate that does not exist.
pub const NOT_FOUND: &str = "file not found";

fn list_attempts(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why ONNX Runtime is not available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// No candidate could be loaded; lists every path tried, in order.
    #[error(
        "could not load ONNX Runtime (>= {MIN_ORT_VERSION}); tried: {}",
        list_attempts(.attempts)
    )]
    NotLoaded { attempts: Vec<Attempt> },
    /// Another library is already loaded in this process.
    #[error(
        "ONNX Runtime is already loaded in this process from {}, so {} cannot be loaded as well \
         (only one ONNX Runtime library per process)",
        .loaded.display(),
        .requested.display()
    )]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },
    /// The library loaded but its environment could not be created. The
    /// library stays bound to the process, so this failure is permanent.
    #[error(
        "ONNX Runtime was loaded from {} but creating its environment failed: {message}",
        .library.display()
    )]
    Environment { library: PathBuf, message: String },
}

impl RuntimeError {
    /// Every library path this error is about, in the order they were tried.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            RuntimeError::NotLoaded { attempts } => attempts
                .iter()
                .map(|a| a.candidate.path.as_path())
                .collect(),
            RuntimeError::AlreadyLoaded { loaded, requested } => vec![requested, loaded],
            RuntimeError::Environment { library, .. } => vec![library],
        }
    }
}

/// The candidates to try, in order.
///
/// `explicit` and `env_value` (the value of [`DYLIB_PATH_ENV`]) are
/// authoritative: the first one that is set and non-empty is the only
/// candidate. Otherwise the set-up folder comes first, then the system names.
pub fn candidates(
    explicit: Option<&Path>,
    env_value: Option<&OsStr>,
    setup_dir: &Path,
) -> Vec<Candidate> {
    if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return vec![Candidate::new(Source::Explicit, path)];
    }
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        return vec![Candidate::new(Source::EnvVar, value)];
    }
    std::iter::once(Candidate::new(
        Source::SetupDir,
        setup_dir.join(SETUP_LIBRARY_NAME),
    ))
    .chain(
        SYSTEM_LIBRARY_NAMES
            .iter()
            .map(|name| Candidate::new(Source::System, *name)),
    )
    .collect()
}

/// Walks `candidates` in order: file paths that `check` refuses (missing:
/// [`NOT_FOUND`], a directory, a truncated library...) are skipped with its
/// reason, the others are handed to `load` until one succeeds. Returns the
/// winning candidate with `load`'s value, or every attempt made.
pub fn resolve<T>(
    candidates: &[Candidate],
    check: impl Fn(&Path) -> Result<(), String>,
    mut load: impl FnMut(&Candidate) -> Result<T, String>,
) -> Result<(Candidate, T), RuntimeError> {
    let mut attempts = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        if candidate.source.is_file_path()
            && let Err(failure) = check(&candidate.path)
        {
            attempts.push(Attempt {
                candidate: candidate.clone(),
                failure,
            });
            continue;
        }
        match load(candidate) {
            Ok(value) => return Ok((candidate.clone(), value)),
            Err(failure) => attempts.push(Attempt {
                candidate: candidate.clone(),
                failure,
            }),
        }
    }
    Err(RuntimeError::NotLoaded { attempts })
}

/// Largest shared library accepted (ONNX Runtime's CPU library is ~20 MB,
/// GPU builds a few hundred).
pub const MAX_LIBRARY_BYTES: u64 = 4 << 30;

/// Checks a library file before `dlopen()`: a regular file holding a
/// complete 64-bit ELF image (header, program and section header tables and
/// every segment inside the file). `dlopen()` maps a truncated library (a
/// half-finished download) and the process dies of SIGBUS on first touch of
/// the missing pages; this turns that into an error naming what is wrong.
pub fn check_library_file(path: &Path) -> Result<(), String> {
    use std::io::Read;

    let metadata = files::check_regular(path, "a shared library", MAX_LIBRARY_BYTES).map_err(
        |err| match err {
            files::FileError::Missing(_) => NOT_FOUND.to_owned(),
            files::FileError::NotRegular { kind, .. } => format!("is {kind}, not a library file"),
            other => other.to_string(),
        },
    )?;
    let mut header = [0u8; 64];
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let got = file
        .read(&mut header)
        .map_err(|e| format!("cannot read: {e}"))?;
    elf::check_complete(&header[..got], metadata.len(), |offset, buf| {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(buf))
            .map_err(|e| format!("cannot read: {e}"))
    })
}

/// Decides whether a caller asking for `explicit` may share the runtime
/// already loaded from `loaded`. `canonical` resolves a path to its
/// canonical form (`None` when it cannot be resolved).
pub fn check_reuse(
    loaded: &Path,
    explicit: Option<&Path>,
    check: impl Fn(&Path) -> Result<(), String>,
    canonical: impl Fn(&Path) -> Option<PathBuf>,
) -> Result<(), RuntimeError> {
    let Some(requested) = explicit.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if requested == loaded {
        return Ok(());
    }
    if let Err(failure) = check(requested) {
        return Err(RuntimeError::NotLoaded {
            attempts: vec![Attempt {
                candidate: Candidate::new(Source::Explicit, requested),
                failure,
            }],
        });
    }
    match (canonical(requested), canonical(loaded)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(RuntimeError::AlreadyLoaded {
            loaded: loaded.to_path_buf(),
            requested: requested.to_path_buf(),
        }),
    }
}

/// The loaded ONNX Runtime library and its process-wide environment.
#[derive(Debug)]
pub struct OrtRuntime {
    library: PathBuf,
    version: String,
    source: Source,
    environment: ort::environment::Environment,
    /// Whether [`register_shared_cpu_arena`] succeeded (sessions then share it).
    shared_arena: bool,
}

impl OrtRuntime {
    /// Path (or bare name, for [`Source::System`]) the library was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Which step of the search order found the library.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The library's version, e.g. `1.31.1` (`OrtGetApiBase()->GetVersionString()`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The process-wide ONNX Runtime environment sessions are created in.
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }

    /// Whether the environment holds the shared CPU arena sessions use.
    pub fn shared_arena(&self) -> bool {
        self.shared_arena
    }
}

/// Registers one CPU memory arena in the environment for every session
/// created with `session.use_env_allocators` (see `engine::model`).
///
/// By default each session has its own arena, and an arena keeps the largest
/// set of intermediate tensors its graph ever needed, rounded up: four graphs
/// (one run after the other) then hold the sum of their peaks. Shared, they
/// hold about the largest single one. Without an arena at all, large tensors
/// come fresh from the system on every run (page faults on hundreds of MB a
/// frame: measured ~1.8x slower memory attention), so an arena it is. It
/// grows by powers of two (ONNX Runtime's default): measured at 1024 input,
/// 1 object, peak RSS 754 MiB against 933 MiB growing by exactly what is
/// requested (regions cut to one request's size fragment: a later, larger
/// request cannot reuse them), at the same speed.
fn register_shared_cpu_arena(environment: &ort::environment::Environment) -> bool {
    use ort::AsPointer;
    use std::ptr;

    let api = ort::api();
    // SAFETY: plain ONNX Runtime C API calls on valid pointers: the environment
    // outlives this call, every out-pointer is initialised by the callee before
    // use, and every object created here is released here (a failed call
    // returns a status we read and release).
    unsafe {
        let ok = |status: ort::sys::OrtStatusPtr| {
            if status.0.is_null() {
                true
            } else {
                (api.ReleaseStatus)(status.0);
                false
            }
        };
        let keys = [c"arena_extend_strategy".as_ptr()];
        let values = [0usize]; // kNextPowerOfTwo
        let mut cfg: *mut ort::sys::OrtArenaCfg = ptr::null_mut();
        if !ok((api.CreateArenaCfgV2)(
            keys.as_ptr(),
            values.as_ptr(),
            1,
            &mut cfg,
        )) {
            return false;
        }
        let mut info: *mut ort::sys::OrtMemoryInfo = ptr::null_mut();
        let registered = ok((api.CreateCpuMemoryInfo)(
            ort::sys::OrtAllocatorType::OrtArenaAllocator,
            ort::sys::OrtMemType::OrtMemTypeDefault,
            &mut info,
        )) && ok((api.CreateAndRegisterAllocator)(
            environment.ptr().cast_mut(),
            info,
            cfg,
        ));
        if !info.is_null() {
            (api.ReleaseMemoryInfo)(info);
        }
        (api.ReleaseArenaCfg)(cfg);
        registered
    }
}

enum Global {
    Unloaded,
    Ready(Arc<OrtRuntime>),
    /// The library was bound to the process but the environment failed;
    /// ONNX Runtime cannot be swapped any more, so the error is remembered.
    Failed(RuntimeError),
}

static GLOBAL: Mutex<Global> = Mutex::new(Global::Unloaded);

/// The version string of the ONNX Runtime library at `path`, already
/// loaded by `ort` (`dlopen()` hands back the same library, counted once
/// more, and this handle's drop counts it down again).
fn library_version(path: &Path) -> Result<String, String> {
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the library is ONNX Runtime, loaded and initialised by `ort`
    // already; OrtGetApiBase has this signature in every release, returns a
    // static table, and GetVersionString a static NUL-terminated string.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let get: libloading::Symbol<GetApiBase> =
            lib.get(b"OrtGetApiBase\0").map_err(|e| e.to_string())?;
        let base = get();
        if base.is_null() {
            return Err("OrtGetApiBase() returned NULL".into());
        }
        let version = ((*base).GetVersionString)();
        Ok(std::ffi::CStr::from_ptr(version)
            .to_string_lossy()
            .into_owned())
    }
}

/// `ort`'s loading error with the dynamic loader's reason (`dlerror()`),
/// which its message leaves in the error's source.
fn load_error_text(err: &ort::LoadDynamicError) -> String {
    let ort::LoadDynamicError::Dlopen { error, path } = err else {
        return err.to_string();
    };
    let mut text = format!("cannot load {}: {error}", path.display());
    let mut source = std::error::Error::source(error);
    while let Some(reason) = source {
        text.push_str(&format!(": {reason}"));
        source = reason.source();
    }
    text
}

/// `dlopen()`s one candidate through `ort`, never letting a panic escape.
fn load_library(candidate: &Candidate) -> Result<ort::environment::EnvironmentBuilder, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| ort::init_from(&candidate.path))) {
        Ok(Ok(builder)) => Ok(builder),
        Ok(Err(err)) => Err(load_error_text(&err)),
        Err(payload) => Err(format!(
            "panicked while loading: {}",
            panic_message(payload.as_ref())
        )),
    }
}

/// Path of the ONNX Runtime library loaded in this process, if any.
pub fn loaded_library() -> Option<PathBuf> {
    match &*lock(&GLOBAL) {
        Global::Ready(runtime) => Some(runtime.library.clone()),
        _ => None,
    }
}

/// Returns the process-wide ONNX Runtime, loading it on first use following
/// the search order in the module documentation. `explicit` is the caller's
/// explicit library path, if any.
///
/// Once loaded, later calls share the same runtime; asking explicitly for a
/// different library then fails with [`RuntimeError::AlreadyLoaded`].
pub fn acquire(explicit: Option<&Path>) -> Result<Arc<OrtRuntime>, RuntimeError> {
    let mut global = lock(&GLOBAL);
    match &*global {
        Global::Ready(runtime) => {
            check_reuse(&runtime.library, explicit, check_library_file, |p| {
                p.canonicalize().ok()
            })?;
            return Ok(Arc::clone(runtime));
        }
        Global::Failed(err) => return Err(err.clone()),
        Global::Unloaded => {}
    }

    let env_value = std::env::var_os(DYLIB_PATH_ENV);
    let list = candidates(explicit, env_value.as_deref(), default_setup_dir());
    let (candidate, builder) = resolve(&list, check_library_file, load_library)?;

    // The library is now bound to the process for good.
    let version = library_version(&candidate.path).unwrap_or_else(|e| format!("unknown ({e})"));
    let built = panic::catch_unwind(AssertUnwindSafe(|| {
        builder
            .with_name(ENVIRONMENT_NAME)
            .with_telemetry(false)
            .build()
    }));
    let message = match built {
        Ok(Ok(environment)) => {
            let shared_arena = register_shared_cpu_arena(&environment);
            let runtime = Arc::new(OrtRuntime {
                version,
                shared_arena,
                library: candidate.path,
                source: candidate.source,
                environment,
            });
            *global = Global::Ready(Arc::clone(&runtime));
            return Ok(runtime);
        }
        Ok(Err(err)) => err.to_string(),
        Err(payload) => format!("panicked: {}", panic_message(payload.as_ref())),
    };
    let err = RuntimeError::Environment {
        library: candidate.path,
        message,
    };
    *global = Global::Failed(err.clone());
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETUP: &str = "/opt/setup";

    fn setup_lib() -> PathBuf {
        Path::new(SETUP).join(SETUP_LIBRARY_NAME)
    }

    fn paths(list: &[Candidate]) -> Vec<(Source, PathBuf)> {
        list.iter().map(|c| (c.source, c.path.clone())).collect()
    }

    #[test]
    fn explicit_path_is_the_only_candidate() {
        let list = candidates(
            Some(Path::new("/x/libonnxruntime.so")),
            Some(OsStr::new("/env/libonnxruntime.so")),
            Path::new(SETUP),
        );
        assert_eq!(
            paths(&list),
            vec![(Source::Explicit, PathBuf::from("/x/libonnxruntime.so"))]
        );
    }

    #[test]
    fn env_var_comes_second_and_is_authoritative() {
        let list = candidates(
            None,
            Some(OsStr::new("/env/libonnxruntime.so")),
            Path::new(SETUP),
        );
        assert_eq!(
            paths(&list),
            vec![(Source::EnvVar, PathBuf::from("/env/libonnxruntime.so"))]
        );
        // An empty explicit path counts as unset.
        let list = candidates(
            Some(Path::new("")),
            Some(OsStr::new("/env/libonnxruntime.so")),
            Path::new(SETUP),
        );
        assert_eq!(list[0].source, Source::EnvVar);
    }

    #[test]
    fn default_order_is_setup_dir_then_system() {
        for env in [None, Some(OsStr::new(""))] {
            let list = candidates(None, env, Path::new(SETUP));
            assert_eq!(
                paths(&list),
                vec![
                    (Source::SetupDir, setup_lib()),
                    (Source::System, PathBuf::from("libonnxruntime.so")),
                    (Source::System, PathBuf::from("libonnxruntime.so.1")),
                ]
            );
        }
    }

    #[test]
    fn resolve_takes_the_first_loadable_candidate() {
        let list = candidates(None, None, Path::new(SETUP));
        let mut loaded = Vec::new();
        let (winner, value) = resolve(
            &list,
            |_| Ok(()),
            |c| {
                loaded.push(c.path.clone());
                Ok(42)
            },
        )
        .unwrap();
        assert_eq!(winner.source, Source::SetupDir);
        assert_eq!(value, 42);
        assert_eq!(loaded, vec![setup_lib()]);
    }

    #[test]
    fn resolve_skips_missing_files_but_tries_system_names() {
        let list = candidates(None, None, Path::new(SETUP));
        let mut loaded = Vec::new();
        let (winner, ()) = resolve(
            &list,
            |_| Err(NOT_FOUND.to_owned()),
            |c| {
                loaded.push(c.path.clone());
                if c.path == Path::new("libonnxruntime.so.1") {
                    Ok(())
                } else {
                    Err("cannot open shared object file".to_owned())
                }
            },
        )
        .unwrap();
        assert_eq!(winner.path, PathBuf::from("libonnxruntime.so.1"));
        // The missing set-up library was never handed to the loader.
        assert_eq!(
            loaded,
            vec![
                PathBuf::from("libonnxruntime.so"),
                PathBuf::from("libonnxruntime.so.1")
            ]
        );
    }

    #[test]
    fn resolve_error_lists_every_attempt_in_order() {
        let list = candidates(None, None, Path::new(SETUP));
        let err = resolve(
            &list,
            |_| Err(NOT_FOUND.to_owned()),
            |c| Err::<(), _>(format!("no {}", c.path.display())),
        )
        .unwrap_err();
        let RuntimeError::NotLoaded { ref attempts } = err else {
            panic!("unexpected error {err:?}");
        };
        assert_eq!(attempts.len(), 3);
        assert_eq!(attempts[0].failure, NOT_FOUND);
        assert_eq!(attempts[1].failure, "no libonnxruntime.so");
        assert_eq!(attempts[2].failure, "no libonnxruntime.so.1");
        assert_eq!(
            err.paths(),
            vec![
                setup_lib().as_path(),
                Path::new("libonnxruntime.so"),
                Path::new("libonnxruntime.so.1")
            ]
        );
        let text = err.to_string();
        let setup = setup_lib().display().to_string();
        let first = text.find(&setup).expect("names the set-up library");
        let second = text
            .find("libonnxruntime.so (")
            .expect("names the system .so");
        let third = text.find("libonnxruntime.so.1 (").expect("names the .so.1");
        assert!(first < second && second < third, "{text}");
        assert!(text.contains("set-up folder"), "{text}");
        assert!(text.contains("dynamic loader search path"), "{text}");
    }

    #[test]
    fn explicit_missing_file_is_not_loaded() {
        let list = candidates(Some(Path::new("/bogus/libort.so")), None, Path::new(SETUP));
        let err = resolve(
            &list,
            |_| Err(NOT_FOUND.to_owned()),
            |_| -> Result<(), String> { panic!("a missing file must not be loaded") },
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("/bogus/libort.so (explicitly configured): file not found")
        );
    }

    #[test]
    fn reuse_rules() {
        let loaded = Path::new("/a/libonnxruntime.so.1.31.1");
        let canon = |p: &Path| {
            Some(if p == Path::new("/link/libonnxruntime.so") {
                loaded.to_path_buf()
            } else {
                p.to_path_buf()
            })
        };
        // No explicit request, or the same library: share it.
        check_reuse(loaded, None, |_| Ok(()), canon).unwrap();
        check_reuse(loaded, Some(Path::new("")), |_| Ok(()), canon).unwrap();
        check_reuse(loaded, Some(loaded), |_| Ok(()), canon).unwrap();
        check_reuse(
            loaded,
            Some(Path::new("/link/libonnxruntime.so")),
            |_| Ok(()),
            canon,
        )
        .unwrap();
        // A missing file is reported as such, naming it.
        let err = check_reuse(
            loaded,
            Some(Path::new("/bogus.so")),
            |_| Err(NOT_FOUND.to_owned()),
            canon,
        )
        .unwrap_err();
        assert!(matches!(err, RuntimeError::NotLoaded { .. }));
        assert!(err.to_string().contains("/bogus.so"));
        // Another existing library cannot be loaded on top.
        let err = check_reuse(
            loaded,
            Some(Path::new("/b/libonnxruntime.so")),
            |_| Ok(()),
            canon,
        )
        .unwrap_err();
        assert!(matches!(err, RuntimeError::AlreadyLoaded { .. }));
        assert_eq!(err.paths(), vec![Path::new("/b/libonnxruntime.so"), loaded]);
    }

    #[test]
    fn acquire_with_a_missing_explicit_path_names_it() {
        // Whatever the process-wide state, a missing explicit file fails
        // without touching it.
        let bogus = Path::new("/nonexistent/sam2track-test/libonnxruntime.so");
        let err = acquire(Some(bogus)).unwrap_err();
        assert!(
            err.to_string().contains(&bogus.display().to_string()),
            "{err}"
        );
    }

    /// A minimal 64-bit little-endian ELF image: header, one program
    /// header whose segment spans `segment_end` bytes from the start.
    fn elf_image(segment_end: u64) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        b[64 + 32..64 + 40].copy_from_slice(&segment_end.to_le_bytes()); // p_filesz
        b
    }

    #[test]
    fn library_files_are_checked_before_loading() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so");
        std::fs::write(&lib, elf_image(120)).unwrap();
        check_library_file(&lib).unwrap();
        // a segment past the end of the file: a half-written download
        std::fs::write(&lib, elf_image(4096)).unwrap();
        let err = check_library_file(&lib).unwrap_err();
        assert!(
            err.contains("truncated library: loadable segment 0 ends at byte 4096"),
            "{err}"
        );
        // cut inside the program header table
        std::fs::write(&lib, &elf_image(120)[..100]).unwrap();
        let err = check_library_file(&lib).unwrap_err();
        assert!(err.contains("program header table"), "{err}");
        std::fs::write(&lib, &elf_image(120)[..30]).unwrap();
        assert!(check_library_file(&lib).unwrap_err().contains("truncated"));
        std::fs::write(&lib, "not a library").unwrap();
        let err = check_library_file(&lib).unwrap_err();
        assert!(err.contains("no ELF header"), "{err}");
        let err = check_library_file(dir.path()).unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
        assert_eq!(
            check_library_file(&dir.path().join("none.so")).unwrap_err(),
            NOT_FOUND
        );
    }

    #[test]
    fn default_setup_dir_is_absolute() {
        assert!(
            default_setup_dir().is_absolute(),
            "{}",
            default_setup_dir().display()
        );
    }
}
