//! etmlx-mlx (work in progress)
