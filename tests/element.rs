// SPDX-License-Identifier: MPL-2.0

//! Integration tests of the `sam2track` element: registration, properties,
//! and the errors `start()` reports on the bus.
//!
//! Tests that need a working ONNX Runtime use the one `scripts/setup.sh`
//! installs; they fail (never skip) when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use common::{require_runtime, setup_library};
use gst::glib;
use gst::prelude::*;
use gstsam2::engine::{model, runtime};

const FORMATS: [&str; 8] = ["RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "NV12", "I420"];

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstsam2::plugin_register_static().expect("the sam2 plugin registers");
    });
}

/// The ONNX Runtime library installed by `scripts/setup.sh`; fails the test
/// with instructions when it is not there.
/// The committed micro model (tests/fixtures/micro), a complete model directory.
fn micro_model_dir() -> PathBuf {
    common::micro_dir()
}

/// A copy of the micro model that a test may break.
fn micro_model_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temporary directory");
    for entry in std::fs::read_dir(micro_model_dir()).expect("tests/fixtures/micro") {
        let entry = entry.expect("directory entry");
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy fixture");
    }
    tmp
}

fn make_element() -> gst::Element {
    init();
    gst::ElementFactory::make("sam2track")
        .build()
        .expect("sam2track can be created")
}

fn set_path(element: &gst::Element, property: &str, path: &Path) {
    element.set_property(property, path.to_str().expect("UTF-8 test path"));
}

#[derive(Debug)]
enum Outcome {
    Eos { buffers: u64 },
    Error { error: glib::Error, debug: String },
}

/// Runs `videotestsrc num-buffers=N ! RGB 64x48 ! sam2track ! fakesink` to
/// EOS or ERROR, after `configure` has set up the sam2track element.
fn run_pipeline(num_buffers: i32, configure: impl FnOnce(&gst::Element)) -> Outcome {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", num_buffers)
        .build()
        .expect("videotestsrc (gst-plugins-base) is installed");
    let filter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::Rgb)
                .width(64)
                .height(48)
                .framerate(gst::Fraction::new(30, 1))
                .build(),
        )
        .build()
        .expect("capsfilter");
    let sam2 = make_element();
    configure(&sam2);
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("signal-handoffs", true)
        .build()
        .expect("fakesink");
    let buffers = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&buffers);
    sink.connect("handoff", false, move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        None
    });

    pipeline
        .add_many([&src, &filter, &sam2, &sink])
        .expect("add elements");
    gst::Element::link_many([&src, &filter, &sam2, &sink]).expect("link elements");

    let bus = pipeline.bus().expect("pipeline bus");
    // A failing start() makes this return an error; the reason is on the bus.
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("pipeline reaches EOS or ERROR within 30 s");
    pipeline
        .set_state(gst::State::Null)
        .expect("pipeline shuts down");

    match msg.view() {
        gst::MessageView::Eos(_) => Outcome::Eos {
            buffers: buffers.load(Ordering::SeqCst),
        },
        gst::MessageView::Error(err) => {
            assert_eq!(
                err.src().map(|s| s.name().to_string()),
                Some(sam2.name().to_string()),
                "the error comes from sam2track: {:?}",
                err.error()
            );
            Outcome::Error {
                error: err.error(),
                debug: err.debug().map(|d| d.to_string()).unwrap_or_default(),
            }
        }
        other => unreachable!("filtered message {other:?}"),
    }
}

fn expect_error(outcome: Outcome) -> (glib::Error, String) {
    match outcome {
        Outcome::Error { error, debug } => (error, debug),
        Outcome::Eos { buffers } => panic!("expected an error, got EOS after {buffers} buffers"),
    }
}

#[test]
fn element_is_registered_with_metadata() {
    init();
    let factory = gst::ElementFactory::find("sam2track").expect("sam2track factory");
    assert_eq!(
        factory.metadata(gst::ELEMENT_METADATA_LONGNAME),
        Some("SAM 2 video tracker")
    );
    assert_eq!(
        factory.metadata(gst::ELEMENT_METADATA_KLASS),
        Some("Filter/Analyzer/Video")
    );
    assert!(
        factory
            .metadata(gst::ELEMENT_METADATA_DESCRIPTION)
            .is_some_and(|d| d.contains("SAM 2") && d.contains("ONNX Runtime"))
    );
    assert_eq!(factory.rank(), gst::Rank::NONE);
    let plugin = factory.plugin().expect("factory belongs to a plugin");
    assert_eq!(plugin.plugin_name(), "sam2");
    assert_eq!(plugin.license(), "MPL");
    assert!(
        factory
            .element_type()
            .is_a(gst_base::BaseTransform::static_type()),
        "sam2track is a BaseTransform"
    );
}

