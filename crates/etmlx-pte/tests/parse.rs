//! Parsing a synthetic `.pte` that uses every feature; expected values are the ones the test
//! writer put in (see `common::sample_program`), never values computed by the crate.

mod common;

use common::*;
use etmlx_pte::schema::executorch_flatbuffer as fb;
use etmlx_pte::*;

fn load_sample() -> Pte {
    Pte::from_bytes(sample_pte()).expect("sample program parses")
}

fn idx(i: i32) -> usize {
    i as usize
}

#[test]
fn header_and_segments_are_resolved() {
    let file = sample_pte();
    let pte = Pte::from_bytes(file.clone()).unwrap();
    let header = pte.header().expect("writer emitted an eh00 header");
    assert_eq!(header.length, 32);
    assert_eq!(header.program_size, pte.program_size());
    assert_eq!(header.segment_base_offset % SEGMENT_ALIGNMENT as u64, 0);
    assert!(header.segment_base_offset >= header.program_size);
    assert_eq!(pte.file_len(), file.len() as u64);

    let payloads = sample_payloads();
    let program = pte.program();
    assert_eq!(program.segments.len(), payloads.len());
    for (i, payload) in payloads.iter().enumerate() {
        assert_eq!(
            pte.segment_bytes(i).unwrap(),
            payload.as_slice(),
            "segment {i}"
        );
        assert_eq!(program.segments[i].offset % SEGMENT_ALIGNMENT as u64, 0);
    }
    // The last segment ends exactly at the end of the file (no trailing padding).
    assert_eq!(
        program.segments.last().unwrap().end(),
        Some(file.len() as u64)
    );
}

#[test]
fn methods_and_constant_getter() {
    let pte = load_sample();
    let names: Vec<&str> = pte.program().method_names().collect();
    assert_eq!(names, ["forward", "get_max_seq_len"]);
    let forward = pte.plan("forward").unwrap();
    assert!(!forward.is_constant_getter());
    let getter = pte.plan("get_max_seq_len").unwrap();
    assert!(getter.is_constant_getter());
    assert_eq!(getter.chains.len(), 1);
    assert_eq!(
        getter.output_values().collect::<Vec<_>>(),
        [&Value::Int(128)]
    );
    assert!(pte.plan("missing").is_none());
}

#[test]
fn scalar_and_list_values() {
    let pte = load_sample();
    let plan = pte.plan("forward").unwrap();
    assert_eq!(plan.values.len(), v::COUNT);
    let value = |i: i32| &plan.values[idx(i)];
    assert_eq!(value(v::INT7), &Value::Int(7));
    assert_eq!(value(v::DOUBLE), &Value::Double(1.5));
    assert_eq!(value(v::BOOL), &Value::Bool(true));
    assert_eq!(value(v::STRING), &Value::String("hello".into()));
    assert_eq!(value(v::NULL), &Value::Null);
    assert_eq!(value(v::DOUBLES), &Value::DoubleList(vec![0.5, -2.0]));
    assert_eq!(value(v::BOOLS), &Value::BoolList(vec![true, false, true]));
    // IntList items are value indices, not literals.
    assert_eq!(
        value(v::INT_LIST),
        &Value::IntList(vec![idx(v::INT7), idx(v::INT7)])
    );
    assert_eq!(
        value(v::TENSORS),
        &Value::TensorList(vec![idx(v::INPUT), idx(v::CONSTANT)])
    );
    // -1 in an optional tensor list is None.
    assert_eq!(
        value(v::OPT_TENSORS),
        &Value::OptionalTensorList(vec![Some(idx(v::CONSTANT)), None, Some(idx(v::INPUT))])
    );
    assert_eq!(plan.inputs, [idx(v::INPUT)]);
    assert_eq!(plan.outputs, [idx(v::OUTPUT)]);
    assert_eq!(plan.non_const_buffer_sizes, [0, BUFFER_SIZE as u64]);
}

