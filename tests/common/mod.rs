//! Helpers shared by the integration tests: one GPU per test binary, seeded
//! random tensors, and tolerance checks stated once.

#![allow(dead_code)]

use std::sync::OnceLock;

use advgpu::gpu::{Gpu, GpuOptions, KernelChoice, Variant};
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
