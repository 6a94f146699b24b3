//! Malformed input: every failure must be an `Err`, never a panic or a hang.

mod common;

use std::path::Path;

use common::*;
use etmlx_pte::schema::executorch_flatbuffer as fb;
use etmlx_pte::*;

/// Parses and then touches everything a runtime would, so lazy paths are exercised too.
fn parse_and_walk(bytes: Vec<u8>) -> Result<()> {
    let pte = Pte::from_bytes(bytes)?;
    let _ = pte.summary();
    let _ = NamedDataMap::new(&pte, None)?;
    for plan in &pte.program().plans {
        for value in &plan.values {
            if let Value::Tensor(tensor) = value {
                let _ = (
                    tensor.numel(),
                    tensor.nbytes(),
                    tensor.strides(),
                    tensor.kind(),
                );
                let _ = pte.constant_bytes(tensor);
                let _ = pte.mutable_initial_bytes(tensor);
            }
        }
        for delegate in &plan.delegates {
            pte.delegate_blob(delegate)?;
        }
    }
    for entry in &pte.program().named_data {
        pte.named_data(&entry.key).expect("a loaded key resolves");
    }
    Ok(())
}

#[test]
fn every_truncation_is_an_error() {
    let file = sample_pte();
    parse_and_walk(file.clone()).unwrap();
    for len in 0..file.len() {
        assert!(
            parse_and_walk(file[..len].to_vec()).is_err(),
            "truncation to {len} of {} bytes was accepted",
            file.len()
        );
    }
}

fn mutate(file: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut out = file.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let at = rng.below(out.len());
        match rng.below(4) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next() as u8,
            2 => {
                // Plant an "interesting" 32-bit value (offsets, lengths, indices).
                let word: u32 = [
                    0,
                    1,
                    0x7fff_ffff,
                    0x8000_0000,
                    0xffff_ffff,
                    0xffff,
                    file.len() as u32,
                ][rng.below(7)];
                let end = (at + 4).min(out.len());
                out[at..end].copy_from_slice(&word.to_le_bytes()[..end - at]);
            }
            _ => {
                let word = [u64::MAX, 1 << 63, 1 << 32, out.len() as u64][rng.below(4)];
                let end = (at + 8).min(out.len());
                out[at..end].copy_from_slice(&word.to_le_bytes()[..end - at]);
            }
        }
    }
    out
}

fn fuzz_corpus(file: &[u8], seed: u64, count: usize) -> (usize, usize) {
    let mut rng = XorShift(seed);
    let mut accepted = 0;
    for _ in 0..count {
        if parse_and_walk(mutate(file, &mut rng)).is_ok() {
            accepted += 1;
        }
    }
    (accepted, count - accepted)
}

#[test]
fn thousands_of_mutations_never_panic() {
    let file = sample_pte();
    let (accepted, rejected) = fuzz_corpus(&file, 0x9E37_79B9_7F4A_7C15, 6000);
    // Both outcomes occur: mutations in payload bytes are harmless, most others are caught.
    assert!(
        accepted > 0 && rejected > 0,
        "accepted {accepted}, rejected {rejected}"
    );
}

#[test]
fn mutations_of_official_fixtures_never_panic() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    for name in ["add", "mixed_partition", "portable_only", "mutable_counter"] {
        let Ok(file) = std::fs::read(fixtures.join(name).join("model.pte")) else {
            continue;
        };
        parse_and_walk(file.clone()).unwrap();
        for len in (0..file.len()).step_by(7) {
            let _ = parse_and_walk(file[..len].to_vec());
        }
        fuzz_corpus(&file, 0x1234_5678 ^ file.len() as u64, 1500);
    }
}

