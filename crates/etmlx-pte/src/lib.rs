//! etmlx-pte (work in progress)
