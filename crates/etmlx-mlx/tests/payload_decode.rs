//! Valid payloads built with the planus owned types decode into the expected IR. Expected values
//! are written by hand from the schema facts (field defaults, union order).

mod payload_common;

use etmlx_mlx::ir::{
    ChainIdx, FloatOrVid, IntOrVid, IntOrVidOrTid, Op, ShapeDim, Slot, SlotKind, TensorMeta, Tid,
    TidClass, Vid, VidOrTid, ALL_OP_NAMES,
};
use etmlx_mlx::payload::{self, PayloadError};
use payload_common::*;

/// The union members in order, from the reference's node table (#1..#134) plus Trunc and Flip
/// (appended in executorch 1.5.1).
const REFERENCE_OP_ORDER: [&str; 136] = [
    "Noop",
    "IdCopy",
    "Addmm",
    "ItemInt",
    "ExpandDims",
    "Tile",
    "TakeAlongAxis",
    "Take",
    "RMSNorm",
    "LayerNorm",
    "Rope",
    "Sdpa",
    "Add",
    "AddInt",
    "SubtractInt",
    "MultiplyInt",
    "FloorDivideInt",
    "SymSize",
    "Multiply",
    "Divide",
    "Subtract",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Gelu",
    "ARange",
    "Silu",
    "Sigmoid",
    "Tanh",
    "Squeeze",
    "Split",
    "Rsqrt",
    "Maximum",
    "Minimum",
    "Log",
    "Softmax",
    "BroadcastTo",
    "Pad",
    "Where",
    "Reshape",
    "Transpose",
    "AsStrided",
    "Contiguous",
    "Gather",
    "Slice",
    "AsType",
    "Concatenate",
    "Full",
    "FullLike",
    "Argmax",
    "SliceUpdate",
    "IndexCopy",
    "Dequantize",
    "Less",
    "LessEqual",
    "Greater",
    "GreaterEqual",
    "Equal",
    "NotEqual",
    "LogicalNot",
    "LogicalAnd",
    "LogicalOr",
    "Tri",
    "Tril",
    "Triu",
    "Floor",
    "Ceil",
    "Square",
    "Exp",
    "Sin",
    "Cos",
    "Tan",
    "Arcsin",
    "Arccos",
    "Arctan",
    "Sinh",
    "Cosh",
    "Arcsinh",
    "Arccosh",
    "Arctanh",
    "Log2",
    "Log10",
    "Log1p",
    "Erf",
    "Expm1",
    "Round",
    "Reciprocal",
    "Sqrt",
    "Abs",
    "Neg",
    "Atan2",
    "LogAddExp",
    "FloorDivide",
    "Power",
    "LogSumExp",
    "Sum",
    "Mean",
    "Var",
    "Std",
    "Prod",
    "Max",
    "Min",
    "Argmin",
    "Median",
    "ModInt",
    "Remainder",
    "ConvTranspose1D",
    "ConvTranspose2D",
    "ConvTranspose3D",
    "Clip",
    "Cumsum",
    "Stack",
    "Sign",
    "Any",
    "All",
    "Repeat",
    "Sort",
    "Argsort",
    "Partition",
    "ArgPartition",
    "QuantizedMatmul",
    "ScatterAdd",
    "GatherMm",
    "GatherQmm",
    "Scan",
    "MetalKernel",
    "BitwiseInvert",
    "Roll",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "If",
    "RandomBits",
    "UpdateAndAttend",
    "Trunc",
    "Flip",
];

#[test]
fn op_names_follow_the_union_order() {
    assert_eq!(ALL_OP_NAMES, REFERENCE_OP_ORDER);
}

#[test]
fn add_graph_decodes() {
    let graph = payload::parse(&serialize(&add_graph())).expect("valid payload");
    assert_eq!(graph.version, 1);
    assert_eq!(graph.total_tensors(), 3);
    assert_eq!(graph.chains.len(), 1);
    assert_eq!(graph.main_chain, 0);
    assert_eq!(graph.init_chain, None);
    assert_eq!(
        graph.chains[0],
        vec![Op::Add {
            a: Tid(0),
            b: Tid(1),
            out: Tid(2)
        }]
    );
    let tensor = |idx| Slot {
        idx,
        kind: SlotKind::Tensor,
    };
    assert_eq!(graph.input_map, vec![tensor(0), tensor(1)]);
    assert_eq!(graph.output_map, vec![tensor(2)]);
    let float_2x3 = TensorMeta {
        shape: vec![ShapeDim::Static(2), ShapeDim::Static(3)],
        scalar_type: 6,
        dim_order: vec![0, 1],
    };
    assert_eq!(graph.tensor_meta, vec![Some(float_2x3); 3]);
    assert_eq!(graph.tid_class(Tid(0)), Some(TidClass::Input));
    assert_eq!(graph.tid_class(Tid(2)), Some(TidClass::Output));
    assert_eq!(graph.tid_class(Tid(3)), None);
    assert_eq!(
        graph.op_histogram().into_iter().collect::<Vec<_>>(),
        [("Add", 1)]
    );
}

