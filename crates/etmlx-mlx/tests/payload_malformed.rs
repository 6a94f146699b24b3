//! Malformed payloads are rejected with the right error, and arbitrary corruption never panics
//! nor yields a graph that breaks the IR's guarantees.

mod payload_common;

use etmlx_mlx::ir::{Graph, Op};
use etmlx_mlx::payload::{self, FieldError, PayloadError, MAX_CHAIN_NESTING};
use payload_common::*;

fn parse_graph(graph: &fb::MlxGraph) -> Result<Graph, PayloadError> {
    payload::parse(&serialize(graph))
}

fn with_main_ops(ops: Vec<fb::OpNode>) -> fb::MlxGraph {
    fb::MlxGraph {
        instruction_chains: vec![chain(ops)],
        ..add_graph()
    }
}

fn add(a: u32, b: u32, out: u32) -> fb::OpNode {
    fb::OpNode::AddNode(Box::new(fb::AddNode {
        a: tid(a),
        b: tid(b),
        out: tid(out),
    }))
}

fn add_int(a: fb::IntOrVid, out: u32) -> fb::OpNode {
    fb::OpNode::AddIntNode(Box::new(fb::AddIntNode {
        a: Box::new(a),
        b: Box::new(lit(1)),
        out: vid(out),
    }))
}

/// The guarantees `ir` documents for a parsed graph.
fn assert_graph_invariants(graph: &Graph) {
    let total = graph.total_tensors();
    assert!(u64::from(total) <= payload::MAX_TENSORS);
    assert!(graph.main_chain < graph.chains.len());
    assert!(graph
        .init_chain
        .is_none_or(|chain| chain < graph.chains.len()));
    for op in graph.chains.iter().flatten() {
        op.for_each_tid(|tid| assert!(tid.0 < total, "{op:?}"));
        op.for_each_vid(|vid| assert!(vid.0 < graph.num_values, "{op:?}"));
        for chain in op.called_chains() {
            assert!(chain.0 < graph.chains.len(), "{op:?}");
        }
    }
    for slot in graph.input_map.iter().chain(&graph.output_map) {
        let bound = if slot.tid().is_some() {
            total
        } else {
            graph.num_values
        };
        assert!(slot.idx < bound);
    }
    assert_eq!(
        graph.tensor_meta.len() as u64,
        u64::from(graph.num_non_temp_tensors())
    );
    for meta in graph.tensor_meta.iter().flatten() {
        assert!(meta.shape.len() <= payload::MAX_RANK);
        assert!((0..payload::SCALAR_TYPE_COUNT).contains(&meta.scalar_type));
    }
}

// ----- header ------------------------------------------------------------------------------

#[test]
fn short_blobs_are_rejected() {
    let blob = serialize(&add_graph());
    for len in 0..24 {
        assert!(
            matches!(payload::parse(&blob[..len]), Err(PayloadError::TooShort { len: l }) if l == len),
            "len {len}"
        );
    }
}

#[test]
fn wrong_magic_is_rejected() {
    let mut blob = serialize(&add_graph());
    blob[4..8].copy_from_slice(b"MLX1");
    assert!(matches!(
        payload::parse(&blob),
        Err(PayloadError::BadMagic { found }) if &found == b"MLX1"
    ));
}

#[test]
fn data_offset_outside_header_and_blob_is_rejected() {
    let blob = serialize(&add_graph());
    let len = blob.len() as u64;
    for offset in [0, 23, 24, len + 1, u64::MAX] {
        let mut bad = blob.clone();
        bad[8..16].copy_from_slice(&offset.to_le_bytes());
        assert!(
            matches!(payload::parse(&bad), Err(PayloadError::BadDataOffset { offset: o, .. }) if o == offset),
            "offset {offset}"
        );
    }
}

#[test]
fn data_segment_past_the_end_is_rejected() {
    let blob = serialize(&add_graph());
    for size in [1, u64::MAX] {
        let mut bad = blob.clone();
        bad[16..24].copy_from_slice(&size.to_le_bytes());
        assert!(
            matches!(
                payload::parse(&bad),
                Err(PayloadError::BadDataSegment { .. })
            ),
            "size {size}"
        );
    }
}

// ----- corruption --------------------------------------------------------------------------

