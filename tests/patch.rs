//! Universal patches: the sampling against its CPU reference, the gradient
//! through it against the CPU adjoint and finite differences, determinism,
//! a small patch that works where noise does not, and parameter checks.

mod common;

use advgpu::attack::patch::{
    self, reference, EvalConfig, Optimizer, Patch, PatchConfig, PatchTrainer, Placement, Shape,
};
use advgpu::nn::{cpu, GpuModel, Layer, Model, Tensor};
use advgpu::Error;
use common::{gpu, random};

const SIDE: usize = 12;
const D: usize = SIDE * SIDE;

/// A small random classifier of 1 x 12 x 12 images into 4 classes.
fn small_model(seed: u64) -> Model {
    common::conv_pool_linear(SIDE, 4, 4, seed)
}

fn random_patch(h: usize, w: usize, shape: &Shape, seed: u64) -> Patch {
    Patch {
        channels: 1,
        height: h,
        width: w,
        pixels: random(h * w, seed, 0.0, 1.0),
        mask: shape.weights(h, w).unwrap(),
    }
}

#[test]
fn placements_and_pasting_match_the_cpu_reference() {
    let model = small_model(1);
    let n = 9;
    let images = random(n * D, 2, 0.0, 1.0);
    // Scales up to 2.6 make a 5-pixel patch larger than the image at times,
    // which pins the centre; the mask has fractional weights.
    let shapes = [
        Shape::Square,
        Shape::Round,
        Shape::Mask(random(5 * 4, 3, 0.0, 1.0)),
    ];
    for (si, shape) in shapes.iter().enumerate() {
        let placement = Placement {
            scale_min: 0.6,
            scale_max: 2.6,
            rotation: 40.0,
            subpixel: si != 1,
        };
        let p = random_patch(5, 4, shape, 10 + si as u64);
        let seed = 20 + si as u64;
        let out = patch::apply(gpu(), &model, &p, &images, &placement, seed).unwrap();
        let key = reference::evaluation_key(seed);
        let mut pinned = 0;
        for b in 0..n {
            let t = out.transforms[b];
            let want = reference::draw(key, b as u32, &placement, [5, 4], [SIDE, SIDE]);
            for (what, g, w) in [
                ("cx", t.cx, want.cx),
                ("cy", t.cy, want.cy),
                ("scale", t.scale, want.scale),
                ("cos", t.cos, want.cos),
                ("sin", t.sin, want.sin),
            ] {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{shape:?} image {b}: {what} {g}, reference {w}"
                );
            }
            assert_eq!(t.image, b as u32, "image {b} pasted on the wrong image");
            pinned += usize::from(t.cx == 6.0 || t.cy == 6.0);

            // The pasting itself, on the GPU's own placement.
            let want = reference::paste(&images[b * D..(b + 1) * D], [1, SIDE, SIDE], &p, &t);
            common::assert_close(
                &format!("{shape:?} pasted image {b}"),
                &out.images[b * D..(b + 1) * D],
                &want,
                1e-5,
                1e-5,
            );
            let changed = want
                .iter()
                .zip(&images[b * D..(b + 1) * D])
                .filter(|(a, c)| a != c)
                .count();
            assert!(
                changed >= 8,
                "{shape:?} image {b}: the patch covers {changed} pixels"
            );
        }
        assert!(
            pinned > 0 && pinned < n,
            "{shape:?}: {pinned} of {n} centres pinned"
        );
    }
}

#[test]
fn grid_placements_at_scale_1_paste_the_patch_pixel_for_pixel() {
    let model = small_model(1);
    let n = 16;
    let images = random(n * D, 30, 0.0, 1.0);
    let p = random_patch(5, 4, &Shape::Square, 31);
    let out = patch::apply(gpu(), &model, &p, &images, &Placement::default(), 32).unwrap();
    let mut corners = std::collections::HashSet::new();
    for b in 0..n {
        let t = out.transforms[b];
        let (left, top) = (t.cx - 2.0, t.cy - 2.5);
        assert!(
            left.fract() == 0.0 && top.fract() == 0.0,
            "image {b}: corner ({left}, {top}) is off the pixel grid"
        );
        assert!((0.0..=8.0).contains(&left) && (0.0..=7.0).contains(&top));
        corners.insert((left as usize, top as usize));
        let want = reference::draw(
            reference::evaluation_key(32),
            b as u32,
            &Placement::default(),
            [5, 4],
            [SIDE, SIDE],
        );
        assert_eq!((t.cx, t.cy), (want.cx, want.cy), "image {b}: centre");
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (i, j) = (y as f32 - top, x as f32 - left);
                let want = if (0.0..5.0).contains(&i) && (0.0..4.0).contains(&j) {
                    p.pixels[i as usize * 4 + j as usize]
                } else {
                    images[b * D + y * SIDE + x]
                };
                assert_eq!(
                    out.images[b * D + y * SIDE + x],
                    want,
                    "image {b} pixel ({x}, {y})"
                );
            }
        }
    }
    assert!(
        corners.len() >= 8,
        "only {} distinct positions in {n} draws",
        corners.len()
    );
}

