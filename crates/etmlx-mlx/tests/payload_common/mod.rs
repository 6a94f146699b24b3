//! Helpers shared by the payload tests: build `MLX0` blobs with the planus owned types.
#![allow(dead_code)] // each test binary uses a subset

pub use etmlx_mlx::generated::mlx_delegate as fb;

pub fn tid(idx: u32) -> fb::Tid {
    fb::Tid { idx }
}

pub fn vid(idx: u32) -> fb::Vid {
    fb::Vid { idx }
}

pub fn lit(literal: i64) -> fb::IntOrVid {
    fb::IntOrVid {
        literal,
        vid: None,
        is_vid: false,
    }
}

pub fn int_vid(idx: u32) -> fb::IntOrVid {
    fb::IntOrVid {
        literal: 0,
        vid: Some(vid(idx)),
        is_vid: true,
    }
}

pub fn tensor_slot(idx: u32) -> fb::SlotVariant {
    fb::SlotVariant {
        idx,
        slot_type: fb::SlotType::TensorSlot,
    }
}

pub fn instruction(op: fb::OpNode) -> fb::Instruction {
    fb::Instruction { op }
}

pub fn chain(ops: Vec<fb::OpNode>) -> fb::InstructionChain {
    fb::InstructionChain {
        instructions: ops.into_iter().map(instruction).collect(),
    }
}

pub fn static_meta(shape: &[i32], scalar_type: i8) -> fb::TensorMeta {
    fb::TensorMeta {
        shape: shape
            .iter()
            .map(|&value| fb::ShapeDim {
                value,
                min_value: 0,
                max_value: -1,
            })
            .collect(),
        scalar_type,
        dim_order: Some((0..shape.len() as u8).collect()),
    }
}

/// The blob wrapper exactly as the official serializer lays it out: 4 zero bytes, "MLX0",
/// u64 data_segment_offset (24 + flatbuffer length, rounded up to 16), u64 size 0, the
/// flatbuffer, zero padding.
pub fn wrap(flatbuffer: &[u8]) -> Vec<u8> {
    let data_offset = (24 + flatbuffer.len()).next_multiple_of(16);
    let mut blob = Vec::with_capacity(data_offset);
    blob.extend_from_slice(&[0, 0, 0, 0]);
    blob.extend_from_slice(b"MLX0");
    blob.extend_from_slice(&(data_offset as u64).to_le_bytes());
    blob.extend_from_slice(&0u64.to_le_bytes());
    blob.extend_from_slice(flatbuffer);
    blob.resize(data_offset, 0);
    blob
}

pub fn serialize(graph: &fb::MlxGraph) -> Vec<u8> {
    let mut builder = planus::Builder::new();
    wrap(builder.finish(graph, None))
}

/// `out = a + b` over two float32 [2, 3] inputs: Tids 0, 1 are inputs, 2 the output.
pub fn add_graph() -> fb::MlxGraph {
    fb::MlxGraph {
        version: Some("1".into()),
        num_input_tensors: 2,
        num_output_tensors: 1,
        instruction_chains: vec![chain(vec![fb::OpNode::AddNode(Box::new(fb::AddNode {
            a: tid(0),
            b: tid(1),
            out: tid(2),
        }))])],
        input_map: Some(vec![tensor_slot(0), tensor_slot(1)]),
        output_map: Some(vec![tensor_slot(2)]),
        tensor_meta: Some(vec![
            static_meta(&[2, 3], 6),
            static_meta(&[2, 3], 6),
            static_meta(&[2, 3], 6),
        ]),
        ..Default::default()
    }
}

/// Position of the union type byte of the only instruction in `blob`: the one byte whose
/// replacement by an unknown tag makes the parser report that tag.
pub fn sole_op_type_position(blob: &[u8]) -> usize {
    (24..blob.len())
        .find(|&position| {
            let mut candidate = blob.to_vec();
            candidate[position] = 250;
            matches!(
                etmlx_mlx::payload::parse(&candidate),
                Err(etmlx_mlx::payload::PayloadError::UnknownOp { tag: 250, .. })
            )
        })
        .expect("the blob has one instruction")
}
