// SPDX-License-Identifier: MPL-2.0

//! Inference engine: ONNX Runtime loading, model directories and (later) the
//! SAM 2 graphs themselves.
//!
//! Nothing under `engine/` may use GStreamer types: the element in
//! `crate::sam2track` translates between GStreamer and this module, which
//! keeps the engine testable without a pipeline.

pub mod model;
pub mod runtime;

// The model manifest (`model.json`) and the graph I/O contract modules are
// added here next to the ones above:
// pub mod manifest;
// pub mod contract;
