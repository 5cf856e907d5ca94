// SPDX-License-Identifier: MPL-2.0

//! Hostile input against the element (micro model): each case must end in a
//! clear warning or error, with the stream going on where it can; never a
//! panic, a crash, a hang (bounded by timeouts here) or unbounded memory.
//! See the README, "Robustness".
//!
//! Cases that need a fresh process (ONNX Runtime not loaded yet, or an
//! environment variable read at start) run this test binary again on one
//! `#[ignore]`d child test, with the environment set for the child only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::stream::*;
use common::{micro_dir, setup_library};
use gst::prelude::*;
use gstsam2::sam2track::prompt::{MAX_MASK_SIDE, MAX_PROMPT_FILE_BYTES};

/// Longest a start() may take here (the micro model loads in well under 1 s).
const START_LIMIT: Duration = Duration::from_secs(30);

fn errors(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error]))
        .map(|m| match m.view() {
            gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
            _ => unreachable!(),
        })
        .collect()
}

/// The one warning containing `needle`, taken out of `all`.
fn take_warning(all: &mut Vec<String>, needle: &str) -> String {
    let i = all
        .iter()
        .position(|w| w.contains(needle))
        .unwrap_or_else(|| panic!("no warning with '{needle}' in {all:?}"));
    all.remove(i)
}

fn mask_buffer(width: u32, height: u32) -> gst::Buffer {
    gst::Buffer::from_mut_slice(vec![255u8; (width.max(1) * height.max(1)) as usize])
}

// ------------------------------------------------------------- 1. masks

#[test]
fn zero_size_masks_are_refused_and_the_stream_goes_on() {
    let (mut h, element) = harness("RGB", &format!("prompt=\"{GOLDEN_PROMPT}\""));
    let bus = bus_of(&element);
    assert_eq!(ids(&push_pull(&mut h, 0)), vec![1, 2]);
    for (width, height, field) in [
        (0u32, 4u32, "width"),
        (4, 0, "height"),
        (MAX_MASK_SIDE as u32 + 1, 1, "width"),
    ] {
        let s = gst::Structure::builder("sam2-mask")
            .field("object-id", 1u32)
            .field("mask", mask_buffer(width, height))
            .field("width", width)
            .field("height", height)
            .build();
        assert!(!h.push_event(gst::event::CustomDownstream::new(s.clone())));
        assert!(!h.push_upstream_event(gst::event::CustomUpstream::new(s)));
        let id: u32 = element.emit_by_name(
            "add-mask",
            &[&0u32, &mask_buffer(width, height), &width, &height],
        );
        assert_eq!(id, 0, "add-mask {width}x{height} is refused");
        let mut all = warnings(&bus);
        for _ in 0..3 {
            let w = take_warning(&mut all, &format!("field '{field}'"));
            assert!(w.contains("not between 1 and 16384"), "{w}");
        }
    }
    for t in 1..3 {
        assert_eq!(ids(&push_pull(&mut h, t)), vec![1, 2], "frame {t}");
    }
    assert!(errors(&bus).is_empty());
}

/// Runs the `#[ignore]`d test `name` of this binary in a child process with
/// `env` set; returns its output. The child's own assertions decide.
fn run_child(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the test binary runs again");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {name} failed ({}): {text}",
        out.status
    );
    assert!(
        text.contains("1 passed"),
        "child {name} ran no test: {text}"
    );
    out
}

#[test]
fn a_panic_on_the_inference_thread_leaves_the_element_failed() {
    run_child(
        "child_inference_panic",
        &[("SAM2TRACK_TEST_PANIC", "faulty:1")],
    );
}

#[test]
#[ignore = "run in a child process by a_panic_on_the_inference_thread_leaves_the_element_failed"]
fn child_inference_panic() {
    let (mut h, element) = harness_named("faulty", "RGB", &format!("prompt=\"{GOLDEN_PROMPT}\""));
    let bus = bus_of(&element);
    assert_eq!(ids(&push_pull(&mut h, 0)), vec![1, 2]);
    // frame 1: the injected panic is caught and fails the stream
    assert_eq!(h.push(frame_buffer(1)), Err(gst::FlowError::Error));
    let errs = errors(&bus);
    assert!(
        errs.iter().any(|e| e.contains("inference panicked")),
        "{errs:?}"
    );
    // the element says it failed: no prompt is taken as if nothing happened
    let id: u32 = element.emit_by_name("add-point", &[&0u32, &10f32, &10f32, &true]);
    assert_eq!(id, 0);
    let ok: bool = element.emit_by_name("prompt", &[&"3:point=5,5"]);
    assert!(!ok);
    let mut all = warnings(&bus);
    take_warning(&mut all, "takes no prompts until it is restarted");
    take_warning(&mut all, "takes no prompts until it is restarted");
    // later frames fail at once (no hang)
    assert_eq!(h.push(frame_buffer(2)), Err(gst::FlowError::Error));
}