#[test]
fn empty_version_reads_as_1() {
    for version in [None, Some(String::new())] {
        let graph = payload::parse(&serialize(&fb::MlxGraph {
            version,
            ..add_graph()
        }))
        .expect("valid payload");
        assert_eq!(graph.version, 1);
    }
}

/// Every union member, written with the owned type's defaults, decodes to the op of the same
/// position and name.
#[test]
fn every_union_member_decodes_to_its_op() {
    macro_rules! all_default_nodes {
        ($($variant:ident),* $(,)?) => {
            vec![$( fb::OpNode::$variant(Box::default()) ),*]
        };
    }
    let nodes = all_default_nodes![
        NoopNode,
        IdCopyNode,
        AddmmNode,
        ItemIntNode,
        ExpandDimsNode,
        TileNode,
        TakeAlongAxisNode,
        TakeNode,
        RmsNormNode,
        LayerNormNode,
        RopeNode,
        SdpaNode,
        AddNode,
        AddIntNode,
        SubtractIntNode,
        MultiplyIntNode,
        FloorDivideIntNode,
        SymSizeNode,
        MultiplyNode,
        DivideNode,
        SubtractNode,
        Conv1DNode,
        Conv2DNode,
        Conv3DNode,
        GeluNode,
        ARangeNode,
        SiluNode,
        SigmoidNode,
        TanhNode,
        SqueezeNode,
        SplitNode,
        RsqrtNode,
        MaximumNode,
        MinimumNode,
        LogNode,
        SoftmaxNode,
        BroadcastToNode,
        PadNode,
        WhereNode,
        ReshapeNode,
        TransposeNode,
        AsStridedNode,
        ContiguousNode,
        GatherNode,
        SliceNode,
        AsTypeNode,
        ConcatenateNode,
        FullNode,
        FullLikeNode,
        ArgmaxNode,
        SliceUpdateNode,
        IndexCopyNode,
        DequantizeNode,
        LessNode,
        LessEqualNode,
        GreaterNode,
        GreaterEqualNode,
        EqualNode,
        NotEqualNode,
        LogicalNotNode,
        LogicalAndNode,
        LogicalOrNode,
        TriNode,
        TrilNode,
        TriuNode,
        FloorNode,
        CeilNode,
        SquareNode,
        ExpNode,
        SinNode,
        CosNode,
        TanNode,
        ArcsinNode,
        ArccosNode,
        ArctanNode,
        SinhNode,
        CoshNode,
        ArcsinhNode,
        ArccoshNode,
        ArctanhNode,
        Log2Node,
        Log10Node,
        Log1pNode,
        ErfNode,
        Expm1Node,
        RoundNode,
        ReciprocalNode,
        SqrtNode,
        AbsNode,
        NegNode,
        Atan2Node,
        LogAddExpNode,
        FloorDivideNode,
        PowerNode,
        LogSumExpNode,
        SumNode,
        MeanNode,
        VarNode,
        StdNode,
        ProdNode,
        MaxNode,
        MinNode,
        ArgminNode,
        MedianNode,
        ModIntNode,
        RemainderNode,
        ConvTranspose1DNode,
        ConvTranspose2DNode,
        ConvTranspose3DNode,
        ClipNode,
        CumsumNode,
        StackNode,
        SignNode,
        AnyNode,
        AllNode,
        RepeatNode,
        SortNode,
        ArgsortNode,
        PartitionNode,
        ArgPartitionNode,
        QuantizedMatmulNode,
        ScatterAddNode,
        GatherMmNode,
        GatherQmmNode,
        ScanNode,
        MetalKernelNode,
        BitwiseInvertNode,
        RollNode,
        BitwiseAndNode,
        BitwiseOrNode,
        BitwiseXorNode,
        IfNode,
        RandomBitsNode,
        UpdateAndAttendNode,
        TruncNode,
        FlipNode,
    ];
    assert_eq!(nodes.len(), 136);
    // A default VidOrTid selects a tid it does not hold; give Rope a real offset.
    let mut nodes = nodes;
    nodes[10] = fb::OpNode::RopeNode(Box::new(rope_with_defaults()));
    // Chain 0 stays empty so that the default If/Scan chain index 0 is not a cycle.
    let graph = payload::parse(&serialize(&fb::MlxGraph {
        num_temp_tensors: 1,
        num_values: 1,
        instruction_chains: vec![chain(vec![]), chain(nodes)],
        ..Default::default()
    }))
    .expect("valid payload");
    let names: Vec<&str> = graph.chains[1].iter().map(Op::name).collect();
    assert_eq!(names, REFERENCE_OP_ORDER);
    for (position, op) in graph.chains[1].iter().enumerate() {
        assert_eq!(usize::from(op.type_id()), position + 1, "{}", op.name());
    }
}