/// `-(mean cross-entropy to target) - tv * TV(P)` on the CPU, for patched batch `x`.
fn objective(model: &Model, x: &[f32], n: usize, target: usize, p: &Patch, tv: f32) -> f64 {
    let g = cpu::loss_and_gradients(
        model,
        &Tensor::new(vec![n, 1, SIDE, SIDE], x.to_vec()).unwrap(),
        &vec![target; n],
    )
    .unwrap();
    -g.loss.iter().map(|l| f64::from(*l)).sum::<f64>() / n as f64
        - f64::from(tv) * reference::total_variation(p)
}

#[test]
fn the_gradient_through_the_sampling_matches_the_adjoint_and_finite_differences() {
    let model = small_model(4);
    let images = random(7 * D, 5, 0.0, 1.0);
    let config = PatchConfig {
        target: 2,
        height: 5,
        width: 5,
        shape: Shape::Round,
        placement: Placement {
            scale_min: 0.8,
            scale_max: 1.7,
            rotation: 30.0,
            subpixel: true,
        },
        steps: 1,
        batch: 3,
        tv: 0.02,
        seed: 6,
        ..Default::default()
    };
    let initial = Patch::initial(&config, 1).unwrap();
    let gm = GpuModel::new(gpu(), &model).unwrap();
    let trainer = PatchTrainer::new(gpu(), &gm, &images, &config, &initial).unwrap();
    let got = trainer.gradient().unwrap();
    let (n, target) = (config.batch, config.target as usize);

    // The batch the GPU built, rebuilt on the CPU from its placements.
    let mut x = Vec::new();
    let key = reference::training_key(config.seed);
    for (b, t) in got.transforms.iter().enumerate() {
        assert_eq!(
            t.image,
            reference::draw_image(key, b as u32, 7),
            "slot {b}: image drawn"
        );
        let i = t.image as usize;
        x.extend(reference::paste(
            &images[i * D..(i + 1) * D],
            [1, SIDE, SIDE],
            &initial,
            t,
        ));
    }
    common::assert_close("patched batch", &got.images, &x, 1e-5, 1e-5);

    // The adjoint: the CPU input gradient scattered back to the patch, plus the penalty.
    let g = cpu::loss_and_gradients(
        &model,
        &Tensor::new(vec![n, 1, SIDE, SIDE], x.clone()).unwrap(),
        &vec![target; n],
    )
    .unwrap();
    let mut adjoint = [0f64; 25];
    for (b, t) in got.transforms.iter().enumerate() {
        let gb = &g.grad_input.data[b * D..(b + 1) * D];
        for (a, v) in
            adjoint
                .iter_mut()
                .zip(reference::paste_grad(gb, [1, SIDE, SIDE], &initial, t))
        {
            *a -= v;
        }
    }

    // Finite differences of the whole objective, patch pixel by patch pixel.
    let h = 2e-3f32;
    let moved = |k: usize, delta: f32| {
        let mut p = initial.clone();
        p.pixels[k] += delta;
        p
    };
    let patched = |p: &Patch| -> Vec<f32> {
        got.transforms
            .iter()
            .flat_map(|t| {
                let i = t.image as usize;
                reference::paste(&images[i * D..(i + 1) * D], [1, SIDE, SIDE], p, t)
            })
            .collect()
    };
    let mut nonzero = 0;
    for (k, &want_loss) in adjoint.iter().enumerate() {
        let (plus, minus) = (moved(k, h), moved(k, -h));
        let numeric = (objective(&model, &patched(&plus), n, target, &plus, config.tv)
            - objective(&model, &patched(&minus), n, target, &minus, config.tv))
            / (2.0 * f64::from(h));
        // TV is quadratic, so its central difference is exact up to rounding.
        let tv_grad = -f64::from(config.tv)
            * (reference::total_variation(&plus) - reference::total_variation(&minus))
            / (2.0 * f64::from(h));
        let analytic = f64::from(got.grad[k]);
        assert!(
            (numeric - analytic).abs() <= 2e-4 + 2e-2 * numeric.abs(),
            "d/dP[{k}]: finite difference {numeric}, GPU {analytic}"
        );
        let want = want_loss + tv_grad;
        assert!(
            (want - analytic).abs() <= 1e-5 + 1e-3 * want.abs(),
            "d/dP[{k}]: CPU adjoint {want}, GPU {analytic}"
        );
        if initial.mask[k % 25] == 0.0 {
            assert_eq!(got.grad[k], 0.0, "pixel {k} is outside the round patch");
        } else {
            nonzero += usize::from(analytic.abs() > 1e-4);
        }
    }
    assert!(nonzero >= 10, "only {nonzero} patch pixels have a gradient");
    assert_eq!(
        trainer.steps_taken().unwrap(),
        0,
        "gradient() must not count a step"
    );
}