// --------------------------------------------------------------- 2. ids

#[test]
fn new_object_ids_never_collide_after_the_largest_id() {
    let (mut h, element) = harness(
        "RGB",
        "prompt=\"1:point=80,45;4294967295:box=106,57,137,82\"",
    );
    assert_eq!(ids(&push_pull(&mut h, 0)), vec![1, u32::MAX]);
    let new: Vec<u32> = [(20f32, 20f32), (160., 20.), (20., 90.)]
        .iter()
        .map(|(x, y)| element.emit_by_name("add-point", &[&0u32, x, y, &true]))
        .collect();
    assert_eq!(
        new,
        vec![2, 3, 4],
        "ids after 4294967295 skip 0 and live ones"
    );
    assert_eq!(ids(&push_pull(&mut h, 1)), vec![1, 2, 3, 4, u32::MAX]);
}

// --------------------------------------------------------- 3., 4. files

/// Starts `element` (to PAUSED) on another thread; returns its start error,
/// failing when start() succeeds or takes longer than [`START_LIMIT`].
fn start_error(element: &gst::Element) -> String {
    let bus = bus_of(element);
    let (tx, rx) = mpsc::channel();
    let e = element.clone();
    std::thread::spawn(move || {
        let _ = tx.send(e.set_state(gst::State::Paused).is_err());
    });
    let failed = rx
        .recv_timeout(START_LIMIT)
        .unwrap_or_else(|_| panic!("start() still running after {START_LIMIT:?}: it hangs"));
    assert!(failed, "start() succeeded");
    element.set_state(gst::State::Null).unwrap();
    errors(&bus).join("\n")
}

fn element_with(props: &[(&str, &Path)]) -> gst::Element {
    init();
    let element = gst::ElementFactory::make("sam2track")
        .property("model-dir", micro_dir().to_str().unwrap())
        .build()
        .unwrap();
    for (name, path) in props {
        element.set_property(name, path.to_str().unwrap());
    }
    element
}

#[test]
fn huge_prompt_file_times_are_errors_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.txt");
    for time in ["2e10s", "1e300s", "99999999999:00"] {
        std::fs::write(&file, format!("0 1:point=80,45\n{time} 1:point=1,1\n")).unwrap();
        let element = element_with(&[("prompt-file", &file)]);
        let err = start_error(&element);
        assert!(
            err.contains("line 2") && err.contains("later than the largest stream time"),
            "{time}: {err}"
        );
    }
    // nothing is poisoned: a good file starts in the same process
    std::fs::write(&file, "0 1:point=80,45\n2.5s 1:point=1,1\n").unwrap();
    let element = element_with(&[("prompt-file", &file)]);
    element.set_state(gst::State::Paused).expect("starts");
    element.set_state(gst::State::Null).unwrap();
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success());
}

/// A copy of the micro model that a test may break.
fn micro_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(micro_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

#[test]
fn special_and_oversized_files_fail_fast_saying_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    // prompt files: a device (never ends), a FIFO (open() blocks), a
    // directory, and one over the cap
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let big = dir.path().join("big.txt");
    std::fs::write(&big, vec![b'#'; MAX_PROMPT_FILE_BYTES as usize + 1]).unwrap();
    for (path, says) in [
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (fifo.as_path(), "is a FIFO (named pipe), not a regular file"),
        (dir.path(), "is a directory, not a regular file"),
        (
            big.as_path(),
            "more than the 8388608 allowed for a prompt file",
        ),
    ] {
        let err = start_error(&element_with(&[("prompt-file", path)]));
        assert!(err.contains("prompt-file") && err.contains(says), "{err}");
    }

    // model.json as a FIFO or a link to /dev/zero
    let model = micro_copy();
    let manifest = model.path().join("model.json");
    std::fs::remove_file(&manifest).unwrap();
    mkfifo(&manifest);
    let err = start_error(&element_with(&[("model-dir", model.path())]));
    assert!(err.contains("model.json is a FIFO"), "{err}");
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
    let err = start_error(&element_with(&[("model-dir", model.path())]));
    assert!(err.contains("model.json is a character device"), "{err}");

    // graphs that are a directory or a symlink loop
    let model = micro_copy();
    let graph = model.path().join("mask_decoder.onnx");
    std::fs::remove_file(&graph).unwrap();
    std::fs::create_dir(&graph).unwrap();
    let err = start_error(&element_with(&[("model-dir", model.path())]));
    assert!(err.contains("mask_decoder.onnx is a directory"), "{err}");
    std::fs::remove_dir(&graph).unwrap();
    std::os::unix::fs::symlink(&graph, &graph).unwrap();
    let err = start_error(&element_with(&[("model-dir", model.path())]));
    assert!(err.contains("Too many levels of symbolic links"), "{err}");

    // an ONNX Runtime "library" that is a directory
    let err = start_error(&element_with(&[("ort-library", dir.path())]));
    assert!(err.contains("is a directory, not a library file"), "{err}");
}