#[test]
fn pad_templates_accept_the_supported_raw_formats() {
    init();
    let factory = gst::ElementFactory::find("sam2track").expect("sam2track factory");
    let templates = factory.static_pad_templates();
    assert_eq!(templates.len(), 2);
    for name in ["sink", "src"] {
        let template = templates
            .iter()
            .find(|t| t.name_template() == name)
            .unwrap_or_else(|| panic!("{name} pad template"));
        assert_eq!(template.presence(), gst::PadPresence::Always);
        let caps = template.caps();
        for format in FORMATS {
            let fixed = gst::Caps::builder("video/x-raw")
                .field("format", format)
                .field("width", 1920)
                .field("height", 1080)
                .field("framerate", gst::Fraction::new(25, 1))
                .build();
            assert!(fixed.can_intersect(&caps), "{name} accepts {format}");
        }
        let gray = gst::Caps::builder("video/x-raw")
            .field("format", "GRAY8")
            .build();
        assert!(!gray.can_intersect(&caps), "{name} rejects GRAY8");
    }
}

#[test]
fn properties_exist_with_defaults() {
    let element = make_element();
    for name in ["model-dir", "ort-library"] {
        let pspec = element
            .find_property(name)
            .unwrap_or_else(|| panic!("property {name}"));
        assert_eq!(
            pspec.value_type(),
            String::static_type(),
            "{name} is a string"
        );
        assert!(
            pspec
                .flags()
                .contains(glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY),
            "{name} flags: {:?}",
            pspec.flags()
        );
        assert!(
            pspec.blurb().is_some_and(|b| b.len() > 20),
            "{name} has a real blurb"
        );
        assert_eq!(
            element.property::<Option<String>>(name),
            None,
            "{name} default"
        );

        element.set_property(name, "/some/where");
        assert_eq!(
            element.property::<Option<String>>(name).as_deref(),
            Some("/some/where")
        );
        // Empty string and NULL both mean "unset".
        element.set_property(name, "");
        assert_eq!(element.property::<Option<String>>(name), None);
        element.set_property(name, "/again");
        element.set_property(name, None::<&str>);
        assert_eq!(element.property::<Option<String>>(name), None);
    }
}

#[test]
fn bogus_ort_library_posts_error_naming_it() {
    let bogus = PathBuf::from("/nonexistent/sam2track-test/libonnxruntime.so.1.31.1");
    let (error, _) = expect_error(run_pipeline(1, |e| {
        set_path(e, "ort-library", &bogus);
        set_path(e, "model-dir", Path::new("/nonexistent/model"));
    }));
    assert!(
        error.matches(gst::LibraryError::Init),
        "LibraryError::Init, got {error:?}"
    );
    let text = error.message();
    assert!(text.contains(&bogus.display().to_string()), "{text}");
    assert!(text.contains("file not found"), "{text}");
    assert!(text.contains("scripts/setup.sh"), "{text}");
    assert!(text.contains("'ort-library'"), "{text}");
    assert!(text.contains("ORT_DYLIB_PATH"), "{text}");
}

#[test]
fn non_library_ort_file_posts_error_naming_it() {
    // An existing file that is not ONNX Runtime: it fails to dlopen, or, when
    // another test already loaded the real one, it cannot replace it.
    let dir = tempfile::tempdir().expect("temporary directory");
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared object").expect("write fake library");
    let (error, _) = expect_error(run_pipeline(1, |e| {
        set_path(e, "ort-library", &fake);
        set_path(e, "model-dir", Path::new("/nonexistent/model"));
    }));
    assert!(error.matches(gst::LibraryError::Init), "{error:?}");
    assert!(
        error.message().contains(&fake.display().to_string()),
        "{}",
        error.message()
    );
}