/// A Rope node with only its required fields set.
fn rope_with_defaults() -> fb::RopeNode {
    fb::RopeNode {
        offset: Box::new(fb::VidOrTid {
            vid: None,
            tid: Some(tid(0)),
            is_vid: false,
        }),
        ..Default::default()
    }
}

/// Absent fields read as the schema defaults (values copied from the schema text).
#[test]
fn absent_fields_read_as_schema_defaults() {
    let ops = vec![
        fb::OpNode::RopeNode(Box::new(rope_with_defaults())),
        fb::OpNode::AddmmNode(Box::default()),
        fb::OpNode::Conv2DNode(Box::default()),
        fb::OpNode::CumsumNode(Box::default()),
        fb::OpNode::QuantizedMatmulNode(Box::default()),
        fb::OpNode::UpdateAndAttendNode(Box::default()),
        fb::OpNode::ARangeNode(Box::default()),
        fb::OpNode::SqueezeNode(Box::default()),
        fb::OpNode::MetalKernelNode(Box::default()),
        fb::OpNode::RandomBitsNode(Box::default()),
        fb::OpNode::ScanNode(Box::default()),
        fb::OpNode::SliceNode(Box::default()),
    ];
    let graph = payload::parse(&serialize(&fb::MlxGraph {
        num_temp_tensors: 1,
        num_values: 1,
        instruction_chains: vec![chain(vec![]), chain(ops)],
        ..Default::default()
    }))
    .expect("valid payload");
    let t0 = Tid(0);
    let expected = vec![
        Op::Rope {
            x: t0,
            out: t0,
            dims: 0,
            offset: VidOrTid::Tid(t0),
            freqs: None,
            traditional: false,
            base: 500000.0,
            scale: 1.0,
        },
        Op::Addmm {
            mat1: t0,
            mat2: t0,
            out: t0,
            bias: None,
            alpha: 1.0,
            beta: 1.0,
        },
        Op::Conv2D {
            x: t0,
            w: t0,
            out: t0,
            stride_h: 1,
            stride_w: 1,
            padding_h: 0,
            padding_w: 0,
            dilation_h: 1,
            dilation_w: 1,
            groups: 1,
        },
        Op::Cumsum {
            x: t0,
            out: t0,
            axis: 0,
            reverse: false,
            inclusive: true,
        },
        Op::QuantizedMatmul {
            x: t0,
            w: t0,
            scales: t0,
            out: t0,
            biases: None,
            group_size: 0,
            bits: 0,
            mode: String::new(),
            transpose: true,
        },
        Op::UpdateAndAttend {
            q: t0,
            k: t0,
            v: t0,
            position: t0,
            out: t0,
            layer_id: None,
            scale: None,
            out_dtype: None,
        },
        Op::ARange {
            out: t0,
            start: IntOrVid::Lit(0),
            stop: IntOrVid::Lit(0),
            step: IntOrVid::Lit(0),
            scalar_type: None,
        },
        Op::Squeeze {
            x: t0,
            out: t0,
            dims: vec![],
        },
        Op::MetalKernel {
            name: String::new(),
            source: String::new(),
            inputs: vec![],
            outputs: vec![],
            grid: vec![],
            threadgroup: vec![],
            header: String::new(),
            input_names: vec![],
            output_names: vec![],
            ensure_row_contiguous: true,
            atomic_outputs: false,
            output_shapes_flat: vec![],
            output_shape_lengths: vec![],
            output_dtypes: vec![],
            template_arg_names: vec![],
            template_arg_kinds: vec![],
            template_arg_values: vec![],
            init_value: None,
        },
        Op::RandomBits {
            out: t0,
            shape: vec![],
            seed: None,
            width: 4,
        },
        Op::Scan {
            originals: vec![],
            sliced: vec![],
            outputs: vec![],
            carry: vec![],
            body_chain_idx: ChainIdx(0),
            scan_axis: 1,
        },
        Op::Slice {
            x: t0,
            out: t0,
            axis: IntOrVid::Lit(0),
            start: IntOrVid::Lit(0),
            stop: IntOrVid::Lit(0),
            step: 1,
        },
    ];
    assert_eq!(graph.chains[1], expected);
}

