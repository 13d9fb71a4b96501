//! Every layer kernel against the CPU reference, and the CPU reference's
//! backward passes against finite differences.
//!
//! Shapes are small and deliberately awkward: odd sizes, sizes that are not
//! multiples of the kernels' 4 x 4 tiles, stride 2 and 3, padding, batch 1 and
//! batch > 1. Tolerances are stated once in `common`.

mod common;

use advgpu::gpu::{Gpu, Variant};
use advgpu::nn::{cpu, GpuModel, Layer, Model, Plan, PlanOptions, Tensor};
use common::{assert_close, gpu, gpu_with, random, ATOL, RTOL};

/// Output, input gradient and parameter gradients of one layer.
struct LayerResult {
    y: Vec<f32>,
    gx: Vec<f32>,
    gparams: Vec<Vec<f32>>,
}

/// A model of one layer under test plus a flatten (after an image layer, so
/// that the output is a vector; before a linear layer, so that its input is),
/// and the index of the layer under test.
fn one_layer_model(layer: Layer, input: [usize; 3], seed: u64) -> (Model, usize) {
    let (layers, index) = match layer {
        Layer::Linear { .. } => (vec![Layer::Flatten, layer], 1),
        _ => (vec![layer, Layer::Flatten], 0),
    };
    (Model::init(layers, input, seed).unwrap(), index)
}

/// Runs the layer on the GPU: forward on `x`, then backward from `gy`.
fn run_gpu(gpu: &Gpu, model: &Model, index: usize, n: usize, x: &[f32], gy: &[f32]) -> LayerResult {
    let gm = GpuModel::new(gpu, model).unwrap();
    let plan = Plan::new(
        gpu,
        &gm,
        n,
        PlanOptions {
            input_grad: true,
            weight_grads: true,
            guided_relu: false,
        },
    )
    .unwrap();
    gpu.write(plan.input(), x).unwrap();
    plan.run_forward(gpu).unwrap();

    // The loss kernel wrote the logits gradient; replace it with the test's own.
    gpu.write(plan.grads.last().unwrap(), gy).unwrap();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        plan.record_backward(&mut pass);
    }
    gpu.queue.submit([encoder.finish()]);

    LayerResult {
        y: gpu.read_blocking(plan.logits()).unwrap(),
        gx: gpu.read_blocking(plan.grad_input()).unwrap(),
        gparams: plan.grad_params[index]
            .iter()
            .map(|g| gpu.read_blocking(g).unwrap())
            .collect(),
    }
}

/// The same on the CPU reference, for the layer under test alone (flatten
/// is a reshape, and the layouts agree).
fn run_cpu(model: &Model, index: usize, x: &Tensor, gy: &[f32]) -> LayerResult {
    let (layer, params) = (&model.layers[index], &model.params[index]);
    let y = cpu::layer_forward(layer, params, x);
    let gyt = Tensor::new(y.shape.clone(), gy.to_vec()).unwrap();
    let (gx, gp) = cpu::layer_backward(layer, params, x, &gyt);
    LayerResult {
        y: y.data,
        gx: gx.data,
        gparams: gp.into_iter().map(|t| t.data).collect(),
    }
}

/// Checks GPU against CPU for one layer on a batch of `n` inputs of `shape`,
/// with every kernel variant.
fn check_layer(name: &str, layer: Layer, n: usize, shape: [usize; 3], seed: u64) {
    let (model, index) = one_layer_model(layer, shape, seed);
    let x_len = n * shape.iter().product::<usize>();
    let x = random(x_len, seed + 1, -1.0, 1.0);
    let out_len: usize = n * model.shapes().unwrap()[index].iter().product::<usize>();
    let gy = random(out_len, seed + 2, -1.0, 1.0);

    let x_shape = if index == 1 {
        vec![n, x_len / n]
    } else {
        [&[n][..], &shape[..]].concat()
    };
    let want = run_cpu(
        &model,
        index,
        &Tensor::new(x_shape, x.clone()).unwrap(),
        &gy,
    );
    for variant in Variant::ALL {
        let got = run_gpu(&gpu_with(variant), &model, index, n, &x, &gy);
        let name = format!("{name} ({} kernels)", variant.name());
        assert_close(&format!("{name} forward"), &got.y, &want.y, RTOL, ATOL);
        assert_close(&format!("{name} grad_input"), &got.gx, &want.gx, RTOL, ATOL);
        assert_eq!(
            got.gparams.len(),
            want.gparams.len(),
            "{name}: parameter count"
        );
        for (i, (g, w)) in got.gparams.iter().zip(&want.gparams).enumerate() {
            assert_close(&format!("{name} grad_param {i}"), g, w, RTOL, ATOL);
        }
    }
}