#[test]
fn every_truncation_is_rejected_or_harmless() {
    let blob = serialize(&add_graph());
    let full = payload::parse(&blob).expect("valid payload");
    for len in 0..blob.len() {
        // Plain truncation: the header's offset now points past the end.
        assert!(payload::parse(&blob[..len]).is_err(), "len {len}");
        // Truncate the flatbuffer itself, keeping the header consistent.
        if len > 24 {
            let mut cut = blob[..len].to_vec();
            cut[8..16].copy_from_slice(&(len as u64).to_le_bytes());
            if let Ok(graph) = payload::parse(&cut) {
                // Only the zero padding may go.
                assert_eq!(graph, full, "len {len}");
            }
        }
    }
}

/// xorshift64: a fixed, dependency-free bit-flip schedule.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn flip_bits_and_parse(blob: &[u8], rng: &mut XorShift, rounds: usize) -> usize {
    let mut accepted = 0;
    for _ in 0..rounds {
        let mut corrupt = blob.to_vec();
        let flips = 1 + rng.next() % 4;
        for _ in 0..flips {
            let bit = rng.next() % (corrupt.len() as u64 * 8);
            corrupt[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        if let Ok(graph) = payload::parse(&corrupt) {
            assert_graph_invariants(&graph);
            accepted += 1;
        }
    }
    accepted
}

#[test]
fn bit_flips_never_panic_nor_break_invariants() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let small = serialize(&add_graph());
    let rich = serialize(&fb::MlxGraph {
        num_temp_tensors: 1,
        num_values: 2,
        instruction_chains: vec![
            chain(vec![
                add(0, 1, 3),
                add_int(int_vid(0), 1),
                fb::OpNode::IfNode(Box::new(fb::IfNode {
                    cond: Box::new(int_vid(1)),
                    then_chain_idx: 1,
                    else_chain_idx: 1,
                })),
            ]),
            chain(vec![add(3, 3, 2)]),
        ],
        ..add_graph()
    });
    let accepted =
        flip_bits_and_parse(&small, &mut rng, 3000) + flip_bits_and_parse(&rich, &mut rng, 3000);
    // Most flips hit bytes that matter; some (padding, literal values) do not.
    assert!(accepted < 6000);
}

// ----- graph-level bounds ------------------------------------------------------------------

#[test]
fn unsupported_or_garbage_versions_are_rejected() {
    let version = |text: &str| {
        parse_graph(&fb::MlxGraph {
            version: Some(text.into()),
            ..add_graph()
        })
    };
    assert!(matches!(
        version("2"),
        Err(PayloadError::UnsupportedVersion { version: 2 })
    ));
    assert!(matches!(
        version("abc"),
        Err(PayloadError::BadVersion { .. })
    ));
    assert!(matches!(
        version("-1"),
        Err(PayloadError::BadVersion { .. })
    ));
    assert!(matches!(
        version("1 "),
        Err(PayloadError::BadVersion { .. })
    ));
    assert_eq!(version("0").map(|graph| graph.version).ok(), Some(0));
}

#[test]
fn tensor_and_value_counts_are_capped() {
    let huge = parse_graph(&fb::MlxGraph {
        num_constant_tensors: u32::MAX,
        num_temp_tensors: u32::MAX,
        ..add_graph()
    });
    assert!(
        matches!(huge, Err(PayloadError::TooManyTensors { total, .. }) if total == 2 * u64::from(u32::MAX) + 3)
    );
    let just_over = parse_graph(&fb::MlxGraph {
        num_temp_tensors: 1_000_000 - 2,
        ..add_graph()
    });
    assert!(matches!(
        just_over,
        Err(PayloadError::TooManyTensors {
            total: 1_000_001,
            ..
        })
    ));
    let at_limit = parse_graph(&fb::MlxGraph {
        num_temp_tensors: 1_000_000 - 3,
        ..add_graph()
    });
    assert!(at_limit.is_ok());
    let values = parse_graph(&fb::MlxGraph {
        num_values: 1_000_001,
        ..add_graph()
    });
    assert!(matches!(
        values,
        Err(PayloadError::TooManyValues { count: 1_000_001 })
    ));
}

