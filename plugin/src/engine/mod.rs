// SPDX-License-Identifier: MPL-2.0

//! Inference engine: ONNX Runtime loading, model directories, their manifest and the
//! graph I/O contract (models/CONTRACT.md).
//!
//! Nothing under `engine/` may use GStreamer types: the element in
//! `crate::sam2track` translates between GStreamer and this module, which
//! keeps the engine testable without a pipeline.

pub mod contract;
pub mod cpu;
pub mod elf;
pub mod files;
pub mod gpu;
pub mod graphs;
pub mod manifest;
pub mod model;
pub mod ops;
pub mod runtime;
pub mod session;
pub mod shared;
pub mod stages;
pub mod step;
pub mod tracker;