fn conv(ci: usize, co: usize, k: usize, stride: usize, padding: usize, bias: bool) -> Layer {
    Layer::Conv2d {
        in_channels: ci,
        out_channels: co,
        kernel_size: k,
        stride,
        padding,
        bias,
    }
}

#[test]
fn conv2d_matches_cpu_batch_1_unpadded() {
    check_layer("conv k3", conv(1, 3, 3, 1, 0, true), 1, [1, 7, 5], 10);
}

#[test]
fn conv2d_matches_cpu_stride_2_padding_1_odd_sizes() {
    check_layer("conv s2 p1", conv(3, 5, 3, 2, 1, true), 2, [3, 9, 8], 20);
}

#[test]
fn conv2d_matches_cpu_without_bias_even_kernel_padding() {
    check_layer(
        "conv k2 p1 no bias",
        conv(2, 4, 2, 1, 1, false),
        3,
        [2, 6, 7],
        30,
    );
}

#[test]
fn conv2d_matches_cpu_stride_3_wide_kernel() {
    check_layer(
        "conv k5 s3 p2",
        conv(5, 6, 5, 3, 2, true),
        2,
        [5, 11, 10],
        40,
    );
}

#[test]
fn conv2d_matches_cpu_on_the_bundled_models_second_layer_shape() {
    check_layer(
        "conv 32->32",
        conv(32, 32, 3, 1, 0, true),
        2,
        [32, 12, 12],
        45,
    );
}

#[test]
fn conv2d_matches_cpu_with_a_partial_channel_block_and_padding() {
    // 12 output channels: one full block of 8 and a partial one.
    check_layer(
        "conv 3->12 p1",
        conv(3, 12, 3, 1, 1, true),
        2,
        [3, 7, 9],
        48,
    );
}

#[test]
fn conv2d_matches_cpu_with_one_output_channel() {
    // The narrow forward kernel with its second channel past the end, and
    // an input gradient whose product has a single column of weights.
    check_layer("conv 3->1", conv(3, 1, 3, 1, 1, true), 2, [3, 6, 5], 49);
}

#[test]
fn conv2d_input_gradient_over_uneven_batch_chunks_matches_cpu() {
    // 2,304 taps x 196 positions: 1.8 MB of per-tap scratch per sample, so
    // the 4 MiB chunks of the input gradient take the batch of 3 as 2 + 1.
    check_layer(
        "conv 256->8 chunks",
        conv(256, 8, 3, 1, 0, true),
        3,
        [256, 16, 16],
        50,
    );
}

#[test]
fn conv2d_weight_gradient_split_over_uneven_batch_chunks_matches_cpu() {
    // 64 x 576 weights give the register kernel few enough workgroups that
    // the batch of 3 is summed in two chunks of 2 and 1 samples.
    check_layer(
        "conv 64->64 split",
        conv(64, 64, 3, 1, 0, true),
        3,
        [64, 5, 5],
        46,
    );
}

#[test]
fn conv2d_weight_gradient_split_over_position_chunks_matches_cpu() {
    // One tiled block of weights and 972 positions: four chunks of 243
    // positions, which is not a multiple of the 16-position staging depth.
    check_layer(
        "conv 1->4 split",
        conv(1, 4, 3, 1, 0, false),
        3,
        [1, 20, 20],
        47,
    );
}

#[test]
fn linear_matches_cpu_batch_1() {
    check_layer(
        "linear 7->5",
        Layer::Linear {
            in_features: 7,
            out_features: 5,
            bias: true,
        },
        1,
        [7, 1, 1],
        50,
    );
}

#[test]
fn linear_matches_cpu_without_bias_odd_batch() {
    check_layer(
        "linear 13->9",
        Layer::Linear {
            in_features: 13,
            out_features: 9,
            bias: false,
        },
        5,
        [13, 1, 1],
        60,
    );
}

#[test]
fn linear_matches_cpu_larger() {
    check_layer(
        "linear 67->33",
        Layer::Linear {
            in_features: 67,
            out_features: 33,
            bias: true,
        },
        6,
        [67, 1, 1],
        70,
    );
}

#[test]
fn relu_matches_cpu() {
    check_layer("relu", Layer::Relu, 2, [3, 5, 5], 80);
}

