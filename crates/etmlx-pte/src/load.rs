//! FlatBuffer -> owned views, with every index, range and count checked.

use planus::ReadAsRoot;

use crate::bytes::ByteRange;
use crate::error::{FbContext, PteError, Result};
use crate::header::FileLayout;
use crate::limits::*;
use crate::program::*;
use crate::schema::executorch_flatbuffer as fb;
use crate::types::{DataLocation, ScalarType, ShapeDynamism, TensorDataLocation};

/// Counts bytes of views materialized from the file against [`MAX_MATERIALIZED_BYTES`].
pub(crate) struct Budget {
    used: u64,
}

impl Budget {
    pub(crate) fn new() -> Self {
        Self { used: 0 }
    }

    /// Charges `bytes` (at least 1, so that empty elements still count as work).
    pub(crate) fn take(&mut self, bytes: usize, what: impl FnOnce() -> String) -> Result<()> {
        self.used = self.used.saturating_add(bytes.max(1) as u64);
        if self.used > MAX_MATERIALIZED_BYTES {
            return Err(PteError::LimitExceeded {
                what: format!("bytes of views materialized from the file (at {})", what()),
                count: self.used,
                limit: MAX_MATERIALIZED_BYTES,
            });
        }
        Ok(())
    }

    /// Charges `count` elements of type `T`.
    pub(crate) fn take_items<T>(
        &mut self,
        count: usize,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        self.take(count.saturating_mul(std::mem::size_of::<T>()), what)
    }
}

pub(crate) fn check_count(count: usize, limit: usize, what: impl FnOnce() -> String) -> Result<()> {
    if count > limit {
        return Err(PteError::LimitExceeded {
            what: what(),
            count: count as u64,
            limit: limit as u64,
        });
    }
    Ok(())
}

/// Converts a raw index to `usize`, checking `0 <= raw < len`.
pub(crate) fn check_index(
    raw: i64,
    table: &'static str,
    len: usize,
    what: impl FnOnce() -> String,
) -> Result<usize> {
    match usize::try_from(raw) {
        Ok(index) if index < len => Ok(index),
        _ => Err(PteError::IndexOutOfRange {
            what: what(),
            index: raw,
            table,
            len,
        }),
    }
}

/// Absolute file range of a slice that planus returned from inside `file`.
pub(crate) fn range_in_file(file: &[u8], slice: &[u8]) -> Option<ByteRange> {
    let start = (slice.as_ptr() as usize).checked_sub(file.as_ptr() as usize)?;
    let end = start.checked_add(slice.len())?;
    (end <= file.len()).then_some(ByteRange {
        offset: start as u64,
        len: slice.len() as u64,
    })
}

/// Resolves segments `(offset, size)` relative to the segment area into absolute ranges.
pub(crate) fn resolve_segment(
    area: ByteRange,
    offset: u64,
    size: u64,
    what: impl Fn() -> String,
) -> Result<ByteRange> {
    let end = offset.checked_add(size).ok_or_else(|| PteError::Overflow {
        what: what(),
        detail: format!("offset {offset} + size {size}"),
    })?;
    if end > area.len {
        return Err(PteError::OutOfBounds {
            what: what(),
            offset,
            size,
            limit_name: "the segment data",
            limit: area.len,
        });
    }
    // area.offset + end <= file length was checked with the header, so this cannot overflow.
    Ok(ByteRange {
        offset: area.offset + offset,
        len: size,
    })
}

fn missing(context: String) -> PteError {
    PteError::MissingField { context }
}

fn invalid(context: String, reason: impl Into<String>) -> PteError {
    PteError::Invalid {
        context,
        reason: reason.into(),
    }
}

