//! Test-only writer: builds `.pte` / `.ptd` files from planus owned types, splicing in the
//! container header and appending segments the way the ExecuTorch writer lays them out.

#![allow(dead_code)]

use etmlx_pte::schema::executorch_flatbuffer as fb;
use etmlx_pte::schema::flat_tensor_flatbuffer as ft;

/// Alignment of segments in the file (the ExecuTorch writer default).
pub const SEGMENT_ALIGNMENT: usize = 128;
/// Bytes spliced in after the identifier: the 32-byte `eh00` header (already 16-aligned).
pub const PTE_HEADER_BLOCK: usize = 32;
/// Bytes spliced in for a `.ptd` header (40, so its FlatBuffer continues at byte 48).
pub const PTD_HEADER_BLOCK: usize = 40;

/// Finishes a FlatBuffer with a file identifier in the standard layout.
///
/// planus 1.3.0's `Builder::finish(root, Some(id))` writes the identifier at bytes 0..4 and the
/// root offset (relative to byte 4) at bytes 4..8, the reverse of the FlatBuffers layout every
/// other implementation (and ExecuTorch) uses. Finish with the identifier and swap the two
/// words back, rebasing the offset onto byte 0.
pub fn finish_with_identifier<T>(
    root: impl planus::WriteAsOffset<T>,
    identifier: [u8; 4],
) -> Vec<u8> {
    let mut builder = planus::Builder::new();
    finish_builder(&mut builder, root, identifier)
}

/// [`finish_with_identifier`] for a builder that already holds the root's children.
pub fn finish_builder<T>(
    builder: &mut planus::Builder,
    root: impl planus::WriteAsOffset<T>,
    identifier: [u8; 4],
) -> Vec<u8> {
    let mut bytes = builder.finish(root, Some(identifier)).to_vec();
    assert_eq!(
        &bytes[0..4],
        &identifier,
        "planus layout changed; revisit this helper"
    );
    let root_from_byte_4 = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    bytes[0..4].copy_from_slice(&(root_from_byte_4 + 4).to_le_bytes());
    bytes[4..8].copy_from_slice(&identifier);
    bytes
}

fn align_up(value: usize, alignment: usize) -> usize {
    value.div_ceil(alignment) * alignment
}

/// Inserts `header` after byte 8 of a finished FlatBuffer and moves the root offset past it.
fn splice_header(flatbuffer: &[u8], header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(flatbuffer.len() + header.len());
    let root = u32::from_le_bytes(flatbuffer[0..4].try_into().unwrap());
    out.extend_from_slice(&(root + header.len() as u32).to_le_bytes());
    out.extend_from_slice(&flatbuffer[4..8]);
    out.extend_from_slice(header);
    out.extend_from_slice(&flatbuffer[8..]);
    out
}

/// Segment table entries (offsets relative to the segment base) for payloads laid out one
/// after the other at [`SEGMENT_ALIGNMENT`].
pub fn segment_table(payloads: &[Vec<u8>]) -> Vec<fb::DataSegment> {
    let mut offset = 0usize;
    payloads
        .iter()
        .map(|payload| {
            let segment = fb::DataSegment {
                offset: offset as u64,
                size: payload.len() as u64,
            };
            offset = align_up(offset + payload.len(), SEGMENT_ALIGNMENT);
            segment
        })
        .collect()
}

fn append_segments(file: &mut Vec<u8>, payloads: &[Vec<u8>]) -> (usize, usize) {
    let base = align_up(file.len(), SEGMENT_ALIGNMENT);
    file.resize(base, 0);
    for (i, payload) in payloads.iter().enumerate() {
        if i > 0 {
            let next = align_up(file.len(), SEGMENT_ALIGNMENT);
            file.resize(next, 0);
        }
        file.extend_from_slice(payload);
    }
    (base, file.len() - base)
}

/// Serializes `program` as a `.pte`. When `payloads` is non-empty (or `force_header`), the
/// segment table is filled in, an `eh00` header spliced in and the payloads appended.
pub fn write_pte(mut program: fb::Program, payloads: &[Vec<u8>]) -> Vec<u8> {
    program.segments = Some(segment_table(payloads));
    let flatbuffer = finish_with_identifier(&program, *b"ET12");

    let mut header = Vec::with_capacity(PTE_HEADER_BLOCK);
    header.extend_from_slice(b"eh00");
    header.extend_from_slice(&32u32.to_le_bytes());
    header.extend_from_slice(&[0; 24]); // program size, segment base, segment data size
    let mut file = splice_header(&flatbuffer, &header);
    let program_size = file.len();
    let (base, data_size) = if payloads.is_empty() {
        (0, 0)
    } else {
        append_segments(&mut file, payloads)
    };
    file[16..24].copy_from_slice(&(program_size as u64).to_le_bytes());
    file[24..32].copy_from_slice(&(base as u64).to_le_bytes());
    file[32..40].copy_from_slice(&(data_size as u64).to_le_bytes());
    file
}