#[test]
fn maxpool_matches_cpu_floor_mode_odd_size() {
    check_layer(
        "maxpool k2 s2",
        Layer::MaxPool2d {
            kernel_size: 2,
            stride: 2,
        },
        2,
        [3, 7, 9],
        90,
    );
}

#[test]
fn maxpool_matches_cpu_overlapping_windows() {
    check_layer(
        "maxpool k3 s2",
        Layer::MaxPool2d {
            kernel_size: 3,
            stride: 2,
        },
        1,
        [2, 9, 8],
        100,
    );
}

#[test]
fn avgpool_matches_cpu_overlapping_windows() {
    check_layer(
        "avgpool k2 s1",
        Layer::AvgPool2d {
            kernel_size: 2,
            stride: 1,
        },
        3,
        [2, 5, 6],
        110,
    );
}

#[test]
fn avgpool_matches_cpu_stride_3() {
    check_layer(
        "avgpool k3 s3",
        Layer::AvgPool2d {
            kernel_size: 3,
            stride: 3,
        },
        2,
        [1, 10, 11],
        120,
    );
}

#[test]
fn normalize_matches_cpu() {
    let layer = Layer::Normalize {
        mean: vec![0.1, -0.2, 0.5],
        std: vec![0.3, 2.0, 0.7],
    };
    check_layer("normalize", layer, 2, [3, 4, 5], 130);
}

#[test]
fn maxpool_routes_ties_to_the_first_maximum() {
    // Every window is constant: the whole gradient goes to its top-left value.
    let (model, index) = one_layer_model(
        Layer::MaxPool2d {
            kernel_size: 2,
            stride: 2,
        },
        [1, 4, 4],
        0,
    );
    let got = run_gpu(gpu(), &model, index, 1, &[0.5; 16], &[1.0, 2.0, 3.0, 4.0]);
    let mut want = vec![0.0; 16];
    want[0] = 1.0;
    want[2] = 2.0;
    want[8] = 3.0;
    want[10] = 4.0;
    assert_eq!(got.gx, want);
}

/// `sum(gy * f(x))`, the scalar whose gradient `layer_backward` computes.
fn probe(layer: &Layer, params: &[Tensor], x: &Tensor, gy: &[f32]) -> f64 {
    let y = cpu::layer_forward(layer, params, x);
    y.data
        .iter()
        .zip(gy)
        .map(|(a, b)| *a as f64 * *b as f64)
        .sum()
}

/// `len` distinct values 0.05 apart in random order, none within 0.025 of 0:
/// a step of 1e-2 then never crosses a ReLU kink or changes a pool's maximum.
fn spaced(len: usize, seed: u64) -> Vec<f32> {
    let keys = random(len, seed, 0.0, 1.0);
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|a, b| keys[*a].total_cmp(&keys[*b]));
    let mut x = vec![0.0; len];
    for (rank, &i) in order.iter().enumerate() {
        x[i] = (rank as f32 - len as f32 / 2.0 + 0.5) * 0.05;
    }
    x
}

/// Central differences of the probe against `layer_backward`, at up to 40
/// coordinates of the input and of each parameter tensor.
fn check_finite_differences(name: &str, layer: Layer, x_shape: Vec<usize>, seed: u64) {
    let per: [usize; 3] = match x_shape.len() {
        4 => [x_shape[1], x_shape[2], x_shape[3]],
        _ => [x_shape[1], 1, 1],
    };
    let (model, index) = one_layer_model(layer.clone(), per, seed);
    let mut params = model.params[index].clone();
    let mut x = Tensor::new(x_shape.clone(), spaced(x_shape.iter().product(), seed + 1)).unwrap();
    let y = cpu::layer_forward(&layer, &params, &x);
    let gy = random(y.len(), seed + 2, -1.0, 1.0);
    let (gx, gp) = cpu::layer_backward(
        &layer,
        &params,
        &x,
        &Tensor::new(y.shape.clone(), gy.clone()).unwrap(),
    );

    let h = 1e-2f32;
    let check = |what: &str, analytic: f32, plus: f64, minus: f64| {
        let numeric = (plus - minus) / (2.0 * h as f64);
        assert!(
            (numeric - analytic as f64).abs() <= 2e-3 + 2e-3 * numeric.abs(),
            "{name} {what}: finite difference {numeric}, backward {analytic}"
        );
    };

    let stride = (x.len() / 40).max(1);
    for i in (0..x.len()).step_by(stride) {
        let orig = x.data[i];
        x.data[i] = orig + h;
        let plus = probe(&layer, &params, &x, &gy);
        x.data[i] = orig - h;
        let minus = probe(&layer, &params, &x, &gy);
        x.data[i] = orig;
        check(&format!("d/dx[{i}]"), gx.data[i], plus, minus);
    }
    for t in 0..params.len() {
        let stride = (params[t].len() / 40).max(1);
        for i in (0..params[t].len()).step_by(stride) {
            let orig = params[t].data[i];
            params[t].data[i] = orig + h;
            let plus = probe(&layer, &params, &x, &gy);
            params[t].data[i] = orig - h;
            let minus = probe(&layer, &params, &x, &gy);
            params[t].data[i] = orig;
            check(&format!("d/dparam{t}[{i}]"), gp[t].data[i], plus, minus);
        }
    }
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    check_finite_differences("conv s1", conv(2, 3, 3, 1, 0, true), vec![2, 2, 6, 5], 200);
    check_finite_differences(
        "conv s2 p1",
        conv(3, 2, 3, 2, 1, true),
        vec![1, 3, 7, 6],
        210,
    );
    check_finite_differences(
        "conv k2 no bias",
        conv(2, 2, 2, 1, 1, false),
        vec![2, 2, 4, 5],
        220,
    );
}

