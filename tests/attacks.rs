//! The attacks: their invariants, agreement with the CPU reference of the same
//! rules, early stopping, determinism, parameter checks and batch splitting.

mod common;

use advgpu::attack::{self, reference, Attack, Bim, Fgsm, MiFgsm, Options, Pgd, PgdL2, Target};
use advgpu::nn::Model;
use advgpu::Error;
use common::gpu;

/// A small random classifier of 1 x 8 x 8 images into 5 classes.
fn small_model(seed: u64) -> Model {
    common::conv_pool_linear(8, 3, 5, seed)
}

const N: usize = 6;
const D: usize = 64;

fn batch(seed: u64) -> (Vec<f32>, Vec<u32>) {
    common::random_batch(N, D, 5, seed)
}

/// Every attack, with settings that exercise each part of the skeleton.
fn attacks() -> Vec<Box<dyn Attack>> {
    vec![
        Box::new(Fgsm { eps: 0.1 }),
        Box::new(Bim {
            eps: 0.1,
            alpha: 0.03,
            steps: 5,
        }),
        Box::new(Pgd {
            eps: 0.1,
            alpha: 0.03,
            steps: 5,
            restarts: 2,
        }),
        Box::new(PgdL2 {
            eps: 0.8,
            alpha: 0.3,
            steps: 5,
            restarts: 2,
        }),
        Box::new(MiFgsm {
            eps: 0.1,
            alpha: 0.03,
            steps: 5,
            mu: 1.0,
        }),
    ]
}

fn options(target: Target, early_stop: bool, seed: u64) -> Options {
    common::attack_options(target, early_stop, seed)
}

#[test]
fn philox_matches_the_published_known_answers() {
    // Random123's known-answer vectors for Philox2x32-10.
    assert_eq!(reference::philox2x32(0, [0, 0]), [0xff1d_ae59, 0x6cd1_0df2]);
    assert_eq!(
        reference::philox2x32(0xffff_ffff, [0xffff_ffff, 0xffff_ffff]),
        [0x2c3f_628b, 0xab4f_d7ad]
    );
}

#[test]
fn every_attack_stays_in_its_ball_and_in_the_unit_interval() {
    let model = small_model(1);
    for seed in [3, 4, 5] {
        let (x0, labels) = batch(seed);
        for attack in attacks() {
            for target in [Target::None, Target::Next] {
                let out = attack::run(
                    gpu(),
                    &model,
                    attack.as_ref(),
                    &x0,
                    &labels,
                    &options(target.clone(), false, seed),
                    |_| {},
                )
                .unwrap();
                let spec = attack.spec();
                for s in 0..N {
                    let (a, b) = (&out.images[s * D..(s + 1) * D], &x0[s * D..(s + 1) * D]);
                    assert!(
                        a.iter().all(|v| (0.0..=1.0).contains(v)),
                        "{} seed {seed}: pixel outside [0, 1]",
                        attack.name()
                    );
                    let norm = match spec.norm {
                        attack::Norm::Linf => a
                            .iter()
                            .zip(b)
                            .map(|(p, q)| (p - q).abs())
                            .fold(0.0, f32::max),
                        attack::Norm::L2 => a
                            .iter()
                            .zip(b)
                            .map(|(p, q)| (p - q) * (p - q))
                            .sum::<f32>()
                            .sqrt(),
                    };
                    assert!(
                        norm <= spec.eps + 1e-6,
                        "{} {target:?} seed {seed} sample {s}: norm {norm} > eps {}",
                        attack.name(),
                        spec.eps
                    );
                    assert!(norm > 0.0, "{} moved nothing", attack.name());
                }
            }
        }
    }
}

#[test]
fn every_attack_matches_the_cpu_reference() {
    let model = small_model(2);
    for seed in [11, 12] {
        let (x0, labels) = batch(seed);
        for attack in attacks() {
            for (target, early_stop) in [
                (Target::None, false),
                (Target::Next, false),
                (Target::None, true),
            ] {
                let what = format!(
                    "{} {target:?} early_stop={early_stop} seed {seed}",
                    attack.name()
                );
                let out = attack::run(
                    gpu(),
                    &model,
                    attack.as_ref(),
                    &x0,
                    &labels,
                    &options(target.clone(), early_stop, seed),
                    |_| {},
                )
                .unwrap();
                let loss_labels = out.targets.clone().unwrap_or(labels.clone());
                let want = reference::attack(
                    &model,
                    &attack.spec(),
                    &x0,
                    &loss_labels,
                    out.targets.is_some(),
                    early_stop,
                    seed,
                )
                .unwrap();
                common::assert_close(&what, &out.images, &want.images, 0.0, 2e-5);
                assert_eq!(out.steps, want.steps, "{what}: steps");
                assert_eq!(out.success, want.success, "{what}: success");
            }
        }
    }
}

