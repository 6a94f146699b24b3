//! [`Op`], generated from the op table (`op_table.rs`).

use super::{ChainIdx, FloatOrVid, IntOrVid, IntOrVidOrTid, Tid, Vid, VidOrTid};

/// The slot references held by one op field, for [`Op::for_each_tid`] / [`Op::for_each_vid`].
trait SlotRefs {
    fn visit_tids(&self, _visit: &mut dyn FnMut(Tid)) {}
    fn visit_vids(&self, _visit: &mut dyn FnMut(Vid)) {}
    /// Replaces every tensor slot reference in place.
    fn map_tids(&mut self, _map: &mut dyn FnMut(Tid) -> Tid) {}
}

impl SlotRefs for Tid {
    fn visit_tids(&self, visit: &mut dyn FnMut(Tid)) {
        visit(*self);
    }
    fn map_tids(&mut self, map: &mut dyn FnMut(Tid) -> Tid) {
        *self = map(*self);
    }
}

impl SlotRefs for Vid {
    fn visit_vids(&self, visit: &mut dyn FnMut(Vid)) {
        visit(*self);
    }
}

impl SlotRefs for IntOrVid {
    fn visit_vids(&self, visit: &mut dyn FnMut(Vid)) {
        if let IntOrVid::Vid(vid) = self {
            visit(*vid);
        }
    }
}

impl SlotRefs for FloatOrVid {
    fn visit_vids(&self, visit: &mut dyn FnMut(Vid)) {
        if let FloatOrVid::Vid(vid) = self {
            visit(*vid);
        }
    }
}

impl SlotRefs for VidOrTid {
    fn visit_tids(&self, visit: &mut dyn FnMut(Tid)) {
        if let VidOrTid::Tid(tid) = self {
            visit(*tid);
        }
    }
    fn map_tids(&mut self, map: &mut dyn FnMut(Tid) -> Tid) {
        if let VidOrTid::Tid(tid) = self {
            *tid = map(*tid);
        }
    }
    fn visit_vids(&self, visit: &mut dyn FnMut(Vid)) {
        if let VidOrTid::Vid(vid) = self {
            visit(*vid);
        }
    }
}

impl SlotRefs for IntOrVidOrTid {
    fn visit_tids(&self, visit: &mut dyn FnMut(Tid)) {
        if let IntOrVidOrTid::Tid(tid) = self {
            visit(*tid);
        }
    }
    fn map_tids(&mut self, map: &mut dyn FnMut(Tid) -> Tid) {
        if let IntOrVidOrTid::Tid(tid) = self {
            *tid = map(*tid);
        }
    }
    fn visit_vids(&self, visit: &mut dyn FnMut(Vid)) {
        if let IntOrVidOrTid::Vid(vid) = self {
            visit(*vid);
        }
    }
}

impl<T: SlotRefs> SlotRefs for Option<T> {
    fn visit_tids(&self, visit: &mut dyn FnMut(Tid)) {
        self.iter().for_each(|item| item.visit_tids(visit));
    }
    fn map_tids(&mut self, map: &mut dyn FnMut(Tid) -> Tid) {
        self.iter_mut().for_each(|item| item.map_tids(map));
    }
    fn visit_vids(&self, visit: &mut dyn FnMut(Vid)) {
        self.iter().for_each(|item| item.visit_vids(visit));
    }
}

impl<T: SlotRefs> SlotRefs for Vec<T> {
    fn visit_tids(&self, visit: &mut dyn FnMut(Tid)) {
        self.iter().for_each(|item| item.visit_tids(visit));
    }
    fn map_tids(&mut self, map: &mut dyn FnMut(Tid) -> Tid) {
        self.iter_mut().for_each(|item| item.map_tids(map));
    }
    fn visit_vids(&self, visit: &mut dyn FnMut(Vid)) {
        self.iter().for_each(|item| item.visit_vids(visit));
    }
}

// Fields that reference no slot.
impl SlotRefs for ChainIdx {}
impl SlotRefs for String {}
impl SlotRefs for bool {}
impl SlotRefs for i8 {}
impl SlotRefs for i32 {}
impl SlotRefs for u32 {}
impl SlotRefs for u64 {}
impl SlotRefs for f32 {}