#[test]
fn linear_backward_matches_finite_differences() {
    let layer = Layer::Linear {
        in_features: 9,
        out_features: 4,
        bias: true,
    };
    check_finite_differences("linear", layer, vec![3, 9], 230);
}

#[test]
fn relu_and_pools_backward_match_finite_differences() {
    check_finite_differences("relu", Layer::Relu, vec![2, 2, 3, 3], 240);
    check_finite_differences(
        "maxpool",
        Layer::MaxPool2d {
            kernel_size: 2,
            stride: 2,
        },
        vec![2, 2, 4, 6],
        250,
    );
    check_finite_differences(
        "avgpool",
        Layer::AvgPool2d {
            kernel_size: 3,
            stride: 2,
        },
        vec![1, 2, 7, 7],
        260,
    );
}

#[test]
fn normalize_backward_matches_finite_differences() {
    let layer = Layer::Normalize {
        mean: vec![0.2, 0.4],
        std: vec![0.5, 1.5],
    };
    check_finite_differences("normalize", layer, vec![2, 2, 3, 3], 270);
}

#[test]
fn softmax_cross_entropy_gradient_matches_finite_differences() {
    let logits = Tensor::new(vec![3, 5], random(15, 300, -3.0, 3.0)).unwrap();
    let labels = [0usize, 4, 2];
    let (_, grad) = cpu::softmax_cross_entropy(&logits, &labels);
    let h = 1e-3f32;
    for i in 0..15 {
        let mut p = logits.clone();
        p.data[i] += h;
        let mut m = logits.clone();
        m.data[i] -= h;
        let lp: f64 = cpu::softmax_cross_entropy(&p, &labels)
            .0
            .iter()
            .map(|v| *v as f64)
            .sum();
        let lm: f64 = cpu::softmax_cross_entropy(&m, &labels)
            .0
            .iter()
            .map(|v| *v as f64)
            .sum();
        let numeric = (lp - lm) / (2.0 * h as f64);
        assert!(
            (numeric - grad.data[i] as f64).abs() < 1e-3,
            "logit {i}: {numeric} vs {}",
            grad.data[i]
        );
    }
}

#[test]
fn gpu_loss_matches_cpu_with_scale_and_sign() {
    // A model that is just its input, flattened: the logits are x itself.
    let gpu = gpu();
    let model = Model::init(vec![Layer::Flatten], [5, 1, 1], 0).unwrap();
    let gm = GpuModel::new(gpu, &model).unwrap();
    let plan = Plan::new(
        gpu,
        &gm,
        3,
        PlanOptions {
            input_grad: true,
            ..Default::default()
        },
    )
    .unwrap();
    let z = random(15, 310, -4.0, 4.0);
    let labels = [1u32, 0, 4];
    plan.write_batch(gpu, &z, &labels).unwrap();
    plan.set_loss(gpu, 0.5, -1.0);
    plan.run(gpu).unwrap();

    let (loss, grad) =
        cpu::softmax_cross_entropy(&Tensor::new(vec![3, 5], z.clone()).unwrap(), &[1, 0, 4]);
    let want_grad: Vec<f32> = grad.data.iter().map(|g| -0.5 * g).collect();
    assert_close(
        "loss",
        &gpu.read_blocking(&plan.loss).unwrap(),
        &loss,
        RTOL,
        ATOL,
    );
    assert_close(
        "grad",
        &gpu.read_blocking(plan.grad_input()).unwrap(),
        &want_grad,
        RTOL,
        ATOL,
    );
    let pred: Vec<u32> = gpu.read_blocking(&plan.pred).unwrap();
    let want_pred: Vec<u32> = z
        .chunks(5)
        .map(|r| advgpu::nn::infer::argmax(r) as u32)
        .collect();
    assert_eq!(pred, want_pred);
}

