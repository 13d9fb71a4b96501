//! Kernel variants and the autotuner: every variant gives the same network
//! results, a forced variant is the one that runs, the tuner keeps the faster
//! candidate, and its decisions survive in the cache file.

mod common;

use advgpu::gpu::{Candidate, Gpu, KernelChoice, Variant};
use advgpu::nn::ops::{gemm, GemmParams};
use advgpu::nn::{GpuModel, Model, Plan, PlanOptions};
use common::{assert_close, gpu, gpu_with, random};

/// The bundled architecture with random weights.
fn small_cnn() -> Model {
    Model::init(advgpu::data::small_cnn(), [1, 28, 28], 5).unwrap()
}

/// Logits, input gradient and first conv's weight gradient of a batch of 3.
fn run(gpu: &Gpu, model: &Model) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let gm = GpuModel::new(gpu, model).unwrap();
    let options = PlanOptions {
        input_grad: true,
        weight_grads: true,
        guided_relu: false,
    };
    let plan = Plan::new(gpu, &gm, 3, options).unwrap();
    let x = random(3 * 784, 9, 0.0, 1.0);
    plan.write_batch(gpu, &x, &[1, 7, 3]).unwrap();
    plan.run(gpu).unwrap();
    let read = |t| gpu.read_blocking::<f32>(t).unwrap();
    (
        read(plan.logits()),
        read(plan.grad_input()),
        read(&plan.grad_params[0][0]),
    )
}

#[test]
fn register_and_tiled_kernels_agree_on_the_bundled_architecture() {
    let model = small_cnn();
    let (l1, g1, w1) = run(&gpu_with(Variant::Register), &model);
    let (l2, g2, w2) = run(&gpu_with(Variant::Tiled), &model);
    assert_close("logits", &l2, &l1, 1e-4, 1e-5);
    assert_close("grad_input", &g2, &g1, 1e-3, 1e-7);
    assert_close("grad conv0 weight", &w2, &w1, 1e-3, 1e-6);
    assert!(
        g1.iter().any(|v| *v != 0.0),
        "the input gradient is all zero"
    );
}

#[test]
fn a_forced_variant_is_the_one_that_runs() {
    let model = small_cnn();
    for (variant, conv_shader, gemm_entry) in [
        (Variant::Register, "conv2d", "gemm"),
        (Variant::Tiled, "conv2d_tiled", "gemm_tiled"),
    ] {
        let gpu = gpu_with(variant);
        let gm = GpuModel::new(&gpu, &model).unwrap();
        let plan = Plan::new(&gpu, &gm, 2, PlanOptions::default()).unwrap();
        let layers: Vec<_> = plan.forward_layers().collect();
        assert_eq!(layers[0].1[0].shader, conv_shader, "{variant:?}");
        assert_eq!(layers[11].1[0].name, gemm_entry, "{variant:?}");
    }
}

#[test]
fn the_tuner_keeps_the_faster_candidate() {
    let gpu = gpu().clone().with_kernels(KernelChoice::Auto, None);
    // The same product twice, once 256 times over (about 50 ms on lavapipe,
    // longer than a scheduling stall of a loaded machine): the single run must win
    // whichever variant name it carries.
    let g = GemmParams::row_major(96, 96, 96);
    let a = gpu
        .upload("a", &[96, 96], &random(96 * 96, 1, -1.0, 1.0))
        .unwrap();
    let b = gpu
        .upload("b", &[96, 96], &random(96 * 96, 2, -1.0, 1.0))
        .unwrap();
    let bias = gpu.zeros("bias", &[1]).unwrap();
    let c = gpu.zeros("c", &[96, 96]).unwrap();
    let once = || gemm(&gpu, &g, &a.buffer, &b.buffer, &bias.buffer, &c.buffer).unwrap();
    for (fast, slow) in [
        (Variant::Register, Variant::Tiled),
        (Variant::Tiled, Variant::Register),
    ] {
        let single = once().kernels;
        let repeated: Vec<_> = (0..256).flat_map(|_| single.clone()).collect();
        let chosen = gpu
            .choose(
                &format!("synthetic {fast:?}"),
                vec![
                    Candidate {
                        variant: slow,
                        kernels: repeated,
                        scratch_bytes: 0,
                    },
                    Candidate {
                        variant: fast,
                        kernels: single,
                        scratch_bytes: 0,
                    },
                ],
            )
            .unwrap();
        assert_eq!(chosen.variant, fast);
    }
    let decisions = gpu.tuning();
    assert!(decisions
        .iter()
        .filter(|d| d.op.starts_with("synthetic"))
        .all(|d| d.timings.len() == 2 && !d.cached));
}

#[test]
fn tuning_decisions_are_written_to_and_read_from_the_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.json");
    let model = small_cnn();

    let first = gpu()
        .clone()
        .with_kernels(KernelChoice::Auto, Some(path.clone()));
    let gm = GpuModel::new(&first, &model).unwrap();
    Plan::new(&first, &gm, 2, PlanOptions::default()).unwrap();
    let timed = first.tuning();
    assert!(
        timed.iter().all(|d| !d.cached && d.timings.len() == 2),
        "{timed:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let adapter = &first.info.name;
    let (key, entries) = file.as_object().unwrap().iter().next().unwrap();
    assert!(
        key.contains(adapter.as_str()),
        "{key} should name {adapter}"
    );
    assert_eq!(entries.as_object().unwrap().len(), timed.len());

    let second = gpu().clone().with_kernels(KernelChoice::Auto, Some(path));
    let gm = GpuModel::new(&second, &model).unwrap();
    Plan::new(&second, &gm, 2, PlanOptions::default()).unwrap();
    let reused = second.tuning();
    assert_eq!(reused.len(), timed.len());
    for (r, t) in reused.iter().zip(&timed) {
        assert!(r.cached && r.timings.is_empty(), "{} was timed again", r.op);
        assert_eq!(r.variant, t.variant, "{}", r.op);
    }
}

#[test]
fn a_bad_kernel_setting_is_named() {
    let err = "fast".parse::<KernelChoice>().unwrap_err();
    assert!(
        err.to_string().contains("kernels") && err.to_string().contains("fast"),
        "{err}"
    );
}
