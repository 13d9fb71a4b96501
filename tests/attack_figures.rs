//! The attacks on the bundled model, on the first held-out digits: the
//! README's figures (measured there on all 1,000) hold on a small subset.
//! Thresholds are the issue's, with the subset's size stated; where the
//! subset's sampling error matters, the test says so.

mod common;

use advgpu::attack::{eval, Attack, Fgsm, Options, Pgd, Target};
use advgpu::data::{bundled_model, Digits};
use common::gpu;

/// Held-out digits attacked per figure: enough that each threshold is
/// several samples away from failing, few enough for seconds on lavapipe.
const N: usize = 48;

fn report(attack: &dyn Attack, target: Target) -> eval::Report {
    let model = bundled_model().unwrap();
    let held = Digits::bundled().unwrap().held_out().slice(0..N);
    let options = Options {
        target,
        ..Options::default()
    };
    let (_, r) = eval::evaluate(
        gpu(),
        &model,
        attack,
        &held.images,
        &held.labels_u32(),
        &options,
        |_| {},
    )
    .unwrap();
    r
}

#[test]
fn fgsm_at_eps_0_2_brings_accuracy_below_half() {
    let r = report(&Fgsm { eps: 0.2 }, Target::None);
    assert!(
        r.clean_accuracy >= 0.95,
        "clean accuracy {}",
        r.clean_accuracy
    );
    assert!(
        r.robust_accuracy < 0.5,
        "robust accuracy {} on {N} digits",
        r.robust_accuracy
    );
}

/// Madry et al.'s MNIST setting: eps 0.3, 40 steps of 0.01.
fn madry_pgd() -> Pgd {
    Pgd {
        eps: 0.3,
        alpha: 0.01,
        steps: 40,
        restarts: 1,
    }
}

#[test]
fn pgd_at_eps_0_3_brings_accuracy_below_five_percent() {
    let r = report(&madry_pgd(), Target::None);
    assert!(
        r.robust_accuracy < 0.05,
        "robust accuracy {} on {N} digits",
        r.robust_accuracy
    );
    assert!(r.linf_max <= 0.3 + 1e-6, "L-inf {}", r.linf_max);
}

/// The issue asks for 80% on all 1,000 digits (the README has 91.2%). On
/// 48 digits one standard error of that rate is about 5 points, and the
/// first 48 held-out digits are harder than the average (40 of 48 reached,
/// 83%; with the previous bundled model 37, 77%), so the subset is held to
/// 70%: two standard errors under 80%.
#[test]
fn targeted_pgd_reaches_label_plus_one_on_most_digits() {
    let r = report(&madry_pgd(), Target::Next);
    assert!(
        r.success_rate >= 0.7,
        "targeted success {} on {N} digits",
        r.success_rate
    );
}
