//! criterion benches: each heavy kernel of the bundled architecture in each
//! variant (convolution forward, its input gradient in both formulations
//! and its weight gradient; linear forward and input gradient), one PGD
//! step and one universal-patch
//! step. `cargo bench` runs them; one iteration is one submission, waited
//! for. Batch 16 keeps a sample short on software drivers; `advgpu bench`
//! measures whole workloads at every batch size.

use advgpu::attack::patch::{Patch, PatchConfig, PatchTrainer};
use advgpu::attack::{Attack, AttackEngine, Pgd};
use advgpu::gpu::{Gpu, GpuOptions, KernelChoice, Variant};
use advgpu::nn::ops::{
    conv_backward_input_col2im, conv_backward_input_flip, conv_backward_weight, conv_forward, gemm,
    ConvParams, GemmParams,
};
use advgpu::nn::{GpuModel, Model};
use criterion::{criterion_group, criterion_main, Criterion};

const BATCH: u32 = 16;

fn gpu() -> Gpu {
    let options = GpuOptions {
        tune_cache: None,
        ..GpuOptions::default()
    };
    Gpu::new_blocking(&options).expect("a GPU adapter")
}

/// The second convolution of the bundled model (32 -> 32 channels, 26 x 26 in).
fn conv_shape() -> ConvParams {
    ConvParams {
        batch: BATCH,
        in_c: 32,
        in_h: 26,
        in_w: 26,
        out_c: 32,
        out_h: 24,
        out_w: 24,
        k: 3,
        stride: 1,
        pad: 0,
        has_bias: 1,
        splits: 1,
        relu: 0,
        _pad: [0; 3],
    }
}

fn kernels(c: &mut Criterion) {
    let base = gpu();
    let p = conv_shape();
    let buffer = |len: u32| base.zeros("bench", &[len as usize]).unwrap();
    let x = buffer(p.batch * p.in_c * p.in_h * p.in_w);
    let w = buffer(p.out_c * p.in_c * p.k * p.k);
    let b = buffer(p.out_c);
    let y = buffer(p.batch * p.out_c * p.out_h * p.out_w);
    let g = GemmParams {
        has_bias: 1,
        a_ms: 1024,
        a_ks: 1,
        b_ks: 1,
        b_ns: 1024,
        ..GemmParams::row_major(BATCH, 200, 1024)
    };
    // gx [B, 1024] = gy [B, 200] w [200, 1024], as the linear layer's backward.
    let g_back = GemmParams {
        has_bias: 0,
        a_ms: 200,
        a_ks: 1,
        b_ks: 1024,
        b_ns: 1,
        ..GemmParams::row_major(BATCH, 1024, 200)
    };
    let (gx, gw, gb, gy) = (
        buffer(BATCH * 1024),
        buffer(200 * 1024),
        buffer(200),
        buffer(BATCH * 200),
    );

    let mut group = c.benchmark_group("kernels");
    group.sample_size(10);
    for variant in Variant::ALL {
        let gpu = base
            .clone()
            .with_kernels(KernelChoice::Force(variant), None);
        let name = variant.name();
        let fwd = conv_forward(&gpu, &p, &x.buffer, &w.buffer, &b.buffer, &y.buffer).unwrap();
        group.bench_function(format!("conv2d_forward_32x26x26_{name}"), |bench| {
            bench.iter(|| gpu.time_kernels(&fwd.kernels).unwrap())
        });
        for (formulation, build) in [
            (
                "col2im",
                conv_backward_input_col2im as fn(_, _, _, _, _) -> _,
            ),
            ("flip", conv_backward_input_flip),
        ] {
            let input_grad = build(&gpu, &p, &w.buffer, &y.buffer, &x.buffer).unwrap();
            let id = format!("conv2d_backward_input_32x24x24_{formulation}_{name}");
            group.bench_function(id, |bench| {
                bench.iter(|| gpu.time_kernels(&input_grad.kernels).unwrap())
            });
        }
        let bwd = conv_backward_weight(&gpu, &p, &x.buffer, &y.buffer, &w.buffer).unwrap();
        group.bench_function(format!("conv2d_backward_weight_32x26x26_{name}"), |bench| {
            bench.iter(|| gpu.time_kernels(&bwd.kernels).unwrap())
        });
        let lin = gemm(&gpu, &g, &gx.buffer, &gw.buffer, &gb.buffer, &gy.buffer).unwrap();
        group.bench_function(format!("linear_forward_1024x200_{name}"), |bench| {
            bench.iter(|| gpu.time_kernels(&lin.kernels).unwrap())
        });
        let lin_back = gemm(
            &gpu, &g_back, &gy.buffer, &gw.buffer, &gb.buffer, &gx.buffer,
        )
        .unwrap();
        group.bench_function(format!("linear_backward_input_200x1024_{name}"), |bench| {
            bench.iter(|| gpu.time_kernels(&lin_back.kernels).unwrap())
        });
    }
    group.finish();
}

fn attack_step(c: &mut Criterion) {
    let gpu = gpu();
    let model = Model::init(advgpu::data::small_cnn(), [1, 28, 28], 0).unwrap();
    let gm = GpuModel::new(&gpu, &model).unwrap();
    let engine = AttackEngine::new(&gpu, &gm, BATCH as usize, &Pgd::default().spec()).unwrap();
    let digits = advgpu::data::Digits::bundled()
        .unwrap()
        .held_out()
        .slice(0..BATCH as usize);
    engine.load(&digits.images, &digits.labels_u32()).unwrap();

    let mut group = c.benchmark_group("attack");
    group.sample_size(10);
    group.bench_function("pgd_step_batch16", |bench| {
        bench.iter(|| submit_step(&gpu, |pass| engine.record_step(pass)))
    });
    group.finish();
}

/// Records one step with `record`, submits it and waits.
fn submit_step(gpu: &Gpu, record: impl Fn(&mut wgpu::ComputePass<'_>)) {
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        record(&mut pass);
    }
    gpu.queue.submit([encoder.finish()]);
    gpu.wait().unwrap();
}

fn patch_step(c: &mut Criterion) {
    let gpu = gpu();
    let model = Model::init(advgpu::data::small_cnn(), [1, 28, 28], 0).unwrap();
    let gm = GpuModel::new(&gpu, &model).unwrap();
    let config = PatchConfig {
        batch: BATCH as usize,
        ..PatchConfig::default()
    };
    let initial = Patch::initial(&config, 1).unwrap();
    let digits = advgpu::data::Digits::bundled().unwrap().held_out();
    let trainer = PatchTrainer::new(&gpu, &gm, &digits.images, &config, &initial).unwrap();

    let mut group = c.benchmark_group("attack");
    group.sample_size(10);
    group.bench_function("patch_step_14x14_batch16", |bench| {
        bench.iter(|| submit_step(&gpu, |pass| trainer.record_step(pass)))
    });
    group.finish();
}

criterion_group!(benches, kernels, attack_step, patch_step);
criterion_main!(benches);
