//! Saliency methods: agreement with the CPU reference, the identities each
//! method must satisfy (SmoothGrad at zero noise is the gradient, Integrated
//! Gradients is complete, occlusion of a linear model is analytic),
//! independence from the batch split, and parameter checks.

mod common;

use advgpu::explain::{
    self, reference, ClassChoice, Gradient, GradientXInput, GuidedBackprop, IntegratedGradients,
    Method, Occlusion, Options, SmoothGrad,
};
use advgpu::gpu::Variant;
use advgpu::nn::{Layer, Model};
use advgpu::Error;
use common::{assert_close, gpu, random};

/// A small random classifier of 1 x 8 x 8 images into 5 classes, with two
/// ReLUs so that guided backpropagation differs from the gradient.
fn small_model(seed: u64) -> Model {
    let layers = vec![
        Layer::Conv2d {
            in_channels: 1,
            out_channels: 3,
            kernel_size: 3,
            stride: 1,
            padding: 1,
            bias: true,
        },
        Layer::Relu,
        Layer::MaxPool2d {
            kernel_size: 2,
            stride: 2,
        },
        Layer::Flatten,
        Layer::Linear {
            in_features: 48,
            out_features: 12,
            bias: true,
        },
        Layer::Relu,
        Layer::Linear {
            in_features: 12,
            out_features: 5,
            bias: true,
        },
    ];
    Model::init(layers, [1, 8, 8], seed).unwrap()
}

const N: usize = 3;
const D: usize = 64;

/// Every method, with settings small enough for the CPU reference and
/// copies that do not divide the batch sizes used below.
fn methods() -> Vec<Box<dyn Method>> {
    vec![
        Box::new(Gradient),
        Box::new(GradientXInput),
        Box::new(GuidedBackprop),
        Box::new(SmoothGrad {
            samples: 5,
            noise: 0.2,
            seed: 3,
        }),
        Box::new(IntegratedGradients {
            steps: 7,
            baseline: 0.1,
        }),
        Box::new(Occlusion {
            window: 3,
            stride: 2,
            fill: 0.5,
        }),
    ]
}

fn options(class: ClassChoice, batch: usize) -> Options {
    Options {
        class,
        batch: Some(batch),
    }
}

#[test]
fn every_method_matches_the_cpu_reference() {
    let model = small_model(1);
    let x = random(N * D, 2, 0.0, 1.0);
    for class in [
        ClassChoice::Predicted,
        ClassChoice::Class(2),
        ClassChoice::PerSample(vec![4, 0, 1]),
    ] {
        for method in methods() {
            // Batch 4 splits the copies of one image over two submissions.
            let got = explain::explain(
                gpu(),
                &model,
                method.as_ref(),
                &x,
                &options(class.clone(), 4),
                |_| {},
            )
            .unwrap();
            let want = reference::attributions(&model, method.as_ref(), &x, &class).unwrap();
            let what = format!("{} {:?}", method.name(), class);
            assert_eq!(got.classes, want.classes, "{what}: classes");
            assert_close(
                &format!("{what}: scores"),
                &got.scores,
                &want.scores,
                1e-4,
                1e-5,
            );
            assert_close(&format!("{what}: maps"), &got.maps, &want.maps, 1e-3, 1e-5);
            match (&got.baseline_scores, &want.baseline_scores) {
                (Some(g), Some(w)) => assert_close(&format!("{what}: baseline"), g, w, 1e-4, 1e-5),
                (None, None) => {}
                other => panic!("{what}: baseline scores {other:?}"),
            }
            assert!(
                got.maps.iter().any(|v| v.abs() > 1e-4),
                "{what}: an all-zero map would match trivially"
            );
        }
    }
}

#[test]
fn guided_backprop_differs_from_the_gradient() {
    // With a ReLU right before the last linear layer, guided backprop drops
    // negative gradients there, so the two maps must differ somewhere.
    let model = small_model(5);
    let x = random(N * D, 6, 0.0, 1.0);
    let o = Options::default();
    let plain = explain::explain(gpu(), &model, &Gradient, &x, &o, |_| {}).unwrap();
    let guided = explain::explain(gpu(), &model, &GuidedBackprop, &x, &o, |_| {}).unwrap();
    let differ = plain
        .maps
        .iter()
        .zip(&guided.maps)
        .filter(|(a, b)| (*a - *b).abs() > 1e-5)
        .count();
    assert!(differ > 0, "guided backprop equals the plain gradient");
}

