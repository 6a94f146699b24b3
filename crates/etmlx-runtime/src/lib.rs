//! etmlx-runtime (work in progress)
