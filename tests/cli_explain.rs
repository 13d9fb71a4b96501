//! The saliency, confounder and train --confounder commands: JSON reports,
//! files written, and bad settings refused with the value named, never a panic.

mod common;

use common::cli::{advgpu, json, refused};

#[test]
fn saliency_reports_every_method_and_writes_a_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "saliency",
        "gradient,integrated-gradients",
        "--n",
        "2",
        "--steps",
        "16",
        "--out",
        "sal",
        "--json",
    ];
    let v = json(&advgpu(&args, dir.path()));
    assert_eq!(v["n"], 2);
    let methods = v["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 2);
    assert_eq!(methods[0]["method"], "gradient");
    assert_eq!(methods[1]["rows"], 2 * 16);
    // The bundled model is trained: Integrated Gradients at 16 steps is
    // complete within a few percent.
    let gap = methods[1]["completeness_error"].as_f64().unwrap();
    assert!(gap < 0.05, "completeness gap {gap}");
    assert!(methods[0]["completeness_error"].is_null());
    assert_eq!(v["predicted"].as_array().unwrap().len(), 2);
    assert!(dir.path().join("sal/gallery.png").is_file());
}

#[test]
fn saliency_refuses_bad_settings_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["saliency", "gradient", "--steps", "3"][..], "steps"),
        (&["saliency", "lime"][..], "method"),
        (
            &["saliency", "gradient", "--n", "2", "--class", "12"][..],
            "class",
        ),
        (&["saliency", "occlusion", "--window", "40"][..], "window"),
        (
            &["saliency", "integrated-gradients", "--baseline", "purple"][..],
            "baseline",
        ),
        (&["saliency", "gradient", "missing.png"][..], "missing.png"),
    ] {
        let err = refused(&advgpu(args, dir.path()));
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn confounder_trains_both_models_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "confounder",
        "--arch",
        "mlp",
        "--epochs",
        "1",
        "--explained",
        "10",
        "--steps",
        "4",
        "--out",
        "conf",
        "--json",
    ];
    let v = json(&advgpu(&args, dir.path()));
    assert_eq!(v["n"], 1000);
    assert_eq!(v["explained"], 10);
    for model in ["clean", "confounded"] {
        for field in [
            "accuracy_without_mark",
            "accuracy_with_mark",
            "gradient_share",
            "ig_share",
        ] {
            let x = v[model][field].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{model}.{field} = {x}");
        }
    }
    // Even after one epoch the confounded network reads the square.
    assert!(v["confounded"]["accuracy_with_mark"].as_f64().unwrap() > 0.9);
    assert_eq!(v["confounder"]["label_noise"], 0.3);
    for f in [
        "conf/gallery.png",
        "conf/training.png",
        "conf/clean.safetensors",
        "conf/confounded.safetensors",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
}

#[test]
fn train_refuses_an_unknown_confounder() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&advgpu(&["train", "--confounder", "weather"], dir.path()));
    assert!(err.contains("weather") && err.contains("mark"), "{err}");
    let err = refused(&advgpu(
        &["train", "--confounder", "mark", "--label-noise", "2"],
        dir.path(),
    ));
    assert!(err.contains("label_noise"), "{err}");
}