#[test]
fn smoothgrad_with_zero_noise_equals_the_gradient_exactly() {
    let model = small_model(7);
    let x = random(N * D, 8, 0.0, 1.0);
    let vanilla = explain::explain(
        gpu(),
        &model,
        &Gradient,
        &x,
        &options(ClassChoice::Predicted, 4),
        |_| {},
    )
    .unwrap();
    let smooth = SmoothGrad {
        samples: 6,
        noise: 0.0,
        seed: 9,
    };
    let got = explain::explain(
        gpu(),
        &model,
        &smooth,
        &x,
        &options(ClassChoice::Predicted, 5),
        |_| {},
    )
    .unwrap();
    assert_eq!(got.classes, vanilla.classes);
    for (i, (s, v)) in got.maps.iter().zip(&vanilla.maps).enumerate() {
        assert_eq!(
            s.to_bits(),
            v.to_bits(),
            "value {i}: smoothgrad {s}, gradient {v}"
        );
    }
}

#[test]
fn smoothgrad_does_not_depend_on_the_batch_split() {
    let model = small_model(11);
    let x = random(N * D, 12, 0.0, 1.0);
    let smooth = SmoothGrad {
        samples: 7,
        noise: 0.3,
        seed: 4,
    };
    let run = |batch| {
        explain::explain(
            gpu(),
            &model,
            &smooth,
            &x,
            &options(ClassChoice::Predicted, batch),
            |_| {},
        )
        .unwrap()
        .maps
    };
    let (a, b) = (run(3), run(21));
    assert_eq!(a, b, "the same seed gave different maps for batch 3 and 21");
    let other = explain::explain(
        gpu(),
        &model,
        &SmoothGrad { seed: 5, ..smooth },
        &x,
        &options(ClassChoice::Predicted, 21),
        |_| {},
    )
    .unwrap();
    assert_ne!(a, other.maps, "another seed gave the same noise");
}

#[test]
fn occlusion_of_a_linear_model_equals_its_analytic_value() {
    // f(x) = w x + b: covering window W changes the score by
    // sum_{j in W} w_cj (x_j - fill), and a pixel's map value is the mean of
    // that drop over the windows covering it.
    let (h, w, k) = (8, 9, 4);
    let layers = vec![
        Layer::Flatten,
        Layer::Linear {
            in_features: h * w,
            out_features: k,
            bias: true,
        },
    ];
    let model = Model::init(layers, [1, h, w], 13).unwrap();
    let n = 2;
    let x = random(n * h * w, 14, 0.0, 1.0);
    let method = Occlusion {
        window: 3,
        stride: 2,
        fill: 0.5,
    };
    let got = explain::explain(
        gpu(),
        &model,
        &method,
        &x,
        &options(ClassChoice::Class(1), 10),
        |_| {},
    )
    .unwrap();

    let weight = &model.params[1][0].data;
    let positions = method.spec().copies([1, h, w]);
    assert_eq!(
        positions,
        4 * 4,
        "corners at y = 0, 2, 4, 5 (the last moved back inside), x = 0, 2, 4, 6"
    );
    for i in 0..n {
        let xi = &x[i * h * w..(i + 1) * h * w];
        let mut sum = vec![0f64; h * w];
        let mut count = vec![0f64; h * w];
        for j in 0..positions {
            let (y0, x0) = explain::window_corner([1, h, w], 3, 2, j);
            let inside: Vec<usize> = (y0..y0 + 3)
                .flat_map(|y| (x0..x0 + 3).map(move |c| y * w + c))
                .collect();
            let drop: f64 = inside
                .iter()
                .map(|&p| f64::from(weight[h * w + p]) * f64::from(xi[p] - 0.5))
                .sum();
            for &p in &inside {
                sum[p] += drop;
                count[p] += 1.0;
            }
        }
        let want: Vec<f32> = sum
            .iter()
            .zip(&count)
            .map(|(s, c)| (s / c) as f32)
            .collect();
        assert!(count.iter().all(|c| *c > 0.0), "a pixel no window covers");
        assert_close("occlusion map", got.map(i), &want, 1e-4, 1e-5);
    }
}

