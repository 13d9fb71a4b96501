//! Data in and out: IDX digits, image files, and the bundled model.

mod idx;
pub mod images;

pub use idx::{Digits, TRAIN_SPLIT};

use crate::error::Result;
use crate::nn::Model;

/// The bundled model file (see `assets/README.md`).
pub const BUNDLED_MODEL: &[u8] = include_bytes!("../../assets/mnist-smallcnn.safetensors");

/// The bundled MNIST model, compiled into the crate.
pub fn bundled_model() -> Result<Model> {
    Model::from_bytes(BUNDLED_MODEL, "<bundled mnist-smallcnn>")
}

/// The architecture of the bundled model: a common small MNIST CNN.
pub fn small_cnn() -> Vec<crate::nn::Layer> {
    use crate::nn::Layer::*;
    let conv = |i, o| Conv2d {
        in_channels: i,
        out_channels: o,
        kernel_size: 3,
        stride: 1,
        padding: 0,
        bias: true,
    };
    let linear = |i, o| Linear {
        in_features: i,
        out_features: o,
        bias: true,
    };
    let pool = MaxPool2d {
        kernel_size: 2,
        stride: 2,
    };
    vec![
        conv(1, 32),
        Relu,
        conv(32, 32),
        Relu,
        pool.clone(),
        conv(32, 64),
        Relu,
        conv(64, 64),
        Relu,
        pool,
        Flatten,
        linear(1024, 200),
        Relu,
        linear(200, 200),
        Relu,
        linear(200, 10),
    ]
}
