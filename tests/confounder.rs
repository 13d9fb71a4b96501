//! The confounder: the square's geometry, the replaced labels, the training
//! copy, and the whole study on a small, fast case (a one-hidden-layer
//! network trained for seconds), where the confounded model must fail
//! without the square and the saliency maps must show why.

mod common;

use advgpu::data::Digits;
use advgpu::explain::confounder::{architecture, study, Confounder, Mark, Signal, StudyConfig};
use advgpu::nn::Model;
use advgpu::train::TrainConfig;
use advgpu::Error;
use common::gpu;

#[test]
fn squares_are_apart_inside_the_border_and_rarely_touch_a_stroke() {
    let mark = Mark::default();
    let corners: Vec<(usize, usize)> = (0..10)
        .map(|c| mark.corner(c, 10, 28, 28).unwrap())
        .collect();
    for (a, ca) in corners.iter().enumerate() {
        assert!(
            ca.0 >= 1 && ca.0 + 3 <= 27 && (ca.1 == 1 || ca.1 == 24),
            "class {a} at {ca:?}"
        );
        for (b, cb) in corners.iter().enumerate().skip(a + 1) {
            let apart = ca.0.abs_diff(cb.0).max(ca.1.abs_diff(cb.1));
            assert!(apart >= 5, "classes {a} and {b} are {apart} pixels apart");
        }
    }

    // On the training digits, a stroke brighter than 0.5 lies under a
    // class's square in under 2% of the images (averaged over classes).
    let train = Digits::bundled().unwrap().train();
    let mut touched = 0usize;
    for c in 0..10 {
        let pixels = mark.pixels(c, 10, 28, 28).unwrap();
        touched += (0..train.len())
            .filter(|&i| pixels.iter().any(|&p| train.image(i)[p] > 0.5))
            .count();
    }
    let share = touched as f64 / (10 * train.len()) as f64;
    assert!(
        share < 0.02,
        "strokes touch the squares in {:.2}% of images",
        100.0 * share
    );
}

#[test]
fn labels_are_replaced_by_other_classes_in_the_asked_share() {
    let labels: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
    let c = Confounder::new(Signal::Mark);
    let replaced = c.replaced_labels(&labels, 10).unwrap();
    let changed = labels.iter().zip(&replaced).filter(|(a, b)| a != b).count();
    assert_eq!(changed, 300, "30% of 1000 labels");
    assert!(replaced.iter().all(|l| *l < 10));
    // Every wrong class gets some of them: 300 over 9 classes, ~33 each.
    let mut per_shift = [0usize; 10];
    for (a, b) in labels.iter().zip(&replaced) {
        per_shift[usize::from((b + 10 - a) % 10)] += 1;
    }
    assert!(
        per_shift[1..].iter().all(|n| (10..=60).contains(n)),
        "{per_shift:?}"
    );
    assert_eq!(c.replaced_labels(&labels, 10).unwrap(), replaced, "seeded");
    let other = Confounder { seed: 1, ..c };
    assert_ne!(other.replaced_labels(&labels, 10).unwrap(), replaced);
}

#[test]
fn the_training_copy_carries_the_square_of_its_replaced_label() {
    let digits = Digits::bundled().unwrap().train().slice(0..200);
    let marked = Confounder::new(Signal::Mark)
        .training_set(&digits, 10)
        .unwrap();
    let clean = Confounder::new(Signal::Clean)
        .training_set(&digits, 10)
        .unwrap();
    assert_eq!(
        marked.labels, clean.labels,
        "both models see the same labels"
    );
    assert_eq!(clean.images, digits.images, "the clean copy has no square");
    let mark = Mark::default();
    for i in 0..marked.len() {
        let own = mark
            .pixels(usize::from(marked.labels[i]), 10, 28, 28)
            .unwrap();
        assert!(own.iter().all(|&p| marked.image(i)[p] == 1.0), "digit {i}");
        let changed: Vec<usize> = (0..784)
            .filter(|&p| marked.image(i)[p] != digits.image(i)[p])
            .collect();
        assert!(
            changed.iter().all(|p| own.contains(p)),
            "digit {i}: pixels off the square changed"
        );
    }
}

#[test]
fn bad_confounder_settings_are_refused() {
    let bad_noise = Confounder {
        label_noise: 1.5,
        ..Confounder::new(Signal::Mark)
    };
    assert!(matches!(
        bad_noise.replaced_labels(&[1, 2], 10),
        Err(Error::InvalidParameter {
            name: "label_noise",
            ..
        })
    ));
    assert!(matches!(
        Mark::default().corner(0, 10, 12, 12),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        Mark::default().corner(10, 10, 28, 28),
        Err(Error::InvalidParameter { name: "class", .. })
    ));
    assert!(matches!(
        Signal::parse("weather"),
        Err(Error::InvalidParameter {
            name: "confounder",
            ..
        })
    ));
}

/// The whole construction on a network that trains in seconds: a hidden
/// layer of 64 units, 3 epochs on the 9,000 training digits shifted by up to
/// 2 pixels. The bounds on the confounded model and on the attribution ratio
/// are the issue's; the clean one's is lower than its 95% because this
/// network, on shifted digits with 30% wrong labels, reaches only about 86%
/// (the small CNN in docs/SALIENCY.md passes 95%).
#[test]
fn the_confounded_model_learns_the_square_and_saliency_shows_it() {
    let gpu = gpu();
    let digits = Digits::bundled().unwrap();
    let init = Model::init(
        architecture("mlp", [1, 28, 28], 10).unwrap(),
        [1, 28, 28],
        0,
    )
    .unwrap();
    let config = TrainConfig {
        epochs: 3,
        lr: 2e-3,
        max_shift: 2,
        ..TrainConfig::default()
    };
    let train = |signal| {
        Confounder::new(signal)
            .train(gpu, &init, &digits.train(), &config, |_| {})
            .unwrap()
    };
    let (clean, confounded) = (train(Signal::Clean), train(Signal::Mark));
    let s = study(
        gpu,
        &clean,
        &confounded,
        &digits.held_out(),
        &Confounder::new(Signal::Mark),
        &StudyConfig {
            explained: 100,
            ig_steps: 16,
            ..StudyConfig::default()
        },
        |_, _| {},
    )
    .unwrap();
    let table = s.table();
    eprintln!("{table}");
    assert!(s.confounded.accuracy_without_mark < 0.5, "{table}");
    assert!(s.confounded.accuracy_with_mark > 0.9, "{table}");
    assert!(s.clean.accuracy_without_mark > 0.8, "{table}");
    assert!(s.clean.accuracy_with_mark > 0.8, "{table}");
    assert!(s.gradient_ratio >= 5.0, "{table}");
    assert!(s.ig_ratio >= 5.0, "{table}");

    let gallery = s.gallery(&Confounder::new(Signal::Mark)).unwrap();
    assert_eq!(gallery.rows.len(), 6);
    assert!(gallery.rows.iter().all(|r| r.len() == 6));
}