#[test]
fn integrated_gradients_is_complete_on_the_bundled_model() {
    // One kernel variant: this test is about the method, and autotuning the
    // bundled model's shapes would cost more than the attributions.
    let gpu = common::gpu_with(Variant::Register);
    let model = advgpu::data::bundled_model().unwrap();
    let digits = advgpu::data::Digits::bundled()
        .unwrap()
        .held_out()
        .slice(0..2);
    let ig = IntegratedGradients {
        steps: 64,
        baseline: 0.0,
    };
    let a = explain::explain(
        &gpu,
        &model,
        &ig,
        &digits.images,
        &Options::default(),
        |_| {},
    )
    .unwrap();
    let baseline = a.baseline_scores.as_ref().unwrap();
    for (i, (score, base)) in a.scores.iter().zip(baseline).enumerate() {
        let sum: f32 = a.map(i).iter().sum();
        let gap = score - base;
        assert!(
            gap.abs() > 1.0,
            "digit {i}: f(x) = f(b), completeness says nothing"
        );
        assert!(
            (sum - gap).abs() <= 0.02 * gap.abs(),
            "digit {i}: attributions sum to {sum}, f(x) - f(b) = {gap} ({:.2}% off)",
            100.0 * (sum - gap).abs() / gap.abs()
        );
    }
}

#[test]
fn progress_counts_every_row() {
    let model = small_model(15);
    let x = random(N * D, 16, 0.0, 1.0);
    let ig = IntegratedGradients {
        steps: 5,
        baseline: 0.0,
    };
    let mut last = 0;
    explain::explain(
        gpu(),
        &model,
        &ig,
        &x,
        &options(ClassChoice::Predicted, 4),
        |r| {
            assert!(r > last, "progress went from {last} to {r}");
            last = r;
        },
    )
    .unwrap();
    assert_eq!(last, (N * 5) as u64);
}

#[test]
fn bad_parameters_are_refused_with_their_names() {
    let model = small_model(17);
    let x = random(N * D, 18, 0.0, 1.0);
    let param = |r: advgpu::Result<explain::Attributions>| match r {
        Err(Error::InvalidParameter { name, .. }) => name,
        Err(e) => panic!("expected a parameter error, got {e}"),
        Ok(_) => panic!("expected a parameter error, got maps"),
    };
    let run = |m: &dyn Method, o: &Options| explain::explain(gpu(), &model, m, &x, o, |_| {});
    let o = Options::default();
    assert_eq!(
        param(run(
            &Occlusion {
                window: 9,
                ..Default::default()
            },
            &o
        )),
        "window"
    );
    assert_eq!(
        param(run(
            &Occlusion {
                stride: 0,
                ..Default::default()
            },
            &o
        )),
        "stride"
    );
    assert_eq!(
        param(run(
            &SmoothGrad {
                samples: 0,
                ..Default::default()
            },
            &o
        )),
        "samples"
    );
    assert_eq!(
        param(run(
            &SmoothGrad {
                noise: -1.0,
                ..Default::default()
            },
            &o
        )),
        "noise"
    );
    assert_eq!(
        param(run(
            &IntegratedGradients {
                steps: 0,
                baseline: 0.0
            },
            &o
        )),
        "steps"
    );
    assert_eq!(
        param(run(&Gradient, &options(ClassChoice::Class(5), 4))),
        "class"
    );
    assert!(matches!(
        run(&Gradient, &options(ClassChoice::PerSample(vec![0]), 4)),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        explain::explain(gpu(), &model, &Gradient, &x[..D + 1], &o, |_| {}),
        Err(Error::Shape { .. })
    ));
    let mut nan = x.clone();
    nan[3] = f32::NAN;
    assert_eq!(
        param(explain::explain(gpu(), &model, &Gradient, &nan, &o, |_| {})),
        "pixel"
    );

    let settings = explain::Settings {
        steps: Some(3),
        ..Default::default()
    };
    assert!(explain::by_name("integrated-gradients", &settings).is_ok());
    match explain::by_name("smoothgrad", &settings) {
        Err(Error::InvalidParameter { name: "steps", .. }) => {}
        Err(e) => panic!("expected steps to be refused for smoothgrad, got {e}"),
        Ok(_) => panic!("steps was accepted for smoothgrad"),
    }
    match explain::by_name("lime", &Default::default()) {
        Err(Error::InvalidParameter { name: "method", .. }) => {}
        Err(e) => panic!("expected an unknown method error, got {e}"),
        Ok(_) => panic!("lime was accepted"),
    }
    let all = explain::by_names(&["all"], &settings).unwrap();
    assert_eq!(all.len(), explain::METHODS.len());
    assert!(all.iter().any(|m| m.spec()
        == IntegratedGradients {
            steps: 3,
            baseline: 0.0
        }
        .spec()));
    match explain::by_names(&["gradient", "smoothgrad"], &settings) {
        Err(Error::InvalidParameter { name: "steps", .. }) => {}
        Err(e) => panic!("expected steps to be refused, got {e}"),
        Ok(_) => panic!("steps was accepted by methods that do not take it"),
    }
    assert_eq!(explain::parse_level("grey").unwrap(), 0.5);
    assert_eq!(explain::parse_level("0.25").unwrap(), 0.25);
    assert!(explain::parse_level("inf").is_err());
}

