//! Helpers shared by the integration tests: one GPU per test binary, seeded
//! random tensors, and tolerance checks stated once.

#![allow(dead_code)]

pub mod cli;

use std::sync::OnceLock;

use advgpu::gpu::{Gpu, GpuOptions, KernelChoice, Variant};
use advgpu::nn::{Layer, Model};
use rand::{Rng, SeedableRng};

/// The GPU for this test binary, created once. Kernels are the register
/// variant unless `ADVGPU_KERNELS` says otherwise: autotuning every shape
/// the tests use would cost more time than the tests, and the variants and
/// the tuner have tests of their own (`layers.rs`, `kernels.rs`). Tuning
/// decisions stay in memory, so tests never touch the user's cache file.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut options =
            GpuOptions::from_env().expect("ADVGPU_KERNELS is auto, register or tiled");
        if std::env::var_os(advgpu::gpu::tune::KERNELS_ENV).is_none() {
            options.kernels = KernelChoice::Force(Variant::Register);
        }
        let options = GpuOptions {
            tune_cache: None,
            ..options
        };
        Gpu::new_blocking(&options)
            .expect("a GPU adapter (on Linux: apt-get install mesa-vulkan-drivers)")
    })
}

/// The same device, always using kernel variant `variant`.
pub fn gpu_with(variant: Variant) -> Gpu {
    gpu()
        .clone()
        .with_kernels(KernelChoice::Force(variant), None)
}

/// Uniform values in [lo, hi), seeded.
pub fn random(len: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// A small random classifier of `1 x side x side` images: `Conv2d(1,
/// channels, 3) ReLU MaxPool2d(2) Flatten Linear(.., classes)`, seeded.
pub fn conv_pool_linear(side: usize, channels: usize, classes: usize, seed: u64) -> Model {
    let pooled = (side - 2) / 2;
    let layers = vec![
        Layer::Conv2d {
            in_channels: 1,
            out_channels: channels,
            kernel_size: 3,
            stride: 1,
            padding: 0,
            bias: true,
        },
        Layer::Relu,
        Layer::MaxPool2d {
            kernel_size: 2,
            stride: 2,
        },
        Layer::Flatten,
        Layer::Linear {
            in_features: channels * pooled * pooled,
            out_features: classes,
            bias: true,
        },
    ];
    Model::init(layers, [1, side, side], seed).unwrap()
}

/// `n` random images of `d` values in [0, 1) and labels below `classes`, seeded.
pub fn random_batch(n: usize, d: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let x = random(n * d, seed, 0.0, 1.0);
    let labels = random(n, seed + 1, 0.0, classes as f32)
        .iter()
        .map(|v| *v as u32)
        .collect();
    (x, labels)
}

/// Attack options for the whole batch at once.
pub fn attack_options(
    target: advgpu::attack::Target,
    early_stop: bool,
    seed: u64,
) -> advgpu::attack::Options {
    advgpu::attack::Options {
        target,
        early_stop,
        seed,
        batch: None,
    }
}

/// Relative tolerance of GPU kernels against the f64-accumulating CPU reference.
pub const RTOL: f32 = 1e-4;
/// Absolute tolerance, for values near zero where a relative bound means nothing.
pub const ATOL: f32 = 1e-5;

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise, naming the first failure.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w} (|diff| {} > {atol} + {rtol} * |want|)",
            (g - w).abs()
        );
    }
}
