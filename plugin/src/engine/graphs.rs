// SPDX-License-Identifier: MPL-2.0

//! Tiny helper graphs the engine runs next to the model's four: they move and
//! convert the memory bank's tensors where those live (on the GPU with the
//! CUDA provider), so the bank never goes through the host.
//!
//! The graphs are written here as ONNX protobuf bytes (the few fields they
//! need), so no generated file has to be kept in step with this code:
//! [`to_bf16`] stores memories, [`slot_f32`] copies one into its slot of the
//! memory-attention input, [`mask_plane`] picks the one mask of the decoder's
//! output the host reads, [`add_channel_bias`] makes the features of a frame
//! without memory.

/// ONNX `TensorProto.DataType` values used here.
const FLOAT: i64 = 1;
const INT64: i64 = 7;
const BFLOAT16: i64 = 16;
/// ONNX IR version 8 and opset 17: read by every ONNX Runtime from 1.14 on
/// (the engine's floor is 1.17); `Cast` to/from bf16 is opset 13.
const IR_VERSION: i64 = 8;
const OPSET: i64 = 17;

/// Protobuf writer for the handful of message shapes an ONNX model needs.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from((field << 3) | wire));
    }

    fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    fn bytes(mut self, field: u32, v: &[u8]) -> Self {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    fn text(self, field: u32, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    fn message(self, field: u32, m: Message) -> Self {
        self.bytes(field, &m.0)
    }
}

/// `ValueInfoProto` of a tensor with element type `elem` and dimensions
/// `dims` (`Some(n)`: fixed, `None`: named symbolic dimension).
fn value_info(name: &str, elem: i64, dims: &[Option<i64>]) -> Message {
    let mut shape = Message::default();
    for (i, d) in dims.iter().enumerate() {
        let dim = match d {
            Some(n) => Message::default().int(1, *n),
            None => Message::default().text(2, &format!("{name}_{i}")),
        };
        shape = shape.message(1, dim);
    }
    let tensor = Message::default().int(1, elem).message(2, shape);
    let ty = Message::default().message(1, tensor);
    Message::default().text(1, name).message(2, ty)
}

/// `NodeProto` with integer attributes.
fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, i64)]) -> Message {
    let mut n = Message::default();
    for i in inputs {
        n = n.text(1, i);
    }
    for o in outputs {
        n = n.text(2, o);
    }
    n = n.text(3, &format!("{op}_{}", outputs[0])).text(4, op);
    for (name, v) in attrs {
        // AttributeProto: name = 1, i = 3, type = 20 (INT = 2)
        let a = Message::default().text(1, name).int(3, *v).int(20, 2);
        n = n.message(5, a);
    }
    n
}

fn model(name: &str, nodes: Vec<Message>, inputs: Vec<Message>, outputs: Vec<Message>) -> Vec<u8> {
    let mut graph = Message::default();
    for n in nodes {
        graph = graph.message(1, n);
    }
    graph = graph.text(2, name);
    for i in inputs {
        graph = graph.message(11, i);
    }
    for o in outputs {
        graph = graph.message(12, o);
    }
    let opset = Message::default().text(1, "").int(2, OPSET);
    Message::default()
        .int(1, IR_VERSION)
        .text(2, "sam2track")
        .message(7, graph)
        .message(8, opset)
        .0
}

/// Names of the helper graphs in logs and errors.
pub const TO_BF16: &str = "to_bf16 (helper)";
pub const SLOT_F32: &str = "slot_f32 (helper)";
pub const MASK_PLANE: &str = "mask_plane (helper)";
pub const ADD_CHANNEL_BIAS: &str = "add_channel_bias (helper)";

/// `y = bf16(x)` for `x` [B, N, K], rounding to nearest even like
/// `torch.Tensor.to(torch.bfloat16)`: how the official predictor stores each
/// memory (`maskmem_features`).
pub fn to_bf16() -> Vec<u8> {
    let dims = [None, None, None];
    model(
        "to_bf16",
        vec![node("Cast", &["x"], &["y"], &[("to", BFLOAT16)])],
        vec![value_info("x", FLOAT, &dims)],
        vec![value_info("y", BFLOAT16, &dims)],
    )
}

/// `y = f32(data[index])`: `data` bf16 [B, N, K], `index` i64 [1], `y` f32
/// [1, N, K]; one stored memory widened into its slot of the
/// memory-attention input.
pub fn slot_f32() -> Vec<u8> {
    model(
        "slot_f32",
        vec![
            node("Gather", &["data", "index"], &["picked"], &[("axis", 0)]),
            node("Cast", &["picked"], &["y"], &[("to", FLOAT)]),
        ],
        vec![
            value_info("data", BFLOAT16, &[None, None, None]),
            value_info("index", INT64, &[Some(1)]),
        ],
        vec![value_info("y", FLOAT, &[Some(1), None, None])],
    )
}

/// `y = data[b, t]`: `data` f32 [B, T, L, L] (the mask decoder's logits),
/// `b` and `t` i64 [1], `y` f32 [1, 1, L, L]; the one mask the host reads.
pub fn mask_plane() -> Vec<u8> {
    model(
        "mask_plane",
        vec![
            node("Gather", &["data", "b"], &["object"], &[("axis", 0)]),
            node("Gather", &["object", "t"], &["y"], &[("axis", 1)]),
        ],
        vec![
            value_info("data", FLOAT, &[None, None, None, None]),
            value_info("b", INT64, &[Some(1)]),
            value_info("t", INT64, &[Some(1)]),
        ],
        vec![value_info("y", FLOAT, &[Some(1), Some(1), None, None])],
    )
}

/// `y = x + bias`: `x` f32 [1, C, H, W], `bias` f32 [1, C, 1, 1]; the image
/// features of a frame without memory (`+ no_mem_embed`).
pub fn add_channel_bias() -> Vec<u8> {
    let dims = [Some(1), None, None, None];
    model(
        "add_channel_bias",
        vec![node("Add", &["x", "bias"], &["y"], &[])],
        vec![
            value_info("x", FLOAT, &dims),
            value_info("bias", FLOAT, &[Some(1), None, Some(1), Some(1)]),
        ],
        vec![value_info("y", FLOAT, &dims)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_protobuf() {
        let mut m = Message::default();
        m.varint(300);
        assert_eq!(m.0, [0xac, 0x02]);
        let m = Message::default().int(1, 8);
        assert_eq!(m.0, [0x08, 0x08]);
        let m = Message::default().text(2, "ab");
        assert_eq!(m.0, [0x12, 0x02, b'a', b'b']);
        // negative ints are 10-byte two's complement varints
        let m = Message::default().int(1, -1);
        assert_eq!(m.0.len(), 11);
    }
}