#[test]
fn mass_share_sums_magnitudes_over_channels_on_the_given_pixels() {
    // Two channels of 2 x 2: per-pixel magnitudes 1+4, 2+0, 0+3, 1+1 (sum 12).
    let map = [1.0, -2.0, 0.0, 1.0, -4.0, 0.0, 3.0, -1.0];
    let shape = [2, 2, 2];
    assert_eq!(explain::magnitude(&map, shape), vec![5.0, 2.0, 3.0, 2.0]);
    assert!((explain::mass_share(&map, shape, &[0, 2]) - 8.0 / 12.0).abs() < 1e-12);
    assert_eq!(
        explain::mass_share(&map, shape, &[9]),
        0.0,
        "outside the image"
    );
    assert_eq!(
        explain::mass_share(&[0.0; 8], shape, &[0]),
        0.0,
        "all-zero map"
    );
}

#[test]
fn a_saliency_tile_saturates_at_the_99th_percentile() {
    // 200 values 0..199: the 99th percentile is 197, so 197..199 share the
    // top colour and 98 sits near the middle of the map.
    let heat: Vec<f32> = (0..200).map(|v| v as f32).collect();
    let image = vec![0.0; 200];
    let tile = advgpu::report::gallery::Tile::saliency(&image, [1, 10, 20], &heat, "s");
    let px = |i: u32| tile.pixels.get_pixel(i % 20, i / 20).0;
    assert_eq!(px(197), px(199), "saturated at the top");
    assert_ne!(px(196), px(197));
    assert_ne!(px(98), px(0));
    let luma = |p: [u8; 3]| p.iter().map(|v| u32::from(*v)).sum::<u32>();
    assert!(luma(px(0)) < luma(px(98)) && luma(px(98)) < luma(px(199)));
}

#[test]
fn the_saliency_gallery_has_a_column_per_method_and_refuses_short_maps() {
    let model = small_model(19);
    let x = random(N * D, 20, 0.0, 1.0);
    let o = Options::default();
    let grad = explain::explain(gpu(), &model, &Gradient, &x, &o, |_| {}).unwrap();
    let ig = explain::explain(
        gpu(),
        &model,
        &IntegratedGradients::default(),
        &x,
        &o,
        |_| {},
    )
    .unwrap();
    let maps = [("gradient", &grad), ("integrated-gradients", &ig)];
    let g = explain::saliency_gallery(&model, &x, Some(&[1, 2, 3]), &maps, 12).unwrap();
    assert_eq!(g.columns, vec!["image", "gradient", "integrated-gradients"]);
    assert_eq!(g.rows.len(), N);
    assert!(g.rows[0][0].caption.starts_with("label 1 | pred "));
    assert!(g.rows[0][2].caption.contains("f(x)-f(b)"));
    let one = explain::explain(gpu(), &model, &Gradient, &x[..D], &o, |_| {}).unwrap();
    assert!(matches!(
        explain::saliency_gallery(&model, &x, None, &[("gradient", &one)], 12),
        Err(Error::Shape { .. })
    ));
}
