//! Masked perturbations: nothing outside the mask changes, bit for bit; the
//! GPU follows the CPU reference; the bundled eyeglass mask; bad masks.

mod common;

use advgpu::attack::{self, masked, reference, Attack, Masked, Options, Settings, Target};
use advgpu::nn::Model;
use advgpu::Error;
use common::{gpu, random};

/// A small random classifier of 1 x 8 x 8 images into 5 classes.
fn small_model(seed: u64) -> Model {
    common::conv_pool_linear(8, 3, 5, seed)
}

const N: usize = 6;
const D: usize = 64;

fn batch(seed: u64) -> (Vec<f32>, Vec<u32>) {
    common::random_batch(N, D, 5, seed)
}

/// About a third of the pixels inside (values 0.5 to 0.83); outside, 0 or
/// 0.49, just under the threshold.
fn mask(seed: u64) -> Vec<f32> {
    random(D, seed, 0.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if *v < 0.33 {
                0.5 + v
            } else {
                0.49 * (i % 2) as f32
            }
        })
        .collect()
}

fn options(target: Target, early_stop: bool, seed: u64) -> Options {
    common::attack_options(target, early_stop, seed)
}

#[test]
fn a_masked_attack_changes_no_pixel_outside_its_mask() {
    let model = small_model(1);
    for seed in [2, 3] {
        let (x0, labels) = batch(seed);
        let m = mask(seed + 10);
        let inside: Vec<bool> = m.iter().map(|v| *v >= 0.5).collect();
        let count = inside.iter().filter(|v| **v).count();
        assert!(
            (10..=40).contains(&count),
            "{count} pixels inside the test mask"
        );
        for random_start in [false, true] {
            for target in [Target::None, Target::Next] {
                let attack = Masked {
                    mask: m.clone(),
                    alpha: 0.2,
                    steps: 6,
                    random_start,
                };
                let out = attack::run(
                    gpu(),
                    &model,
                    &attack,
                    &x0,
                    &labels,
                    &options(target.clone(), false, seed),
                    |_| {},
                )
                .unwrap();
                let mut changed = 0;
                for (i, (a, b)) in out.images.iter().zip(&x0).enumerate() {
                    if inside[i % D] {
                        changed += usize::from(a != b);
                        assert!((0.0..=1.0).contains(a));
                    } else {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "seed {seed} {target:?} start {random_start}: value {i} outside the mask changed"
                        );
                    }
                }
                assert!(
                    changed >= N * count / 2,
                    "only {changed} of {} values inside the mask changed",
                    N * count
                );
            }
        }
    }
}

#[test]
fn a_masked_attack_matches_the_cpu_reference() {
    let model = small_model(4);
    let (x0, labels) = batch(5);
    for (random_start, early_stop) in [(false, false), (true, false), (false, true)] {
        let attack = Masked {
            mask: mask(6),
            alpha: 0.1,
            steps: 5,
            random_start,
        };
        let what = format!("random_start={random_start} early_stop={early_stop}");
        let out = attack::run(
            gpu(),
            &model,
            &attack,
            &x0,
            &labels,
            &options(Target::None, early_stop, 7),
            |_| {},
        )
        .unwrap();
        let want =
            reference::attack(&model, &attack.spec(), &x0, &labels, false, early_stop, 7).unwrap();
        common::assert_close(&what, &out.images, &want.images, 0.0, 2e-5);
        assert_eq!(out.steps, want.steps, "{what}: steps");
        assert_eq!(out.success, want.success, "{what}: success");
    }
}

#[test]
fn the_bundled_eyeglass_mask_is_a_frame_of_94_pixels() {
    let m = masked::eyeglasses().unwrap();
    assert_eq!(m.len(), 28 * 28);
    assert!(m.iter().all(|v| *v == 0.0 || *v == 1.0));
    assert_eq!(m.iter().filter(|v| **v == 1.0).count(), 94);
    // Both rims are there: pixels lit left and right of the middle on row 8.
    let row = &m[8 * 28..9 * 28];
    assert!(row[..14].contains(&1.0) && row[14..].contains(&1.0));
    // Nothing below the frame: the digit's lower half is untouched.
    assert!(m[16 * 28..].iter().all(|v| *v == 0.0));

    let by_name = attack::by_name("masked", &Settings::default()).unwrap();
    assert_eq!(by_name.spec().mask.as_deref(), Some(&m[..]));
    assert_eq!(Masked::default().mask, m);
}

#[test]
fn bad_masks_are_refused_with_their_names() {
    let model = small_model(8);
    let (x0, labels) = batch(9);
    let run = |mask: Vec<f32>| {
        attack::run(
            gpu(),
            &model,
            &Masked::with_mask(mask),
            &x0,
            &labels,
            &Options::default(),
            |_| {},
        )
    };
    // The bundled mask is for 28 x 28 images, the model takes 8 x 8.
    let err = run(masked::eyeglasses().unwrap()).unwrap_err();
    assert!(err.to_string().contains("64 values (8x8 pixels)"), "{err}");
    match run(vec![0.2; D]) {
        Err(Error::InvalidParameter { name: "mask", .. }) => {}
        other => panic!("an empty mask: expected an InvalidParameter error, got {other:?}"),
    }
    match run(vec![1.5; D]) {
        Err(Error::InvalidParameter { name: "mask", .. }) => {}
        other => panic!("a mask value of 1.5: expected an InvalidParameter error, got {other:?}"),
    }
    let settings = Settings {
        mask: Some(vec![1.0; D]),
        ..Default::default()
    };
    match attack::by_name("pgd", &settings) {
        Err(Error::InvalidParameter { name: "mask", .. }) => {}
        Err(other) => panic!("pgd with a mask: expected an InvalidParameter error, got {other:?}"),
        Ok(_) => panic!("pgd with a mask was accepted"),
    }
    let settings = Settings {
        eps: Some(0.1),
        ..Default::default()
    };
    assert!(
        attack::by_name("masked", &settings).is_err(),
        "masked has no eps"
    );
}
