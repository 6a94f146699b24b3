//! mlx-sys (work in progress)