/// The input gradient of `layer` (a convolution) on input shape `[n, shape]`
/// in one formulation, forced, against the CPU reference.
fn check_input_gradient_formulation(
    formulation: &str,
    layer: &Layer,
    n: usize,
    shape: [usize; 3],
    seed: u64,
) {
    use advgpu::nn::ops::{conv_backward_input_col2im, conv_backward_input_flip, ConvParams};

    let Layer::Conv2d {
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        ..
    } = *layer
    else {
        panic!("not a convolution");
    };
    let out = |size: usize| (size + 2 * padding - kernel_size) / stride + 1;
    let (oh, ow) = (out(shape[1]), out(shape[2]));
    let p = ConvParams {
        batch: n as u32,
        in_c: in_channels as u32,
        in_h: shape[1] as u32,
        in_w: shape[2] as u32,
        out_c: out_channels as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        k: kernel_size as u32,
        stride: stride as u32,
        pad: padding as u32,
        has_bias: 0,
        splits: 1,
        relu: 0,
        _pad: [0; 3],
    };
    let w_shape = vec![out_channels, in_channels, kernel_size, kernel_size];
    let w = Tensor::new(
        w_shape.clone(),
        random(w_shape.iter().product(), seed, -1.0, 1.0),
    )
    .unwrap();
    let b = Tensor::new(vec![out_channels], vec![0.0; out_channels]).unwrap();
    let x_shape = vec![n, shape[0], shape[1], shape[2]];
    let x = Tensor::zeros(x_shape.clone());
    let gy_shape = vec![n, out_channels, oh, ow];
    let gy = Tensor::new(
        gy_shape.clone(),
        random(gy_shape.iter().product(), seed + 1, -1.0, 1.0),
    )
    .unwrap();
    let (want, _) = cpu::layer_backward(layer, &[w.clone(), b], &x, &gy);

    for variant in Variant::ALL {
        let g = gpu_with(variant);
        let w_gpu = g.upload("w", &w_shape, &w.data).unwrap();
        let gy_gpu = g.upload("gy", &gy_shape, &gy.data).unwrap();
        let gx_gpu = g.zeros("gx", &x_shape).unwrap();
        let build = match formulation {
            "col2im" => conv_backward_input_col2im,
            _ => conv_backward_input_flip,
        };
        let c = build(&g, &p, &w_gpu.buffer, &gy_gpu.buffer, &gx_gpu.buffer).unwrap();
        g.time_kernels(&c.kernels).unwrap();
        let got: Vec<f32> = g.read_blocking(&gx_gpu).unwrap();
        let name = format!("{formulation} input gradient ({} kernels)", variant.name());
        assert_close(&name, &got, &want.data, RTOL, ATOL);
    }
}

#[test]
fn both_formulations_of_the_conv_input_gradient_match_cpu() {
    // (layer, batch, input shape): padding 0 and 1, kernels 2 and 3, one
    // input channel (a first layer), one output channel, and a batch that
    // col2im's 4 MiB chunks split 2 + 1.
    let cases = [
        (conv(1, 32, 3, 1, 0, true), 2, [1, 9, 7]),
        (conv(3, 12, 3, 1, 1, true), 2, [3, 7, 9]),
        (conv(2, 4, 2, 1, 1, false), 3, [2, 6, 7]),
        (conv(5, 1, 3, 1, 0, true), 2, [5, 6, 8]),
        (conv(256, 8, 3, 1, 0, true), 3, [256, 16, 16]),
    ];
    for (i, (layer, n, shape)) in cases.iter().enumerate() {
        for formulation in ["col2im", "flip"] {
            check_input_gradient_formulation(formulation, layer, *n, *shape, 60 + i as u64);
        }
    }
    // col2im alone handles strides above 1.
    check_input_gradient_formulation("col2im", &conv(3, 5, 3, 2, 1, true), 2, [3, 9, 8], 70);
    check_input_gradient_formulation("col2im", &conv(5, 6, 5, 3, 2, true), 2, [5, 11, 10], 71);
}