/// Reads and validates the whole program.
pub(crate) fn load_program(file: &[u8], layout: FileLayout) -> Result<Program> {
    let program_bytes = usize::try_from(layout.program_size)
        .ok()
        .and_then(|size| file.get(..size))
        .ok_or_else(|| PteError::OutOfBounds {
            what: "FlatBuffer region".into(),
            offset: 0,
            size: layout.program_size,
            limit_name: "the file",
            limit: file.len() as u64,
        })?;
    let root = fb::ProgramRef::read_as_root(program_bytes).at(|| "Program (root)".into())?;
    let mut budget = Budget::new();

    let version = root.version().at(|| "Program.version".into())?;
    let segments = load_segments(&root, layout.segment_data, &mut budget)?;
    let inline_delegate_data = load_inline_blobs(file, &root, &mut budget)?;
    let legacy_constant_buffers = load_legacy_constants(file, &root, &mut budget)?;

    let constant_segment = match root
        .constant_segment()
        .at(|| "Program.constant_segment".into())?
    {
        Some(table) => load_subsegment(&table, &segments, &mut budget, || {
            "Program.constant_segment".into()
        })?,
        None => None,
    };
    let mut mutable_data_segments = Vec::new();
    if let Some(list) = root
        .mutable_data_segments()
        .at(|| "Program.mutable_data_segments".into())?
    {
        check_count(list.len(), MAX_SEGMENTS, || {
            "Program.mutable_data_segments".into()
        })?;
        budget.take_items::<SubsegmentOffsets>(list.len(), || {
            "Program.mutable_data_segments".into()
        })?;
        for (i, table) in list.iter().enumerate() {
            let ctx = || format!("Program.mutable_data_segments[{i}]");
            let table = table.at(ctx)?;
            let entry = load_subsegment(&table, &segments, &mut budget, ctx)?.unwrap_or(
                SubsegmentOffsets {
                    // An empty table references no segment; keep the position so indices stay stable.
                    segment_index: 0,
                    offsets: Vec::new(),
                },
            );
            mutable_data_segments.push(entry);
        }
    }
    let named_data = load_named_data(&root, &segments, &mut budget)?;

    let mut program = Program {
        version,
        plans: Vec::new(),
        segments,
        constant_segment,
        mutable_data_segments,
        named_data,
        inline_delegate_data,
        legacy_constant_buffers,
    };

    if let Some(plans) = root
        .execution_plan()
        .at(|| "Program.execution_plan".into())?
    {
        check_count(plans.len(), MAX_PLANS, || "Program.execution_plan".into())?;
        budget.take_items::<ExecutionPlan>(plans.len(), || "Program.execution_plan".into())?;
        for (p, plan) in plans.iter().enumerate() {
            let plan = plan.at(|| format!("execution_plan[{p}]"))?;
            let loaded = PlanLoader {
                program: &program,
                budget: &mut budget,
                plan_index: p,
            }
            .load(&plan)?;
            program.plans.push(loaded);
        }
    }
    Ok(program)
}

fn load_segments(
    root: &fb::ProgramRef<'_>,
    area: ByteRange,
    budget: &mut Budget,
) -> Result<Vec<ByteRange>> {
    let Some(list) = root.segments().at(|| "Program.segments".into())? else {
        return Ok(Vec::new());
    };
    check_count(list.len(), MAX_SEGMENTS, || "Program.segments".into())?;
    budget.take_items::<ByteRange>(list.len(), || "Program.segments".into())?;
    list.iter()
        .enumerate()
        .map(|(i, segment)| {
            let ctx = || format!("Program.segments[{i}]");
            let segment = segment.at(ctx)?;
            let offset = segment.offset().at(ctx)?;
            let size = segment.size().at(ctx)?;
            resolve_segment(area, offset, size, ctx)
        })
        .collect()
}

fn load_inline_blobs(
    file: &[u8],
    root: &fb::ProgramRef<'_>,
    budget: &mut Budget,
) -> Result<Vec<ByteRange>> {
    let Some(list) = root
        .backend_delegate_data()
        .at(|| "Program.backend_delegate_data".into())?
    else {
        return Ok(Vec::new());
    };
    check_count(list.len(), MAX_SEGMENTS, || {
        "Program.backend_delegate_data".into()
    })?;
    budget.take_items::<ByteRange>(list.len(), || "Program.backend_delegate_data".into())?;
    list.iter()
        .enumerate()
        .map(|(i, blob)| {
            let ctx = || format!("Program.backend_delegate_data[{i}]");
            let data = blob.at(ctx)?.data().at(ctx)?.unwrap_or(&[]);
            range_in_file(file, data).ok_or_else(|| invalid(ctx(), "blob lies outside the file"))
        })
        .collect()
}

fn load_legacy_constants(
    file: &[u8],
    root: &fb::ProgramRef<'_>,
    budget: &mut Budget,
) -> Result<Vec<ByteRange>> {
    let Some(list) = root
        .constant_buffer()
        .at(|| "Program.constant_buffer".into())?
    else {
        return Ok(Vec::new());
    };
    check_count(list.len(), MAX_SEGMENTS, || {
        "Program.constant_buffer".into()
    })?;
    budget.take_items::<ByteRange>(list.len(), || "Program.constant_buffer".into())?;
    list.iter()
        .enumerate()
        .map(|(i, buffer)| {
            let ctx = || format!("Program.constant_buffer[{i}]");
            let data = buffer.at(ctx)?.storage().at(ctx)?.unwrap_or(&[]);
            range_in_file(file, data).ok_or_else(|| invalid(ctx(), "buffer lies outside the file"))
        })
        .collect()
}