#[test]
fn missing_model_dir_posts_error_naming_it() {
    require_runtime();
    let parent = tempfile::tempdir().expect("temporary directory");
    let missing = parent.path().join("no-such-model");
    let (error, _) = expect_error(run_pipeline(1, |e| set_path(e, "model-dir", &missing)));
    assert!(
        error.matches(gst::ResourceError::NotFound),
        "ResourceError::NotFound, got {error:?}"
    );
    let text = error.message();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

#[test]
fn model_dir_without_manifest_posts_error() {
    require_runtime();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (error, _) = expect_error(run_pipeline(1, |e| set_path(e, "model-dir", dir.path())));
    assert!(error.matches(gst::ResourceError::Settings), "{error:?}");
    let text = error.message();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains(model::MANIFEST_FILE), "{text}");
}

#[test]
fn model_dir_missing_a_graph_posts_error_naming_it() {
    require_runtime();
    let dir = micro_model_copy();
    std::fs::remove_file(dir.path().join("memory_encoder.onnx")).expect("remove graph");
    let (error, _) = expect_error(run_pipeline(1, |e| set_path(e, "model-dir", dir.path())));
    assert!(error.matches(gst::ResourceError::Settings), "{error:?}");
    let text = error.message();
    assert!(text.contains("memory_encoder.onnx"), "{text}");
    assert!(text.contains("graph memory_encoder is missing"), "{text}");
}

#[test]
fn graph_with_wrong_inputs_posts_error_naming_graph_and_tensor() {
    require_runtime();
    let dir = micro_model_copy();
    // the mask decoder in place of the memory encoder: other input names
    std::fs::copy(
        dir.path().join("mask_decoder.onnx"),
        dir.path().join("memory_encoder.onnx"),
    )
    .expect("replace graph");
    let (error, _) = expect_error(run_pipeline(1, |e| set_path(e, "model-dir", dir.path())));
    assert!(error.matches(gst::ResourceError::Settings), "{error:?}");
    let text = error.message();
    assert!(
        text.contains("graph memory_encoder: input 'vision_feat': missing"),
        "{text}"
    );
}

#[test]
fn unset_model_dir_posts_error() {
    require_runtime();
    let (error, _) = expect_error(run_pipeline(1, |_| {}));
    assert!(error.matches(gst::ResourceError::Settings), "{error:?}");
    assert!(
        error.message().contains("'model-dir' property is not set"),
        "{}",
        error.message()
    );
}

#[test]
fn valid_setup_passes_buffers_through() {
    require_runtime();
    let dir = micro_model_dir();
    match run_pipeline(5, |e| set_path(e, "model-dir", &dir)) {
        Outcome::Eos { buffers } => assert_eq!(buffers, 5),
        Outcome::Error { error, debug } => panic!("unexpected error {error:?} ({debug})"),
    }
    // Explicitly naming the library that is already loaded is fine too.
    let lib = require_runtime().library().to_path_buf();
    let outcome = run_pipeline(2, |e| {
        set_path(e, "model-dir", &dir);
        set_path(e, "ort-library", &lib);
    });
    assert!(
        matches!(outcome, Outcome::Eos { buffers: 2 }),
        "{outcome:?}"
    );
}

#[test]
fn harness_passthrough_keeps_the_buffer() {
    require_runtime();
    let dir = micro_model_dir();
    let element = make_element();
    set_path(&element, "model-dir", &dir);
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=RGBA,width=4,height=2,framerate=30/1");

    let data: Vec<u8> = (0u8..32).collect();
    let input = gst::Buffer::from_slice(data.clone());
    let input_ptr = input.as_ptr();
    h.push(input).expect("push succeeds");
    let output = h.pull().expect("a buffer comes out");
    assert_eq!(output.as_ptr(), input_ptr, "in-place passthrough");
    assert_eq!(output.map_readable().expect("map").as_slice(), &data[..]);
}

#[test]
fn runtime_is_shared_across_starts() {
    let lib = setup_library();
    let first = require_runtime();
    let second = runtime::acquire(None).expect("second acquire");
    assert!(Arc::ptr_eq(&first, &second), "one ONNX Runtime per process");
    let explicit = runtime::acquire(Some(first.library())).expect("explicit same library");
    assert!(Arc::ptr_eq(&first, &explicit));
    if std::env::var_os(runtime::DYLIB_PATH_ENV).is_none() {
        assert_eq!(first.library(), lib.as_path());
        assert_eq!(first.source(), runtime::Source::SetupDir);
    }
}