#[test]
fn samples_stopped_early_do_not_change_afterwards() {
    // An easy model to fool: every sample stops within a few steps.
    let model = small_model(3);
    let (x0, labels) = batch(21);
    let run = |steps| {
        let pgd = Bim {
            eps: 0.5,
            alpha: 0.05,
            steps,
        };
        attack::run(
            gpu(),
            &model,
            &pgd,
            &x0,
            &labels,
            &options(Target::None, true, 0),
            |_| {},
        )
        .unwrap()
    };
    let short = run(12);
    let long = run(30);
    let mut stopped = 0;
    for s in 0..N {
        if short.steps[s] < 12 {
            stopped += 1;
            assert_eq!(
                long.steps[s], short.steps[s],
                "sample {s} took more steps after stopping"
            );
            assert_eq!(
                &long.images[s * D..(s + 1) * D],
                &short.images[s * D..(s + 1) * D],
                "sample {s} changed after it stopped"
            );
            assert!(short.success[s]);
        }
    }
    assert!(
        stopped >= N / 2,
        "only {stopped} of {N} samples stopped early; the test proves little"
    );
}

#[test]
fn the_same_seed_gives_identical_images_and_another_seed_does_not() {
    let model = small_model(4);
    let (x0, labels) = batch(31);
    let pgd = Pgd {
        eps: 0.1,
        alpha: 0.02,
        steps: 3,
        restarts: 1,
    };
    let a = attack::run(
        gpu(),
        &model,
        &pgd,
        &x0,
        &labels,
        &options(Target::None, false, 7),
        |_| {},
    )
    .unwrap();
    let b = attack::run(
        gpu(),
        &model,
        &pgd,
        &x0,
        &labels,
        &options(Target::None, false, 7),
        |_| {},
    )
    .unwrap();
    let c = attack::run(
        gpu(),
        &model,
        &pgd,
        &x0,
        &labels,
        &options(Target::None, false, 8),
        |_| {},
    )
    .unwrap();
    assert!(
        a.images
            .iter()
            .zip(&b.images)
            .all(|(p, q)| p.to_bits() == q.to_bits()),
        "same seed, different images"
    );
    let differing = a
        .images
        .iter()
        .zip(&c.images)
        .filter(|(p, q)| p != q)
        .count();
    assert!(
        differing > N * D / 2,
        "another seed changed only {differing} values"
    );
}

#[test]
fn splitting_into_batches_changes_nothing() {
    let model = small_model(5);
    let (x0, labels) = batch(41);
    let pgd = PgdL2 {
        eps: 0.5,
        alpha: 0.2,
        steps: 3,
        restarts: 1,
    };
    let whole = attack::run(
        gpu(),
        &model,
        &pgd,
        &x0,
        &labels,
        &Options {
            batch: Some(N),
            ..options(Target::None, false, 1)
        },
        |_| {},
    )
    .unwrap();
    let split = attack::run(
        gpu(),
        &model,
        &pgd,
        &x0,
        &labels,
        &Options {
            batch: Some(4),
            ..options(Target::None, false, 1)
        },
        |_| {},
    )
    .unwrap();
    assert!(whole
        .images
        .iter()
        .zip(&split.images)
        .all(|(p, q)| p.to_bits() == q.to_bits()));
    assert_eq!(whole.pred, split.pred);
}

#[test]
fn bad_parameters_are_refused_with_their_names() {
    let model = small_model(6);
    let (x0, labels) = batch(51);
    let cases: Vec<(Box<dyn Attack>, &str)> = vec![
        (Box::new(Fgsm { eps: -0.1 }), "eps"),
        (Box::new(Fgsm { eps: f32::NAN }), "eps"),
        (
            Box::new(Bim {
                eps: 0.1,
                alpha: f32::INFINITY,
                steps: 3,
            }),
            "alpha",
        ),
        (
            Box::new(Pgd {
                eps: 0.1,
                alpha: 0.01,
                steps: 0,
                restarts: 1,
            }),
            "steps",
        ),
        (
            Box::new(Pgd {
                eps: 0.1,
                alpha: 0.01,
                steps: 2,
                restarts: 0,
            }),
            "restarts",
        ),
        (
            Box::new(MiFgsm {
                eps: 0.1,
                alpha: 0.01,
                steps: 2,
                mu: -1.0,
            }),
            "mu",
        ),
    ];
    for (attack, name) in cases {
        match attack::run(
            gpu(),
            &model,
            attack.as_ref(),
            &x0,
            &labels,
            &Options::default(),
            |_| {},
        ) {
            Err(Error::InvalidParameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: expected an InvalidParameter error, got {other:?}"),
        }
    }
    let err = attack::run(
        gpu(),
        &model,
        &Fgsm::default(),
        &x0[1..],
        &labels,
        &Options::default(),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("384 values"), "{err}");
    let err = attack::run(
        gpu(),
        &model,
        &Fgsm::default(),
        &x0,
        &labels,
        &options(Target::Class(9), false, 0),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("target"), "{err}");
}

#[test]
fn targets_resolve_as_documented() {
    let labels = [0u32, 4, 2];
    assert_eq!(
        Target::Next.resolve(&labels, 5, None, 0).unwrap(),
        Some(vec![1, 0, 3])
    );
    let random = Target::Random
        .resolve(&labels, 5, None, 9)
        .unwrap()
        .unwrap();
    assert!(random.iter().zip(&labels).all(|(t, l)| t != l && *t < 5));
    let probs = [0.5, 0.1, 0.2, 0.1, 0.1, 0.3, 0.3, 0.05, 0.3, 0.05];
    assert_eq!(
        Target::LeastLikely
            .resolve(&labels[..2], 5, Some(&probs), 0)
            .unwrap(),
        Some(vec![1, 2])
    );
    assert_eq!(Target::parse("7").unwrap(), Target::Class(7));
    assert!(Target::parse("seven").is_err());
}