/// Loads a `SubsegmentOffsets`; `None` when it has no offsets (then its segment index is unused
/// and not checked, as older writers leave it 0 with no segments).
fn load_subsegment(
    table: &fb::SubsegmentOffsetsRef<'_>,
    segments: &[ByteRange],
    budget: &mut Budget,
    ctx: impl Fn() -> String,
) -> Result<Option<SubsegmentOffsets>> {
    let Some(offsets) = table.offsets().at(&ctx)? else {
        return Ok(None);
    };
    if offsets.is_empty() {
        return Ok(None);
    }
    check_count(offsets.len(), MAX_SUBSEGMENT_OFFSETS, || {
        format!("{}.offsets", ctx())
    })?;
    budget.take_items::<u64>(offsets.len(), || format!("{}.offsets", ctx()))?;
    let raw_index = table.segment_index().at(&ctx)?;
    let segment_index = check_index(raw_index.into(), "Program.segments", segments.len(), || {
        format!("{}.segment_index", ctx())
    })?;
    let segment_len = segments[segment_index].len;
    let offsets: Vec<u64> = offsets.iter().collect();
    for (i, &offset) in offsets.iter().enumerate() {
        if offset > segment_len {
            return Err(PteError::OutOfBounds {
                what: format!("{}.offsets[{i}]", ctx()),
                offset,
                size: 0,
                limit_name: "its segment",
                limit: segment_len,
            });
        }
    }
    Ok(Some(SubsegmentOffsets {
        segment_index,
        offsets,
    }))
}

fn load_named_data(
    root: &fb::ProgramRef<'_>,
    segments: &[ByteRange],
    budget: &mut Budget,
) -> Result<Vec<NamedDataEntry>> {
    let Some(list) = root.named_data().at(|| "Program.named_data".into())? else {
        return Ok(Vec::new());
    };
    check_count(list.len(), MAX_NAMED_DATA, || "Program.named_data".into())?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let ctx = || format!("Program.named_data[{i}]");
            let entry = entry.at(ctx)?;
            let key = entry
                .key()
                .at(ctx)?
                .ok_or_else(|| missing(format!("{}.key", ctx())))?;
            budget.take(key.len() + std::mem::size_of::<NamedDataEntry>(), ctx)?;
            let raw_index = entry.segment_index().at(ctx)?;
            let segment_index =
                check_index(raw_index.into(), "Program.segments", segments.len(), || {
                    format!("{}.segment_index (key {key:?})", ctx())
                })?;
            Ok(NamedDataEntry {
                key: key.to_owned(),
                segment_index,
                range: segments[segment_index],
            })
        })
        .collect()
}

fn owned_string(
    value: Option<&str>,
    budget: &mut Budget,
    ctx: impl FnOnce() -> String,
) -> Result<String> {
    let value = value.unwrap_or_default();
    budget.take(value.len(), ctx)?;
    Ok(value.to_owned())
}

struct PlanLoader<'p> {
    program: &'p Program,
    budget: &'p mut Budget,
    plan_index: usize,
}