#[test]
fn tensors_kinds_allocations_and_bytes() {
    let pte = load_sample();
    let plan = pte.plan("forward").unwrap();
    let tensor = |i: i32| plan.values[idx(i)].as_tensor().expect("tensor value");

    let input = tensor(v::INPUT);
    assert_eq!(input.scalar_type, ScalarType::Float);
    assert_eq!(input.sizes, [2, 3]);
    assert_eq!(input.dim_order, [0, 1]);
    assert_eq!(input.dynamism, ShapeDynamism::DynamicBound);
    assert_eq!(input.kind(), TensorKind::Planned);
    assert_eq!(
        input.allocation,
        Some(Allocation {
            memory_id: 1,
            offset: 0
        })
    );
    assert_eq!(input.numel(), Some(6));
    assert_eq!(input.nbytes(), Some(24));
    assert_eq!(input.strides(), Some(vec![3, 1]));
    assert!(pte.constant_bytes(input).is_err());

    // The planned offset combines memory_offset_low | memory_offset_high << 32.
    let output = tensor(v::OUTPUT);
    assert_eq!(output.allocation.unwrap().offset, 0x2_0000_0040);
    assert_eq!(output.dynamism, ShapeDynamism::Static);

    let constant = tensor(v::CONSTANT);
    assert_eq!(constant.kind(), TensorKind::Constant);
    assert_eq!(
        pte.constant_bytes(constant).unwrap(),
        constant_payload().as_slice()
    );

    let with_initial = tensor(v::WITH_INITIAL);
    assert_eq!(with_initial.kind(), TensorKind::PlannedWithInitial);
    assert_eq!(
        with_initial
            .extra
            .as_ref()
            .unwrap()
            .fully_qualified_name
            .as_deref(),
        Some("state.counter")
    );
    let initial = pte.mutable_initial_bytes(with_initial).unwrap();
    assert_eq!(
        initial,
        [1.0f32, 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>()
    );
    assert!(pte.constant_bytes(with_initial).is_err());

    let external = tensor(v::EXTERNAL);
    assert_eq!(external.kind(), TensorKind::Constant);
    assert_eq!(external.scalar_type, ScalarType::BFloat16);
    assert_eq!(
        external.data,
        TensorData::External {
            key: "ext.weight".into()
        }
    );
    assert!(matches!(
        pte.constant_bytes(external),
        Err(PteError::NoTensorData { .. })
    ));
}

#[test]
fn instructions_operators_and_delegates() {
    let pte = load_sample();
    let plan = pte.plan("forward").unwrap();
    let instructions: Vec<&Instruction> = plan.instructions().collect();
    assert_eq!(
        instructions,
        [
            &Instruction::DelegateCall {
                delegate_index: 0,
                args: vec![0, 1, 2]
            },
            &Instruction::KernelCall {
                op_index: 1,
                args: vec![2, 4, 2]
            },
            &Instruction::DelegateCall {
                delegate_index: 1,
                args: vec![0, 2]
            },
            &Instruction::MoveCall { from: 0, to: 2 },
            &Instruction::JumpFalseCall {
                cond_value_index: 8,
                destination_instruction: 6
            },
            &Instruction::FreeCall { value_index: 0 },
        ]
    );
    let names: Vec<String> = plan
        .operators
        .iter()
        .map(Operator::qualified_name)
        .collect();
    assert_eq!(names, ["aten::add.out", "executorch_prim::et_view.default"]);

    let segment_delegate = &plan.delegates[0];
    assert_eq!(segment_delegate.id, "MLXBackend");
    assert_eq!(segment_delegate.blob.location, DataLocation::Segment);
    assert_eq!(segment_delegate.blob.index, 2);
    assert_eq!(pte.delegate_blob(segment_delegate).unwrap(), DELEGATE_BLOB);
    assert_eq!(
        segment_delegate.compile_specs,
        [CompileSpec {
            key: "mode".into(),
            value: vec![1, 2, 3]
        }]
    );

    let inline_delegate = &plan.delegates[1];
    assert_eq!(inline_delegate.blob.location, DataLocation::Inline);
    assert_eq!(pte.delegate_blob(inline_delegate).unwrap(), INLINE_BLOB);
}

#[test]
fn named_data_lookup_and_sharing() {
    let pte = load_sample();
    assert_eq!(pte.named_data("weight.a"), Some(NAMED_A));
    assert_eq!(pte.named_data("weight.b"), Some(NAMED_A));
    assert_eq!(pte.named_data("weight.c"), Some(NAMED_C));
    assert_eq!(pte.named_data("weight.z"), None);
    let entries = &pte.program().named_data;
    assert_eq!(
        entries[0].range, entries[1].range,
        "two keys share one segment"
    );
}

#[test]
fn named_data_map_merges_pte_and_ptd() {
    let pte = load_sample();
    let ptd_file = write_ptd(&[
        ("ext.weight", vec![9u8; 8], None),
        ("ext.bias", vec![7u8; 4], None),
    ]);
    let ptd = Ptd::from_bytes(ptd_file).unwrap();
    let map = NamedDataMap::new(&pte, Some(&ptd)).unwrap();
    let keys: Vec<&str> = map.iter().map(|blob| blob.key.as_str()).collect();
    assert_eq!(
        keys,
        ["weight.a", "weight.b", "weight.c", "ext.weight", "ext.bias"]
    );
    assert_eq!(map.bytes("weight.c"), Some(NAMED_C));
    assert_eq!(map.bytes("ext.weight"), Some([9u8; 8].as_slice()));
    assert_eq!(map.get("ext.bias").unwrap().source, NamedDataSource::Ptd);
    assert_eq!(map.get("weight.a").unwrap().source, NamedDataSource::Pte);
    assert_eq!(map.len(), 5);
    assert_eq!(
        map.total_bytes(),
        (2 * NAMED_A.len() + NAMED_C.len() + 8 + 4) as u64
    );

    // Views outlive the files they came from.
    let blob = map.get("weight.a").unwrap().bytes.clone();
    drop(map);
    drop(pte);
    drop(ptd);
    assert_eq!(&*blob, NAMED_A);

    let pte_only = NamedDataMap::new(&load_sample(), None).unwrap();
    assert_eq!(pte_only.len(), 3);
}

#[test]
fn named_data_map_rejects_a_key_in_both_files() {
    let pte = load_sample();
    let ptd = Ptd::from_bytes(write_ptd(&[("weight.c", vec![1, 2, 3], None)])).unwrap();
    match NamedDataMap::new(&pte, Some(&ptd)) {
        Err(PteError::DuplicateNamedData { key }) => assert_eq!(key, "weight.c"),
        other => panic!("expected a duplicate-key error, got {other:?}"),
    }
}

#[test]
fn ptd_with_tensor_layout() {
    use etmlx_pte::schema::flat_tensor::executorch_flatbuffer::ScalarType as FtScalar;
    use etmlx_pte::schema::flat_tensor_flatbuffer as ft;
    let layout = ft::TensorLayout {
        scalar_type: FtScalar::Half,
        sizes: Some(vec![2, 2]),
        dim_order: Some(vec![1, 0]),
    };
    let payload: Vec<u8> = (0u8..8).collect();
    let file = write_ptd(&[("w", payload.clone(), Some(layout))]);
    let ptd = Ptd::from_bytes(file).unwrap();
    assert_eq!(ptd.header().length, 40);
    assert_eq!(ptd.header().flatbuffer_offset, 48);
    assert_eq!(ptd.get("w"), Some(payload.as_slice()));
    let entry = ptd.entry("w").unwrap();
    assert_eq!(
        entry.layout,
        Some(TensorLayout {
            scalar_type: ScalarType::Half,
            sizes: vec![2, 2],
            dim_order: vec![1, 0]
        })
    );
}

#[test]
fn file_without_extended_header_parses() {
    let program = fb::Program {
        execution_plan: Some(vec![sample_getter()]),
        ..Default::default()
    };
    let file = write_pte_without_header(&program);
    let pte = Pte::from_bytes(file.clone()).unwrap();
    assert!(pte.header().is_none());
    assert_eq!(pte.program_size(), file.len() as u64);
    assert_eq!(
        pte.plan("get_max_seq_len").unwrap().values,
        [Value::Int(128)]
    );
}

#[test]
fn open_maps_a_file() {
    let dir = std::env::temp_dir().join(format!("etmlx-pte-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sample.pte");
    std::fs::write(&path, sample_pte()).unwrap();
    let pte = Pte::open(&path).unwrap();
    let constant = pte.plan("forward").unwrap().values[1]
        .as_tensor()
        .unwrap()
        .clone();
    let shared = pte.shared_bytes(match constant.data {
        TensorData::InFile(range) => range,
        _ => panic!("constant is in the file"),
    });
    drop(pte);
    assert_eq!(&*shared.unwrap(), constant_payload().as_slice());
    // Constants are 128-aligned in the file and the mapping is page aligned.
    std::fs::remove_dir_all(&dir).unwrap();

    match Pte::open(dir.join("does-not-exist.pte")) {
        Err(PteError::Io { path, .. }) => assert!(path.ends_with("does-not-exist.pte")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn unaligned_owned_bytes_are_realigned() {
    // Build a Vec whose data starts at an odd address by slicing off one byte of a larger copy.
    let file = sample_pte();
    let mut padded = Vec::with_capacity(file.len() + 1);
    padded.push(0);
    padded.extend_from_slice(&file);
    let unaligned: Vec<u8> = padded[1..].to_vec();
    let pte = Pte::from_bytes(unaligned).unwrap();
    assert_eq!(pte.file_bytes().as_ptr() as usize % BUFFER_ALIGNMENT, 0);
    assert_eq!(pte.file_bytes(), file.as_slice());
}

#[test]
fn summary_describes_methods() {
    let pte = load_sample();
    let summary = pte.summary();
    assert_eq!(summary.methods.len(), 2);
    let forward = &summary.methods[0];
    assert_eq!(forward.name, "forward");
    assert_eq!(forward.inputs.len(), 1);
    let input = forward.inputs[0].tensor.as_ref().unwrap();
    assert_eq!(input.dtype, ScalarType::Float);
    assert_eq!(input.sizes, [2, 3]);
    assert_eq!(input.dynamism, ShapeDynamism::DynamicBound);
    assert_eq!(forward.delegates[0].id, "MLXBackend");
    assert_eq!(forward.delegates[0].blob_size, DELEGATE_BLOB.len() as u64);
    assert_eq!(forward.delegates[0].calls, 1);
    assert_eq!(forward.instruction_kinds["DelegateCall"], 2);
    assert_eq!(
        forward.operator_calls["executorch_prim::et_view.default"],
        1
    );
    assert_eq!(forward.constant_bytes, 24);
    let getter = &summary.methods[1];
    assert!(getter.is_constant_getter);
    assert_eq!(getter.outputs[0].scalar.as_deref(), Some("128"));
    assert_eq!(summary.named_data.count, 3);
    assert_eq!(summary.named_data.segments, 2);
    assert_eq!(
        summary.named_data.bytes,
        (NAMED_A.len() + NAMED_C.len()) as u64
    );
    // Everything serializes for `inspect --json`.
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["methods"][0]["inputs"][0]["tensor"]["dtype"], "Float");
    serde_json::to_string(pte.program()).unwrap();
}

#[test]
fn scalar_type_numbering_matches_executorch() {
    // Wire values from ExecuTorch's scalar_type.fbs.
    let expected = [
        (0, "Byte", 1),
        (1, "Char", 1),
        (2, "Short", 2),
        (3, "Int", 4),
        (4, "Long", 8),
        (5, "Half", 2),
        (6, "Float", 4),
        (7, "Double", 8),
        (11, "Bool", 1),
        (15, "BFloat16", 2),
        (27, "UInt16", 2),
        (28, "UInt32", 4),
        (29, "UInt64", 8),
    ];
    for (raw, name, size) in expected {
        let t = ScalarType::try_from(raw).unwrap();
        assert_eq!((t.to_i8(), t.name(), t.element_size()), (raw, name, size));
    }
    for reserved in [8, 9, 10, 18, 19, 20, 21, 30, -1] {
        assert_eq!(ScalarType::try_from(reserved), Err(reserved));
    }
}

#[test]
fn loaded_files_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pte>();
    assert_send_sync::<Ptd>();
    assert_send_sync::<SharedBytes>();
    assert_send_sync::<NamedDataMap>();
    let pte = std::sync::Arc::new(load_sample());
    let worker = {
        let pte = std::sync::Arc::clone(&pte);
        std::thread::spawn(move || pte.named_data("weight.c").map(<[u8]>::to_vec))
    };
    assert_eq!(worker.join().unwrap().as_deref(), Some(NAMED_C));
}