// ------------------------------------------------------ 4., 5. the library

/// A copy of the set-up ONNX Runtime library cut to `percent` of its size
/// (a half-finished download).
fn truncated_library(dir: &Path, percent: u64) -> PathBuf {
    let lib = setup_library();
    let bytes = std::fs::read(&lib).unwrap();
    let cut = dir.join("libonnxruntime.so");
    std::fs::write(
        &cut,
        &bytes[..(bytes.len() as u64 * percent / 100) as usize],
    )
    .unwrap();
    cut
}

#[test]
fn broken_ort_libraries_are_clear_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    for percent in [40, 90] {
        let cut = truncated_library(dir.path(), percent);
        run_child(
            "child_ort_library_error",
            &[
                ("ORT_DYLIB_PATH", cut.to_str().unwrap()),
                ("SAM2TRACK_EXPECT", "truncated library"),
            ],
        );
    }
    run_child(
        "child_ort_library_error",
        &[
            ("ORT_DYLIB_PATH", dir.path().to_str().unwrap()),
            ("SAM2TRACK_EXPECT", "is a directory, not a library file"),
        ],
    );
    // a file the loader refuses: its reason is in the error
    let junk = dir.path().join("libjunk.so");
    let mut elf = std::fs::read(setup_library()).unwrap();
    elf[4] = 1; // EI_CLASS: a 32-bit library
    std::fs::write(&junk, &elf).unwrap();
    run_child(
        "child_ort_library_error",
        &[
            ("ORT_DYLIB_PATH", junk.to_str().unwrap()),
            ("SAM2TRACK_EXPECT", "wrong ELF class"),
        ],
    );
}

#[test]
#[ignore = "run in a child process by broken_ort_libraries_are_clear_errors_not_crashes"]
fn child_ort_library_error() {
    gst::init().unwrap();
    gstsam2::plugin_register_static().unwrap();
    let expect = std::env::var("SAM2TRACK_EXPECT").expect("set by the parent test");
    let element = gst::ElementFactory::make("sam2track")
        .property("model-dir", micro_dir().to_str().unwrap())
        .build()
        .unwrap();
    let err = start_error(&element);
    println!("start error: {err}");
    assert!(err.contains(&expect), "{err}");
    assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
}

// -------------------------------------------------- 6., 7. prompt floods

#[test]
fn refused_prompts_are_told_in_words() {
    let (mut h, element) = harness("RGB", "prompt=\"7:point=500,20;8:box=50,50,40,40\"");
    let bus = bus_of(&element);
    push_pull(&mut h, 0);
    let all = warnings(&bus);
    assert_eq!(all.len(), 1, "{all:?}");
    let w = &all[0];
    assert!(
        w.contains("object 7: point (500, 20): point (500, 20) is outside the 192x108 frame"),
        "{w}"
    );
    assert!(
        w.contains("object 8: box (50, 50)-(40, 40): empty box"),
        "{w}"
    );
    for dump in ["Prompt {", "Click {", "Coord {", "clicks:", "bbox:"] {
        assert!(!w.contains(dump), "Rust debug dump '{dump}' in {w}");
    }
}

#[test]
fn a_prompt_flood_posts_one_warning() {
    let entries: Vec<String> = (1..=10_000).map(|i| format!("{i}:point=500,1")).collect();
    let (mut h, element) = harness("RGB", &format!("prompt=\"{}\"", entries.join(";")));
    let bus = bus_of(&element);
    assert!(ids(&push_pull(&mut h, 0)).is_empty());
    let all = warnings(&bus);
    assert_eq!(all.len(), 1, "{} warnings", all.len());
    assert!(
        all[0].contains("Ignored 10000 prompts on frame 0"),
        "{}",
        all[0]
    );
    assert!(all[0].contains("and 9997 more"), "{}", all[0]);
    // the refused objects' ids are free again: nothing leaks
    let id: u32 = element.emit_by_name("add-point", &[&0u32, &80f32, &45f32, &true]);
    assert_ne!(id, 0);
    assert_eq!(ids(&push_pull(&mut h, 1)), vec![id]);
}