#[test]
fn chain_indices_must_exist() {
    let main = parse_graph(&fb::MlxGraph {
        main_chain_idx: 1,
        ..add_graph()
    });
    assert!(matches!(
        main,
        Err(PayloadError::BadChainIndex {
            what: "main_chain_idx",
            idx: 1,
            num_chains: 1
        })
    ));
    for init in [-2, 1, i32::MAX] {
        let result = parse_graph(&fb::MlxGraph {
            init_chain_idx: init,
            ..add_graph()
        });
        assert!(
            matches!(result, Err(PayloadError::BadChainIndex { what: "init_chain_idx", idx, .. }) if idx == i64::from(init)),
            "init {init}"
        );
    }
    let no_chains = parse_graph(&fb::MlxGraph {
        instruction_chains: vec![],
        ..add_graph()
    });
    assert!(matches!(
        no_chains,
        Err(PayloadError::BadChainIndex {
            what: "main_chain_idx",
            ..
        })
    ));
}

#[test]
fn tensor_meta_must_cover_exactly_the_non_temp_tensors() {
    let mut graph = add_graph();
    graph.tensor_meta.as_mut().map(Vec::pop);
    assert!(matches!(
        parse_graph(&graph),
        Err(PayloadError::TensorMetaLength {
            found: 2,
            expected: 3
        })
    ));
    graph.tensor_meta = None;
    assert!(matches!(
        parse_graph(&graph),
        Err(PayloadError::TensorMetaLength {
            found: 0,
            expected: 3
        })
    ));
}

fn with_meta(meta: fb::TensorMeta) -> Result<Graph, PayloadError> {
    let mut graph = add_graph();
    if let Some(list) = graph.tensor_meta.as_mut() {
        list[1] = meta;
    }
    parse_graph(&graph)
}

#[test]
fn rank_above_16_is_rejected() {
    assert!(with_meta(static_meta(&[1; 16], 6)).is_ok());
    assert!(matches!(
        with_meta(static_meta(&[1; 17], 6)),
        Err(PayloadError::BadTensorMeta {
            tid: 1,
            source: FieldError::RankTooHigh { rank: 17 }
        })
    ));
}

#[test]
fn malformed_shape_dims_are_rejected() {
    let dim = |value, min_value, max_value| fb::TensorMeta {
        shape: vec![fb::ShapeDim {
            value,
            min_value,
            max_value,
        }],
        scalar_type: 6,
        dim_order: None,
    };
    for (value, min, max) in [
        (-2, 0, -1),
        (-1, -1, -1),
        (-1, 5, 3),
        (-1, 0, -2),
        (4, 2, 1),
    ] {
        assert!(
            matches!(
                with_meta(dim(value, min, max)),
                Err(PayloadError::BadTensorMeta {
                    tid: 1,
                    source: FieldError::BadShapeDim { .. }
                })
            ),
            "({value}, {min}, {max})"
        );
    }
    for (value, min, max) in [(-1, 0, -1), (-1, 5, -1), (-1, 2, 2), (0, 0, -1), (7, 0, -1)] {
        assert!(
            with_meta(dim(value, min, max)).is_ok(),
            "({value}, {min}, {max})"
        );
    }
}

#[test]
fn bad_scalar_types_and_dim_orders_are_rejected() {
    for scalar_type in [-1, 30, i8::MAX] {
        assert!(matches!(
            with_meta(static_meta(&[2], scalar_type)),
            Err(PayloadError::BadTensorMeta { source: FieldError::BadScalarType { value }, .. }) if value == scalar_type
        ));
    }
    for dim_order in [vec![0, 0], vec![1], vec![0, 2], vec![0, 1, 2]] {
        let meta = fb::TensorMeta {
            dim_order: Some(dim_order.clone()),
            ..static_meta(&[2, 3], 6)
        };
        assert!(
            matches!(
                with_meta(meta),
                Err(PayloadError::BadTensorMeta {
                    source: FieldError::BadDimOrder { .. },
                    ..
                })
            ),
            "{dim_order:?}"
        );
    }
    let op_dtype = with_main_ops(vec![fb::OpNode::AsTypeNode(Box::new(fb::AsTypeNode {
        x: tid(0),
        out: tid(2),
        scalar_type: 31,
    }))]);
    assert!(matches!(
        parse_graph(&op_dtype),
        Err(PayloadError::BadOpField {
            op: "AsType",
            field: "scalar_type",
            source: FieldError::BadScalarType { value: 31 },
            ..
        })
    ));
}