/// A graph that uses every kind of field: operands of each variant, optionals present,
/// vectors, strings, chains (If, Scan, init), every slot kind, dynamic dims.
fn rich_graph() -> fb::MlxGraph {
    // Tids: 0 constant, 1-2 inputs, 3 output, 4 mutable buffer, 5-9 temps. Vids 0..4.
    let rope = fb::RopeNode {
        x: tid(1),
        out: tid(5),
        dims: 64,
        offset: Box::new(fb::VidOrTid {
            vid: Some(vid(0)),
            tid: None,
            is_vid: true,
        }),
        freqs: Some(tid(0)),
        traditional: true,
        base: 10000.0,
        scale: 0.5,
    };
    let take = fb::TakeNode {
        x: tid(0),
        out: tid(6),
        index: Box::new(fb::IntOrVidOrTid {
            literal: 0,
            vid: None,
            tid: Some(tid(2)),
            kind: 2,
        }),
        axis: -1,
    };
    let slice = fb::SliceNode {
        x: tid(6),
        out: tid(7),
        axis: Box::new(lit(1)),
        start: Box::new(int_vid(1)),
        stop: Box::new(lit(i64::MAX)),
        step: 2,
    };
    let full = fb::FullNode {
        out: tid(8),
        shape: vec![lit(2), int_vid(2)],
        v: Box::new(fb::FloatOrVid {
            literal: 0.25,
            vid: None,
            is_vid: false,
        }),
        scalar_type: 15,
    };
    let attend = fb::UpdateAndAttendNode {
        q: tid(5),
        k: tid(6),
        v: tid(7),
        position: tid(2),
        out: tid(3),
        layer_id: Some(3),
        scale: Some(0.125),
        out_dtype: Some(6),
    };
    let kernel = fb::MetalKernelNode {
        name: "k".into(),
        source: "src".into(),
        inputs: vec![tid(5)],
        outputs: vec![tid(9)],
        grid: vec![lit(32), int_vid(3)],
        threadgroup: vec![lit(32)],
        header: Some("hdr".into()),
        input_names: Some(vec!["a".into()]),
        output_names: Some(vec!["b".into()]),
        ensure_row_contiguous: false,
        atomic_outputs: true,
        output_shapes_flat: Some(vec![lit(4)]),
        output_shape_lengths: Some(vec![1]),
        output_dtypes: Some(vec![6]),
        template_arg_names: Some(vec!["T".into()]),
        template_arg_kinds: Some(vec![2]),
        template_arg_values: Some(vec![6]),
        init_value: Some(-1.5),
    };
    let branch = fb::IfNode {
        cond: Box::new(int_vid(4)),
        then_chain_idx: 1,
        else_chain_idx: 2,
    };
    let scan = fb::ScanNode {
        originals: vec![tid(5)],
        sliced: vec![tid(6)],
        outputs: vec![tid(7)],
        carry: vec![tid(8)],
        body_chain_idx: 3,
        scan_axis: 0,
    };
    let write_back = fb::IdCopyNode {
        x: tid(3),
        out: tid(4),
    };
    let copy = |x, out| {
        fb::OpNode::IdCopyNode(Box::new(fb::IdCopyNode {
            x: tid(x),
            out: tid(out),
        }))
    };
    let init = fb::MultiplyNode {
        a: tid(0),
        b: tid(0),
        out: tid(0),
    };
    fb::MlxGraph {
        version: Some("1".into()),
        num_constant_tensors: 1,
        num_input_tensors: 2,
        num_output_tensors: 1,
        num_mutable_buffer_tensors: 1,
        num_temp_tensors: 5,
        num_values: 5,
        instruction_chains: vec![
            chain(vec![
                fb::OpNode::RopeNode(Box::new(rope)),
                fb::OpNode::TakeNode(Box::new(take)),
                fb::OpNode::SliceNode(Box::new(slice)),
                fb::OpNode::FullNode(Box::new(full)),
                fb::OpNode::UpdateAndAttendNode(Box::new(attend)),
                fb::OpNode::MetalKernelNode(Box::new(kernel)),
                fb::OpNode::IfNode(Box::new(branch)),
                fb::OpNode::ScanNode(Box::new(scan)),
                fb::OpNode::IdCopyNode(Box::new(write_back)),
            ]),
            chain(vec![copy(5, 9)]),
            chain(vec![copy(6, 9)]),
            chain(vec![copy(6, 7)]),
            chain(vec![fb::OpNode::MultiplyNode(Box::new(init))]),
        ],
        main_chain_idx: 0,
        init_chain_idx: 4,
        input_map: Some(vec![
            tensor_slot(1),
            tensor_slot(2),
            fb::SlotVariant {
                idx: 0,
                slot_type: fb::SlotType::IntValueSlot,
            },
        ]),
        output_map: Some(vec![tensor_slot(3)]),
        mutable_buffer_map: Some(vec![tensor_slot(4)]),
        named_slots: Some(vec![
            fb::NamedSlot {
                name: "ab12/w".into(),
                slot: Box::new(tensor_slot(0)),
            },
            fb::NamedSlot {
                name: "cache".into(),
                slot: Box::new(tensor_slot(4)),
            },
            fb::NamedSlot {
                name: "pos".into(),
                slot: Box::new(fb::SlotVariant {
                    idx: 0,
                    slot_type: fb::SlotType::IntValueSlot,
                }),
            },
        ]),
        tensor_meta: Some(vec![
            static_meta(&[4, 8], 15),
            fb::TensorMeta {
                shape: vec![
                    fb::ShapeDim {
                        value: 1,
                        min_value: 0,
                        max_value: -1,
                    },
                    fb::ShapeDim {
                        value: -1,
                        min_value: 1,
                        max_value: 64,
                    },
                    fb::ShapeDim {
                        value: -1,
                        min_value: 0,
                        max_value: -1,
                    },
                ],
                scalar_type: 6,
                dim_order: None,
            },
            static_meta(&[1], 4),
            static_meta(&[1, 8], 6),
            static_meta(&[1, 8], 6),
        ]),
    }
}