impl PlanLoader<'_> {
    fn load(mut self, plan: &fb::ExecutionPlanRef<'_>) -> Result<ExecutionPlan> {
        let p = self.plan_index;
        let name = plan
            .name()
            .at(|| format!("execution_plan[{p}].name"))?
            .ok_or_else(|| missing(format!("execution_plan[{p}].name")))?;
        let name = owned_string(Some(name), self.budget, || {
            format!("execution_plan[{p}].name")
        })?;
        let at = |field: &str| format!("execution_plan[{p}] ({name:?}).{field}");

        let container_meta = match plan
            .container_meta_type()
            .at(|| at("container_meta_type"))?
        {
            Some(meta) => Some(ContainerMetadata {
                encoded_inp_str: owned_string(
                    meta.encoded_inp_str().at(|| at("container_meta_type"))?,
                    self.budget,
                    || at("container_meta_type"),
                )?,
                encoded_out_str: owned_string(
                    meta.encoded_out_str().at(|| at("container_meta_type"))?,
                    self.budget,
                    || at("container_meta_type"),
                )?,
            }),
            None => None,
        };

        let non_const_buffer_sizes = match plan
            .non_const_buffer_sizes()
            .at(|| at("non_const_buffer_sizes"))?
        {
            Some(sizes) => {
                check_count(sizes.len(), MAX_MEMORY_BUFFERS, || {
                    at("non_const_buffer_sizes")
                })?;
                self.budget
                    .take_items::<u64>(sizes.len(), || at("non_const_buffer_sizes"))?;
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, size)| {
                        u64::try_from(size).map_err(|_| {
                            invalid(
                                at(&format!("non_const_buffer_sizes[{i}]")),
                                format!("negative size {size}"),
                            )
                        })
                    })
                    .collect::<Result<Vec<u64>>>()?
            }
            None => Vec::new(),
        };

        let operators = self.load_operators(plan, &at)?;
        let delegates = self.load_delegates(plan, &at)?;

        let raw_values = plan.values().at(|| at("values"))?;
        let value_count = raw_values.map_or(0, |values| values.len());
        check_count(value_count, MAX_VALUES, || at("values"))?;
        self.budget
            .take_items::<Value>(value_count, || at("values"))?;
        let mut values = Vec::with_capacity(value_count);
        if let Some(raw_values) = raw_values {
            for (v, value) in raw_values.iter().enumerate() {
                let ctx = || at(&format!("values[{v}]"));
                let value = value.at(ctx)?;
                values.push(self.load_value(&value, value_count, &non_const_buffer_sizes, ctx)?);
            }
        }

        let inputs =
            self.value_indices(plan.inputs().at(|| at("inputs"))?, value_count, &|| {
                at("inputs")
            })?;
        let outputs =
            self.value_indices(plan.outputs().at(|| at("outputs"))?, value_count, &|| {
                at("outputs")
            })?;

        let mut chains = Vec::new();
        let mut instruction_total = 0usize;
        if let Some(raw_chains) = plan.chains().at(|| at("chains"))? {
            check_count(raw_chains.len(), MAX_CHAINS, || at("chains"))?;
            self.budget
                .take_items::<Chain>(raw_chains.len(), || at("chains"))?;
            for (c, chain) in raw_chains.iter().enumerate() {
                let chain_ctx = |field: &str| at(&format!("chains[{c}].{field}"));
                let chain = chain.at(|| chain_ctx(""))?;
                let inputs = self.value_indices(
                    chain.inputs().at(|| chain_ctx("inputs"))?,
                    value_count,
                    &|| chain_ctx("inputs"),
                )?;
                let outputs = self.value_indices(
                    chain.outputs().at(|| chain_ctx("outputs"))?,
                    value_count,
                    &|| chain_ctx("outputs"),
                )?;
                let mut instructions = Vec::new();
                if let Some(raw) = chain.instructions().at(|| chain_ctx("instructions"))? {
                    instruction_total = instruction_total.saturating_add(raw.len());
                    check_count(instruction_total, MAX_INSTRUCTIONS, || {
                        at("chains[*].instructions")
                    })?;
                    self.budget
                        .take_items::<Instruction>(raw.len(), || chain_ctx("instructions"))?;
                    let chain_len = raw.len();
                    for (i, instruction) in raw.iter().enumerate() {
                        let ctx = || chain_ctx(&format!("instructions[{i}]"));
                        let instruction = instruction.at(ctx)?;
                        instructions.push(self.load_instruction(
                            &instruction,
                            Counts {
                                values: value_count,
                                operators: operators.len(),
                                delegates: delegates.len(),
                                instructions: chain_len,
                            },
                            ctx,
                        )?);
                    }
                }
                chains.push(Chain {
                    inputs,
                    outputs,
                    instructions,
                });
            }
        }

        Ok(ExecutionPlan {
            name,
            container_meta,
            values,
            inputs,
            outputs,
            chains,
            operators,
            delegates,
            non_const_buffer_sizes,
        })
    }

    fn load_operators(
        &mut self,
        plan: &fb::ExecutionPlanRef<'_>,
        at: &dyn Fn(&str) -> String,
    ) -> Result<Vec<Operator>> {
        let Some(list) = plan.operators().at(|| at("operators"))? else {
            return Ok(Vec::new());
        };
        check_count(list.len(), MAX_OPERATORS, || at("operators"))?;
        self.budget
            .take_items::<Operator>(list.len(), || at("operators"))?;
        list.iter()
            .enumerate()
            .map(|(i, op)| {
                let ctx = || at(&format!("operators[{i}]"));
                let op = op.at(ctx)?;
                let name = op
                    .name()
                    .at(ctx)?
                    .ok_or_else(|| missing(at(&format!("operators[{i}].name"))))?;
                Ok(Operator {
                    name: owned_string(Some(name), self.budget, ctx)?,
                    overload: owned_string(op.overload().at(ctx)?, self.budget, ctx)?,
                })
            })
            .collect()
    }

    fn load_delegates(
        &mut self,
        plan: &fb::ExecutionPlanRef<'_>,
        at: &dyn Fn(&str) -> String,
    ) -> Result<Vec<Delegate>> {
        let Some(list) = plan.delegates().at(|| at("delegates"))? else {
            return Ok(Vec::new());
        };
        check_count(list.len(), MAX_DELEGATES, || at("delegates"))?;
        self.budget
            .take_items::<Delegate>(list.len(), || at("delegates"))?;
        let mut delegates = Vec::with_capacity(list.len());
        for (d, delegate) in list.iter().enumerate() {
            let ctx = || at(&format!("delegates[{d}]"));
            let delegate = delegate.at(ctx)?;
            let id = delegate
                .id()
                .at(ctx)?
                .ok_or_else(|| missing(at(&format!("delegates[{d}].id"))))?;
            let id = owned_string(Some(id), self.budget, ctx)?;
            let processed = delegate
                .processed()
                .at(ctx)?
                .ok_or_else(|| missing(at(&format!("delegates[{d}] ({id}).processed"))))?;
            let location: DataLocation = processed.location().at(ctx)?.into();
            let raw_index = processed.index().at(ctx)?;
            let what = || at(&format!("delegates[{d}] ({id}).processed.index"));
            let (index, range) = match location {
                DataLocation::Inline => {
                    let table = &self.program.inline_delegate_data;
                    let index = check_index(
                        raw_index.into(),
                        "Program.backend_delegate_data",
                        table.len(),
                        what,
                    )?;
                    (index, table[index])
                }
                DataLocation::Segment => {
                    let table = &self.program.segments;
                    let index =
                        check_index(raw_index.into(), "Program.segments", table.len(), what)?;
                    (index, table[index])
                }
            };
            let mut compile_specs = Vec::new();
            if let Some(specs) = delegate.compile_specs().at(ctx)? {
                check_count(specs.len(), MAX_COMPILE_SPECS, || {
                    at(&format!("delegates[{d}].compile_specs"))
                })?;
                self.budget.take_items::<CompileSpec>(specs.len(), || {
                    at(&format!("delegates[{d}].compile_specs"))
                })?;
                for (s, spec) in specs.iter().enumerate() {
                    let spec_ctx = || at(&format!("delegates[{d}].compile_specs[{s}]"));
                    let spec = spec.at(spec_ctx)?;
                    let key = owned_string(spec.key().at(spec_ctx)?, self.budget, spec_ctx)?;
                    let value = spec.value().at(spec_ctx)?.unwrap_or(&[]);
                    self.budget.take(value.len(), spec_ctx)?;
                    compile_specs.push(CompileSpec {
                        key,
                        value: value.to_vec(),
                    });
                }
            }
            delegates.push(Delegate {
                id,
                blob: DataRef {
                    location,
                    index,
                    range,
                },
                compile_specs,
            });
        }
        Ok(delegates)
    }

    fn value_indices(
        &mut self,
        raw: Option<planus::Vector<'_, i32>>,
        value_count: usize,
        ctx: &dyn Fn() -> String,
    ) -> Result<Vec<usize>> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        check_count(raw.len(), MAX_ARGS, ctx)?;
        self.budget.take_items::<usize>(raw.len(), ctx)?;
        raw.iter()
            .enumerate()
            .map(|(i, index)| {
                check_index(index.into(), "values", value_count, || {
                    format!("{}[{i}]", ctx())
                })
            })
            .collect()
    }

    /// Checks a list's length and charges `len` items of `T`.
    fn list_len<T>(&mut self, len: usize, ctx: &dyn Fn() -> String) -> Result<()> {
        check_count(len, MAX_LIST_LEN, ctx)?;
        self.budget.take_items::<T>(len, ctx)
    }

    fn load_value(
        &mut self,
        value: &fb::EValueRef<'_>,
        value_count: usize,
        buffer_sizes: &[u64],
        ctx: impl Fn() -> String,
    ) -> Result<Value> {
        use fb::KernelTypesRef as K;
        let Some(kind) = value.val().at(&ctx)? else {
            return Err(invalid(
                ctx(),
                "value has no payload (KernelTypes tag 0 / NONE)",
            ));
        };
        let items_ctx = || format!("{}.items", ctx());
        Ok(match kind {
            K::Null(_) => Value::Null,
            K::Int(v) => Value::Int(v.int_val().at(&ctx)?),
            K::Bool(v) => Value::Bool(v.bool_val().at(&ctx)?),
            K::Double(v) => Value::Double(v.double_val().at(&ctx)?),
            K::String(v) => {
                Value::String(owned_string(v.string_val().at(&ctx)?, self.budget, &ctx)?)
            }
            K::Tensor(t) => Value::Tensor(self.load_tensor(&t, buffer_sizes, &ctx)?),
            K::IntList(list) => {
                let items = list.items().at(&ctx)?;
                let items: Vec<i64> = match items {
                    Some(items) => {
                        self.list_len::<usize>(items.len(), &items_ctx)?;
                        items.iter().collect()
                    }
                    None => Vec::new(),
                };
                Value::IntList(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, index)| {
                            check_index(index, "values", value_count, || {
                                format!("{}[{i}]", items_ctx())
                            })
                        })
                        .collect::<Result<_>>()?,
                )
            }
            K::DoubleList(list) => match list.items().at(&ctx)? {
                Some(items) => {
                    self.list_len::<f64>(items.len(), &items_ctx)?;
                    Value::DoubleList(items.iter().collect())
                }
                None => Value::DoubleList(Vec::new()),
            },
            K::BoolList(list) => match list.items().at(&ctx)? {
                Some(items) => {
                    self.list_len::<bool>(items.len(), &items_ctx)?;
                    Value::BoolList(items.iter().collect())
                }
                None => Value::BoolList(Vec::new()),
            },
            K::TensorList(list) => {
                let items = list.items().at(&ctx)?;
                if let Some(items) = items {
                    self.list_len::<usize>(items.len(), &items_ctx)?;
                }
                Value::TensorList(
                    items
                        .into_iter()
                        .flat_map(|items| items.iter())
                        .enumerate()
                        .map(|(i, index)| {
                            check_index(index.into(), "values", value_count, || {
                                format!("{}[{i}]", items_ctx())
                            })
                        })
                        .collect::<Result<_>>()?,
                )
            }
            K::OptionalTensorList(list) => {
                let items = list.items().at(&ctx)?;
                if let Some(items) = items {
                    self.list_len::<Option<usize>>(items.len(), &items_ctx)?;
                }
                Value::OptionalTensorList(
                    items
                        .into_iter()
                        .flat_map(|items| items.iter())
                        .enumerate()
                        .map(|(i, index)| match index {
                            -1 => Ok(None),
                            _ => check_index(index.into(), "values", value_count, || {
                                format!("{}[{i}]", items_ctx())
                            })
                            .map(Some),
                        })
                        .collect::<Result<_>>()?,
                )
            }
        })
    }

    fn load_tensor(
        &mut self,
        t: &fb::TensorRef<'_>,
        buffer_sizes: &[u64],
        ctx: &dyn Fn() -> String,
    ) -> Result<TensorInfo> {
        let bad = |reason: String| PteError::InvalidTensor {
            context: ctx(),
            reason,
        };
        let scalar_type: ScalarType = t.scalar_type().at(ctx)?.into();
        let storage_offset = t.storage_offset().at(ctx)?;
        if storage_offset != 0 {
            return Err(bad(format!(
                "storage_offset is {storage_offset}; only 0 is supported"
            )));
        }
        let sizes: Vec<i32> = match t.sizes().at(ctx)? {
            Some(sizes) => {
                if sizes.len() > MAX_RANK {
                    return Err(bad(format!(
                        "rank {} exceeds the limit of {MAX_RANK}",
                        sizes.len()
                    )));
                }
                sizes.iter().collect()
            }
            None => Vec::new(),
        };
        self.budget.take(sizes.len() * 5, ctx)?; // sizes (i32) + dim_order (u8)
        if let Some((dim, size)) = sizes.iter().enumerate().find(|(_, &size)| size < 0) {
            return Err(bad(format!("sizes[{dim}] is negative ({size})")));
        }
        let rank = sizes.len();
        let dim_order: Vec<u8> = match t.dim_order().at(ctx)? {
            Some(order) if !order.is_empty() => order.to_vec(),
            // Absent dim_order means the default contiguous order. rank <= MAX_RANK fits u8.
            _ => (0..rank).map(|d| d as u8).collect(),
        };
        if dim_order.len() != rank {
            return Err(bad(format!(
                "dim_order has {} entries for rank {rank}",
                dim_order.len()
            )));
        }
        let mut seen = [false; MAX_RANK];
        for &dim in &dim_order {
            let dim = usize::from(dim);
            if dim >= rank || std::mem::replace(&mut seen[dim], true) {
                return Err(bad(format!(
                    "dim_order {dim_order:?} is not a permutation of 0..{rank}"
                )));
            }
        }
        let dynamism: ShapeDynamism = t.shape_dynamism().at(ctx)?.into();
        let data_buffer_idx = t.data_buffer_idx().at(ctx)?;
        let allocation = match t.allocation_info().at(ctx)? {
            Some(info) => Some(Allocation {
                memory_id: info.memory_id().at(ctx)?,
                offset: u64::from(info.memory_offset_low().at(ctx)?)
                    | (u64::from(info.memory_offset_high().at(ctx)?) << 32),
            }),
            None => None,
        };
        let extra = match t.extra_tensor_info().at(ctx)? {
            Some(extra) => Some(ExtraTensorInfo {
                mutable_data_segments_idx: extra.mutable_data_segments_idx().at(ctx)?,
                fully_qualified_name: match extra.fully_qualified_name().at(ctx)? {
                    Some(name) => Some(owned_string(Some(name), self.budget, ctx)?),
                    None => None,
                },
                location: extra.location().at(ctx)?.into(),
            }),
            None => None,
        };
        let mut tensor = TensorInfo {
            scalar_type,
            sizes,
            dim_order,
            dynamism,
            data_buffer_idx,
            allocation,
            extra,
            data: TensorData::None,
        };
        let nbytes = tensor.nbytes().ok_or_else(|| {
            bad(format!(
                "byte size of {scalar_type} tensor with sizes {:?} overflows",
                tensor.sizes
            ))
        })?;

        if let Some(allocation) = tensor.allocation {
            let buffer = check_index(
                allocation.memory_id.into(),
                "non_const_buffer_sizes",
                buffer_sizes.len(),
                || format!("{}.allocation_info.memory_id", ctx()),
            )?;
            if buffer == 0 {
                return Err(bad(
                    "allocation_info.memory_id is 0; planned buffer ids start at 1".into(),
                ));
            }
            let buffer_size = buffer_sizes[buffer];
            let fits = allocation
                .offset
                .checked_add(nbytes as u64)
                .is_some_and(|end| end <= buffer_size);
            if !fits && dynamism != ShapeDynamism::DynamicUnbound {
                return Err(PteError::OutOfBounds {
                    what: format!("{}.allocation_info", ctx()),
                    offset: allocation.offset,
                    size: nbytes as u64,
                    limit_name: "its planned memory buffer",
                    limit: buffer_size,
                });
            }
        }
        tensor.data = self.resolve_tensor_data(&tensor, nbytes, ctx)?;
        Ok(tensor)
    }

    /// Where the tensor's initial bytes are, per the `data_buffer_idx` / `allocation_info` table.
    fn resolve_tensor_data(
        &mut self,
        tensor: &TensorInfo,
        nbytes: usize,
        ctx: &dyn Fn() -> String,
    ) -> Result<TensorData> {
        let external = tensor
            .extra
            .as_ref()
            .filter(|extra| extra.location == TensorDataLocation::External);
        if let Some(extra) = external {
            if tensor.allocation.is_none() || tensor.data_buffer_idx > 0 {
                let key = extra
                    .fully_qualified_name
                    .clone()
                    .filter(|name| !name.is_empty())
                    .ok_or_else(|| missing(format!("{}.extra_tensor_info.fully_qualified_name (required for EXTERNAL data)", ctx())))?;
                return Ok(TensorData::External { key });
            }
        }
        if tensor.data_buffer_idx == 0 {
            return Ok(TensorData::None);
        }
        let idx = tensor.data_buffer_idx as usize;
        let program = self.program;
        let idx_what = || format!("{}.data_buffer_idx", ctx());
        let range = if tensor.allocation.is_none() {
            // Constant: the constant segment, or the legacy inline buffers in old files.
            match &program.constant_segment {
                Some(table) => sub_range(
                    program,
                    table,
                    idx,
                    nbytes,
                    "Program.constant_segment.offsets",
                    &idx_what,
                )?,
                None if !program.legacy_constant_buffers.is_empty() => {
                    let table = &program.legacy_constant_buffers;
                    let index =
                        check_index(idx as i64, "Program.constant_buffer", table.len(), idx_what)?;
                    let buffer = table[index];
                    if (nbytes as u64) > buffer.len {
                        return Err(PteError::OutOfBounds {
                            what: format!("{} (constant_buffer[{index}])", ctx()),
                            offset: 0,
                            size: nbytes as u64,
                            limit_name: "its constant buffer",
                            limit: buffer.len,
                        });
                    }
                    ByteRange {
                        offset: buffer.offset,
                        len: nbytes as u64,
                    }
                }
                None => {
                    return Err(invalid(
                        ctx(),
                        "constant tensor but the program has no constant data",
                    ));
                }
            }
        } else {
            // Planned with an initial value from a mutable data segment.
            let which = tensor
                .extra
                .as_ref()
                .map_or(0, |extra| extra.mutable_data_segments_idx);
            let which = check_index(
                i64::try_from(which).unwrap_or(i64::MAX),
                "Program.mutable_data_segments",
                program.mutable_data_segments.len(),
                || format!("{}.extra_tensor_info.mutable_data_segments_idx", ctx()),
            )?;
            let table = &program.mutable_data_segments[which];
            sub_range(
                program,
                table,
                idx,
                nbytes,
                "Program.mutable_data_segments[_].offsets",
                &idx_what,
            )?
        };
        Ok(TensorData::InFile(range))
    }

    fn load_instruction(
        &mut self,
        instruction: &fb::InstructionRef<'_>,
        counts: Counts,
        ctx: impl Fn() -> String,
    ) -> Result<Instruction> {
        use fb::InstructionArgumentsRef as I;
        let Some(args) = instruction.instr_args().at(&ctx)? else {
            return Err(invalid(
                ctx(),
                "instruction has no arguments (InstructionArguments tag 0 / NONE)",
            ));
        };
        let value = |raw: i32, field: &str| {
            check_index(raw.into(), "values", counts.values, || {
                format!("{}.{field}", ctx())
            })
        };
        Ok(match args {
            I::KernelCall(call) => Instruction::KernelCall {
                op_index: check_index(
                    call.op_index().at(&ctx)?.into(),
                    "operators",
                    counts.operators,
                    || format!("{}.op_index", ctx()),
                )?,
                args: self.value_indices(call.args().at(&ctx)?, counts.values, &|| {
                    format!("{}.args", ctx())
                })?,
            },
            I::DelegateCall(call) => Instruction::DelegateCall {
                delegate_index: check_index(
                    call.delegate_index().at(&ctx)?.into(),
                    "delegates",
                    counts.delegates,
                    || format!("{}.delegate_index", ctx()),
                )?,
                args: self.value_indices(call.args().at(&ctx)?, counts.values, &|| {
                    format!("{}.args", ctx())
                })?,
            },
            I::MoveCall(call) => Instruction::MoveCall {
                from: value(call.move_from().at(&ctx)?, "move_from")?,
                to: value(call.move_to().at(&ctx)?, "move_to")?,
            },
            I::JumpFalseCall(call) => Instruction::JumpFalseCall {
                cond_value_index: value(call.cond_value_index().at(&ctx)?, "cond_value_index")?,
                // Jumping to one past the last instruction ends the chain, so `len` is allowed.
                destination_instruction: check_index(
                    call.destination_instruction().at(&ctx)?.into(),
                    "instructions (or one past the end)",
                    counts.instructions + 1,
                    || format!("{}.destination_instruction", ctx()),
                )?,
            },
            I::FreeCall(call) => Instruction::FreeCall {
                value_index: value(call.value_index().at(&ctx)?, "value_index")?,
            },
        })
    }
}