#[test]
fn io_maps_must_reference_existing_slots() {
    let mut graph = add_graph();
    graph.input_map = Some(vec![tensor_slot(0), tensor_slot(3)]);
    assert!(matches!(
        parse_graph(&graph),
        Err(PayloadError::BadSlot {
            list: "input_map",
            index: 1,
            source: FieldError::TidOutOfRange { tid: 3, total: 3 }
        })
    ));
    let mut graph = add_graph();
    graph.output_map = Some(vec![fb::SlotVariant {
        idx: 0,
        slot_type: fb::SlotType::IntValueSlot,
    }]);
    assert!(matches!(
        parse_graph(&graph),
        Err(PayloadError::BadSlot {
            list: "output_map",
            index: 0,
            source: FieldError::VidOutOfRange {
                vid: 0,
                num_values: 0
            }
        })
    ));
    let mut graph = add_graph();
    graph.num_values = 1;
    graph.mutable_buffer_map = Some(vec![fb::SlotVariant {
        idx: 0,
        slot_type: fb::SlotType::IntValueSlot,
    }]);
    assert!(matches!(
        parse_graph(&graph),
        Err(PayloadError::BadSlot {
            list: "mutable_buffer_map",
            source: FieldError::NotATensorSlot { .. },
            ..
        })
    ));
    let mut graph = add_graph();
    graph.named_slots = Some(vec![fb::NamedSlot {
        name: "w".into(),
        slot: Box::new(tensor_slot(9)),
    }]);
    assert!(matches!(
        parse_graph(&graph),
        Err(PayloadError::BadSlot {
            list: "named_slots",
            index: 0,
            source: FieldError::TidOutOfRange { tid: 9, .. }
        })
    ));
}

// ----- op fields ---------------------------------------------------------------------------

#[test]
fn out_of_range_tids_and_vids_name_the_op_and_field() {
    assert!(matches!(
        parse_graph(&with_main_ops(vec![add(0, 1, 2), add(0, 3, 2)])),
        Err(PayloadError::BadOpField {
            chain: 0,
            instr: 1,
            op: "Add",
            field: "b",
            source: FieldError::TidOutOfRange { tid: 3, total: 3 }
        })
    ));
    let vids = fb::MlxGraph {
        num_values: 2,
        ..with_main_ops(vec![add_int(int_vid(1), 1), add_int(int_vid(2), 1)])
    };
    assert!(matches!(
        parse_graph(&vids),
        Err(PayloadError::BadOpField {
            instr: 1,
            op: "AddInt",
            field: "a",
            source: FieldError::VidOutOfRange {
                vid: 2,
                num_values: 2
            },
            ..
        })
    ));
    let out_vid = fb::MlxGraph {
        num_values: 2,
        ..with_main_ops(vec![add_int(lit(5), 2)])
    };
    assert!(matches!(
        parse_graph(&out_vid),
        Err(PayloadError::BadOpField {
            op: "AddInt",
            field: "out",
            source: FieldError::VidOutOfRange { vid: 2, .. },
            ..
        })
    ));
    let in_vector = with_main_ops(vec![fb::OpNode::ConcatenateNode(Box::new(
        fb::ConcatenateNode {
            tensors: vec![tid(0), tid(1), tid(7)],
            out: tid(2),
            axis: 0,
        },
    ))]);
    let error = parse_graph(&in_vector).expect_err("tid 7 is out of range");
    assert!(matches!(
        &error,
        PayloadError::BadOpField {
            op: "Concatenate",
            field: "tensors",
            source: FieldError::Element { index: 2, .. },
            ..
        }
    ));
    assert!(error.to_string().contains("Concatenate"), "{error}");
}

#[test]
fn operands_must_hold_what_they_select() {
    let no_vid = with_main_ops(vec![add_int(
        fb::IntOrVid {
            literal: 3,
            vid: None,
            is_vid: true,
        },
        0,
    )]);
    assert!(matches!(
        parse_graph(&fb::MlxGraph {
            num_values: 1,
            ..no_vid
        }),
        Err(PayloadError::BadOpField {
            field: "a",
            source: FieldError::MissingOperand { what: "vid" },
            ..
        })
    ));
    let take = |kind| {
        with_main_ops(vec![fb::OpNode::TakeNode(Box::new(fb::TakeNode {
            x: tid(0),
            out: tid(2),
            index: Box::new(fb::IntOrVidOrTid {
                literal: 0,
                vid: None,
                tid: Some(tid(1)),
                kind,
            }),
            axis: 0,
        }))])
    };
    assert!(parse_graph(&take(0)).is_ok());
    assert!(parse_graph(&take(2)).is_ok());
    assert!(matches!(
        parse_graph(&take(1)),
        Err(PayloadError::BadOpField {
            op: "Take",
            field: "index",
            source: FieldError::MissingOperand { what: "vid" },
            ..
        })
    ));
    assert!(matches!(
        parse_graph(&take(3)),
        Err(PayloadError::BadOpField {
            op: "Take",
            field: "index",
            source: FieldError::BadOperandKind { kind: 3 },
            ..
        })
    ));
}