macro_rules! define_ops {
    ($(
        $variant:ident ( $wire:ident ) {
            $( $field:ident : $ty:ty $( => $check:ident )? ),* $(,)?
        }
    ),* $(,)?) => {
        /// One delegate instruction: exactly one variant per schema node, named like the node
        /// without `Node`, with the schema's fields in schema order and the schema's defaults
        /// applied (see `schema/mlx_delegate.fbs` for what each field means).
        // MetalKernel is much larger than the other variants; a chain is short enough that the
        // wasted space does not matter and a flat enum keeps matching simple.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub enum Op {
            $( $variant { $( $field: $ty ),* } ),*
        }

        /// Every op name ([`Op::name`]) in union order: `ALL_OP_NAMES[k - 1]` is FlatBuffer type
        /// id `k`.
        pub const ALL_OP_NAMES: [&str; [$( stringify!($variant) ),*].len()] =
            [$( stringify!($variant) ),*];

        /// Union type ids: `Unused` takes 0 (NONE), so each op gets its 1-based position.
        #[allow(dead_code)]
        #[repr(u8)]
        enum TypeId {
            Unused = 0,
            $( $variant ),*
        }

        impl Op {
            /// The FlatBuffer union type id of this op (`ALL_OP_NAMES[type_id - 1]` is its name).
            pub fn type_id(&self) -> u8 {
                match self {
                    $( Op::$variant { .. } => TypeId::$variant as u8 ),*
                }
            }

            /// The schema node name without `Node` (e.g. `"UpdateAndAttend"`).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Op::$variant { .. } => stringify!($variant) ),*
                }
            }

            /// Calls `visit` for every tensor slot the op reads or writes, in field order
            /// (a slot used twice is visited twice).
            pub fn for_each_tid(&self, mut visit: impl FnMut(Tid)) {
                match self {
                    $( Op::$variant { $( $field ),* } => {
                        $( SlotRefs::visit_tids($field, &mut visit); )*
                    } ),*
                }
            }

            /// Calls `visit` for every tensor slot the op writes: the fields named `out`, `outs` and
            /// `outputs` (every other tensor field is read; `SliceUpdate`/`IndexCopy` also read
            /// `dst`, which is usually the same slot as `out`).
            pub fn for_each_output_tid(&self, mut visit: impl FnMut(Tid)) {
                match self {
                    $( Op::$variant { $( $field ),* } => {
                        $( if is_output_field(stringify!($field)) {
                            SlotRefs::visit_tids($field, &mut visit);
                        } )*
                    } ),*
                }
            }

            /// Calls `visit` for every tensor slot the op reads (every tensor field but the outputs).
            pub fn for_each_input_tid(&self, mut visit: impl FnMut(Tid)) {
                match self {
                    $( Op::$variant { $( $field ),* } => {
                        $( if !is_output_field(stringify!($field)) {
                            SlotRefs::visit_tids($field, &mut visit);
                        } )*
                    } ),*
                }
            }

            /// Rewrites the tensor slots the op reads (`inputs`) and writes (`outputs`).
            pub fn map_tids(
                &mut self,
                mut inputs: impl FnMut(Tid) -> Tid,
                mut outputs: impl FnMut(Tid) -> Tid,
            ) {
                match self {
                    $( Op::$variant { $( $field ),* } => {
                        $( if is_output_field(stringify!($field)) {
                            SlotRefs::map_tids($field, &mut outputs);
                        } else {
                            SlotRefs::map_tids($field, &mut inputs);
                        } )*
                    } ),*
                }
            }

            /// Calls `visit` for every value slot the op reads or writes, in field order.
            pub fn for_each_vid(&self, mut visit: impl FnMut(Vid)) {
                match self {
                    $( Op::$variant { $( $field ),* } => {
                        $( SlotRefs::visit_vids($field, &mut visit); )*
                    } ),*
                }
            }
        }
    };
}

/// Whether an op field (by schema name) is one the op writes.
fn is_output_field(name: &str) -> bool {
    matches!(name, "out" | "outs" | "outputs")
}

super::with_op_table!(define_ops);

impl Op {
    /// Every tensor slot the op reads or writes, in field order.
    pub fn tids(&self) -> Vec<Tid> {
        let mut tids = Vec::new();
        self.for_each_tid(|tid| tids.push(tid));
        tids
    }

    /// Every value slot the op reads or writes, in field order.
    pub fn vids(&self) -> Vec<Vid> {
        let mut vids = Vec::new();
        self.for_each_vid(|vid| vids.push(vid));
        vids
    }

    /// The chains this op runs (`If` branches, `Scan` body).
    pub fn called_chains(&self) -> Vec<ChainIdx> {
        match self {
            Op::If {
                then_chain_idx,
                else_chain_idx,
                ..
            } => vec![*then_chain_idx, *else_chain_idx],
            Op::Scan { body_chain_idx, .. } => vec![*body_chain_idx],
            _ => Vec::new(),
        }
    }
}