fn small_config(seed: u64, optimizer: Optimizer) -> PatchConfig {
    PatchConfig {
        target: 1,
        height: 4,
        width: 4,
        placement: Placement {
            scale_min: 0.9,
            scale_max: 1.3,
            rotation: 20.0,
            subpixel: false,
        },
        steps: 12,
        batch: 4,
        lr: 0.05,
        optimizer,
        tv: 0.01,
        seed,
        ..Default::default()
    }
}

#[test]
fn the_same_seed_gives_a_bit_identical_patch_and_another_seed_does_not() {
    let model = small_model(7);
    let images = random(10 * D, 8, 0.0, 1.0);
    for optimizer in [Optimizer::Adam, Optimizer::Sign] {
        let run = |seed| {
            patch::train(
                gpu(),
                &model,
                &images,
                &small_config(seed, optimizer),
                |_| {},
            )
            .unwrap()
        };
        let (a, b, c) = (run(3), run(3), run(4));
        assert!(
            a.patch
                .pixels
                .iter()
                .zip(&b.patch.pixels)
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{optimizer:?}: same seed, different patches"
        );
        let moved = a
            .patch
            .pixels
            .iter()
            .zip(
                &Patch::initial(&small_config(3, optimizer), 1)
                    .unwrap()
                    .pixels,
            )
            .filter(|(p, q)| p != q)
            .count();
        assert!(
            moved >= 8,
            "{optimizer:?}: training moved {moved} of 16 pixels"
        );
        let differing = a
            .patch
            .pixels
            .iter()
            .zip(&c.patch.pixels)
            .filter(|(p, q)| p != q)
            .count();
        assert!(
            differing >= 8,
            "{optimizer:?}: another seed changed {differing} pixels"
        );
        assert!(a.patch.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(a.history.last().unwrap().step, 12);
    }
}

/// A random classifier that sees the same evidence wherever it is in the
/// image (convolution, ReLU, global average pooling, linear), its weights
/// scaled up fivefold so that its logits depend strongly on the pixels. A
/// universal patch can work on it; on a random model with position-specific
/// weights it mostly cannot.
fn invariant_model(seed: u64) -> Model {
    let layers = vec![
        Layer::Conv2d {
            in_channels: 1,
            out_channels: 8,
            kernel_size: 3,
            stride: 1,
            padding: 0,
            bias: true,
        },
        Layer::Relu,
        Layer::AvgPool2d {
            kernel_size: SIDE - 2,
            stride: SIDE - 2,
        },
        Layer::Flatten,
        Layer::Linear {
            in_features: 8,
            out_features: 4,
            bias: true,
        },
    ];
    let mut model = Model::init(layers, [1, SIDE, SIDE], seed).unwrap();
    for layer in [0, 4] {
        for t in &mut model.params[layer] {
            t.data.iter_mut().for_each(|v| *v *= 5.0);
        }
    }
    model
}

#[test]
fn a_trained_patch_reaches_the_target_where_noise_does_not() {
    let model = invariant_model(1);
    let train = random(64 * D, 10, 0.0, 1.0);
    let held = random(48 * D, 11, 0.0, 1.0);
    // Labels are the model's clean classes, so success means a changed class.
    let clean = advgpu::nn::Classifier::new(gpu(), &model, 48)
        .unwrap()
        .predict(&held)
        .unwrap();
    let labels: Vec<u32> = clean.iter().map(|p| *p as u32).collect();
    let target = 3;
    let already = labels.iter().filter(|l| **l == target).count();
    assert!(
        already <= 12,
        "{already} of 48 clean images are already class {target}"
    );

    let config = PatchConfig {
        target,
        height: 6,
        width: 6,
        steps: 40,
        batch: 16,
        lr: 0.1,
        seed: 1,
        ..Default::default()
    };
    let trained = patch::train(gpu(), &model, &train, &config, |_| {}).unwrap();
    let eval = EvalConfig {
        target,
        scales: vec![1.0],
        placements: 2,
        seed: 5,
        ..Default::default()
    };
    let hit = patch::evaluate(gpu(), &model, &trained.patch, &held, &labels, &eval).unwrap();
    let noise = Patch::noise(1, 6, 6, &Shape::Square, 1).unwrap();
    let missed = patch::evaluate(gpu(), &model, &noise, &held, &labels, &eval).unwrap();
    assert_eq!(hit.images, 48 - already);
    assert_eq!(hit.by_scale[0].trials, 2 * hit.images);
    assert!(
        hit.success_rate >= 0.8 && missed.success_rate <= 0.2,
        "patch success {:.3}, noise success {:.3}",
        hit.success_rate,
        missed.success_rate
    );
}

#[test]
fn bad_settings_are_refused_with_their_names() {
    let model = small_model(12);
    let images = random(4 * D, 13, 0.0, 1.0);
    let base = small_config(0, Optimizer::Adam);
    let cases: Vec<(PatchConfig, &str)> = vec![
        (
            PatchConfig {
                target: 4,
                ..base.clone()
            },
            "target",
        ),
        (
            PatchConfig {
                height: 13,
                ..base.clone()
            },
            "size",
        ),
        (
            PatchConfig {
                width: 0,
                ..base.clone()
            },
            "size",
        ),
        (
            PatchConfig {
                steps: 0,
                ..base.clone()
            },
            "steps",
        ),
        (
            PatchConfig {
                batch: 0,
                ..base.clone()
            },
            "batch",
        ),
        (
            PatchConfig {
                lr: f32::NAN,
                ..base.clone()
            },
            "lr",
        ),
        (
            PatchConfig {
                tv: -1.0,
                ..base.clone()
            },
            "tv",
        ),
        (
            PatchConfig {
                placement: Placement {
                    scale_min: 0.0,
                    ..base.placement.clone()
                },
                ..base.clone()
            },
            "scale",
        ),
        (
            PatchConfig {
                placement: Placement {
                    scale_min: 2.0,
                    scale_max: 1.0,
                    ..Default::default()
                },
                ..base.clone()
            },
            "scale",
        ),
        (
            PatchConfig {
                placement: Placement {
                    rotation: 200.0,
                    ..base.placement.clone()
                },
                ..base.clone()
            },
            "rotation",
        ),
        (
            PatchConfig {
                shape: Shape::Mask(vec![0.0; 16]),
                ..base.clone()
            },
            "mask",
        ),
    ];
    for (config, name) in cases {
        match patch::train(gpu(), &model, &images, &config, |_| {}) {
            Err(Error::InvalidParameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: expected an InvalidParameter error, got {other:?}"),
        }
    }
    let err = patch::train(
        gpu(),
        &model,
        &images,
        &PatchConfig {
            shape: Shape::Mask(vec![1.0; 15]),
            ..base.clone()
        },
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("16 values (4x4)"), "{err}");
    let err = patch::train(gpu(), &model, &images[1..], &base, |_| {}).unwrap_err();
    assert!(err.to_string().contains("multiple of 144"), "{err}");

    let p = Patch::noise(1, 4, 4, &Shape::Round, 0).unwrap();
    let labels = vec![base.target; 4];
    let err = patch::evaluate(
        gpu(),
        &model,
        &p,
        &images,
        &labels,
        &EvalConfig {
            target: base.target,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("target"),
        "every image is of the target: {err}"
    );
}

#[test]
fn shapes_have_the_documented_outlines() {
    let round = Shape::Round.weights(4, 4).unwrap();
    #[rustfmt::skip]
    let want = [
        0.0, 1.0, 1.0, 0.0,
        1.0, 1.0, 1.0, 1.0,
        1.0, 1.0, 1.0, 1.0,
        0.0, 1.0, 1.0, 0.0,
    ];
    assert_eq!(round, want);
    assert_eq!(Shape::Square.weights(2, 3).unwrap(), vec![1.0; 6]);
    let disc = Shape::Round.weights(14, 14).unwrap();
    let area = disc.iter().sum::<f32>();
    // pi * 7^2 = 153.9
    assert!(
        (area - 153.9).abs() < 8.0,
        "a 14-pixel disc has {area} pixels"
    );
    assert_eq!(Shape::parse("round", 3, 3).unwrap(), Shape::Round);
    assert!(Shape::parse("/no/such/mask.png", 3, 3).is_err());
}
