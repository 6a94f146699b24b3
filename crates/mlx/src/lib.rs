//! mlx (work in progress)