#[test]
fn missing_required_fields_name_the_op_and_field() {
    // A field-less Noop relabelled as Add (type id 13): Add's required `a` is absent.
    let mut blob = serialize(&with_main_ops(vec![fb::OpNode::NoopNode(Box::default())]));
    let position = sole_op_type_position(&blob);
    blob[position] = 13;
    let error = payload::parse(&blob).expect_err("Add without fields");
    assert!(matches!(
        error,
        PayloadError::BadOpField {
            chain: 0,
            instr: 0,
            op: "Add",
            field: "a",
            source: FieldError::Missing
        }
    ));
    let message = error.to_string();
    assert!(
        message.contains("Add") && message.contains("`a`") && message.contains("missing"),
        "{message}"
    );
}

#[test]
fn control_flow_chains_must_exist_and_not_loop() {
    let branch = |then_chain_idx, else_chain_idx| {
        fb::OpNode::IfNode(Box::new(fb::IfNode {
            cond: Box::new(lit(1)),
            then_chain_idx,
            else_chain_idx,
        }))
    };
    let two_chains = |ops| fb::MlxGraph {
        instruction_chains: vec![chain(ops), chain(vec![add(0, 1, 2)])],
        ..add_graph()
    };
    assert!(parse_graph(&two_chains(vec![branch(1, 1)])).is_ok());
    assert!(matches!(
        parse_graph(&two_chains(vec![branch(1, 2)])),
        Err(PayloadError::BadOpField {
            op: "If",
            field: "else_chain_idx",
            source: FieldError::ChainOutOfRange {
                idx: 2,
                num_chains: 2
            },
            ..
        })
    ));
    assert!(matches!(
        parse_graph(&two_chains(vec![branch(0, 1)])),
        Err(PayloadError::ChainCycle { chain: 0 })
    ));
    let scan = |body_chain_idx| {
        fb::OpNode::ScanNode(Box::new(fb::ScanNode {
            body_chain_idx,
            ..Default::default()
        }))
    };
    assert!(matches!(
        parse_graph(&two_chains(vec![scan(-1)])),
        Err(PayloadError::BadOpField {
            op: "Scan",
            field: "body_chain_idx",
            source: FieldError::ChainOutOfRange { idx: -1, .. },
            ..
        })
    ));
    // Chain 1 -> 0 -> 1: a cycle not through the main chain's own entry.
    let looping = fb::MlxGraph {
        instruction_chains: vec![chain(vec![branch(1, 1)]), chain(vec![scan(0)])],
        ..add_graph()
    };
    assert!(matches!(
        parse_graph(&looping),
        Err(PayloadError::ChainCycle { .. })
    ));
}

#[test]
fn chain_nesting_is_bounded() {
    // Chain k calls chain k + 1; the last chain is empty.
    let nested = |depth: usize| fb::MlxGraph {
        instruction_chains: (0..depth)
            .map(|k| {
                if k + 1 < depth {
                    let next = (k + 1) as u32;
                    chain(vec![fb::OpNode::IfNode(Box::new(fb::IfNode {
                        cond: Box::new(lit(0)),
                        then_chain_idx: next,
                        else_chain_idx: next,
                    }))])
                } else {
                    chain(vec![])
                }
            })
            .collect(),
        ..add_graph()
    };
    let ok = parse_graph(&nested(MAX_CHAIN_NESTING)).expect("at the limit");
    assert!(matches!(ok.chains[0][0], Op::If { .. }));
    assert!(matches!(
        parse_graph(&nested(MAX_CHAIN_NESTING + 1)),
        Err(PayloadError::ChainNestingTooDeep { chain: 0, depth }) if depth == MAX_CHAIN_NESTING + 1
    ));
}