#[test]
fn every_field_kind_decodes() {
    let graph = payload::parse(&serialize(&rich_graph())).expect("valid payload");
    assert_eq!(graph.chains.len(), 5);
    assert_eq!(graph.main_chain, 0);
    assert_eq!(graph.init_chain, Some(4));
    let main = &graph.chains[0];
    assert_eq!(
        main[0],
        Op::Rope {
            x: Tid(1),
            out: Tid(5),
            dims: 64,
            offset: VidOrTid::Vid(Vid(0)),
            freqs: Some(Tid(0)),
            traditional: true,
            base: 10000.0,
            scale: 0.5,
        }
    );
    assert_eq!(
        main[1],
        Op::Take {
            x: Tid(0),
            out: Tid(6),
            index: IntOrVidOrTid::Tid(Tid(2)),
            axis: -1
        }
    );
    assert_eq!(
        main[2],
        Op::Slice {
            x: Tid(6),
            out: Tid(7),
            axis: IntOrVid::Lit(1),
            start: IntOrVid::Vid(Vid(1)),
            stop: IntOrVid::Lit(i64::MAX),
            step: 2,
        }
    );
    assert_eq!(
        main[3],
        Op::Full {
            out: Tid(8),
            shape: vec![IntOrVid::Lit(2), IntOrVid::Vid(Vid(2))],
            v: FloatOrVid::Lit(0.25),
            scalar_type: 15,
        }
    );
    assert_eq!(
        main[4],
        Op::UpdateAndAttend {
            q: Tid(5),
            k: Tid(6),
            v: Tid(7),
            position: Tid(2),
            out: Tid(3),
            layer_id: Some(3),
            scale: Some(0.125),
            out_dtype: Some(6),
        }
    );
    assert_eq!(
        main[5],
        Op::MetalKernel {
            name: "k".into(),
            source: "src".into(),
            inputs: vec![Tid(5)],
            outputs: vec![Tid(9)],
            grid: vec![IntOrVid::Lit(32), IntOrVid::Vid(Vid(3))],
            threadgroup: vec![IntOrVid::Lit(32)],
            header: "hdr".into(),
            input_names: vec!["a".into()],
            output_names: vec!["b".into()],
            ensure_row_contiguous: false,
            atomic_outputs: true,
            output_shapes_flat: vec![IntOrVid::Lit(4)],
            output_shape_lengths: vec![1],
            output_dtypes: vec![6],
            template_arg_names: vec!["T".into()],
            template_arg_kinds: vec![2],
            template_arg_values: vec![6],
            init_value: Some(-1.5),
        }
    );
    assert_eq!(
        main[6],
        Op::If {
            cond: IntOrVid::Vid(Vid(4)),
            then_chain_idx: ChainIdx(1),
            else_chain_idx: ChainIdx(2),
        }
    );
    assert_eq!(
        main[7],
        Op::Scan {
            originals: vec![Tid(5)],
            sliced: vec![Tid(6)],
            outputs: vec![Tid(7)],
            carry: vec![Tid(8)],
            body_chain_idx: ChainIdx(3),
            scan_axis: 0,
        }
    );
    assert_eq!(main[6].called_chains(), [ChainIdx(1), ChainIdx(2)]);
    assert_eq!(main[4].tids(), [Tid(5), Tid(6), Tid(7), Tid(2), Tid(3)]);
    assert_eq!(main[0].tids(), [Tid(1), Tid(5), Tid(0)]);
    assert_eq!(main[0].vids(), [Vid(0)]);
    assert_eq!(main[5].vids(), [Vid(3)]);

    assert_eq!(
        graph.input_map[2],
        Slot {
            idx: 0,
            kind: SlotKind::Int
        }
    );
    assert_eq!(graph.mutable_buffer_map[0].tid(), Some(Tid(4)));
    assert_eq!(graph.constant_name(Tid(0)), Some("ab12/w"));
    assert_eq!(graph.constant_name(Tid(1)), None);
    assert_eq!(graph.tensor_names().get(&Tid(4)), Some(&"cache"));
    assert_eq!(graph.tid_class(Tid(0)), Some(TidClass::Constant));
    assert_eq!(graph.tid_class(Tid(4)), Some(TidClass::MutableBuffer));
    assert_eq!(graph.tid_class(Tid(9)), Some(TidClass::Temp));
    assert_eq!(graph.tid_class(Tid(10)), None);
    assert_eq!(
        graph.meta(Tid(1)).map(|meta| meta.shape.clone()),
        Some(vec![
            ShapeDim::Static(1),
            ShapeDim::Dynamic {
                min: 1,
                max: Some(64)
            },
            ShapeDim::Dynamic { min: 0, max: None },
        ])
    );
    assert_eq!(graph.meta(Tid(1)).map(|meta| meta.dim_order.len()), Some(0));
    assert_eq!(graph.meta(Tid(1)).and_then(TensorMeta::static_shape), None);
    assert_eq!(
        graph.meta(Tid(0)).and_then(TensorMeta::static_shape),
        Some(vec![4, 8])
    );
    let histogram = graph.op_histogram();
    assert_eq!(histogram.get("IdCopy"), Some(&4));
    assert_eq!(histogram.get("Multiply"), Some(&1));
    assert_eq!(histogram.values().sum::<usize>(), 13);
}

#[test]
fn padding_after_the_flatbuffer_is_ignored() {
    // A data segment may follow; only [24, data_segment_offset) is the flatbuffer.
    let mut blob = serialize(&add_graph());
    blob.extend_from_slice(&[0xAB; 32]);
    blob[16..24].copy_from_slice(&32u64.to_le_bytes());
    let header = payload::parse_header(&blob).expect("valid header");
    assert_eq!(header.data_segment_size, 32);
    assert!(payload::parse(&blob).is_ok());
}

#[test]
fn unknown_op_tag_names_the_tag_and_newer_schema() {
    // Build with a Noop, then patch its union type byte from 1 to 200.
    let graph = fb::MlxGraph {
        instruction_chains: vec![chain(vec![fb::OpNode::NoopNode(Box::default())])],
        ..Default::default()
    };
    let mut blob = serialize(&graph);
    let position = sole_op_type_position(&blob);
    blob[position] = 200;
    let error = payload::parse(&blob).expect_err("tag 200 is unknown");
    assert!(matches!(
        error,
        PayloadError::UnknownOp {
            chain: 0,
            instr: 0,
            tag: 200
        }
    ));
    let message = error.to_string();
    assert!(
        message.contains("200") && message.contains("newer"),
        "{message}"
    );
}