#[test]
fn prompts_waiting_for_a_frame_are_bounded() {
    // 60,000 objects a call, all outside the frame (refused when a frame comes)
    let flood = |first: usize| -> String {
        (first..first + 60_000)
            .map(|i| format!("{i}:point=500,1"))
            .collect::<Vec<_>>()
            .join(";")
    };
    let (mut h, element) = harness("RGB", "");
    let bus = bus_of(&element);
    assert!(element.emit_by_name::<bool>("prompt", &[&flood(1)]));
    // no frame came: the inbox is full, the next call is refused (memory stays bounded)
    assert!(!element.emit_by_name::<bool>("prompt", &[&flood(60_001)]));
    let id: u32 = element.emit_by_name("add-point", &[&0u32, &80f32, &45f32, &true]);
    assert_eq!(
        id, 60_001,
        "one more still fits, past the highest id in use"
    );
    let mut all = warnings(&bus);
    let w = take_warning(&mut all, "prompts already wait for the next frame");
    assert!(
        w.contains("60000 more would pass the 100000 allowed"),
        "{w}"
    );
    assert!(all.is_empty(), "{all:?}");
    // a frame takes them: one warning for the 60,000 refused, the last one tracked
    assert_eq!(ids(&push_pull(&mut h, 0)), vec![60_001]);
    let all = warnings(&bus);
    assert_eq!(all.len(), 1, "{} warnings", all.len());
    assert!(
        all[0].contains("Ignored 60000 prompts on frame 0"),
        "{}",
        all[0]
    );
    assert!(element.emit_by_name::<bool>("prompt", &[&flood(60_001)]));
}

#[test]
fn a_huge_prompt_file_runs_in_bounded_time() {
    const LINES: usize = 100_000;
    const FRAMES: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flood.txt");
    let text: String = (0..LINES)
        .map(|i| format!("{} 1:point={},{}\n", i % FRAMES, 10 + i % 170, 10 + i % 90))
        .collect();
    std::fs::write(&file, text).unwrap();
    let (mut h, element) = harness("RGB", &format!("prompt-file=\"{}\"", file.display()));
    let bus = bus_of(&element);
    let start = Instant::now();
    for t in 0..FRAMES {
        assert_eq!(ids(&push_pull(&mut h, t)), vec![1], "frame {t}");
    }
    let took = start.elapsed();
    // before the cap: > 300 s in a release build; here a debug build
    assert!(
        took < Duration::from_secs(120),
        "{LINES} lines took {took:?}"
    );
    let all = warnings(&bus);
    assert_eq!(all.len(), FRAMES, "one warning per frame: {all:?}");
    for w in &all {
        assert!(w.contains("more than the 64 allowed"), "{w}");
    }
}

// ------------------------------------------------------ 8. properties

#[test]
fn ready_only_properties_are_refused_while_running() {
    let (mut h, element) = harness("RGB", &format!("prompt=\"{GOLDEN_PROMPT}\" threads=1"));
    let bus = bus_of(&element);
    push_pull(&mut h, 0);
    let model: String = element.property("model-dir");
    element.set_property("model-dir", "/somewhere/else");
    element.set_property("threads", 2u32);
    element.set_property("prompt-file", "/tmp/prompts.txt");
    element.set_property_from_str("provider", "cuda");
    assert_eq!(element.property::<String>("model-dir"), model);
    assert_eq!(element.property::<u32>("threads"), 1);
    assert_eq!(element.property::<Option<String>>("prompt-file"), None);
    assert_eq!(
        element
            .property_value("provider")
            .get::<gstsam2::sam2track::Provider>(),
        Ok(gstsam2::sam2track::Provider::Cpu)
    );
    let mut all = warnings(&bus);
    for name in ["model-dir", "threads", "prompt-file", "provider"] {
        let w = take_warning(&mut all, &format!("Ignored setting '{name}'"));
        assert!(w.contains("NULL or READY state"), "{w}");
    }
    // properties mutable while playing still are
    element.set_property("mask-threshold", 1.5f32);
    assert_eq!(element.property::<f32>("mask-threshold"), 1.5);
    assert!(warnings(&bus).is_empty());
    assert_eq!(ids(&push_pull(&mut h, 1)), vec![1, 2]);
}

#[test]
fn too_many_threads_are_capped_to_the_cores() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let element = element_with(&[]);
    element.set_property("threads", 256u32);
    let bus = bus_of(&element);
    element.set_state(gst::State::Paused).expect("starts");
    element.set_state(gst::State::Null).unwrap();
    let all = warnings(&bus);
    assert!(
        all.iter().any(|w| w.contains(&format!(
            "'threads' is 256, more than the {cores} CPU cores"
        ))),
        "{all:?}"
    );
}