/// Serializes `program` as a plain FlatBuffer with no extended header (and so no segments).
pub fn write_pte_without_header(program: &fb::Program) -> Vec<u8> {
    finish_with_identifier(program, *b"ET12")
}

/// Serializes a `.ptd` with the given named payloads (one segment each).
pub fn write_ptd(entries: &[(&str, Vec<u8>, Option<ft::TensorLayout>)]) -> Vec<u8> {
    let payloads: Vec<Vec<u8>> = entries.iter().map(|(_, bytes, _)| bytes.clone()).collect();
    let segments = segment_table(&payloads)
        .into_iter()
        .map(|s| ft::DataSegment {
            offset: s.offset,
            size: s.size,
        })
        .collect();
    let named_data = entries
        .iter()
        .enumerate()
        .map(|(i, (key, _, layout))| ft::NamedData {
            key: Some((*key).to_owned()),
            segment_index: i as u32,
            tensor_layout: layout.clone().map(Box::new),
        })
        .collect();
    let flat_tensor = ft::FlatTensor {
        version: 0,
        segments: Some(segments),
        named_data: Some(named_data),
    };
    let flatbuffer = finish_with_identifier(&flat_tensor, *b"FT01");
    let mut header = Vec::with_capacity(PTD_HEADER_BLOCK);
    header.extend_from_slice(b"FH01");
    header.extend_from_slice(&40u32.to_le_bytes());
    header.extend_from_slice(&[0; 32]);
    let mut file = splice_header(&flatbuffer, &header);
    let flatbuffer_end = file.len();
    let (base, data_size) = append_segments(&mut file, &payloads);
    let flatbuffer_offset = 8 + PTD_HEADER_BLOCK;
    file[16..24].copy_from_slice(&(flatbuffer_offset as u64).to_le_bytes());
    file[24..32].copy_from_slice(&((flatbuffer_end - flatbuffer_offset) as u64).to_le_bytes());
    file[32..40].copy_from_slice(&(base as u64).to_le_bytes());
    file[40..48].copy_from_slice(&(data_size as u64).to_le_bytes());
    file
}

// ---- small constructors for planus owned values -------------------------------------------

pub fn evalue(val: fb::KernelTypes) -> fb::EValue {
    fb::EValue { val: Some(val) }
}

pub fn int(v: i64) -> fb::EValue {
    evalue(fb::KernelTypes::Int(Box::new(fb::Int { int_val: v })))
}

pub fn tensor(scalar_type: fb::ScalarType, sizes: &[i32]) -> fb::Tensor {
    fb::Tensor {
        scalar_type,
        sizes: Some(sizes.to_vec()),
        dim_order: Some((0..sizes.len() as u8).collect()),
        ..Default::default()
    }
}

pub fn tensor_value(t: fb::Tensor) -> fb::EValue {
    evalue(fb::KernelTypes::Tensor(Box::new(t)))
}

pub fn planned(mut t: fb::Tensor, memory_id: u32, offset: u64) -> fb::Tensor {
    t.allocation_info = Some(Box::new(fb::AllocationDetails {
        memory_id,
        memory_offset_low: offset as u32,
        memory_offset_high: (offset >> 32) as u32,
    }));
    t
}

pub fn instruction(args: fb::InstructionArguments) -> fb::Instruction {
    fb::Instruction {
        instr_args: Some(args),
    }
}

pub fn delegate_call(delegate_index: i32, args: &[i32]) -> fb::Instruction {
    instruction(fb::InstructionArguments::DelegateCall(Box::new(
        fb::DelegateCall {
            delegate_index,
            args: Some(args.to_vec()),
        },
    )))
}

pub fn kernel_call(op_index: i32, args: &[i32]) -> fb::Instruction {
    instruction(fb::InstructionArguments::KernelCall(Box::new(
        fb::KernelCall {
            op_index,
            args: Some(args.to_vec()),
        },
    )))
}

