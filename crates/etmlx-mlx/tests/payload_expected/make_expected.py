"""Record what the OFFICIAL ExecuTorch MLX tooling reads from each fixture's delegate payloads, in
the JSON shape of etmlx's `ir::Graph` serialization, for tests/payload_official.rs.

Ops come from executorch.backends.mlx.pte_inspector (its generated per-node field table and
FlatBuffer bindings); graph-level fields from the official generated MLXGraph bindings. Only the
shape of the output is etmlx's; every value is read by the official code.

Run with the export env (executorch 1.5.1), over every folder holding `*/model.pte`:
  python crates/etmlx-mlx/tests/payload_expected/make_expected.py \
      tests/fixtures crates/etmlx-mlx/tests/payload_expected
"""

import json
import sys
from pathlib import Path

import executorch.backends.mlx.pte_inspector as inspector
from executorch.backends.mlx.serialization._generated.mlx_delegate import MLXGraph

SLOT_KINDS = {0: "Tensor", 1: "Int", 2: "Float", 3: "Bool"}


def operand(value, kind):
    if kind in ("tid", "vid"):
        return None if value is None else value[kind]
    if kind in ("int_or_vid", "float_or_vid", "vid_or_tid", "int_or_vid_or_tid"):
        if value is None:
            return None
        ((key, number),) = value.items()
        return {{"literal": "Lit", "vid": "Vid", "tid": "Tid"}[key]: number}
    if kind == "tid_list":
        return [int(item.split()[1]) for item in value]
    if kind == "int_or_vid_list":
        return [operand(item, "int_or_vid") for item in value]
    if kind == "string":
        return "" if value is None else value
    return value


def ops_of(graph):
    chains = []
    for chain in inspector._parse_instructions(graph):
        ops = []
        for instruction in chain["instructions"]:
            name = instruction["op_name"]
            fields = {}
            for field, _accessor, kind in inspector.OP_NODE_FIELDS[name]:
                fields[field] = operand(instruction.get(field), kind)
            ops.append({name[: -len("Node")]: fields})
        chains.append(ops)
    return chains


def slots(length, getter):
    return [
        {"idx": getter(i).Idx(), "kind": SLOT_KINDS[getter(i).SlotType()]}
        for i in range(length)
    ]


def tensor_meta(graph):
    metas = []
    for i in range(graph.TensorMetaLength()):
        meta = graph.TensorMeta(i)
        shape = []
        for j in range(meta.ShapeLength()):
            dim = meta.Shape(j)
            if dim.Value() >= 0:
                shape.append({"Static": dim.Value()})
            else:
                high = dim.MaxValue()
                shape.append({"Dynamic": {"min": dim.MinValue(), "max": None if high == -1 else high}})
        metas.append(
            {
                "shape": shape,
                "scalar_type": meta.ScalarType(),
                "dim_order": [meta.DimOrder(j) for j in range(meta.DimOrderLength())],
            }
        )
    return metas


def graph_json(fb_data):
    graph = MLXGraph.MLXGraph.GetRootAs(fb_data, 0)
    version = graph.Version().decode() if graph.Version() else ""
    init = graph.InitChainIdx()
    return {
        "version": int(version) if version else 1,
        "num_constants": graph.NumConstantTensors(),
        "num_inputs": graph.NumInputTensors(),
        "num_outputs": graph.NumOutputTensors(),
        "num_mutable_buffers": graph.NumMutableBufferTensors(),
        "num_temps": graph.NumTempTensors(),
        "num_values": graph.NumValues(),
        "chains": ops_of(graph),
        "main_chain": graph.MainChainIdx(),
        "init_chain": None if init == -1 else init,
        "input_map": slots(graph.InputMapLength(), graph.InputMap),
        "output_map": slots(graph.OutputMapLength(), graph.OutputMap),
        "mutable_buffer_map": slots(graph.MutableBufferMapLength(), graph.MutableBufferMap),
        "named_slots": [
            {
                "name": graph.NamedSlots(i).Name().decode(),
                "slot": {
                    "idx": graph.NamedSlots(i).Slot().Idx(),
                    "kind": SLOT_KINDS[graph.NamedSlots(i).Slot().SlotType()],
                },
            }
            for i in range(graph.NamedSlotsLength())
        ],
        "tensor_meta": tensor_meta(graph),
    }


def main(fixture_dirs):
    out_dir = Path(__file__).parent
    union = [inspector.MLX_OP_TYPE_NAMES[tag] for tag in range(1, len(inspector.MLX_OP_TYPE_NAMES))]
    (out_dir / "union.json").write_text(json.dumps(union) + "\n")
    ptes = sorted(pte for folder in fixture_dirs for pte in Path(folder).glob("*/model.pte"))
    for pte in ptes:
        data = pte.read_bytes()
        graphs = [
            graph_json(inspector._load_mlx_payload(data, index).fb_data)
            for index in range(len(inspector._find_mlx_delegates(data)))
        ]
        if graphs:
            (out_dir / f"{pte.parent.name}.json").write_text(json.dumps(graphs) + "\n")
            print(pte.parent.name, len(graphs), sum(len(c) for g in graphs for c in g["chains"]))


if __name__ == "__main__":
    main(sys.argv[1:])