#[derive(Clone, Copy)]
struct Counts {
    values: usize,
    operators: usize,
    delegates: usize,
    instructions: usize,
}

/// The range `[offsets[idx], +nbytes)` inside `table`'s segment.
fn sub_range(
    program: &Program,
    table: &SubsegmentOffsets,
    idx: usize,
    nbytes: usize,
    table_name: &'static str,
    what: &dyn Fn() -> String,
) -> Result<ByteRange> {
    let index = check_index(idx as i64, table_name, table.offsets.len(), what)?;
    let segment =
        *program
            .segments
            .get(table.segment_index)
            .ok_or_else(|| PteError::IndexOutOfRange {
                what: format!("{table_name} segment_index"),
                index: table.segment_index as i64,
                table: "Program.segments",
                len: program.segments.len(),
            })?;
    let offset = table.offsets[index];
    let fits = offset
        .checked_add(nbytes as u64)
        .is_some_and(|end| end <= segment.len);
    if !fits {
        return Err(PteError::OutOfBounds {
            what: format!(
                "{} ({table_name}[{index}] in segment {})",
                what(),
                table.segment_index
            ),
            offset,
            size: nbytes as u64,
            limit_name: "its segment",
            limit: segment.len,
        });
    }
    Ok(ByteRange {
        offset: segment.offset + offset,
        len: nbytes as u64,
    })
}