pub fn chain(instructions: Vec<fb::Instruction>) -> fb::Chain {
    fb::Chain {
        instructions: Some(instructions),
        ..Default::default()
    }
}

// ---- the sample program used across tests ---------------------------------------------------

/// Constant tensor bytes: f32 [2,3] = 1..=6.
pub fn constant_payload() -> Vec<u8> {
    [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Offset of the 2-element f32 initial value inside the mutable-data segment.
pub const MUTABLE_OFFSET: u64 = 16;
/// Planned offset of the output tensor: needs the high word (`2 << 32 | 0x40`).
pub const OUTPUT_OFFSET: u64 = (2 << 32) | 0x40;
/// Size of planned buffer 1.
pub const BUFFER_SIZE: i64 = (2 << 32) | 0x100;

pub const DELEGATE_BLOB: &[u8] = b"\0\0\0\0MLX0 pretend delegate payload";
pub const INLINE_BLOB: &[u8] = b"inline delegate payload";
pub const NAMED_A: &[u8] = b"named blob shared by two keys";
pub const NAMED_C: &[u8] = b"third named blob";

/// Segment payloads of the sample program, in segment order.
pub fn sample_payloads() -> Vec<Vec<u8>> {
    let mut mutable = vec![0u8; 32];
    mutable[16..24].copy_from_slice(&[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]); // 1.0f32, 2.0f32
    vec![
        constant_payload(),     // 0: constant segment
        mutable,                // 1: mutable data segment
        DELEGATE_BLOB.to_vec(), // 2: delegate payload
        NAMED_A.to_vec(),       // 3: named data "weight.a" and "weight.b"
        NAMED_C.to_vec(),       // 4: named data "weight.c"
    ]
}

/// Value indices of the sample `forward` plan.
pub mod v {
    pub const INPUT: i32 = 0;
    pub const CONSTANT: i32 = 1;
    pub const OUTPUT: i32 = 2;
    pub const INT7: i32 = 3;
    pub const INT_LIST: i32 = 4;
    pub const OPT_TENSORS: i32 = 5;
    pub const TENSORS: i32 = 6;
    pub const DOUBLE: i32 = 7;
    pub const BOOL: i32 = 8;
    pub const STRING: i32 = 9;
    pub const NULL: i32 = 10;
    pub const DOUBLES: i32 = 11;
    pub const BOOLS: i32 = 12;
    pub const WITH_INITIAL: i32 = 13;
    pub const EXTERNAL: i32 = 14;
    pub const COUNT: usize = 15;
}

/// The values of the sample `forward` plan.
pub fn sample_values() -> Vec<fb::EValue> {
    let mut input = planned(tensor(fb::ScalarType::Float, &[2, 3]), 1, 0);
    input.shape_dynamism = fb::TensorShapeDynamism::DynamicBound;
    let mut constant = tensor(fb::ScalarType::Float, &[2, 3]);
    constant.data_buffer_idx = 1;
    let output = planned(tensor(fb::ScalarType::Float, &[2, 3]), 1, OUTPUT_OFFSET);
    let mut with_initial = planned(tensor(fb::ScalarType::Float, &[2]), 1, 64);
    with_initial.data_buffer_idx = 1;
    with_initial.extra_tensor_info = Some(Box::new(fb::ExtraTensorInfo {
        mutable_data_segments_idx: 0,
        fully_qualified_name: Some("state.counter".into()),
        ..Default::default()
    }));
    let mut external = tensor(fb::ScalarType::Bfloat16, &[4]);
    external.extra_tensor_info = Some(Box::new(fb::ExtraTensorInfo {
        fully_qualified_name: Some("ext.weight".into()),
        location: fb::TensorDataLocation::External,
        ..Default::default()
    }));
    use fb::KernelTypes as K;
    vec![
        tensor_value(input),
        tensor_value(constant),
        tensor_value(output),
        int(7),
        evalue(K::IntList(Box::new(fb::IntList {
            items: Some(vec![v::INT7.into(), v::INT7.into()]),
        }))),
        evalue(K::OptionalTensorList(Box::new(fb::OptionalTensorList {
            items: Some(vec![v::CONSTANT, -1, v::INPUT]),
        }))),
        evalue(K::TensorList(Box::new(fb::TensorList {
            items: Some(vec![v::INPUT, v::CONSTANT]),
        }))),
        evalue(K::Double(Box::new(fb::Double { double_val: 1.5 }))),
        evalue(K::Bool(Box::new(fb::Bool { bool_val: true }))),
        evalue(K::String(Box::new(fb::String {
            string_val: Some("hello".into()),
        }))),
        evalue(K::Null(Box::new(fb::Null {}))),
        evalue(K::DoubleList(Box::new(fb::DoubleList {
            items: Some(vec![0.5, -2.0]),
        }))),
        evalue(K::BoolList(Box::new(fb::BoolList {
            items: Some(vec![true, false, true]),
        }))),
        tensor_value(with_initial),
        tensor_value(external),
    ]
}

pub fn sample_forward() -> fb::ExecutionPlan {
    use fb::InstructionArguments as I;
    fb::ExecutionPlan {
        name: Some("forward".into()),
        values: Some(sample_values()),
        inputs: Some(vec![v::INPUT]),
        outputs: Some(vec![v::OUTPUT]),
        chains: Some(vec![chain(vec![
            delegate_call(0, &[v::INPUT, v::CONSTANT, v::OUTPUT]),
            kernel_call(1, &[v::OUTPUT, v::INT_LIST, v::OUTPUT]),
            delegate_call(1, &[v::INPUT, v::OUTPUT]),
            instruction(I::MoveCall(Box::new(fb::MoveCall {
                move_from: v::INPUT,
                move_to: v::OUTPUT,
            }))),
            instruction(I::JumpFalseCall(Box::new(fb::JumpFalseCall {
                cond_value_index: v::BOOL,
                destination_instruction: 6,
            }))),
            instruction(I::FreeCall(Box::new(fb::FreeCall {
                value_index: v::INPUT,
            }))),
        ])]),
        operators: Some(vec![
            fb::Operator {
                name: Some("aten::add".into()),
                overload: Some("out".into()),
            },
            fb::Operator {
                name: Some("executorch_prim::et_view".into()),
                overload: Some("default".into()),
            },
        ]),
        delegates: Some(vec![
            fb::BackendDelegate {
                id: Some("MLXBackend".into()),
                processed: Some(Box::new(fb::BackendDelegateDataReference {
                    location: fb::DataLocation::Segment,
                    index: 2,
                })),
                compile_specs: Some(vec![fb::CompileSpec {
                    key: Some("mode".into()),
                    value: Some(vec![1, 2, 3]),
                }]),
            },
            fb::BackendDelegate {
                id: Some("InlineBackend".into()),
                processed: Some(Box::new(fb::BackendDelegateDataReference {
                    location: fb::DataLocation::Inline,
                    index: 0,
                })),
                compile_specs: None,
            },
        ]),
        non_const_buffer_sizes: Some(vec![0, BUFFER_SIZE]),
        ..Default::default()
    }
}

pub fn sample_getter() -> fb::ExecutionPlan {
    fb::ExecutionPlan {
        name: Some("get_max_seq_len".into()),
        values: Some(vec![int(128)]),
        inputs: Some(vec![]),
        outputs: Some(vec![0]),
        chains: Some(vec![chain(vec![])]),
        non_const_buffer_sizes: Some(vec![0]),
        ..Default::default()
    }
}

/// The sample program (its segment table is filled in by [`write_pte`]).
pub fn sample_program() -> fb::Program {
    fb::Program {
        version: 0,
        execution_plan: Some(vec![sample_forward(), sample_getter()]),
        backend_delegate_data: Some(vec![fb::BackendDelegateInlineData {
            data: Some(INLINE_BLOB.to_vec()),
        }]),
        constant_segment: Some(Box::new(fb::SubsegmentOffsets {
            segment_index: 0,
            offsets: Some(vec![0, 0]),
        })),
        mutable_data_segments: Some(vec![fb::SubsegmentOffsets {
            segment_index: 1,
            offsets: Some(vec![0, MUTABLE_OFFSET]),
        }]),
        named_data: Some(vec![
            fb::NamedData {
                key: Some("weight.a".into()),
                segment_index: 3,
            },
            fb::NamedData {
                key: Some("weight.b".into()),
                segment_index: 3,
            },
            fb::NamedData {
                key: Some("weight.c".into()),
                segment_index: 4,
            },
        ]),
        ..Default::default()
    }
}

/// The sample `.pte` file.
pub fn sample_pte() -> Vec<u8> {
    write_pte(sample_program(), &sample_payloads())
}

/// Deterministic xorshift64* generator for corpus mutation (no randomness crate needed).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
