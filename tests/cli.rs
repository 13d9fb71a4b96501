//! The command line: JSON reports, files written, and bad input refused
//! with the value named and a non-zero exit, never a panic.

mod common;

use std::process::Command;

use common::cli::{advgpu, json, refused};

#[test]
fn eval_reports_accuracy_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(&advgpu(
        &["eval", "--n", "40", "--json", "--predictions"],
        dir.path(),
    ));
    assert_eq!(v["n"], 40);
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "accuracy {acc} on 40 held-out digits");
    assert_eq!(v["predictions"].as_array().unwrap().len(), 40);
    assert!(v["adapter"].as_str().unwrap().len() > 3);
}

#[test]
fn attack_writes_adversarial_pngs_a_gallery_and_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "attack", "fgsm", "--n", "3", "--eps", "0.25", "--out", "adv", "--json",
    ];
    let v = json(&advgpu(&args, dir.path()));
    assert_eq!(v["n"], 3);
    assert!(v["linf_max"].as_f64().unwrap() <= 0.25 + 1e-6);
    for f in ["adv/adv_0000.png", "adv/adv_0002.png", "adv/gallery.png"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let img = image::open(dir.path().join("adv/adv_0001.png")).unwrap();
    assert_eq!((img.width(), img.height()), (28, 28));

    // The written image classifies as the report says: predict reads it back.
    let p = json(&advgpu(
        &["predict", "adv/adv_0000.png", "--json"],
        dir.path(),
    ));
    assert_eq!(p["predictions"][0]["top"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_settings_are_refused_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&advgpu(
        &["attack", "pgd", "--eps", "-1", "--n", "2"],
        dir.path(),
    ));
    assert!(err.contains("eps") && err.contains("-1"), "{err}");
    let err = refused(&advgpu(
        &["attack", "fgsm", "--steps", "5", "--n", "2"],
        dir.path(),
    ));
    assert!(err.contains("steps"), "{err}");
    let err = refused(&advgpu(&["attack", "zoo", "--n", "2"], dir.path()));
    assert!(err.contains("zoo") && err.contains("pgd"), "{err}");
    let err = refused(&advgpu(
        &["attack", "pgd", "--target", "eleven", "--n", "2"],
        dir.path(),
    ));
    assert!(err.contains("eleven"), "{err}");
    let err = refused(&advgpu(
        &["--kernels", "fast", "eval", "--n", "2"],
        dir.path(),
    ));
    assert!(err.contains("fast"), "{err}");
    for command in ["eval", "patch"] {
        let err = refused(&advgpu(&[command, "--n", "0"], dir.path()));
        assert!(err.contains("--n 0") && err.contains("1..=1000"), "{err}");
    }
}

#[test]
fn an_image_of_the_wrong_size_is_refused_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    image::GrayImage::new(30, 20)
        .save(dir.path().join("big.png"))
        .unwrap();
    let err = refused(&advgpu(&["predict", "big.png"], dir.path()));
    assert!(err.contains("30x20") && err.contains("28x28"), "{err}");
    std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
    let err = refused(&advgpu(&["predict", "bad.png"], dir.path()));
    assert!(err.contains("bad.png"), "{err}");
}

#[test]
fn a_broken_model_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.safetensors"), [1u8, 2, 3]).unwrap();
    let err = refused(&advgpu(&["eval", "--model", "m.safetensors"], dir.path()));
    assert!(err.contains("m.safetensors"), "{err}");
}

#[test]
fn bench_compare_puts_two_reports_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let run = [
        "bench",
        "--workloads",
        "forward",
        "--batches",
        "1,2",
        "--reps",
        "1",
        "--out",
        "a.json",
        "--json",
    ];
    let a = json(&advgpu(&run, dir.path()));
    assert_eq!(a["schema"], "advgpu-bench/1");
    std::fs::copy(dir.path().join("a.json"), dir.path().join("b.json")).unwrap();
    let v = json(&advgpu(
        &["bench", "--compare", "a.json", "b.json", "--json"],
        dir.path(),
    ));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["ratio"] == 1.0));
    std::fs::write(dir.path().join("c.json"), "{}").unwrap();
    let err = refused(&advgpu(
        &["bench", "--compare", "a.json", "c.json"],
        dir.path(),
    ));
    assert!(err.contains("c.json") && err.contains("schema"), "{err}");
}

#[test]
fn a_missing_adapter_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&advgpu(
        &["--adapter", "no-such-gpu", "eval", "--n", "2"],
        dir.path(),
    ));
    assert!(
        err.contains("no-such-gpu") && err.contains("adapters present"),
        "{err}"
    );

    // No Vulkan driver at all (the loader is pointed at a file that does not exist).
    let out = Command::new(env!("CARGO_BIN_EXE_advgpu"))
        .args(["info"])
        .current_dir(dir.path())
        .env("WGPU_BACKEND", "vulkan")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    let err = refused(&out);
    assert!(
        err.contains("no GPU adapter") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
}

#[test]
fn patch_writes_the_patch_a_gallery_a_size_plot_and_the_success_rates() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "patch",
        "--target",
        "3",
        "--size",
        "4,6",
        "--steps",
        "2",
        "--batch",
        "4",
        "--n",
        "50",
        "--placements",
        "1",
        "--out",
        "p",
        "--json",
    ];
    let v = json(&advgpu(&args, dir.path()));
    assert_eq!(v["target"], 3);
    let sizes = v["results"].as_array().expect("results per size");
    assert_eq!(sizes.len(), 2);
    for s in sizes {
        let rate = s["success_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rate), "success rate {rate}");
    }
    for f in [
        "p/patch_4.png",
        "p/patch_6.png",
        "p/patch_gallery_6.png",
        "p/patch_success_by_size.png",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let (w, h) = image::image_dimensions(dir.path().join("p/patch_6.png")).unwrap();
    assert_eq!((w, h), (72, 72), "6 patch pixels at 12 screen pixels each");

    let err = refused(&advgpu(
        &["patch", "--scale", "2,1", "--steps", "1"],
        dir.path(),
    ));
    assert!(err.contains("scale") && err.contains('2'), "{err}");
    let err = refused(&advgpu(
        &["patch", "--size", "40", "--steps", "1"],
        dir.path(),
    ));
    assert!(err.contains("40"), "{err}");
    let err = refused(&advgpu(&["patch", "--optimizer", "lbfgs"], dir.path()));
    assert!(err.contains("lbfgs"), "{err}");
}

#[test]
fn attack_masked_runs_with_the_bundled_eyeglasses_and_names_a_missing_mask() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "attack", "masked", "--n", "3", "--steps", "3", "--out", "m", "--json",
    ];
    let v = json(&advgpu(&args, dir.path()));
    assert_eq!(v["n"], 3);
    assert!(dir.path().join("m/gallery.png").is_file());
    let err = refused(&advgpu(
        &["attack", "masked", "--mask", "no-such-mask.png", "--n", "2"],
        dir.path(),
    ));
    assert!(err.contains("no-such-mask.png"), "{err}");
    let reason = "No such file or directory";
    assert_eq!(err.matches(reason).count(), 1, "the cause once: {err}");
}