fn set_u32(file: &mut [u8], at: usize, value: u32) {
    file[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn set_u64(file: &mut [u8], at: usize, value: u64) {
    file[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn bad_identifier_names_expected_and_found() {
    let mut file = sample_pte();
    file[4..8].copy_from_slice(b"ET11");
    let err = Pte::from_bytes(file).unwrap_err();
    assert!(matches!(err, PteError::BadIdentifier { found, .. } if &found == b"ET11"));
    let message = err.to_string();
    assert!(
        message.contains("\"ET12\"") && message.contains("\"ET11\""),
        "{message}"
    );
    assert!(message.contains("ExecuTorch"), "{message}");

    // A .ptd is not a .pte.
    let ptd = write_ptd(&[("k", vec![1], None)]);
    assert!(matches!(
        Pte::from_bytes(ptd.clone()),
        Err(PteError::BadIdentifier { .. })
    ));
    assert!(matches!(
        Ptd::from_bytes(sample_pte()),
        Err(PteError::BadIdentifier { .. })
    ));
    assert!(Ptd::from_bytes(ptd).is_ok());
}

#[test]
fn tiny_files_are_too_short() {
    for len in 0..8 {
        assert!(matches!(
            Pte::from_bytes(vec![0; len]),
            Err(PteError::TooShort { .. })
        ));
    }
}

#[test]
fn header_length_below_24_is_rejected() {
    for length in [0, 8, 16, 23] {
        let mut file = sample_pte();
        set_u32(&mut file, 12, length);
        assert!(
            matches!(
                Pte::from_bytes(file),
                Err(PteError::BadHeader { header: "eh00", .. })
            ),
            "length {length}"
        );
    }
}

#[test]
fn header_of_length_24_reads_segment_data_to_end_of_file() {
    // Without segment_data_size, segments may extend to the end of the file.
    let mut file = sample_pte();
    set_u32(&mut file, 12, 24);
    set_u64(&mut file, 32, u64::MAX); // would be rejected if read
    let pte = Pte::from_bytes(file.clone()).unwrap();
    assert_eq!(pte.header().unwrap().segment_data_size, None);
    assert_eq!(pte.segment_data().end(), Some(file.len() as u64));
}

#[test]
fn header_ranges_past_the_file_are_rejected() {
    let file = sample_pte();
    let len = file.len() as u64;
    let header = *Pte::from_bytes(file.clone()).unwrap().header().unwrap();

    let mut program_past_eof = file.clone();
    set_u64(&mut program_past_eof, 16, len + 1);
    assert!(matches!(
        Pte::from_bytes(program_past_eof),
        Err(PteError::OutOfBounds { .. })
    ));

    let mut program_too_small = file.clone();
    set_u64(&mut program_too_small, 16, 12);
    assert!(matches!(
        Pte::from_bytes(program_too_small),
        Err(PteError::BadHeader { .. })
    ));

    let mut base_past_eof = file.clone();
    set_u64(&mut base_past_eof, 24, len + 128);
    assert!(matches!(
        Pte::from_bytes(base_past_eof),
        Err(PteError::OutOfBounds { .. })
    ));

    let mut data_past_eof = file.clone();
    set_u64(
        &mut data_past_eof,
        32,
        header.segment_data_size.unwrap() + 1,
    );
    assert!(matches!(
        Pte::from_bytes(data_past_eof),
        Err(PteError::OutOfBounds { .. })
    ));

    let mut overflowing = file.clone();
    set_u64(&mut overflowing, 32, u64::MAX - 16);
    assert!(matches!(
        Pte::from_bytes(overflowing),
        Err(PteError::OutOfBounds { .. })
    ));

    let mut base_inside_program = file.clone();
    set_u64(&mut base_inside_program, 24, 16);
    assert!(matches!(
        Pte::from_bytes(base_inside_program),
        Err(PteError::BadHeader { .. })
    ));
}

#[test]
fn ptd_header_edge_cases() {
    let file = write_ptd(&[("k", vec![1, 2, 3], None)]);
    let mut bad_magic = file.clone();
    bad_magic[8..12].copy_from_slice(b"FH02");
    assert!(matches!(
        Ptd::from_bytes(bad_magic),
        Err(PteError::BadHeader { header: "FH01", .. })
    ));
    let mut short_header = file.clone();
    set_u32(&mut short_header, 12, 39);
    assert!(matches!(
        Ptd::from_bytes(short_header),
        Err(PteError::BadHeader { .. })
    ));
    let mut overflow = file.clone();
    set_u64(&mut overflow, 16, u64::MAX);
    assert!(matches!(
        Ptd::from_bytes(overflow),
        Err(PteError::Overflow { .. })
    ));
    let mut segment_past_eof = file.clone();
    set_u64(&mut segment_past_eof, 40, 1 << 40);
    assert!(matches!(
        Ptd::from_bytes(segment_past_eof),
        Err(PteError::OutOfBounds { .. })
    ));
    for len in 0..file.len() {
        assert!(
            Ptd::from_bytes(file[..len].to_vec()).is_err(),
            "ptd truncated to {len}"
        );
    }
}

/// Writes the sample program after `edit`, with the sample segments.
fn with_edit(edit: impl FnOnce(&mut fb::Program)) -> Result<Pte> {
    let mut program = sample_program();
    edit(&mut program);
    Pte::from_bytes(write_pte(program, &sample_payloads()))
}

fn forward(program: &mut fb::Program) -> &mut fb::ExecutionPlan {
    &mut program.execution_plan.as_mut().unwrap()[0]
}

fn set_value(program: &mut fb::Program, index: i32, value: fb::EValue) {
    forward(program).values.as_mut().unwrap()[index as usize] = value;
}

fn expect_index_error(result: Result<Pte>, table: &str) {
    match result {
        Err(PteError::IndexOutOfRange { table: t, .. }) => assert_eq!(t, table),
        other => panic!("expected an index error on {table}, got {other:?}"),
    }
}

#[test]
fn out_of_range_indices_are_rejected() {
    expect_index_error(
        with_edit(|p| forward(p).inputs = Some(vec![v::COUNT as i32])),
        "values",
    );
    expect_index_error(with_edit(|p| forward(p).outputs = Some(vec![-1])), "values");
    expect_index_error(
        with_edit(|p| forward(p).chains = Some(vec![chain(vec![kernel_call(2, &[0])])])),
        "operators",
    );
    expect_index_error(
        with_edit(|p| forward(p).chains = Some(vec![chain(vec![delegate_call(0, &[0, 99])])])),
        "values",
    );
    expect_index_error(
        with_edit(|p| forward(p).chains = Some(vec![chain(vec![delegate_call(5, &[0])])])),
        "delegates",
    );
    expect_index_error(
        with_edit(|p| {
            forward(p).chains = Some(vec![chain(vec![instruction(
                fb::InstructionArguments::JumpFalseCall(Box::new(fb::JumpFalseCall {
                    cond_value_index: v::BOOL,
                    destination_instruction: 2,
                })),
            )])])
        }),
        "instructions (or one past the end)",
    );
    expect_index_error(
        with_edit(|p| {
            set_value(
                p,
                v::OPT_TENSORS,
                evalue(fb::KernelTypes::OptionalTensorList(Box::new(
                    fb::OptionalTensorList {
                        items: Some(vec![-2]),
                    },
                ))),
            )
        }),
        "values",
    );
    expect_index_error(
        with_edit(|p| {
            set_value(
                p,
                v::INT_LIST,
                evalue(fb::KernelTypes::IntList(Box::new(fb::IntList {
                    items: Some(vec![1 << 40]),
                }))),
            )
        }),
        "values",
    );
    expect_index_error(
        with_edit(|p| {
            forward(p).delegates.as_mut().unwrap()[0]
                .processed
                .as_mut()
                .unwrap()
                .index = 5;
        }),
        "Program.segments",
    );
    expect_index_error(
        with_edit(|p| {
            forward(p).delegates.as_mut().unwrap()[1]
                .processed
                .as_mut()
                .unwrap()
                .index = 1;
        }),
        "Program.backend_delegate_data",
    );
    expect_index_error(
        with_edit(|p| p.named_data.as_mut().unwrap()[0].segment_index = 5),
        "Program.segments",
    );
    expect_index_error(
        with_edit(|p| {
            let mut t = tensor(fb::ScalarType::Float, &[1]);
            t.data_buffer_idx = 2;
            set_value(p, v::CONSTANT, tensor_value(t));
        }),
        "Program.constant_segment.offsets",
    );
    expect_index_error(
        with_edit(|p| {
            set_value(
                p,
                v::OUTPUT,
                tensor_value(planned(tensor(fb::ScalarType::Float, &[1]), 2, 0)),
            )
        }),
        "non_const_buffer_sizes",
    );
}

#[test]
fn constant_larger_than_its_segment_is_rejected() {
    // The constant segment holds 24 bytes; an f32 [2,4] constant needs 32.
    let result = with_edit(|p| {
        let mut t = tensor(fb::ScalarType::Float, &[2, 4]);
        t.data_buffer_idx = 1;
        set_value(p, v::CONSTANT, tensor_value(t));
    });
    assert!(
        matches!(
            result,
            Err(PteError::OutOfBounds {
                limit_name: "its segment",
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn planned_tensor_outside_its_buffer_is_rejected() {
    let result = with_edit(|p| {
        set_value(
            p,
            v::OUTPUT,
            tensor_value(planned(
                tensor(fb::ScalarType::Float, &[2, 3]),
                1,
                BUFFER_SIZE as u64 - 8,
            )),
        )
    });
    assert!(
        matches!(result, Err(PteError::OutOfBounds { .. })),
        "{result:?}"
    );
    // memory_id 0 is reserved.
    let result = with_edit(|p| {
        set_value(
            p,
            v::OUTPUT,
            tensor_value(planned(tensor(fb::ScalarType::Float, &[1]), 0, 0)),
        )
    });
    assert!(
        matches!(result, Err(PteError::InvalidTensor { .. })),
        "{result:?}"
    );
}

#[test]
fn invalid_tensor_metadata_is_rejected() {
    let cases: Vec<(&str, fb::Tensor)> = vec![
        (
            "rank above MAX_RANK",
            tensor(fb::ScalarType::Float, &[1; limits::MAX_RANK + 1]),
        ),
        ("negative size", tensor(fb::ScalarType::Float, &[2, -1])),
        (
            "numel overflow",
            tensor(fb::ScalarType::Long, &[i32::MAX; 4]),
        ),
        (
            "dim_order not a permutation",
            fb::Tensor {
                dim_order: Some(vec![0, 0]),
                ..tensor(fb::ScalarType::Float, &[2, 2])
            },
        ),
        (
            "dim_order wrong length",
            fb::Tensor {
                dim_order: Some(vec![0]),
                ..tensor(fb::ScalarType::Float, &[2, 2])
            },
        ),
        (
            "storage_offset",
            fb::Tensor {
                storage_offset: 4,
                ..tensor(fb::ScalarType::Float, &[2])
            },
        ),
    ];
    for (what, t) in cases {
        let result = with_edit(|p| set_value(p, v::INPUT, tensor_value(t)));
        assert!(
            matches!(result, Err(PteError::InvalidTensor { .. })),
            "{what}: {result:?}"
        );
    }
}

#[test]
fn empty_union_values_and_instructions_are_rejected() {
    let result = with_edit(|p| set_value(p, v::NULL, fb::EValue { val: None }));
    assert!(
        matches!(result, Err(PteError::Invalid { .. })),
        "{result:?}"
    );
    let result = with_edit(|p| {
        forward(p).chains = Some(vec![chain(vec![fb::Instruction { instr_args: None }])])
    });
    assert!(
        matches!(result, Err(PteError::Invalid { .. })),
        "{result:?}"
    );
}

#[test]
fn segment_past_segment_data_is_rejected() {
    // Shrink segment_data_size by one byte: the last segment no longer fits.
    let mut file = sample_pte();
    let size = u64::from_le_bytes(file[32..40].try_into().unwrap());
    set_u64(&mut file, 32, size - 1);
    let result = Pte::from_bytes(file);
    assert!(
        matches!(
            result,
            Err(PteError::OutOfBounds {
                limit_name: "the segment data",
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn segments_without_header_must_be_empty() {
    let program = fb::Program {
        execution_plan: Some(vec![sample_getter()]),
        segments: Some(vec![fb::DataSegment {
            offset: 0,
            size: 16,
        }]),
        ..Default::default()
    };
    let result = Pte::from_bytes(write_pte_without_header(&program));
    assert!(
        matches!(result, Err(PteError::OutOfBounds { .. })),
        "{result:?}"
    );
}

#[test]
fn missing_plan_name_is_rejected() {
    let result = with_edit(|p| forward(p).name = None);
    assert!(
        matches!(result, Err(PteError::MissingField { .. })),
        "{result:?}"
    );
}

#[test]
fn shared_vectors_cannot_amplify_without_bound() {
    // FlatBuffers let every entry of a vector point at the same table. One IntList of
    // MAX_LIST_LEN items referenced by 40 values would materialize 40 Mi indices (320 MiB) from
    // an 8 MiB file; the materialization budget (256 MiB) stops it.
    use planus::{Builder, Offset, WriteAsOffset};
    let mut builder = Builder::new();
    let items = vec![0i64; limits::MAX_LIST_LEN];
    let list = fb::IntList::create(&mut builder, items.as_slice());
    let union = fb::KernelTypes::create_int_list(&mut builder, list);
    let value = fb::EValue::create(&mut builder, union);
    let values: Offset<[Offset<fb::EValue>]> = vec![value; 40].as_slice().prepare(&mut builder);
    let plan = fb::ExecutionPlan::create(
        &mut builder,
        "forward",
        (),
        values,
        (),
        (),
        (),
        (),
        (),
        (),
        (),
    );
    let plans: Offset<[Offset<fb::ExecutionPlan>]> = [plan].as_slice().prepare(&mut builder);
    let program = fb::Program::create(&mut builder, 0u32, plans, (), (), (), (), (), ());
    let file = finish_builder(&mut builder, program, *b"ET12");
    assert!(
        file.len() < 9 << 20,
        "the file itself is small: {} bytes",
        file.len()
    );
    let started = std::time::Instant::now();
    let result = Pte::from_bytes(file);
    assert!(
        matches!(result, Err(PteError::LimitExceeded { .. })),
        "{result:?}"
    );
    eprintln!("rejected after {:?}", started.elapsed());
}
